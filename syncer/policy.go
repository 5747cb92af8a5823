package syncer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/syncer/apply"
)

// The retry and escalation policy of a sync run, as pure functions of what
// happened: they read no clock and touch no socket (policy_test.go covers
// each branch). The goroutines that act on them are run.go's and
// linkrun.go's.

// retryPolicy holds the knobs of every retry in a sync run.
type retryPolicy struct {
	min, max time.Duration // the backoff: min, doubling up to max
	maxDrops int           // snapshots a source may drop in a row
	spool    bool          // a spool is configured (named in the loop's error)
}

func (c Config) retryPolicy() retryPolicy {
	return retryPolicy{min: c.RetryMin, max: c.RetryMax, maxDrops: c.MaxSnapshotDrops, spool: c.SpoolDir != ""}
}

// delay is the wait before retry number attempt (0 for the first): min,
// doubling with each attempt, never more than max.
func (p retryPolicy) delay(attempt int) time.Duration {
	d := p.min
	for i := 0; i < attempt && d < p.max; i++ {
		d *= 2
	}
	return min(d, p.max)
}

// discovery decides after a failed discovery of a source: a Fatal error
// (authentication, a TLS failure) stops it; anything else is retried after
// delay(attempt).
func (p retryPolicy) discovery(err error, attempt int) (wait time.Duration, stop bool) {
	if errclass.Classify(err) == errclass.Fatal {
		return 0, true
	}
	return p.delay(attempt), false
}

// linkAction is what a link's driver does after its Run returned.
type linkAction int

const (
	// linkRetry: reconnect after the wait, resuming by partial resync
	// where the source allows.
	linkRetry linkAction = iota
	// linkEnd: end the sync run with the error, kept on the source
	// (Fatal stops sync, FullResync starts the next run from scratch).
	linkEnd
	// linkHandOver: the destination fenced this instance off; not the
	// source's fault, so the error ends the run as it is and Run hands
	// the lease over.
	linkHandOver
)

// linkFailure is what a link's driver knows when its Run returned err.
type linkFailure struct {
	err        error
	attempt    int  // retries since the link last made progress
	progressed bool // something was applied since the last retry
	loading    bool // the handler was inside FullSync: the destination holds part of a snapshot
	streamed   bool // a stream command was applied since the last snapshot began
	drops      int  // snapshots the source dropped in a row before this failure
}

// linkVerdict is the policy's answer to a linkFailure.
type linkVerdict struct {
	action  linkAction
	class   errclass.Class // the error's class, after escalation
	err     error          // the failure, explained when escalated
	dropped bool           // the failure counts as one more snapshot dropped in a row
	attempt int            // linkRetry: the attempt number of this retry
	wait    time.Duration
}

// link decides after a link's Run returned with f.err:
//   - a fenced destination hands over;
//   - another full sync with no stream command applied since the last one
//     counts as a snapshot the source dropped (the drop can also show as a
//     lost link right after the payload, then a FULLRESYNC answer to the
//     resume), and maxDrops of them in a row are Fatal (ErrSnapshotLoop);
//   - a retryable error while a snapshot was loading escalates to
//     FullResync: only a flush and a full resync of all clean a partial
//     snapshot;
//   - other FullResync and Fatal errors end the run;
//   - the rest retries after delay(attempt), attempt starting over at 0
//     when the link made progress since the last retry.
func (p retryPolicy) link(f linkFailure) linkVerdict {
	if errors.Is(f.err, apply.ErrFenced) {
		return linkVerdict{action: linkHandOver, class: errclass.Fatal, err: f.err}
	}
	v := linkVerdict{action: linkEnd, class: errclass.Classify(f.err), err: f.err}
	if v.class == errclass.FullResync && !f.streamed {
		v.dropped = true
		if n := f.drops + 1; n >= p.maxDrops {
			v.err = fmt.Errorf("%w (%d snapshots in a row): its client-output-buffer-limit for replicas is probably "+
				"too small for the writes it buffers while a snapshot loads; raise it on the source, e.g. "+
				"CONFIG SET client-output-buffer-limit \"replica 0 0 0\" (spool: %v): %w",
				ErrSnapshotLoop, n, p.spool, f.err)
			v.class = errclass.Fatal
		}
	}
	if f.loading && v.class == errclass.Retry {
		v.class, v.err = errclass.FullResync, fmt.Errorf("%w: snapshot interrupted: %w", ErrNeedFullResync, f.err)
	}
	if v.class != errclass.Retry {
		return v
	}
	v.action, v.attempt = linkRetry, f.attempt
	if f.progressed {
		v.attempt = 0
	}
	v.wait = p.delay(v.attempt)
	return v
}

// sleepCtx waits d or until ctx ends (its error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
