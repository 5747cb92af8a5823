// Package destination is the sharded destination replicaof writes, serves
// and checks: built once from the configuration and shared by the syncer
// (syncer/apply), the proxy and verify, so all three place keys the same
// way and reach the shards the same way.
//
// A Destination holds:
//
//   - the current router.SlotMap behind an atomic pointer: Map returns
//     it, SetMap swaps in another (a cluster destination whose slots move
//     will call it; today the map is the even split, or Config.Map);
//   - how to reach each shard (Shard: address, AUTH user and password,
//     the TLS dialer), and the Init every connection to (shard, db) runs
//     (AUTH, SELECT), built in one place;
//   - the connection pools per (shard, db): Backend for the syncer's
//     writes (Config.Pool), and further pool sets with their own tuning
//     (NewPools: the proxy's, with its timeouts and limits); Close closes
//     them all;
//   - the internal key prefix KeyPrefix ("__replicaof:") and the keys it
//     writes itself (ProbeKey, MarkerKey); every other internal key name
//     builds on KeyPrefix;
//   - what the syncer learns about the shards: Info (server and version,
//     hence the highest RDB version RESTORE accepts), Probe and Mark (run
//     id and marker key, which tell a shard that lost its data), Commands
//     (the shards' command table);
//   - the lease's Fence hook (SetFence): Do checks it before every
//     command; the transaction guard built on it is apply's.
//
// An error reply to Do is a *WriteError wrapping ErrRejected or ErrOOM.
// The package opens no connection until a backend is used.
//
//	d, err := destination.New(destination.Config{
//		Shards: []destination.Shard{{Addr: "127.0.0.1:7001"}, {Addr: "127.0.0.1:7002"}},
//	})
//	if err != nil { ... }
//	defer d.Close()
//	shard := d.Map().ShardOf([]byte("k"))
//	reply, err := d.Backend(shard, 0).Do(ctx, resp.AppendCommandString(nil, "GET", "k"), nil)
package destination
