package syncer

import (
	"testing"
	"time"
)

func TestLagTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	l := newLagTracker()
	if l.lag(ms(0)) != 0 {
		t.Fatal("fresh tracker has lag")
	}
	l.sample(100, 40, ms(0))  // source at 100, we applied 40
	l.sample(150, 40, ms(10)) // source moves on
	if got := l.lag(ms(30)); got != 30*time.Millisecond {
		t.Fatalf("outstanding lag %v, want 30ms (age of the oldest sample)", got)
	}
	l.applied(120, ms(35)) // passes the first sample only
	if got := l.lag(ms(35)); got != 35*time.Millisecond {
		t.Fatalf("lag %v, want 35ms", got)
	}
	l.applied(150, ms(37)) // passes the second
	if got := l.lag(ms(100)); got != 27*time.Millisecond {
		t.Fatalf("lag %v, want 27ms (measured, no longer growing)", got)
	}
	l.sample(150, 150, ms(200)) // idle and caught up
	if got := l.lag(ms(300)); got != 0 {
		t.Fatalf("caught-up lag %v", got)
	}
	// Samples with stale offsets are ignored; the bound holds.
	l.max = 2
	l.sample(200, 150, ms(400))
	l.sample(190, 150, ms(410))
	l.sample(300, 150, ms(420))
	l.sample(400, 150, ms(430))
	if len(l.samples) != 2 {
		t.Fatalf("%d samples kept, want 2", len(l.samples))
	}
}
