package syncer

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/syncer/apply"
	"github.com/replicaof/replicaof/syncer/replica"
)

// Source kinds, as discovered at the start of each sync run.
const (
	KindRedis     = "redis"     // one server: one link
	KindCluster   = "cluster"   // a Redis Cluster: one link per master
	KindReplicaof = "replicaof" // a replicaof proxy: one link per destination shard
)

// source is one source's configuration and live status: errors and the
// stopped state are the source's, replication progress is its parts'
// (one per link). Its fields are updated by the goroutines of its sync
// run and read by Status.
type source struct {
	uid int
	cfg config.Source

	mu          sync.Mutex
	kind        string
	parts       []*part
	stopped     bool // stopped with the others (user stop or a fatal error)
	lastErr     string
	lastErrTime time.Time
	fatal       bool
	retries     int
}

// part is one replication link of a source: the source itself, one master
// of a Redis Cluster source, or one destination shard of a replicaof
// proxy source.
type part struct {
	// id tells the parts of a source apart in checkpoint keys: "" for a
	// plain source, the slot ranges of a cluster master, "shard:<i>".
	id        string
	handshake [][]string // extra handshake commands (replicaof proxy)
	gzip      bool
	shard     int // the proxy shard, -1 otherwise
	ranges    string

	addr atomic.Pointer[string] // where to dial now (a cluster master moves)

	rdbDone atomic.Int64 // snapshot bytes received

	mu           sync.Mutex
	link         *replica.Link
	applier      *apply.Applier
	drops        int // snapshots dropped in a row by the source
	synced       bool
	lastUpdate   time.Time
	rdbSize      int64
	replID       string
	srcOffset    int64
	appliedOff   int64
	lag          *lagTracker
	fullSyncs    int
	partialSyncs int
}

func newPart(id, addr string) *part {
	p := &part{id: id, shard: -1, lag: newLagTracker()}
	p.setAddr(addr)
	return p
}

func (p *part) setAddr(a string) { p.addr.Store(&a) }
func (p *part) getAddr() string  { return *p.addr.Load() }

func newSource(uid int, cfg config.Source) *source {
	return &source{uid: uid, cfg: cfg}
}

// reset prepares a new sync run: errors from an earlier run stay visible
// until this one makes progress, except that the state is syncing again.
func (s *source) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = false
	s.fatal = false
	for _, p := range s.parts {
		p.mu.Lock()
		p.synced = false
		p.rdbSize = 0
		p.rdbDone.Store(0)
		p.appliedOff, p.srcOffset = 0, 0
		p.lag.reset()
		p.mu.Unlock()
	}
}

// setParts installs the parts discovered for a sync run. A part with the
// id of one of the previous run keeps its counters and its count of
// dropped snapshots (the loop detection spans runs); the rest of its
// progress starts over.
func (s *source) setParts(kind string, parts []*part) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := map[string]*part{}
	for _, p := range s.parts {
		old[p.id] = p
	}
	for _, p := range parts {
		if o := old[p.id]; o != nil {
			o.mu.Lock()
			p.drops, p.fullSyncs, p.partialSyncs, p.lastUpdate = o.drops, o.fullSyncs, o.partialSyncs, o.lastUpdate
			o.mu.Unlock()
		}
	}
	s.kind, s.parts = kind, parts
}

func (s *source) getKind() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kind
}

func (s *source) getParts() []*part {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.parts
}

func (p *part) setLink(l *replica.Link, a *apply.Applier) {
	p.mu.Lock()
	p.link, p.applier = l, a
	p.mu.Unlock()
}

// dropCount is how many snapshots in a row the source has dropped.
func (p *part) dropCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.drops
}

// snapshotDropped counts a snapshot the source dropped and returns how
// many in a row it has dropped.
func (p *part) snapshotDropped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drops++
	return p.drops
}

func (s *source) setStopped() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
}

func (s *source) setError(err error, fatal bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err.Error()
	s.lastErrTime = time.Now()
	if fatal {
		s.fatal = true
		s.stopped = true
	}
}

func (s *source) clearError() {
	s.mu.Lock()
	s.lastErr, s.lastErrTime, s.fatal = "", time.Time{}, false
	s.mu.Unlock()
}

func (s *source) retry(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retries++
	s.lastErr = err.Error()
	s.lastErrTime = time.Now()
}

