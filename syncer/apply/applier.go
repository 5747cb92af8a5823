package apply

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/router"
	"github.com/replicaof/replicaof/syncer/rdb"
	"github.com/replicaof/replicaof/syncer/replica"
)

// Options tune one Applier. The zero value selects the defaults.
type Options struct {
	// Source labels the source in logs and to Observer.
	Source string
	// Observer, when set, is told about every batch applied on a shard;
	// nil reports nothing.
	Observer Observer
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Table locates keys in stream commands; nil means router.Builtin.
	Table *router.Table
	// SplitBlocks applies a MULTI … EXEC block whose keys span
	// destination shards as one block per shard (each atomic on its
	// shard) instead of stopping with a CrossSlotError. For sources whose
	// blocks are not the application's: another replicaof's shards, where
	// the blocks group a batch of unrelated writes with a checkpoint.
	// CrossShardEmulate (the default) splits such blocks anyway; this
	// matters with CrossShardStop.
	SplitBlocks bool
	// ForceDecode disables the RESTORE fast path: every key is rebuilt
	// with ordinary commands.
	ForceDecode bool
	// BatchCalls and BatchBytes bound one snapshot pipeline (defaults 512
	// commands, 1 MiB; a single larger command gets a pipeline of its own).
	BatchCalls int
	BatchBytes int
	// Inflight is how many snapshot pipelines may await replies per shard
	// (default 4). Snapshot memory stays under about
	// shards × (Inflight+1) × max(BatchBytes, RDB.MaxRawPayload).
	Inflight int
	// RDB are the parser's options. MaxRawPayload defaults to 8 MiB here:
	// larger values are decoded in chunks instead of RESTOREd whole.
	RDB rdb.Options
	// MaxPending bounds the stream PEL entries held per consumer group
	// while a stream is rebuilt (default 1<<20); beyond it delivery
	// times are not kept.
	MaxPending int
	// MaxBlockBytes bounds a MULTI/EXEC block buffered across Apply calls
	// (default 256 MiB); a larger block fails with ErrTooLarge.
	MaxBlockBytes int
	// Checkpoint turns on exactly-once checkpoints (checkpoint.go); the
	// zero value leaves them off.
	Checkpoint CheckpointOptions
	// CrossShard is what a stream command (or MULTI/EXEC block) whose
	// keys span destination shards and that cannot be split becomes:
	// emulated (the default, xshard.go) or a *CrossSlotError.
	CrossShard CrossShard
	// MaxCrossShardBytes bounds the DUMP payloads one emulated command
	// holds in memory (default 256 MiB); beyond it sync stops with
	// ErrTooLarge.
	MaxCrossShardBytes int
	// TTLGrace is added to every TTL written (ttl.go): the destination
	// keeps a key that long past the source's TTL unless the source's DEL
	// arrives first. 0 writes the source's TTLs unchanged; at most
	// MaxTTLGrace. Readers through the proxy see the source's TTLs
	// (proxy.Config.TTLGrace).
	TTLGrace time.Duration
	// SkipUnsupported leaves out keys the destination cannot take (a
	// module type a shard lacks, unsupported.go) instead of stopping with
	// an *UnsupportedKeyError, and drops the stream's commands on them.
	SkipUnsupported bool
	// MaxSkippedKeys bounds the skipped key names remembered to drop
	// their commands (default 1<<20; see unsupported.go).
	MaxSkippedKeys int
	// DBMap maps source databases onto a Redis Cluster destination,
	// which has db 0 only: each listed database goes to 0 or, with
	// DropDB, its keys and commands are left out; a write to an unlisted
	// database other than 0 stops sync with a *DBError naming it
	// (config: destination.db_map). Standalone shards ignore it.
	DBMap map[int]int
}

// DropDB in Options.DBMap leaves a source database out.
const DropDB = -1

