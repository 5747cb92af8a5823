package syncer

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/syncer/apply"
	"github.com/replicaof/replicaof/syncer/replica"
)

func TestRetryDelay(t *testing.T) {
	p := retryPolicy{min: 100 * time.Millisecond, max: 10 * time.Second}
	cases := []struct {
		p       retryPolicy
		attempt int
		want    time.Duration
	}{
		{p, 0, 100 * time.Millisecond}, // the first retry waits min
		{p, 1, 200 * time.Millisecond}, // then doubles
		{p, 3, 800 * time.Millisecond}, //
		{p, 7, 10 * time.Second},       // 12.8s, capped at max
		{p, 1 << 20, 10 * time.Second}, // no overflow however many attempts
		{retryPolicy{min: time.Second, max: 100 * time.Millisecond}, 0, 100 * time.Millisecond}, // max wins over min
	}
	for _, c := range cases {
		if got := c.p.delay(c.attempt); got != c.want {
			t.Errorf("delay(%d) with [%v, %v] = %v, want %v", c.attempt, c.p.min, c.p.max, got, c.want)
		}
	}
}

func TestDiscoveryPolicy(t *testing.T) {
	p := retryPolicy{min: 100 * time.Millisecond, max: time.Second}
	cases := []struct {
		name     string
		err      error
		attempt  int
		wantStop bool
		wantWait time.Duration
	}{
		{"authentication stops", fmt.Errorf("discovery: %w", replica.ErrAuth), 0, true, 0},
		{"a bad TLS file stops", fmt.Errorf("%w: no such file", errFatalConfig), 5, true, 0},
		{"a refused connection retries", fmt.Errorf("discovery: %w", io.ErrUnexpectedEOF), 0, false, 100 * time.Millisecond},
		{"later retries back off", fmt.Errorf("discovery: %w", io.EOF), 2, false, 400 * time.Millisecond},
	}
	for _, c := range cases {
		wait, stop := p.discovery(c.err, c.attempt)
		if stop != c.wantStop || wait != c.wantWait {
			t.Errorf("%s: discovery = (%v, stop %v), want (%v, stop %v)", c.name, wait, stop, c.wantWait, c.wantStop)
		}
	}
}

func TestLinkPolicy(t *testing.T) {
	p := retryPolicy{min: 100 * time.Millisecond, max: time.Second, maxDrops: 3, spool: true}
	lost := fmt.Errorf("replica: read: %w", io.ErrUnexpectedEOF)
	resync := fmt.Errorf("%w: source answered +FULLRESYNC", replica.ErrFullResync)
	fenced := fmt.Errorf("%w: epoch 3 < 4", apply.ErrFenced)
	cases := []struct {
		name string
		f    linkFailure
		want linkVerdict
		is   []error // the verdict's error wraps each
	}{
		{"fenced hands over", linkFailure{err: fenced, streamed: true},
			linkVerdict{action: linkHandOver, class: errclass.Fatal}, []error{apply.ErrFenced}},
		{"fenced while loading still hands over", linkFailure{err: fenced, loading: true},
			linkVerdict{action: linkHandOver, class: errclass.Fatal}, []error{apply.ErrFenced}},
		{"a lost link retries", linkFailure{err: lost, attempt: 2, streamed: true},
			linkVerdict{action: linkRetry, class: errclass.Retry, attempt: 2, wait: 400 * time.Millisecond}, []error{io.ErrUnexpectedEOF}},
		{"progress restarts the backoff", linkFailure{err: lost, attempt: 5, progressed: true, streamed: true},
			linkVerdict{action: linkRetry, class: errclass.Retry, attempt: 0, wait: 100 * time.Millisecond}, nil},
		{"a lost link under a snapshot escalates", linkFailure{err: lost, attempt: 1, loading: true, streamed: true},
			linkVerdict{action: linkEnd, class: errclass.FullResync}, []error{ErrNeedFullResync, io.ErrUnexpectedEOF}},
		{"a full resync after streaming ends the run", linkFailure{err: resync, streamed: true, drops: 2},
			linkVerdict{action: linkEnd, class: errclass.FullResync}, []error{replica.ErrFullResync}},
		{"a full resync without streaming is a drop", linkFailure{err: resync, drops: 0},
			linkVerdict{action: linkEnd, class: errclass.FullResync, dropped: true}, []error{replica.ErrFullResync}},
		{"the drop before the limit", linkFailure{err: resync, drops: 1},
			linkVerdict{action: linkEnd, class: errclass.FullResync, dropped: true}, nil},
		{"the drop at the limit is a loop", linkFailure{err: resync, drops: 2},
			linkVerdict{action: linkEnd, class: errclass.Fatal, dropped: true}, []error{ErrSnapshotLoop, replica.ErrFullResync}},
		{"loading does not soften a loop", linkFailure{err: resync, drops: 7, loading: true},
			linkVerdict{action: linkEnd, class: errclass.Fatal, dropped: true}, []error{ErrSnapshotLoop}},
		{"a fatal error ends the run", linkFailure{err: fmt.Errorf("x: %w", replica.ErrAuth), attempt: 3},
			linkVerdict{action: linkEnd, class: errclass.Fatal}, []error{replica.ErrAuth}},
		{"a fatal error while loading stays fatal", linkFailure{err: fmt.Errorf("%w: %w", replica.ErrHandler, apply.ErrOOM), loading: true},
			linkVerdict{action: linkEnd, class: errclass.Fatal}, []error{apply.ErrOOM}},
	}
	for _, c := range cases {
		got := p.link(c.f)
		if got.action != c.want.action || got.class != c.want.class || got.dropped != c.want.dropped ||
			got.attempt != c.want.attempt || got.wait != c.want.wait {
			t.Errorf("%s: link = %+v, want %+v", c.name, got, c.want)
		}
		if got.err == nil {
			t.Errorf("%s: no error in the verdict", c.name)
		}
		for _, e := range c.is {
			if !errors.Is(got.err, e) {
				t.Errorf("%s: %v does not wrap %v", c.name, got.err, e)
			}
		}
	}
}