func (p *part) beginSnapshot(size int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.synced = false
	p.rdbSize = size
	p.rdbDone.Store(0)
}

func (p *part) snapshotDone(replID string, offset int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.synced = true
	p.fullSyncs++
	p.replID = replID
	p.appliedOff = offset
	p.lastUpdate = time.Now()
}

func (p *part) continued(replID string, offset int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.synced = true
	p.partialSyncs++
	p.replID = replID
}

func (p *part) applied(offset int64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.appliedOff = offset
	p.lastUpdate = now
	p.drops = 0 // the stream flows: snapshots are not being dropped
	p.lag.applied(offset, now)
}

// sample records the source's offset; the link's own applied offset (which
// also counts the PINGs it consumes) settles samples an idle source makes.
func (p *part) sample(offset int64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.srcOffset = offset
	applied := p.appliedOff
	if p.link != nil {
		if a := p.link.Stats().AppliedOffset; a > applied {
			applied = a
		}
	}
	p.lag.applied(applied, now)
	if p.synced {
		p.lag.sample(offset, applied, now)
	}
}

// status sums a source's parts: sizes and counters add up, the lag is the
// largest, the last update the latest; the source is synced when every
// part is.
func (s *source) status(now time.Time) SourceStatus {
	s.mu.Lock()
	st := SourceStatus{
		UID:           s.uid,
		Name:          s.cfg.Name,
		URI:           s.cfg.Redacted(),
		Kind:          s.kind,
		Links:         len(s.parts),
		LastError:     s.lastErr,
		LastErrorTime: rfc3339(s.lastErrTime),
		Retries:       s.retries,
	}
	parts, stopped := s.parts, s.stopped
	s.mu.Unlock()

	synced := len(parts) > 0
	phase := PhaseStreaming
	if len(parts) == 0 {
		phase = PhaseConnecting // not discovered yet
	}
	var last time.Time
	var lag time.Duration
	for _, p := range parts {
		p.mu.Lock()
		synced = synced && p.synced
		if p.lastUpdate.After(last) {
			last = p.lastUpdate
		}
		lag = max(lag, p.lag.lag(now))
		switch {
		case p.rdbSize < 0 || st.RDBSize < 0:
			st.RDBSize = -1 // unknown while any is a diskless transfer
		default:
			st.RDBSize += p.rdbSize
		}
		st.RDBTransferred += p.rdbDone.Load()
		st.FullSyncs += p.fullSyncs
		st.PartialSyncs += p.partialSyncs
		st.SourceOffset += p.srcOffset
		st.AppliedOffset += p.appliedOff
		if p.applier != nil {
			as := p.applier.Stats()
			st.KeysLoaded += as.KeysLoaded
			st.CrossShardEmulated += as.CrossShard
			st.DroppedCommands += as.DroppedCommands
			for typ, n := range as.Unsupported {
				if st.UnsupportedKeys == nil {
					st.UnsupportedKeys = map[string]int64{}
				}
				st.UnsupportedKeys[typ] += n
			}
		}
		lp := PhaseConnecting
		if p.link != nil {
			ls := p.link.Stats()
			st.BytesReceived += ls.BytesReceived
			st.WireBytes += ls.WireBytes
			lp = linkPhase(ls.State)
		}
		if phaseRank[lp] < phaseRank[phase] {
			phase = lp
		}
		p.mu.Unlock()
	}
	st.LastUpdate = rfc3339(last)
	st.Phase = phase
	switch {
	case stopped:
		st.SyncState = StateStopped
		st.Phase = PhaseStopped
	case synced:
		st.SyncState = StateSynced
		st.Progress = 100
		st.LagMS = lag.Milliseconds()
	default:
		st.SyncState = StateSyncing
		if st.RDBSize > 0 {
			st.Progress = int(min(99, 100*st.RDBTransferred/st.RDBSize))
		}
	}
	st.Status = coarse(st.SyncState)
	return st
}

// linkPhase names a link's state as a status phase. A link that is not
// running (between retries) is connecting again.
func linkPhase(s replica.State) string {
	switch s {
	case replica.StatePSync, replica.StateTransfer:
		return PhaseWaiting
	case replica.StateLoading:
		return PhaseLoading
	case replica.StateStreaming:
		return PhaseStreaming
	}
	return PhaseConnecting
}
