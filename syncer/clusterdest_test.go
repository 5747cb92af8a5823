package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/router"
	"github.com/replicaof/replicaof/syncer/apply"
)

// counting is a slog.Handler that passes records on and counts those
// whose message contains a substring.
type counting struct {
	slog.Handler
	sub string
	n   *atomic.Int64
}

func (h counting) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.sub) {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h counting) WithAttrs(as []slog.Attr) slog.Handler {
	return counting{h.Handler.WithAttrs(as), h.sub, h.n}
}

func (h counting) WithGroup(g string) slog.Handler {
	return counting{h.Handler.WithGroup(g), h.sub, h.n}
}

// TestClusterDestinationExactlyOnce syncs a source into a Redis Cluster
// of 3 masters with a replica each, under a lease (so every slot
// transaction is fenced), while a counter workload runs: through a
// manual failover of one group and a kill -9 of another group's master
// that loses acknowledged writes (its replica was stopped while they
// were applied). The destination ends equal to the source key by key,
// the counters exact, the lost writes replayed by a partial resync from
// the older offset (the source served one full sync only).
func TestClusterDestinationExactlyOnce(t *testing.T) {
	ctx := harness.Context(t, 4*time.Minute)
	src := harness.StartRedis(t, "--repl-backlog-size", "64mb")
	cl := harness.StartCluster(t, 3, 1)
	dest, err := destination.Open(ctx, destination.Config{
		Shards: []destination.Shard{{Addr: cl.Addr()}},
		Pool:   pool.Config{RetryBackoff: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dest.Close()
	if !dest.Cluster() {
		t.Fatal("destination.Open did not find the cluster")
	}
	if err := harness.LoadDataset(ctx, src.Client(), "pre:", 1, 2000); err != nil {
		t.Fatal(err)
	}
	var rewinds atomic.Int64
	log := slog.New(counting{harness.Logger(t, slog.LevelInfo).Handler(), "went back", &rewinds})
	scfg, err := config.ParseSource("s: redis://" + src.Addr)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := New(Config{
		Sources: []config.Source{scfg}, Destination: dest, Logger: log,
		RetryMin: 20 * time.Millisecond, RetryMax: 300 * time.Millisecond,
		SampleInterval: 50 * time.Millisecond, ShardCheckInterval: 200 * time.Millisecond,
		Lease: &LeaseConfig{ID: "a", Addr: "http://a", Duration: 5 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(rctx) }()
	defer func() { cancel(); <-done }()
	waitSynced := func(what string) {
		t.Helper()
		harness.WaitFor(t, time.Minute, "synced "+what, func() bool { return sup.Status().Status == "synced" })
	}
	waitSynced("after the snapshot")

	// The workload runs through a manual failover of group 0.
	w := &harness.Workload{Prefix: "w:", Seed: 7}
	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() { defer wg.Done(); werr = w.Run(ctx, src.Client(), nil, 3000) }()
	time.Sleep(300 * time.Millisecond)
	cl.Failover(t, ctx, 0)
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}

	// Lost writes: group 1's replica is stopped while writes of one of
	// its slots are applied (more than the socket buffers hold), then its
	// master is killed and the replica, resumed, takes over without them.
	rep := cl.Nodes[3+1] // replica 0 of shard 1 (its roles have not changed)
	tag := "{" + cl.KeyInShard(1, "lost") + "}"
	if err := rep.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 8<<10)
	wl := &harness.Workload{Counters: map[string]int{}}
	for i := range 2000 {
		ck := tag + ":counter"
		wl.Counters[ck]++
		if err := src.Client().Incr(ctx, ck).Err(); err != nil {
			t.Fatal(err)
		}
		if err := src.Client().Set(ctx, fmt.Sprintf("%s:big:%d", tag, i), big, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	want, err := src.Client().Get(ctx, tag+":counter").Result()
	if err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, time.Minute, "the counter applied on the destination", func() bool {
		v, err := cl.Client().Get(ctx, tag+":counter").Result()
		return err == nil && v == want
	})
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = rep.Signal(syscall.SIGCONT)
	}()
	cl.KillMaster(t, ctx, 1)
	// More writes after the failover, everywhere.
	w2 := &harness.Workload{Prefix: "w2:", Seed: 8}
	if err := w2.Run(ctx, src.Client(), nil, 1000); err != nil {
		t.Fatal(err)
	}
	waitSynced("after the kill")

	masters := cl.Masters(ctx)
	srcs := []*redis.Client{src.Client()}
	skip := func(k string) bool { return strings.HasPrefix(k, "__") }
	harness.WaitEqual(t, ctx, time.Minute, srcs, func() []*redis.Client { return masters }, harness.CompareOptions{Skip: skip})
	// Counters through the cluster client (a master answers MOVED for
	// keys of another group's slots).
	n := 0
	for _, work := range []*harness.Workload{w, wl, w2} {
		for k, want := range work.Counters {
			got, err := cl.Client().Get(ctx, k).Int()
			if err != nil || got != want {
				t.Errorf("counter %s = %d (%v), want %d", k, got, err, want)
			}
			n++
		}
	}
	if n < 10 {
		t.Fatalf("only %d counters checked", n)
	}
	if n := rewinds.Load(); n == 0 {
		t.Errorf("no slot went back: the kill lost no acknowledged write, the test proved nothing about replay")
	}
	if full := harness.InfoField(t, ctx, src.Client(), "stats", "sync_full"); full != "1" {
		t.Errorf("source served %s full syncs, want 1 (the lost writes replayed by partial resync)", full)
	}
}

// TestClusterDestinationReshard syncs a source into a 3-master cluster
// while 500 slots move from one master to another (redis-cli --cluster
// reshard: MIGRATE, ASK, TRYAGAIN, then MOVED) and writes keep landing in
// exactly those slots, with cross-slot commands (emulated through a
// staging slot) and a second source database mapped onto db 0
// (destination.db_map). Nothing is lost or applied twice.
func TestClusterDestinationReshard(t *testing.T) {
	ctx := harness.Context(t, 4*time.Minute)
	src := harness.StartRedis(t, "--repl-backlog-size", "64mb")
	cl := harness.StartCluster(t, 3, 0)
	dest, err := destination.Open(ctx, destination.Config{
		Shards: []destination.Shard{{Addr: cl.Addr()}},
		Pool:   pool.Config{RetryBackoff: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dest.Close()
	if err := harness.LoadDataset(ctx, src.Client(), "pre:", 2, 1000); err != nil {
		t.Fatal(err)
	}
	// The first hot slots hold many keys, so their migration (a few keys
	// per MIGRATE) lasts while the writer hits them: ASK and TRYAGAIN.
	lo, _ := cl.SlotRange(0)
	for s := lo; s < lo+hotSlots; s++ {
		pipe := src.Client().Pipeline()
		for i := range 3000 {
			pipe.Set(ctx, fmt.Sprintf("{%s}:pre:%d", router.SlotTag(uint16(s)), i), i, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	scfg, err := config.ParseSource("s: redis://" + src.Addr)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := New(Config{
		Sources: []config.Source{scfg}, Destination: dest, Logger: harness.Logger(t, slog.LevelInfo),
		RetryMin: 20 * time.Millisecond, RetryMax: 300 * time.Millisecond,
		SampleInterval: 50 * time.Millisecond, ShardCheckInterval: 200 * time.Millisecond,
		ApplyOptions: apply.Options{DBMap: map[int]int{1: 0}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(rctx) }()
	var once sync.Once
	stopSup := func() { once.Do(func() { cancel(); <-done }) }
	defer stopSup()
	harness.WaitFor(t, time.Minute, "synced", func() bool { return sup.Status().Status == "synced" })

	// Writers: the workload (db 0 and db 1), and counters, MSETs and
	// cross-slot commands in the slots that move (redis-cli moves shard
	// 0's lowest slots).
	w := &harness.Workload{Prefix: "w:", Seed: 9, DB: 1}
	hot := map[string]int{}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs[0] = w.Run(wctx, src.Client(), src.ClientDB(1), 4000) }()
	go func() {
		defer wg.Done()
		c := src.Client()
		for i := 0; wctx.Err() == nil && i < 20000; i++ {
			slot := lo + i%500
			if i%2 == 0 {
				slot = lo + i%hotSlots
			}
			tag := "{" + router.SlotTag(uint16(slot)) + "}"
			hot[tag+":c"]++
			pipe := c.TxPipeline()
			pipe.Incr(wctx, tag+":c")
			pipe.MSet(wctx, tag+":a", i, tag+":b", i)
			if i%10 == 0 {
				// Across slots (one of them moving): emulated.
				other := "{" + router.SlotTag(uint16(12000+i%100)) + "}"
				pipe.SMove(wctx, tag+":set", other+":set", "m")
				pipe.SAdd(wctx, tag+":set", "m", i)
				pipe.RPopLPush(wctx, other+":l", tag+":l")
				pipe.RPush(wctx, other+":l", i)
			}
			if _, err := pipe.Exec(wctx); err != nil && !errors.Is(err, redis.Nil) {
				if wctx.Err() == nil {
					errs[1] = err
				}
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	time.Sleep(200 * time.Millisecond)
	cl.Reshard(t, ctx, 0, 1, 500)
	time.Sleep(200 * time.Millisecond)
	stop()
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}
	harness.WaitFor(t, time.Minute, "synced after the reshard", func() bool { return sup.Status().Status == "synced" })

	masters := cl.Masters(ctx)
	srcs := []*redis.Client{src.Client(), src.ClientDB(1)} // db 1 is mapped onto db 0
	skip := func(k string) bool { return strings.HasPrefix(k, "__") }
	harness.WaitEqual(t, ctx, time.Minute, srcs, func() []*redis.Client { return masters }, harness.CompareOptions{Skip: skip})
	n := 0
	for k, want := range w.Counters {
		k = strings.TrimPrefix(k, "db1/")
		if got, err := cl.Client().Get(ctx, k).Int(); err != nil || got != want {
			t.Errorf("counter %s = %d (%v), want %d", k, got, err, want)
		}
		n++
	}
	for k, want := range hot {
		if got, err := cl.Client().Get(ctx, k).Int(); err != nil || got != want {
			t.Errorf("counter %s in a moved slot = %d (%v), want %d", k, got, err, want)
		}
		n++
	}
	if n < 100 {
		t.Fatalf("only %d counters checked", n)
	}
	if full := harness.InfoField(t, ctx, src.Client(), "stats", "sync_full"); full != "1" {
		t.Errorf("source served %s full syncs, want 1", full)
	}
	st := applierStats(sup)
	t.Logf("sent again: %d after MOVED, %d after ASK/TRYAGAIN/CLUSTERDOWN; %d cross-slot commands emulated",
		st.Moved, st.Retried, st.CrossShard)
	if st.Moved == 0 || st.Retried == 0 || st.CrossShard == 0 {
		t.Errorf("the writes met no MOVED (%d), no ASK/TRYAGAIN (%d) or no cross-slot command (%d): the test proved less than it says",
			st.Moved, st.Retried, st.CrossShard)
	}

	// A new process resumes from the lowest of the 16384 slot
	// checkpoints, without a flush, and each slot skips what it holds.
	stopSup()
	w3 := &harness.Workload{Prefix: "w3:", Seed: 10}
	if err := w3.Run(ctx, src.Client(), nil, 500); err != nil {
		t.Fatal(err)
	}
	sup2, err := New(Config{
		Sources: []config.Source{scfg}, Destination: dest, Logger: harness.Logger(t, slog.LevelInfo),
		RetryMin: 20 * time.Millisecond, RetryMax: 300 * time.Millisecond,
		SampleInterval: 50 * time.Millisecond, ShardCheckInterval: 200 * time.Millisecond,
		ApplyOptions: apply.Options{DBMap: map[int]int{1: 0}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() { defer close(done2); _ = sup2.Run(rctx2) }()
	defer func() { cancel2(); <-done2 }()
	harness.WaitFor(t, time.Minute, "synced after the restart", func() bool { return sup2.Status().Status == "synced" })
	harness.WaitEqual(t, ctx, time.Minute, srcs, func() []*redis.Client { return cl.Masters(ctx) }, harness.CompareOptions{Skip: skip})
	for k, want := range w3.Counters {
		if got, err := cl.Client().Get(ctx, k).Int(); err != nil || got != want {
			t.Errorf("counter %s after the restart = %d (%v), want %d", k, got, err, want)
		}
	}
	if f := sup2.Flushes(); f != 0 {
		t.Errorf("the restarted process flushed %d times, want 0 (resume from the slot checkpoints)", f)
	}
	if full := harness.InfoField(t, ctx, src.Client(), "stats", "sync_full"); full != "1" {
		t.Errorf("after the restart the source served %s full syncs, want 1", full)
	}
}

// hotSlots is how many of the moving slots TestClusterDestinationReshard
// fills with keys.
const hotSlots = 5

// applierStats sums the Stats of every link's applier.
func applierStats(sup *Supervisor) apply.Stats {
	sup.mu.Lock()
	srcs := append([]*source(nil), sup.sources...)
	sup.mu.Unlock()
	var sum apply.Stats
	for _, src := range srcs {
		for _, p := range src.getParts() {
			p.mu.Lock()
			a := p.applier
			p.mu.Unlock()
			if a != nil {
				st := a.Stats()
				sum.Moved += st.Moved
				sum.Retried += st.Retried
				sum.CrossShard += st.CrossShard
			}
		}
	}
	return sum
}

// TestClusterDestinationSourceFlushAll: a source's FLUSHALL cannot be
// applied on a cluster (it would delete every slot's checkpoint): the
// supervisor flushes and fully resyncs, and the destination ends equal.
func TestClusterDestinationSourceFlushAll(t *testing.T) {
	ctx := harness.Context(t, 2*time.Minute)
	src := harness.StartRedis(t)
	cl := harness.StartCluster(t, 3, 0)
	dest, err := destination.Open(ctx, destination.Config{Shards: []destination.Shard{{Addr: cl.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer dest.Close()
	if err := harness.LoadDataset(ctx, src.Client(), "pre:", 3, 500); err != nil {
		t.Fatal(err)
	}
	scfg, err := config.ParseSource("s: redis://" + src.Addr)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := New(Config{
		Sources: []config.Source{scfg}, Destination: dest, Logger: harness.Logger(t, slog.LevelInfo),
		RetryMin: 20 * time.Millisecond, RetryMax: 300 * time.Millisecond,
		SampleInterval: 50 * time.Millisecond, ShardCheckInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(rctx) }()
	defer func() { cancel(); <-done }()
	harness.WaitFor(t, time.Minute, "synced", func() bool { return sup.Status().Status == "synced" })
	c := src.Client()
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := harness.LoadDataset(ctx, c, "post:", 4, 300); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, time.Minute, "a second flush", func() bool { return sup.Flushes() == 2 })
	harness.WaitFor(t, time.Minute, "synced again", func() bool { return sup.Status().Status == "synced" })
	skip := func(k string) bool { return strings.HasPrefix(k, "__") }
	for deadline := time.Now().Add(time.Minute); ; {
		d, err := harness.Compare(ctx, []*redis.Client{c}, cl.Masters(ctx), harness.CompareOptions{Skip: skip})
		if err != nil {
			t.Fatal(err)
		}
		if d.Empty() && d.Equal > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("destination never equal to the source: %s", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
