package syncer

import (
	"io"
	"log/slog"
	"time"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/syncer/apply"
	"github.com/replicaof/replicaof/syncer/replica"
)

// Config configures a Supervisor. Zero fields take the documented defaults.
type Config struct {
	// Sources are the databases to replicate, at most config.MaxSources.
	Sources []config.Source
	// Destination receives every source's data; the supervisor flushes it
	// at each start and restart, and does not close it.
	Destination *destination.Destination
	Logger      *slog.Logger // default: discard

	// MaxParallelSnapshots bounds the snapshots loading at once (default 4).
	MaxParallelSnapshots int
	// RetryMin and RetryMax bound the backoff between reconnects of one
	// source (default 100ms doubling to 10s).
	RetryMin, RetryMax time.Duration
	// SampleInterval is how often each source's replication offset is
	// sampled to measure lag (default 250ms).
	SampleInterval time.Duration
	// ListeningPort is announced to sources by REPLCONF listening-port.
	ListeningPort int
	// Link tunes every replication link; Addr, credentials and Dial are set
	// per source.
	Link replica.Config
	// ApplyOptions tune every source's applier.
	ApplyOptions apply.Options
	// ShardCheckInterval is how often every destination shard's run_id and
	// marker key are checked while sync runs, to catch a shard that
	// restarted empty (default 1s).
	ShardCheckInterval time.Duration
	// NoResume makes the first start flush and fully sync like every
	// later one, ignoring the checkpoints a previous process left.
	NoResume bool
	// SpoolDir, when set, lets every link spill what the destination has
	// not consumed yet to disk (bounded by Link.SpoolMaxBytes) instead of
	// stopping to read, so a slow destination never makes a source drop
	// the link. serve sets it to state_dir/spool.
	SpoolDir string
	// DiscoverGrace is how long a sync run waits for every source to
	// answer discovery before starting those that did (default 5s); the
	// others join when they answer, with a full sync.
	DiscoverGrace time.Duration
	// TopologyInterval is how often a Redis Cluster source's slot map is
	// compared with the one its sync run started with (default 2s).
	TopologyInterval time.Duration
	// MaxSnapshotDrops is how many snapshots in a row a source may drop
	// (its client-output-buffer-limit replica too small) before sync stops
	// with an error saying so (default 3).
	MaxSnapshotDrops int
	// Lease, when set, makes this instance sync only while it holds the
	// destination's lease (lease.go): several instances can then run over
	// one destination, one active and the others standbys. nil: this
	// instance is always active (a single instance).
	Lease *LeaseConfig
	// OnSourcesAdopted is called when this instance took the lease over
	// and adopted the source list the previous holder wrote (e.g. to save
	// it to the config file); nil does nothing.
	OnSourcesAdopted func([]config.Source)
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.MaxParallelSnapshots <= 0 {
		c.MaxParallelSnapshots = 4
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 10 * time.Second
	}
	if c.MaxSnapshotDrops <= 0 {
		c.MaxSnapshotDrops = 3
	}
	if c.SampleInterval <= 0 {
		c.SampleInterval = 250 * time.Millisecond
	}
	if c.ShardCheckInterval <= 0 {
		c.ShardCheckInterval = time.Second
	}
	if c.DiscoverGrace <= 0 {
		c.DiscoverGrace = 5 * time.Second
	}
	if c.TopologyInterval <= 0 {
		c.TopologyInterval = 2 * time.Second
	}
	return c
}