// MaxTTLGrace bounds Options.TTLGrace.
const MaxTTLGrace = 365 * 24 * time.Hour

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Table == nil {
		o.Table = router.Builtin
	}
	if o.BatchCalls <= 0 {
		o.BatchCalls = 512
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 1 << 20
	}
	if o.Inflight <= 0 {
		o.Inflight = 4
	}
	if o.RDB.MaxRawPayload == 0 {
		o.RDB.MaxRawPayload = 8 << 20
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 1 << 20
	}
	if o.MaxBlockBytes <= 0 {
		o.MaxBlockBytes = 256 << 20
	}
	if o.MaxCrossShardBytes <= 0 {
		o.MaxCrossShardBytes = 256 << 20
	}
	o.TTLGrace = min(max(o.TTLGrace, 0), MaxTTLGrace)
	if o.MaxSkippedKeys <= 0 {
		o.MaxSkippedKeys = 1 << 20
	}
	if o.Checkpoint.Every <= 0 {
		o.Checkpoint.Every = time.Second
	}
	return o
}

// Observer receives an Applier's writes (metrics.ShardObserver fits).
// Applied is called concurrently (shards are written in parallel) and
// must not block.
type Observer interface {
	// Applied reports one pipeline of the source's that a shard answered
	// without error: n is the number of commands it carried on the
	// shard, snapshot and stream alike (RESTOREs, rebuilt keys' writes,
	// stream commands, and the SELECT, MULTI/EXEC and checkpoint writes
	// around them).
	Applied(source string, shard, n int)
}

// applied reports b, answered without error, to the Observer.
func (a *Applier) applied(b *batch) {
	if o := a.opts.Observer; o != nil {
		o.Applied(a.opts.Source, b.shard, b.Len())
	}
}

// Stats are an Applier's counters, cumulative over its life.
type Stats struct {
	KeysLoaded       int64 // snapshot keys written
	KeysRestored     int64 // of those, through RESTORE
	KeysDecoded      int64 // of those, rebuilt with ordinary commands
	KeysBatched      int64 // of those, small strings without TTL written many per MSET
	KeysExpired      int64 // snapshot keys skipped: already expired
	Functions        int64 // function libraries loaded (per library, not per shard)
	SkippedFieldTTLs int64 // hash field TTLs the destination cannot hold
	RDBBytes         int64 // snapshot bytes parsed so far (progress)
	Commands         int64 // stream commands applied
	BytesSent        int64 // request bytes written to the destination
	// Offset is the replication offset just after the last stream command
	// whose effects reached the destination (a MULTI block counts at its
	// EXEC).
	Offset int64
	// Skipped counts per-shard parts of stream commands not sent because
	// the shard already held them (checkpoint mode).
	Skipped int64
	// CrossShard counts stream commands (a MULTI/EXEC block counts once)
	// whose keys spanned destination shards and that were emulated.
	CrossShard int64
	// Unsupported counts the keys left out since the last full sync, per
	// type ("module ReJSON-RL (encver 3)"), with SkipUnsupported; nil
	// when none.
	Unsupported map[string]int64
	// DroppedCommands counts stream commands dropped since the last full
	// sync because they addressed a skipped key or are unknown to the
	// destination (SkipUnsupported).
	DroppedCommands int64
	// UntrackedSkips counts skipped keys not remembered (over
	// MaxSkippedKeys): their commands are not dropped.
	UntrackedSkips int64
	// On a Redis Cluster destination: Moved counts commands and slot
	// transactions sent again to a slot's new owner after -MOVED;
	// Retried those sent again after -ASK, -TRYAGAIN or -CLUSTERDOWN (a
	// slot migrating, the cluster down).
	Moved, Retried int64
}

