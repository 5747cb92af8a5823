package integration

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/config"
	destpkg "github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/syncer"
	"github.com/replicaof/replicaof/syncer/apply"
)

// destination is a set of real shards and the destination.Destination over them.
type destination struct {
	shards []*harness.Redis
	dest   *destpkg.Destination
}

func startDestination(t *testing.T, n int, extra ...string) *destination {
	t.Helper()
	d := &destination{shards: harness.StartServers(t, n, extra...)}
	d.dest = harness.Destination(t, harness.Addrs(d.shards)...)
	return d
}

// clients returns one client per shard for database db.
func (d *destination) clients(db int) []*redis.Client { return harness.Clients(d.shards, db) }

func source(t *testing.T, name string, r *harness.Redis, password string) config.Source {
	t.Helper()
	u := "redis://" + r.Addr
	if password != "" {
		u = "redis://:" + password + "@" + r.Addr
	}
	s, err := config.ParseSource(name + ": " + u)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runSupervisor runs a supervisor until the test ends.
func runSupervisor(t *testing.T, d *destination, srcs ...config.Source) *syncer.Supervisor {
	t.Helper()
	return runSupervisorWith(t, d, apply.Options{}, srcs...)
}

// runSupervisorWith runs a supervisor whose appliers take opts until the
// test ends.
func runSupervisorWith(t *testing.T, d *destination, opts apply.Options, srcs ...config.Source) *syncer.Supervisor {
	t.Helper()
	sup, err := syncer.New(syncer.Config{
		Sources: srcs, Destination: d.dest,
		Logger:   harness.Logger(t, slog.LevelInfo),
		RetryMin: 20 * time.Millisecond, RetryMax: 500 * time.Millisecond,
		SampleInterval: 50 * time.Millisecond,
		ApplyOptions:   opts,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return sup
}

func waitState(t *testing.T, sup *syncer.Supervisor, want string, timeout time.Duration) syncer.Status {
	t.Helper()
	var st syncer.Status
	harness.WaitFor(t, timeout, "destination status "+want, func() bool {
		st = sup.Status()
		return st.Status == want
	})
	return st
}

// waitEqual polls until the destination equals the sources in every
// listed database (the stream keeps flowing after "synced").
func waitEqual(t *testing.T, ctx context.Context, srcs map[int][]*redis.Client, dst map[int][]*redis.Client, timeout time.Duration) {
	t.Helper()
	var last string
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for db := range srcs {
			d, err := harness.Compare(ctx, srcs[db], dst[db], harness.CompareOptions{Skip: internalKey})
			if err != nil {
				t.Fatal(err)
			}
			if !d.Empty() {
				ok, last = false, fmt.Sprintf("db %d: %s", db, d)
				break
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("destination never equal to sources: %s", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func internalKey(k string) bool { return strings.HasPrefix(k, "__replicaof:") }

func TestSyncFullThenStream(t *testing.T) {
	for _, shards := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d-shards", shards), func(t *testing.T) {
			ctx := harness.Context(t, 3*time.Minute)
			src := harness.StartRedis(t)
			if err := harness.LoadDataset(ctx, src.Client(), "", 1, 3000); err != nil {
				t.Fatal(err)
			}
			if err := harness.LoadDataset(ctx, src.ClientDB(3), "db3:", 2, 200); err != nil {
				t.Fatal(err)
			}
			d := startDestination(t, shards)
			sup := runSupervisor(t, d, source(t, "src", src, ""))

			// Writes during the snapshot and the stream.
			w := &harness.Workload{Prefix: "", Seed: 42, DB: 3}
			if err := w.Run(ctx, src.Client(), src.ClientDB(3), 3000); err != nil {
				t.Fatal(err)
			}
			waitState(t, sup, syncer.StateSynced, time.Minute)
			if err := w.Run(ctx, src.Client(), src.ClientDB(3), 3000); err != nil {
				t.Fatal(err)
			}
			waitEqual(t, ctx,
				map[int][]*redis.Client{0: {src.Client()}, 3: {src.ClientDB(3)}},
				map[int][]*redis.Client{0: d.clients(0), 3: d.clients(3)}, time.Minute)
			if err := w.CheckCounters(ctx, map[int][]*redis.Client{0: d.clients(0), 3: d.clients(3)}); err != nil {
				t.Fatal(err)
			}
			st := sup.Status().Sources[0]
			if st.FullSyncs != 1 || st.SyncState != syncer.StateSynced || st.Progress != 100 || st.LastUpdate == "" {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

func TestSyncResumesWithPartialResync(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	src := harness.StartRedis(t)
	d := startDestination(t, 3)
	sup := runSupervisor(t, d, source(t, "src", src, ""))
	waitState(t, sup, syncer.StateSynced, time.Minute)
	w := &harness.Workload{Seed: 7}
	var wg sync.WaitGroup
	wg.Add(1)
	var werr error
	go func() { defer wg.Done(); werr = w.Run(ctx, src.Client(), nil, 4000) }()
	// Cut the replication link three times while writes flow.
	for i := 0; i < 3; i++ {
		harness.WaitFor(t, 30*time.Second, "replica link online", func() bool {
			info, _ := src.Client().Info(ctx, "replication").Result()
			return strings.Contains(info, "state=online")
		})
		if n, err := src.Client().ClientKillByFilter(ctx, "TYPE", "replica").Result(); err != nil || n != 1 {
			t.Fatalf("CLIENT KILL TYPE replica: %d %v", n, err)
		}
		harness.WaitFor(t, 30*time.Second, "retry seen", func() bool { return sup.Status().Sources[0].Retries > i })
	}
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	waitEqual(t, ctx, map[int][]*redis.Client{0: {src.Client()}}, map[int][]*redis.Client{0: d.clients(0)}, time.Minute)
	if err := w.CheckCounters(ctx, map[int][]*redis.Client{0: d.clients(0)}); err != nil {
		t.Fatal(err)
	}
	st := sup.Status().Sources[0]
	if st.FullSyncs != 1 || st.PartialSyncs < 3 {
		t.Fatalf("want 1 full sync and ≥3 partial (+CONTINUE), got %+v", st)
	}
	if sup.Flushes() != 1 {
		t.Fatalf("destination flushed %d times", sup.Flushes())
	}
}

// TestSyncStopsOnCrossSlotScript: with cross_shard: stop, script effects
// spanning shards stop sync (emulate, the default, applies them one block
// per shard: TestCrossShardSync).
func TestSyncStopsOnCrossSlotScript(t *testing.T) {
	ctx := harness.Context(t, 2*time.Minute)
	src := harness.StartRedis(t)
	d := startDestination(t, 3)
	sup := runSupervisorWith(t, d, apply.Options{CrossShard: apply.CrossShardStop}, source(t, "src", src, ""))
	waitState(t, sup, syncer.StateSynced, time.Minute)
	// foo (slot 12182) and bar (5061) live on different shards of three.
	if err := src.Client().Eval(ctx, "redis.call('SET', KEYS[1], 1); redis.call('SET', KEYS[2], 2)", []string{"foo", "bar"}).Err(); err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	st := waitState(t, sup, syncer.StateStopped, time.Minute)
	if e := st.Sources[0].LastError; !strings.Contains(strings.ToLower(e), "cross") {
		t.Fatalf("last_error %q does not name the cross-slot violation", e)
	}
	// Nothing after it is applied, and a user restart clears the error.
	src.Client().Set(ctx, "after", "x", 0)
	if err := sup.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	_ = st
}

func TestSyncWrongPasswordStops(t *testing.T) {
	src := harness.StartRedis(t, "--requirepass", "right")
	d := startDestination(t, 1)
	sup := runSupervisor(t, d, source(t, "src", src, "wrong"))
	st := waitState(t, sup, syncer.StateStopped, 30*time.Second)
	if e := st.Sources[0].LastError; !strings.Contains(strings.ToLower(e), "auth") && !strings.Contains(e, "WRONGPASS") {
		t.Fatalf("last_error %q is not an authentication error", e)
	}
}

func TestSyncStopRestartAndAddSource(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	a, b := harness.StartRedis(t), harness.StartRedis(t)
	harness.LoadDataset(ctx, a.Client(), "a:", 1, 500)
	harness.LoadDataset(ctx, b.Client(), "b:", 2, 500)
	d := startDestination(t, 3)
	sup := runSupervisor(t, d, source(t, "a", a, ""))
	waitState(t, sup, syncer.StateSynced, time.Minute)
	srcs := map[int][]*redis.Client{0: {a.Client()}}
	dst := map[int][]*redis.Client{0: d.clients(0)}
	waitEqual(t, ctx, srcs, dst, time.Minute)

	if err := sup.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st := sup.Status(); st.Status != syncer.StateStopped {
		t.Fatalf("after stop: %s", st.Status)
	}
	a.Client().Set(ctx, "a:after-stop", "x", 0)
	// Give a stray link every chance to apply it: it must not.
	time.Sleep(300 * time.Millisecond)
	for _, c := range d.clients(0) {
		if n, _ := c.Exists(ctx, "a:after-stop").Result(); n != 0 {
			t.Fatal("a write made after stop was applied")
		}
	}

	flushes := sup.Flushes()
	if err := sup.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitState(t, sup, syncer.StateSynced, time.Minute)
	waitEqual(t, ctx, srcs, dst, time.Minute)
	if sup.Flushes() != flushes+1 {
		t.Fatalf("restart did not flush (%d → %d)", flushes, sup.Flushes())
	}

	// Adding a source restarts all: flush, syncing, then the union.
	flushes = sup.Flushes()
	if err := sup.SetSources(ctx, []config.Source{source(t, "a", a, ""), source(t, "b", b, "")}); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 30*time.Second, "flush after adding a source", func() bool { return sup.Flushes() > flushes })
	waitState(t, sup, syncer.StateSynced, time.Minute)
	waitEqual(t, ctx, map[int][]*redis.Client{0: {a.Client(), b.Client()}}, dst, time.Minute)
}

func TestSyncManySources(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	d := startDestination(t, 3)
	var srcs []config.Source
	var clients []*redis.Client
	var works []*harness.Workload
	for i := 0; i < 3; i++ {
		r := harness.StartRedis(t)
		srcs = append(srcs, source(t, fmt.Sprint("s", i), r, ""))
		clients = append(clients, r.Client())
		works = append(works, &harness.Workload{Prefix: fmt.Sprintf("s%d:", i), Seed: int64(i)})
		harness.LoadDataset(ctx, r.Client(), fmt.Sprintf("s%d:", i), int64(i), 500)
	}
	sup := runSupervisor(t, d, srcs...)
	var wg sync.WaitGroup
	errs := make([]error, len(works))
	for i := range works {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = works[i].Run(ctx, clients[i], nil, 2000) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitState(t, sup, syncer.StateSynced, time.Minute)
	requireExact(t, ctx, clients, d, works...)
}

// 32 sources (the limit) all reach synced.
func TestSync32Sources(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	d := startDestination(t, 2)
	var srcs []config.Source
	var clients []*redis.Client
	for i := 0; i < config.MaxSources; i++ {
		r := harness.StartRedis(t)
		r.Client().Set(ctx, fmt.Sprintf("k%d", i), i, 0)
		srcs = append(srcs, source(t, fmt.Sprint("s", i), r, ""))
		clients = append(clients, r.Client())
	}
	sup := runSupervisor(t, d, srcs...)
	st := waitState(t, sup, syncer.StateSynced, 2*time.Minute)
	if len(st.Sources) != config.MaxSources {
		t.Fatalf("%d sources in status", len(st.Sources))
	}
	waitEqual(t, ctx, map[int][]*redis.Client{0: clients}, map[int][]*redis.Client{0: d.clients(0)}, time.Minute)
}

func TestSyncDestinationOOMStops(t *testing.T) {
	ctx := harness.Context(t, 2*time.Minute)
	src := harness.StartRedis(t)
	harness.LoadDataset(ctx, src.Client(), "", 1, 200)
	d := startDestination(t, 1, "--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
	sup := runSupervisor(t, d, source(t, "src", src, ""))
	waitState(t, sup, syncer.StateSynced, time.Minute)
	// Write far more than 2 MB.
	big := strings.Repeat("x", 64<<10)
	for i := 0; i < 100; i++ {
		src.Client().Set(ctx, fmt.Sprint("big:", i), big, 0)
	}
	st := waitState(t, sup, syncer.StateStopped, time.Minute)
	if e := st.Sources[0].LastError; !strings.Contains(e, "OOM") {
		t.Fatalf("last_error %q is not an OOM error", e)
	}
}

// TestSourceDownAtStart: a source that does not answer when sync starts
// does not hold the others back; it joins with a full sync when it comes
// up, without another flush of the destination.
func TestSourceDownAtStart(t *testing.T) {
	ctx := harness.Context(t, 2*time.Minute)
	a, b := harness.StartRedis(t), harness.StartRedis(t)
	if err := harness.LoadDataset(ctx, a.Client(), "a:", 1, 500); err != nil {
		t.Fatal(err)
	}
	if err := harness.LoadDataset(ctx, b.Client(), "b:", 2, 500); err != nil {
		t.Fatal(err)
	}
	if err := b.Client().Save(ctx).Err(); err != nil { // b keeps its keys across the restart
		t.Fatal(err)
	}
	b.Kill()
	d := startDestination(t, 2)
	sup, err := syncer.New(syncer.Config{
		Sources: []config.Source{source(t, "a", a, ""), source(t, "b", b, "")}, Destination: d.dest,
		Logger:   harness.Logger(t, slog.LevelInfo),
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, DiscoverGrace: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })

	harness.WaitFor(t, time.Minute, "a synced while b is down", func() bool {
		st := sup.Status()
		return st.Sources[0].SyncState == syncer.StateSynced && st.Sources[1].LastError != "" && st.Sources[1].SyncState == syncer.StateSyncing
	})
	b.Restart()
	waitState(t, sup, syncer.StateSynced, time.Minute)
	waitEqual(t, ctx, map[int][]*redis.Client{0: {a.Client(), b.Client()}}, map[int][]*redis.Client{0: d.clients(0)}, time.Minute)
	if sup.Flushes() != 1 {
		t.Errorf("flushes %d, want 1: b's arrival must not flush a's data", sup.Flushes())
	}
}

// TestSyncPhases follows a source through its phases: while the source
// waits out its diskless delay the status says waiting-for-snapshot (not a
// 0% bar), then the phases only move forward to streaming; a stopped
// source says stopped.
func TestSyncPhases(t *testing.T) {
	ctx := harness.Context(t, 2*time.Minute)
	src := harness.StartRedis(t, "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "2")
	if err := harness.LoadDataset(ctx, src.Client(), "", 1, 2000); err != nil {
		t.Fatal(err)
	}
	d := startDestination(t, 2)
	sup := runSupervisor(t, d, source(t, "src", src, ""))
	rank := map[string]int{syncer.PhaseConnecting: 0, syncer.PhaseWaiting: 1, syncer.PhaseLoading: 2, syncer.PhaseStreaming: 3}
	var seen []string
	harness.WaitFor(t, time.Minute, "phase streaming", func() bool {
		st := sup.Status().Sources[0]
		if _, ok := rank[st.Phase]; !ok {
			t.Fatalf("unknown phase %q in %+v", st.Phase, st)
		}
		if len(seen) == 0 || seen[len(seen)-1] != st.Phase {
			seen = append(seen, st.Phase)
		}
		if st.Phase == syncer.PhaseWaiting && st.SyncState != syncer.StateSyncing {
			t.Fatalf("waiting for the snapshot but %s", st.SyncState)
		}
		return st.Phase == syncer.PhaseStreaming && st.SyncState == syncer.StateSynced
	})
	for i := 1; i < len(seen); i++ {
		if rank[seen[i]] < rank[seen[i-1]] {
			t.Fatalf("phases went back: %v", seen)
		}
	}
	if !slices.Contains(seen, syncer.PhaseWaiting) {
		t.Fatalf("never reported waiting-for-snapshot during a 2 s diskless delay: %v", seen)
	}
	if err := sup.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st := sup.Status().Sources[0]; st.Phase != syncer.PhaseStopped {
		t.Fatalf("after stop: phase %q", st.Phase)
	}
}
