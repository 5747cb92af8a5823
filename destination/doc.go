// Package destination is the sharded destination replicaof writes, serves
// and checks: built once from the configuration and shared by the syncer
// (syncer/apply), the proxy and verify, so all three place keys the same
// way and reach the shards the same way.
//
// A Destination holds:
//
//   - the current router.SlotMap behind an atomic pointer: Map returns
//     it, SetMap swaps in another (standalone shards: the even split, or
//     Config.Map; a cluster's map is the cluster's);
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
// New opens no connection until a backend is used; Open asks the listed
// nodes first.
//
// # Redis Cluster
//
// Open recognizes a Redis Cluster (INFO cluster: cluster_enabled:1) and
// takes the listed shards as seeds. The cluster is a list of groups, a
// master and its replicas, numbered by lowest slot at discovery and fixed
// for the Destination's life: Len, Map, Addr, Shard, Replicas, Backend
// and Pools.Get speak of groups and follow each group's current master.
// Their hot paths are atomic loads. The topology (CLUSTER SHARDS, or
// CLUSTER SLOTS before 7.0; package internal/topology) is re-read by a
// refresher goroutine the Destination owns (Close stops it): every
// Config.Refresh, when a pool's connection fails, and after Moved;
// Refresh does it at once (single-flight, at most every 100 ms). A group
// is recognized across failovers by the node IDs seen in it; a master
// with slots outside every group fails Refresh with ErrTopologyChanged
// (fatal: restart replicaof). Nodes lists every node for status.
//
// Writers follow the cluster's redirects: ParseRedirect reads -MOVED and
// -ASK replies, IsTryAgain and IsClusterDown the retryable ones; Moved
// records a MOVED (the slot moves in Map at once when its target is a
// group's master; a refresh is asked for); NodeBackend and Pools.Node
// reach a redirect's target. Do (the admin path: checkpoint reads,
// probes, FLUSHALL) follows them all itself, with bounded attempts and
// backoff within its context, and never resends a command after a
// connection error. A cluster has database 0 only: other databases'
// backends fail with ErrClusterDB. Every node connection sends READONLY
// (a replica then serves reads). Probe keeps a group's run id across
// failovers (a failover is not a data loss) and changes it when the same
// master restarts; Mark and Probe use one marker key per group
// (MarkerKeyOf), and Mark waits (up to a second) for the group's replicas
// to have it.
//
//	d, err := destination.Open(ctx, destination.Config{
//		Shards: []destination.Shard{{Addr: "127.0.0.1:7001"}, {Addr: "127.0.0.1:7002"}},
//	})
//	if err != nil { ... }
//	defer d.Close()
//	shard := d.Map().ShardOf([]byte("k"))
//	reply, err := d.Backend(shard, 0).Do(ctx, resp.AppendCommandString(nil, "GET", "k"), nil)
package destination
