// Package syncer is the supervisor of every source: it makes the
// destination an exact, continuously updated replica of up to 32 sources
// and owns the lifecycle described in docs/semantics.md.
//
// A Supervisor runs sync runs. Each one probes the destination shards,
// asks every source what it is (discovery: one server, a Redis Cluster with
// one link per master, or another replicaof proxy with one link per
// shard), then either resumes every link from its checkpoints (first run
// of a process, all checkpoints present for the same source list) or
// flushes the destination once, and runs one replica.Link per link with an
// apply.Applier as its handler, at most MaxParallelSnapshots snapshots at a
// time. Watches run beside the links: every shard's run_id and marker key
// (a shard that restarted empty), and a cluster source's slot map.
//
// Errors are classified by Classify: Retry (reconnect with backoff, resume
// by partial resync), FullResync (end the run; the next one flushes and
// fully syncs every source) or Fatal (stop sync for every source, the
// error kept on the source that caused it). Stop, Restart and SetSources
// are requests Run handles between runs; Status reads every source's
// counters and the measured lag (lag.go) from any goroutine. The package
// parses no bytes itself: the link and the applier do.
//
// With Config.Lease (serve always sets it), Run syncs only while this
// instance holds the destination's lease (lease.go): a goroutine Run owns
// takes and renews it; a standby answers control calls with a
// *StandbyError; a takeover resumes from the checkpoints with the source
// list the previous holder wrote; the lease is the Destination's Fence, so
// a deposed instance's writes fail with apply.ErrFenced.
//
//	sup, err := syncer.New(syncer.Config{Sources: cfg.ReplicaOf.Sources, Destination: dest})
//	if err != nil {
//		return err
//	}
//	go sup.Run(ctx) // returns when ctx ends, every goroutine stopped
//	st := sup.Status()
//	fmt.Println(st.Status, st.Sources[0].SyncState, st.Sources[0].LagMS)
package syncer
