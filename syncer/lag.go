package syncer

import "time"

// lagTracker measures replication lag from samples of the source's
// master_repl_offset: a sample (offset O seen at time T) says every write
// up to O had reached the source by T, so when the applied offset passes O
// at time T', those writes were applied T'-T after reaching the source at
// the latest. It is pure state, driven by its callers' clocks.
type lagTracker struct {
	samples []lagSample // pending samples, offsets ascending
	last    time.Duration
	// max is the bound on pending samples: under a long catch-up the oldest
	// are kept (they bound the lag from below) and newer ones are dropped.
	max int
}

type lagSample struct {
	offset int64
	at     time.Time
}

func newLagTracker() *lagTracker { return &lagTracker{max: 1024} }

// sample records that the source's offset was offset at time at; applied
// is what has been applied at that moment.
func (l *lagTracker) sample(offset, applied int64, at time.Time) {
	if offset <= applied {
		// Nothing outstanding: the destination is as current as this
		// sample can tell.
		l.samples = l.samples[:0]
		l.last = 0
		return
	}
	if n := len(l.samples); n > 0 && l.samples[n-1].offset >= offset {
		return
	}
	if len(l.samples) < l.max {
		l.samples = append(l.samples, lagSample{offset, at})
	}
}

// applied records that everything up to offset is applied at time now.
func (l *lagTracker) applied(offset int64, now time.Time) {
	i := 0
	for i < len(l.samples) && l.samples[i].offset <= offset {
		l.last = now.Sub(l.samples[i].at)
		i++
	}
	if i > 0 {
		l.samples = append(l.samples[:0], l.samples[i:]...)
	}
}

// lag is the current lag: the last measured one, or, while samples are
// still outstanding, at least the age of the oldest.
func (l *lagTracker) lag(now time.Time) time.Duration {
	if len(l.samples) > 0 {
		if age := now.Sub(l.samples[0].at); age > l.last {
			return age
		}
	}
	return l.last
}

// reset forgets everything (a new sync run).
func (l *lagTracker) reset() {
	l.samples = l.samples[:0]
	l.last = 0
}
