package integration

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/config"
	destpkg "github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/syncer"
	"github.com/replicaof/replicaof/syncer/apply"
)

// startLeased runs a supervisor with a lease over shards (addresses) until
// the test ends.
func startLeased(t *testing.T, id string, shards []string, lease time.Duration, srcs ...config.Source) *syncer.Supervisor {
	t.Helper()
	var sh []destpkg.Shard
	for _, a := range shards {
		sh = append(sh, destpkg.Shard{Addr: a})
	}
	dest, err := destpkg.New(destpkg.Config{Shards: sh,
		Pool: pool.Config{RetryBackoff: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	sup, err := syncer.New(syncer.Config{
		Sources: srcs, Destination: dest,
		Logger:   harness.Logger(t, slog.LevelInfo).With("instance", id),
		RetryMin: 20 * time.Millisecond, RetryMax: 300 * time.Millisecond,
		SampleInterval: 50 * time.Millisecond, ShardCheckInterval: 200 * time.Millisecond,
		Lease: &syncer.LeaseConfig{ID: id, Addr: "http://" + id, Duration: lease},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; dest.Close() })
	return sup
}

func streamingActive(sup *syncer.Supervisor) bool {
	st := sup.Status()
	if st.Role != syncer.RoleActive || st.Status != syncer.StateSynced {
		return false
	}
	for _, s := range st.Sources {
		if s.Phase != syncer.PhaseStreaming {
			return false
		}
	}
	return true
}

// The active instance cut off from the destination (a partition: every
// shard connection paused, its pipelines held in flight) loses its lease;
// the standby takes over from the checkpoints; when the partition heals,
// what the deposed instance had sent reaches the shards and is refused by
// the epoch guard: counters exact, destination equal, no full sync.
func TestFaultHAPartition(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	src := harness.StartRedis(t, "--repl-backlog-size", "64mb", "--repl-diskless-sync-delay", "0")
	if err := harness.LoadDataset(ctx, src.Client(), "a:", 1, 1000); err != nil {
		t.Fatal(err)
	}
	d := startDestination(t, 2)
	var direct, cut []string
	var fps []*harness.FaultProxy
	for _, s := range d.shards {
		fp := harness.NewFaultProxy(t, s.Addr)
		fps = append(fps, fp)
		direct, cut = append(direct, s.Addr), append(cut, fp.Addr)
	}
	const lease = 2 * time.Second
	a := source(t, "a", src, "")
	x := startLeased(t, "x", cut, lease, a)
	harness.WaitFor(t, time.Minute, "x active and streaming", func() bool { return streamingActive(x) })
	y := startLeased(t, "y", direct, lease, a)
	harness.WaitFor(t, 10*time.Second, "y standby of x", func() bool {
		st := y.Status()
		return st.Role == syncer.RoleStandby && st.Active == "http://x"
	})
	fullBefore := harness.InfoField(t, ctx, src.Client(), "stats", "sync_full")

	w := &harness.Workload{Prefix: "a:", Seed: 41}
	stop := make(chan struct{})
	var ops atomic.Int64
	var wg sync.WaitGroup
	var workErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		workErr = workloadLoop(ctx, w, src.Client(), nil, &ops, stop)
	}()
	stopWork := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopWork)
	harness.WaitFor(t, 10*time.Second, "workload running", func() bool { return ops.Load() >= 500 })

	for _, fp := range fps {
		fp.Pause()
	}
	cutAt := time.Now()
	harness.WaitFor(t, 20*time.Second, "y takes over", func() bool { return streamingActive(y) })
	t.Logf("partition of the active: the standby streams after %v", time.Since(cutAt).Round(time.Millisecond))
	if r := x.Status().Role; r != syncer.RoleStandby {
		t.Fatalf("partitioned x is %s", r)
	}
	time.Sleep(time.Second) // y writes a while; x's pipelines wait in the proxies
	for _, fp := range fps {
		fp.Resume()
	}
	harness.WaitFor(t, 10*time.Second, "healed x is a standby of y", func() bool {
		st := x.Status()
		return st.Role == syncer.RoleStandby && st.Active == "http://y"
	})
	time.Sleep(time.Second)
	stopWork()
	if workErr != nil {
		t.Fatal(workErr)
	}
	requireExactDst(t, ctx, src, d, w)
	if full := harness.InfoField(t, ctx, src.Client(), "stats", "sync_full"); full != fullBefore {
		t.Fatalf("the takeover made a full sync: sync_full %s → %s", fullBefore, full)
	}
	t.Logf("%d workload operations", ops.Load())
}

func requireExactDst(t *testing.T, ctx context.Context, src *harness.Redis, d *destination, w *harness.Workload) {
	t.Helper()
	requireExact(t, ctx, []*redis.Client{src.Client()}, d, w)
}

// A shard whose fence holds an epoch above what the acquisition picked
// (a shard 0 clock that went back, the epoch keys flushed): the instance
// takes the lease again above it instead of being stuck.
func TestHAEpochAboveStaleFence(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	src := harness.StartRedis(t)
	if err := src.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	d := startDestination(t, 2)
	const high = int64(9_000_000_000_000_000)
	if err := d.shards[1].Client().Set(ctx, apply.FenceKey, high, 0).Err(); err != nil {
		t.Fatal(err)
	}
	x := startLeased(t, "x", []string{d.shards[0].Addr, d.shards[1].Addr}, time.Second, source(t, "a", src, ""))
	harness.WaitFor(t, 20*time.Second, "active and streaming", func() bool { return streamingActive(x) })
	for i, s := range d.shards {
		n, err := s.Client().Get(ctx, apply.FenceKey).Int64()
		if err != nil || n <= high {
			t.Fatalf("shard %d fence %d (%v), want above %d", i, n, err, high)
		}
	}
	requireExact(t, ctx, []*redis.Client{src.Client()}, d)
}
