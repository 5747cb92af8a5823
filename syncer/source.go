package syncer

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/syncer/apply"
	"github.com/replicaof/replicaof/syncer/replica"
)

// source is one source's configuration and live status. Its fields are
// updated by the goroutines of its sync run and read by Status.
type source struct {
	uid int
	cfg config.Source

	rdbDone atomic.Int64 // snapshot bytes received

	mu           sync.Mutex
	link         *replica.Link
	applier      *apply.Applier
	drops        int // snapshots dropped in a row by the source
	state        string
	lastErr      string
	lastErrTime  time.Time
	fatal        bool
	lastUpdate   time.Time
	rdbSize      int64
	replID       string
	srcOffset    int64
	appliedOff   int64
	lag          *lagTracker
	retries      int
	fullSyncs    int
	partialSyncs int
}

func newSource(uid int, cfg config.Source) *source {
	return &source{uid: uid, cfg: cfg, state: StateSyncing, lag: newLagTracker()}
}

// reset prepares a new sync run: errors from an earlier run stay visible
// until this one makes progress, except that the state is syncing again.
func (s *source) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = StateSyncing
	s.fatal = false
	s.rdbSize = 0
	s.rdbDone.Store(0)
	s.appliedOff, s.srcOffset = 0, 0
	s.lag.reset()
}

func (s *source) setLink(l *replica.Link, a *apply.Applier) {
	s.mu.Lock()
	s.link, s.applier = l, a
	s.mu.Unlock()
}

// snapshotDropped counts a snapshot the source dropped and returns how
// many in a row it has dropped.
func (s *source) snapshotDropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops++
	return s.drops
}

func (s *source) setState(state string) {
	s.mu.Lock()
	s.state = state
	s.mu.Unlock()
}

func (s *source) setError(err error, fatal bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err.Error()
	s.lastErrTime = time.Now()
	if fatal {
		s.fatal = true
		s.state = StateStopped
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

func (s *source) beginSnapshot(size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = StateSyncing
	s.rdbSize = size
	s.rdbDone.Store(0)
}

func (s *source) snapshotDone(replID string, offset int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = StateSynced
	s.fullSyncs++
	s.replID = replID
	s.appliedOff = offset
	s.lastUpdate = time.Now()
}

func (s *source) continued(replID string, offset int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = StateSynced
	s.partialSyncs++
	s.replID = replID
}

func (s *source) applied(offset int64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appliedOff = offset
	s.lastUpdate = now
	s.drops = 0 // the stream flows: snapshots are not being dropped
	s.lag.applied(offset, now)
}

// sample records the source's offset; the link's own applied offset (which
// also counts the PINGs it consumes) settles samples an idle source makes.
func (s *source) sample(offset int64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srcOffset = offset
	applied := s.appliedOff
	if s.link != nil {
		if a := s.link.Stats().AppliedOffset; a > applied {
			applied = a
		}
	}
	s.lag.applied(applied, now)
	if s.state == StateSynced {
		s.lag.sample(offset, applied, now)
	}
}

func (s *source) status(now time.Time) SourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SourceStatus{
		UID:            s.uid,
		Name:           s.cfg.Name,
		URI:            s.cfg.Redacted(),
		SyncState:      s.state,
		Status:         coarse(s.state),
		RDBSize:        s.rdbSize,
		RDBTransferred: s.rdbDone.Load(),
		LastUpdate:     rfc3339(s.lastUpdate),
		LastError:      s.lastErr,
		LastErrorTime:  rfc3339(s.lastErrTime),
		Retries:        s.retries,
		FullSyncs:      s.fullSyncs,
		PartialSyncs:   s.partialSyncs,
		SourceOffset:   s.srcOffset,
		AppliedOffset:  s.appliedOff,
	}
	if s.applier != nil {
		st.KeysLoaded = s.applier.Stats().KeysLoaded
	}
	switch {
	case s.state == StateSynced:
		st.Progress = 100
		st.LagMS = s.lag.lag(now).Milliseconds()
	case s.rdbSize > 0:
		st.Progress = int(min(99, 100*st.RDBTransferred/s.rdbSize))
	}
	return st
}
