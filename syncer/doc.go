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
// Errors carry their class (internal/errclass; this package's own are in
// errors.go) and errclass.Classify reads it: Retry (reconnect with backoff,
// resume by partial resync), FullResync (end the run; the next one
// flushes and fully syncs every source) or Fatal (stop sync for every
// source, the error kept on the source that caused it, as a
// *SourceError). Stop, Restart and SetSources are requests Run handles
// between runs; Status reads every source's counters and the measured lag
// (lag.go) from any goroutine. The package parses no bytes itself: the
// link and the applier do.
//
// The files follow the jobs: supervisor.go is the control loop (requests,
// lease changes, what a run's end means); run.go is one sync run, whose
// errgroup owns every goroutine of the run (links, lag samplers, shard and
// topology watches) and waits for them; the decisions are pure functions
// with table tests: resume.go (resume from the checkpoints or flush, and
// from where) and policy.go (backoff, discovery retry, and what a link's
// failure means: retry after a wait, end the run, a snapshot loop);
// linkrun.go drives one link by that policy and handler.go adapts it to
// its applier; shards.go, discover.go and sample.go are the watches and
// the lag sampler; dial.go dials sources (TCP or TLS).
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