// Applier writes one source's snapshot and command stream to a
// Destination. It implements replica.Handler. LoadSnapshot and Apply
// (and the Handler methods) must be called from one goroutine at a time;
// Stats may be called concurrently.
type Applier struct {
	d    *destination.Destination
	opts Options

	keysLoaded, keysRestored, keysDecoded, keysExpired atomic.Int64
	keysBatched                                        atomic.Int64
	functions, skippedTTLs, rdbBytes                   atomic.Int64
	commands, bytesSent, offset, skipped               atomic.Int64
	crossShard                                         atomic.Int64
	maxBatch                                           atomic.Int64 // largest snapshot pipeline sent, in bytes

	// cluster: the destination is a Redis Cluster (cluster.go): stream
	// transactions and checkpoints are per slot.
	cluster bool
	cl      clusterState // owned by the caller's goroutine
	redir   redirects

	stream streamState // Apply's state, owned by the caller's goroutine
	ckpt   ckptState   // checkpoints, owned by the caller's goroutine
	xs     xsState     // cross-shard emulation, owned by the caller's goroutine
	skips  skipped     // keys left out (SkipUnsupported)
}

var _ replica.Handler = (*Applier)(nil)

// New returns an Applier writing to d.
func New(d *destination.Destination, opts Options) *Applier {
	a := &Applier{d: d, opts: opts.withDefaults(), cluster: d.Cluster()}
	a.skips.a = a
	a.cl.init(a)
	a.ckpt.init(a)
	a.stream.init(a)
	a.xs.init(a)
	return a
}

// Stats returns the counters. Safe for concurrent use.
func (a *Applier) Stats() Stats {
	return Stats{
		KeysLoaded:       a.keysLoaded.Load(),
		KeysRestored:     a.keysRestored.Load(),
		KeysDecoded:      a.keysDecoded.Load(),
		KeysBatched:      a.keysBatched.Load(),
		KeysExpired:      a.keysExpired.Load(),
		Functions:        a.functions.Load(),
		SkippedFieldTTLs: a.skippedTTLs.Load(),
		RDBBytes:         a.rdbBytes.Load(),
		Commands:         a.commands.Load(),
		BytesSent:        a.bytesSent.Load(),
		Offset:           a.offset.Load(),
		Skipped:          a.skipped.Load(),
		CrossShard:       a.crossShard.Load(),
		Unsupported:      a.skips.snapshot(),
		DroppedCommands:  a.skips.dropped.Load(),
		UntrackedSkips:   a.skips.untracked.Load(),
		Moved:            a.redir.moved.Load(),
		Retried:          a.redir.retried.Load(),
	}
}

// FullSync loads the snapshot (replica.Handler). The destination is not
// flushed here: the supervisor flushes it once for all sources. The
// stream state (selected db, an open MULTI block) starts afresh. In
// checkpoint mode the checkpoint (offset) is written on every shard once
// the snapshot is loaded.
func (a *Applier) FullSync(ctx context.Context, replID string, offset, size int64, r io.Reader) error {
	a.stream.reset()
	a.skips.reset()
	a.ckpt.forget()
	a.ckpt.replID = replID
	if a.cluster {
		a.cl.noteMasters() // a failover during the load fails it (writeSlotCheckpoints)
	}
	a.offset.Store(offset)
	if _, err := a.LoadSnapshot(ctx, r); err != nil {
		return err
	}
	// The parser stops after the EOF opcode and its checksum; the reader
	// must still be drained.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	if a.ckpt.on {
		return a.writeCheckpoints(ctx, offset)
	}
	return nil
}

// Continue notes a partial resynchronization (replica.Handler): the
// selected db and an open MULTI block carry over, as the source does not
// repeat them. In checkpoint mode it re-reads every shard's checkpoint,
// so what a shard already holds is not sent again; it fails with
// ErrCheckpointLost when a shard lost what it held. On a cluster a slot
// that went back below offset (a failover lost writes) makes it fail with
// a *RewindError: the link must resume from the older offset.
func (a *Applier) Continue(ctx context.Context, replID string, offset int64) error {
	if !a.ckpt.on {
		return nil
	}
	a.ckpt.replID = replID
	if a.cluster {
		return a.continueSlots(ctx, offset)
	}
	return a.reloadCheckpoints(ctx)
}
