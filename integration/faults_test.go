package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/admin"
	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/syncer"
)

// sourceAt is a source definition for an address (a FaultProxy's, say).
func sourceAt(t *testing.T, name, addr, password string) config.Source {
	t.Helper()
	u := "redis://" + addr
	if password != "" {
		u = "redis://:" + password + "@" + addr
	}
	s, err := config.ParseSource(name + ": " + u)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runWorkload runs w in the background; wait returns its error.
func runWorkload(ctx context.Context, w *harness.Workload, c *redis.Client, n int) (wait func() error) {
	var wg sync.WaitGroup
	var err error
	wg.Add(1)
	go func() { defer wg.Done(); err = w.Run(ctx, c, nil, n) }()
	return func() error { wg.Wait(); return err }
}

func requireExact(t *testing.T, ctx context.Context, src []*redis.Client, d *destination, works ...*harness.Workload) {
	t.Helper()
	waitEqual(t, ctx, map[int][]*redis.Client{0: src}, map[int][]*redis.Client{0: d.clients(0)}, time.Minute)
	for _, w := range works {
		if err := w.CheckCounters(ctx, map[int][]*redis.Client{0: d.clients(0)}); err != nil {
			t.Fatal(err)
		}
	}
}

// syncThroughFaultProxy syncs a new source, reached through a fault proxy,
// onto a new destination of n shards, until synced.
func syncThroughFaultProxy(t *testing.T, n int) (*harness.Redis, *harness.FaultProxy, *destination, *syncer.Supervisor) {
	t.Helper()
	src := harness.StartRedis(t)
	fp := harness.NewFaultProxy(t, src.Addr)
	d := startDestination(t, n)
	sup := runSupervisor(t, d, sourceAt(t, "src", fp.Addr, ""))
	waitState(t, sup, syncer.StateSynced, time.Minute)
	return src, fp, d, sup
}

func TestFaultCutDuringSnapshot(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	src := harness.StartRedis(t, "--repl-diskless-sync-delay", "0")
	// Random values: LZF would shrink repeated bytes to nothing.
	rng := rand.New(rand.NewSource(1))
	pipe := src.Client().Pipeline()
	for i := 0; i < 5000; i++ {
		pipe.Set(ctx, fmt.Sprint("big:", i), harness.RandString(rng, 4096), 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	fp := harness.NewFaultProxy(t, src.Addr)
	fp.SetLatency(5 * time.Millisecond) // a 20 MB snapshot now takes a while
	d := startDestination(t, 3)
	sup := runSupervisor(t, d, sourceAt(t, "src", fp.Addr, ""))
	harness.WaitFor(t, time.Minute, "snapshot under way", func() bool {
		s := sup.Status().Sources[0]
		return s.SyncState == syncer.StateSyncing && s.RDBTransferred > 1<<20
	})
	if fp.Cut() == 0 {
		t.Fatal("nothing to cut")
	}
	fp.SetLatency(0)
	w := &harness.Workload{Seed: 3}
	if err := w.Run(ctx, src.Client(), nil, 500); err != nil {
		t.Fatal(err)
	}
	waitState(t, sup, syncer.StateSynced, time.Minute)
	requireExact(t, ctx, []*redis.Client{src.Client()}, d, w)
	if f := sup.Flushes(); f < 2 {
		t.Fatalf("a cut snapshot must flush and resync everything; flushes = %d", f)
	}
}

func TestFaultCutsDuringStreamAndTransactions(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	src, fp, d, sup := syncThroughFaultProxy(t, 3)
	w := &harness.Workload{Seed: 11} // ~10% of its operations are MULTI/EXEC or scripts
	wait := runWorkload(ctx, w, src.Client(), 6000)
	cuts := 0
	for i := 0; i < 8; i++ {
		harness.WaitFor(t, 30*time.Second, "link up", func() bool { return fp.Conns() > 0 })
		time.Sleep(time.Duration(20+i*13) * time.Millisecond) // let a few transactions through
		cuts += fp.Cut()
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	requireExact(t, ctx, []*redis.Client{src.Client()}, d, w)
	st := sup.Status().Sources[0]
	if cuts == 0 || st.PartialSyncs == 0 || sup.Flushes() != 1 {
		t.Fatalf("cuts %d: want partial resyncs and one flush, got %+v flushes=%d", cuts, st, sup.Flushes())
	}
}

func TestFaultPauseAndSlowLink(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	src, fp, d, sup := syncThroughFaultProxy(t, 2)
	w := &harness.Workload{Seed: 5}
	wait := runWorkload(ctx, w, src.Client(), 3000)
	fp.Pause()
	time.Sleep(2 * time.Second) // the scenario is a 2-second pause
	fp.Resume()
	fp.SetLatency(50 * time.Millisecond)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	requireExact(t, ctx, []*redis.Client{src.Client()}, d, w)
	fp.SetLatency(0)
	if sup.Flushes() != 1 {
		t.Fatalf("a pause or a slow link must not force a full resync (flushes %d)", sup.Flushes())
	}
}

func TestFaultSourceRestart(t *testing.T) {
	t.Run("with persistence", func(t *testing.T) {
		ctx := harness.Context(t, 3*time.Minute)
		src := harness.StartRedis(t)
		d := startDestination(t, 2)
		sup := runSupervisor(t, d, source(t, "src", src, ""))
		waitState(t, sup, syncer.StateSynced, time.Minute)
		w := &harness.Workload{Seed: 9}
		if err := w.Run(ctx, src.Client(), nil, 1000); err != nil {
			t.Fatal(err)
		}
		waitEqual(t, ctx, map[int][]*redis.Client{0: {src.Client()}}, map[int][]*redis.Client{0: d.clients(0)}, time.Minute)
		// SHUTDOWN saves the RDB with the replication id and offset.
		_ = src.Client().Do(ctx, "SHUTDOWN", "SAVE").Err()
		src.Restart()
		if err := w.Run(ctx, src.Client(), nil, 1000); err != nil {
			t.Fatal(err)
		}
		requireExact(t, ctx, []*redis.Client{src.Client()}, d, w)
		st := sup.Status().Sources[0]
		t.Logf("after a persisted restart: %d full, %d partial syncs, %d flushes", st.FullSyncs, st.PartialSyncs, sup.Flushes())
		if st.PartialSyncs == 0 || sup.Flushes() != 1 {
			t.Fatalf("same replid after restart: want a partial resync and no flush, got %+v flushes=%d", st, sup.Flushes())
		}
	})
	t.Run("without persistence", func(t *testing.T) {
		ctx := harness.Context(t, 3*time.Minute)
		src := harness.StartRedis(t)
		harness.LoadDataset(ctx, src.Client(), "", 1, 300)
		d := startDestination(t, 2)
		sup := runSupervisor(t, d, source(t, "src", src, ""))
		waitState(t, sup, syncer.StateSynced, time.Minute)
		src.Restart() // killed: comes back empty with a new replid
		w := &harness.Workload{Seed: 10}
		if err := w.Run(ctx, src.Client(), nil, 500); err != nil {
			t.Fatal(err)
		}
		harness.WaitFor(t, time.Minute, "flush + full resync", func() bool { return sup.Flushes() >= 2 })
		waitState(t, sup, syncer.StateSynced, time.Minute)
		requireExact(t, ctx, []*redis.Client{src.Client()}, d, w)
	})
}

// The source fails over to its own replica: PSYNC2 continues on the
// promoted one, with no flush.
func TestFaultSourceFailover(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	a, r := harness.StartRedis(t), harness.StartRedis(t)
	if err := r.Client().ReplicaOf(ctx, "127.0.0.1", fmt.Sprint(a.Port)).Err(); err != nil {
		t.Fatal(err)
	}
	fp := harness.NewFaultProxy(t, a.Addr)
	d := startDestination(t, 2)
	sup := runSupervisor(t, d, sourceAt(t, "src", fp.Addr, ""))
	waitState(t, sup, syncer.StateSynced, time.Minute)
	w := &harness.Workload{Seed: 13}
	if err := w.Run(ctx, a.Client(), nil, 1000); err != nil {
		t.Fatal(err)
	}
	// Failover: wait for the replica to catch up, promote it, move the
	// address.
	harness.WaitFor(t, 30*time.Second, "replica caught up", func() bool {
		ia, _ := a.Client().Info(ctx, "replication").Result()
		ir, _ := r.Client().Info(ctx, "replication").Result()
		oa, _ := infoInt(ia, "master_repl_offset")
		or, _ := infoInt(ir, "master_repl_offset")
		return oa > 0 && oa == or
	})
	if err := r.Client().ReplicaOf(ctx, "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	fp.Retarget(r.Addr)
	fp.Cut()
	a.Kill()
	if err := w.Run(ctx, r.Client(), nil, 1000); err != nil {
		t.Fatal(err)
	}
	requireExact(t, ctx, []*redis.Client{r.Client()}, d, w)
	st := sup.Status().Sources[0]
	if st.PartialSyncs == 0 || sup.Flushes() != 1 {
		t.Fatalf("failover: want PSYNC2 continuation without flush, got %+v flushes=%d", st, sup.Flushes())
	}
}

func TestFaultPasswordRotation(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	src := harness.StartRedis(t, "--requirepass", "old-secret")
	c := src.Client()
	c.Options().Password = "old-secret"
	d := startDestination(t, 2)
	sup := runSupervisor(t, d, source(t, "src", src, "old-secret"))
	waitState(t, sup, syncer.StateSynced, time.Minute)
	if err := c.ConfigSet(ctx, "requirepass", "new-secret").Err(); err != nil {
		t.Fatal(err)
	}
	c.Options().Password = "new-secret"
	if err := c.ClientKillByFilter(ctx, "TYPE", "replica").Err(); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, sup, syncer.StateStopped, time.Minute)
	if e := strings.ToLower(st.Sources[0].LastError); !strings.Contains(e, "auth") && !strings.Contains(e, "wrongpass") {
		t.Fatalf("last_error %q is not an authentication error", st.Sources[0].LastError)
	}
	c.Set(ctx, "written-while-stopped", 1, 0)
	if err := sup.SetSources(ctx, []config.Source{source(t, "src", src, "new-secret")}); err != nil {
		t.Fatal(err)
	}
	waitState(t, sup, syncer.StateSynced, time.Minute)
	waitEqual(t, ctx, map[int][]*redis.Client{0: {c}}, map[int][]*redis.Client{0: d.clients(0)}, time.Minute)
}

// Passwords never appear in logs, status, the API or error messages.
func TestPasswordsNeverPrinted(t *testing.T) {
	ctx := harness.Context(t, 2*time.Minute)
	const good, bad = "Sup3r-S3cret-good", "Sup3r-S3cret-bad"
	ok := harness.StartRedis(t, "--requirepass", good)
	refused := harness.StartRedis(t, "--requirepass", "something-else")
	d := startDestination(t, 1)
	var logs bytes.Buffer
	var mu sync.Mutex
	sup, err := syncer.New(syncer.Config{
		Sources:     []config.Source{source(t, "ok", ok, good), source(t, "refused", refused, bad)},
		Destination: d.dest,
		Logger:      slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RetryMin:    20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(rctx) }()
	waitState(t, sup, syncer.StateStopped, time.Minute) // the refused source stops everyone
	srv := httptest.NewServer(admin.New(admin.Config{Controller: sup}))
	defer srv.Close()
	var everything strings.Builder
	for _, p := range []string{"/v1/status", "/v1/sources"} {
		resp, err := srv.Client().Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		fmt.Fprintf(&everything, "%v\n", v)
	}
	st := sup.Status()
	fmt.Fprintf(&everything, "%+v\n%v\n%s\n", st, sup.Sources(), fmt.Sprint(sup.Sources()[0]))
	cancel()
	<-done
	mu.Lock()
	everything.Write(logs.Bytes())
	mu.Unlock()
	for _, secret := range []string{good, bad} {
		if strings.Contains(everything.String(), secret) {
			t.Fatalf("a password was printed:\n%s", everything.String())
		}
	}
	if !strings.Contains(everything.String(), "***") {
		t.Fatalf("no redacted URL in the output at all:\n%s", everything.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func infoInt(info, field string) (int64, bool) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			var n int64
			_, err := fmt.Sscan(v, &n)
			return n, err == nil
		}
	}
	return 0, false
}
