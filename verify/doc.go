// Package verify compares the sources of a replicaof deployment with its
// sharded destination key by key: type, value and TTL. TTLs are compared
// as times to live, the destination's less Config.TTLGrace (the grace the
// syncer adds to every TTL it writes), within Config.TTLTolerance.
//
// Memory stays bounded whatever the size of the keyspace or of a value:
// each source is read with SCAN in batches, every batch's keys are read on
// the source and on the destination shard their slot maps to
// (router.SlotMap), and only a 64-bit xxhash digest of each value's
// canonical encoding is kept. Strings, lists, sorted sets (rank order,
// scores printed the shortest exact way) and streams (entries, length, last
// ID, consumer groups) are digested in order, chunk by chunk; sets and
// hashes are read with SSCAN/HSCAN and digested as the sum of one hash per
// member (or field and value), which does not depend on the order the server
// returns them in. DUMP payloads are not compared: they differ between
// server versions and encodings for equal values.
//
// The destination shards are then scanned for keys on no source (extra),
// on several sources (duplicate), or on a shard their slot does not map to
// (misplaced). Keys starting with destination.KeyPrefix
// (replicaof's own) are ignored everywhere.
//
// A Redis Cluster destination (destination.Open) is read group by group,
// at each group's master when the run starts, with the cluster's map at
// that moment: run it while the cluster's topology is stable (a failover
// or resharding during the run makes reads fail or keys look misplaced;
// run it again). A cluster has database 0 only: Config.DBMap maps source
// databases onto it (or drops them) as the syncer's destination.db_map
// does, and an unmapped source database other than 0 is an error.
//
// Keys may change while the run goes on (sync is live): every mismatch is
// read again once, Config.RecheckDelay after it was found, and only those
// still different are reported.
//
//	rep, err := verify.Run(ctx, verify.Config{
//		Sources: []verify.Endpoint{{Name: "orders", Addr: "10.0.0.5:6379", Password: pw}},
//		Shards:  []verify.Endpoint{{Addr: "127.0.0.1:7001"}, {Addr: "127.0.0.1:7002"}},
//	})
//	if err != nil {
//		return err
//	}
//	rep.WriteText(os.Stdout)
//	if !rep.OK() {
//		os.Exit(1)
//	}
package verify
