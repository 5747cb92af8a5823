package pool_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/pool"
)

// countObserver counts what a Backend reports, without allocating.
type countObserver struct {
	writes, calls, failed, badShard atomic.Int64
	ups, downs                      atomic.Int64
	up                              atomic.Int32 // last state: 1 up, 2 down
	maxD                            atomic.Int64
}

func (o *countObserver) Pipeline(shard, calls int, d time.Duration, failed bool) {
	if shard != 3 {
		o.badShard.Add(1)
	}
	o.writes.Add(1)
	o.calls.Add(int64(calls))
	if failed {
		o.failed.Add(1)
	}
	if int64(d) > o.maxD.Load() {
		o.maxD.Store(int64(d))
	}
}

func (o *countObserver) ShardUp(shard int, up bool) {
	if shard != 3 {
		o.badShard.Add(1)
	}
	if up {
		o.ups.Add(1)
		o.up.Store(1)
	} else {
		o.downs.Add(1)
		o.up.Store(2)
	}
}

func TestBackendObserver(t *testing.T) {
	srv := harness.StartRedis(t)
	ctx := harness.Context(t, time.Minute)
	obs := &countObserver{}
	b := pool.NewBackend(pool.Config{Addr: srv.Addr, Conns: 2, Observer: obs, Shard: 3,
		RetryBackoff: 20 * time.Millisecond})
	defer b.Close()

	// Concurrent pipelines: every call written is counted in exactly one
	// reported write, and none failed.
	const goroutines, rounds, per = 8, 50, 10
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			calls := make([]*pool.Call, per)
			for i := range calls {
				calls[i] = &pool.Call{Req: cmd("PING")}
			}
			for r := 0; r < rounds; r++ {
				b.Pipeline(ctx, calls)
			}
		}()
	}
	wg.Wait()
	// The last write's report follows its last reply: wait for it.
	harness.WaitFor(t, 5*time.Second, "every write reported", func() bool {
		return obs.calls.Load() == goroutines*rounds*per
	})
	if w := obs.writes.Load(); w < 1 || w > goroutines*rounds {
		t.Errorf("%d writes reported for %d pipelines", w, goroutines*rounds)
	}
	if obs.failed.Load() != 0 || obs.badShard.Load() != 0 || obs.maxD.Load() <= 0 {
		t.Errorf("failed %d, wrong shard %d, max duration %v", obs.failed.Load(), obs.badShard.Load(), time.Duration(obs.maxD.Load()))
	}
	if obs.ups.Load() != 1 || obs.downs.Load() != 0 {
		t.Errorf("ups %d downs %d, want 1 and 0 (two connections, one transition)", obs.ups.Load(), obs.downs.Load())
	}

	// Down, then up again: one transition each way at least.
	srv.Kill()
	harness.WaitFor(t, 5*time.Second, "shard reported down", func() bool {
		_, _ = b.Do(ctx, cmd("PING"), nil)
		return obs.up.Load() == 2
	})
	srv.Restart()
	harness.WaitFor(t, 10*time.Second, "shard reported up", func() bool {
		_, err := b.Do(ctx, cmd("PING"), nil)
		return err == nil && obs.up.Load() == 1
	})
	if obs.ups.Load() < 2 || obs.downs.Load() < 1 {
		t.Errorf("ups %d downs %d after a restart", obs.ups.Load(), obs.downs.Load())
	}

	// Close is not a shard failure.
	downs := obs.downs.Load()
	b.Close()
	if _, err := b.Do(ctx, cmd("PING"), nil); !errors.Is(err, pool.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if obs.downs.Load() != downs {
		t.Error("Close reported the shard down")
	}
}

// TestBackendObserverAllocs checks that an observer adds no allocation
// per call.
func TestBackendObserverAllocs(t *testing.T) {
	srv := harness.StartRedis(t)
	ctx := harness.Context(t, time.Minute)
	measure := func(o pool.Observer) float64 {
		b := pool.NewBackend(pool.Config{Addr: srv.Addr, Conns: 1, Observer: o})
		defer b.Close()
		req, reply := cmd("PING"), make([]byte, 0, 64)
		for i := 0; i < 100; i++ { // warm up: connection, pools, slices
			_, _ = b.Do(ctx, req, reply)
		}
		return testing.AllocsPerRun(500, func() {
			if _, err := b.Do(ctx, req, reply); err != nil {
				t.Fatal(err)
			}
		})
	}
	without := measure(nil)
	with := measure(&countObserver{})
	if with > without {
		t.Errorf("allocs per call: %.2f with an observer, %.2f without", with, without)
	}
}

// Down is called after a connection failure and after a failed dial, not
// after Close; Fail fails every call without a connection.
func TestBackendDownAndFail(t *testing.T) {
	srv := harness.StartRedis(t)
	ctx := harness.Context(t, time.Minute)
	var downs atomic.Int64
	b := pool.NewBackend(pool.Config{Addr: srv.Addr, Conns: 1, RetryBackoff: 20 * time.Millisecond,
		Down: func() { downs.Add(1) }})
	defer b.Close()
	if _, err := b.Do(ctx, cmd("PING"), nil); err != nil || downs.Load() != 0 {
		t.Fatalf("PING: %v, downs %d", err, downs.Load())
	}
	srv.Kill()
	harness.WaitFor(t, 5*time.Second, "Down after the connection failed", func() bool {
		_, _ = b.Do(ctx, cmd("PING"), nil)
		return downs.Load() >= 2 // the connection, then a dial
	})
	n := downs.Load()
	b.Close()
	_, _ = b.Do(ctx, cmd("PING"), nil)
	if downs.Load() != n {
		t.Fatal("Close counted as a failure")
	}

	failErr := errors.New("not this one")
	f := pool.NewBackend(pool.Config{Addr: "127.0.0.1:1", Fail: failErr, Down: func() { downs.Add(1) }})
	defer f.Close()
	if _, err := f.Do(ctx, cmd("PING"), nil); !errors.Is(err, failErr) || downs.Load() != n {
		t.Fatalf("Fail: %v (downs %d, was %d)", err, downs.Load(), n)
	}
	if _, _, err := pool.Dial(ctx, pool.Config{Addr: "127.0.0.1:1", Fail: failErr}, 1024); !errors.Is(err, failErr) {
		t.Fatalf("Dial with Fail: %v", err)
	}
}
