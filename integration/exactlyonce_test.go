package integration

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
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
)

// The exactly-once test runs the supervisor in a child process (this test
// binary, re-executed with these variables set) so it can be killed with
// SIGKILL: nothing gets to flush, finish a transaction or say goodbye.
const (
	childEnv       = "REPLICAOF_EO_CHILD"        // "1" in the child
	childSources   = "REPLICAOF_EO_SOURCES"      // name=host:port,…
	childShards    = "REPLICAOF_EO_SHARDS"       // host:port,…
	crashSeedEnv   = "REPLICAOF_EO_SEED"         // overrides the kill schedule's seed
	childDebug     = "REPLICAOF_EO_DEBUG"        // "1": the child logs at debug level
	resumedLogLine = "resuming from checkpoints" // logged by the supervisor
)

func init() {
	if os.Getenv(childEnv) == "1" {
		os.Exit(childMain())
	}
}

// childMain runs a supervisor until stdin closes (the parent ended) or the
// process is killed.
func childMain() int {
	level := slog.LevelInfo
	if os.Getenv(childDebug) == "1" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var srcs []config.Source
	for _, s := range strings.Split(os.Getenv(childSources), ",") {
		name, addr, _ := strings.Cut(s, "=")
		src, err := config.ParseSource(name + ": redis://" + addr)
		if err != nil {
			log.Error("bad source", "error", err)
			return 2
		}
		srcs = append(srcs, src)
	}
	var shards []destpkg.Shard
	for _, a := range strings.Split(os.Getenv(childShards), ",") {
		shards = append(shards, destpkg.Shard{Addr: a})
	}
	dest, err := destpkg.New(destpkg.Config{
		Shards: shards, Pool: pool.Config{RetryBackoff: 20 * time.Millisecond},
	})
	if err != nil {
		log.Error("destination", "error", err)
		return 2
	}
	defer dest.Close()
	sup, err := syncer.New(syncer.Config{
		Sources: srcs, Destination: dest, Logger: log,
		RetryMin: 20 * time.Millisecond, RetryMax: 300 * time.Millisecond,
		SampleInterval: 50 * time.Millisecond, ShardCheckInterval: 200 * time.Millisecond,
	})
	if err != nil {
		log.Error("supervisor", "error", err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	_ = sup.Run(ctx)
	return 0
}

// child is one replicaof process under test.
type child struct {
	cmd   *exec.Cmd
	stdin io.Closer
	log   *lockedBuffer
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// childRuns are the replicaof children of one test: each is killed (-9)
// when the test ends, and their logs are shown when it failed.
type childRuns struct {
	t               *testing.T
	sources, shards string
	all             []*child
}

func newChildRuns(t *testing.T, sources, shards string) *childRuns {
	r := &childRuns{t: t, sources: sources, shards: shards}
	t.Cleanup(func() {
		for _, c := range r.all {
			c.kill()
		}
		if t.Failed() {
			for i, c := range r.all {
				l := c.log.String()
				if len(l) > 6000 {
					l = "…" + l[len(l)-6000:]
				}
				t.Logf("replicaof run %d:\n%s", i, l)
			}
		}
	})
	return r
}

// start starts one more child.
func (r *childRuns) start() *child {
	r.t.Helper()
	c := startChild(r.t, r.sources, r.shards)
	r.all = append(r.all, c)
	return c
}

func startChild(t *testing.T, sources, shards string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childSources+"="+sources, childShards+"="+shards)
	c := &child{cmd: cmd, log: &lockedBuffer{}}
	cmd.Stdout, cmd.Stderr = c.log, c.log
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.stdin = in
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// kill is kill -9: the child gets no chance to finish anything.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
	_ = c.stdin.Close()
}

// workloadLoop runs w against c in chunks with a fresh seed each, until
// stop is closed; ops counts the operations done.
func workloadLoop(ctx context.Context, w *harness.Workload, c, other *redis.Client, ops *atomic.Int64, stop <-chan struct{}) error {
	base := w.Seed
	for chunk := int64(0); ; chunk++ {
		select {
		case <-stop:
			return nil
		default:
		}
		w.Seed = base + chunk*7919
		if err := w.Run(ctx, c, other, 100); err != nil {
			return err
		}
		ops.Add(100)
	}
}

// TestExactlyOnceAcrossCrashes kills replicaof (SIGKILL) at 10 seeded
// random points while two sources take writes, restarting it each time;
// at the end the destination equals the sources and every counter is
// exact: no command was lost or applied twice.
func TestExactlyOnceAcrossCrashes(t *testing.T) {
	ctx := harness.Context(t, 4*time.Minute)
	seed := int64(20240611)
	if s := os.Getenv(crashSeedEnv); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("kill schedule seed %d (%s to replay)", seed, crashSeedEnv)
	rng := rand.New(rand.NewSource(seed))

	a := harness.StartRedis(t, "--repl-backlog-size", "64mb", "--repl-diskless-sync-delay", "0")
	b := harness.StartRedis(t, "--repl-backlog-size", "64mb", "--repl-diskless-sync-delay", "0")
	if err := harness.LoadDataset(ctx, a.Client(), "a:", 1, 5000); err != nil {
		t.Fatal(err)
	}
	if err := harness.LoadDataset(ctx, b.Client(), "b:", 2, 1000); err != nil {
		t.Fatal(err)
	}
	d := startDestination(t, 3)
	sources := "a=" + a.Addr + ",b=" + b.Addr
	var shardAddrs []string
	for _, s := range d.shards {
		shardAddrs = append(shardAddrs, s.Addr)
	}
	shards := strings.Join(shardAddrs, ",")

	wa := &harness.Workload{Prefix: "a:", Seed: 11, DB: 3}
	wb := &harness.Workload{Prefix: "b:", Seed: 12}
	var ops atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	var failed atomic.Bool
	run := func(i int, w *harness.Workload, c, other *redis.Client) {
		defer wg.Done()
		if errs[i] = workloadLoop(ctx, w, c, other, &ops, stop); errs[i] != nil {
			failed.Store(true)
		}
	}
	go run(0, wa, a.Client(), a.ClientDB(3))
	go run(1, wb, b.Client(), nil)
	stopWorkload := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopWorkload)

	runs := newChildRuns(t, sources, shards)
	for i := 0; i < 10; i++ {
		c := runs.start()
		// A kill point: a third very early (handshake, snapshot, resume),
		// the others once both links stream, after a random number of
		// source writes.
		n := int64(rng.Intn(200))
		early := rng.Intn(3) == 0
		if !early {
			n = int64(rng.Intn(3000) + 100)
			harness.WaitFor(t, time.Minute, "both links streaming", func() bool {
				l := c.log.String()
				return strings.Count(l, "replica: snapshot loaded")+strings.Count(l, "replica: partial resync") >= 2
			})
		}
		target := ops.Load() + n
		harness.WaitFor(t, time.Minute, "workload progress", func() bool {
			return ops.Load() >= target || failed.Load()
		})
		c.kill()
		t.Logf("run %d killed after %d more writes (early %v)", i, n, early)
	}
	stopWorkload()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	runs.start() // the final run, which must converge
	waitEqual(t, ctx,
		map[int][]*redis.Client{0: {a.Client(), b.Client()}, 3: {a.ClientDB(3)}},
		map[int][]*redis.Client{0: d.clients(0), 3: d.clients(3)}, 2*time.Minute)
	dst := map[int][]*redis.Client{0: d.clients(0), 3: d.clients(3)}
	for _, w := range []*harness.Workload{wa, wb} {
		if err := w.CheckCounters(ctx, dst); err != nil {
			t.Fatal(err)
		}
	}
	resumed := 0
	var how []string
	for _, c := range runs.all {
		l := c.log.String()
		switch {
		case strings.Contains(l, resumedLogLine):
			resumed++
			how = append(how, "resumed")
		case strings.Contains(l, "destination flushed"):
			how = append(how, "flushed")
		default:
			how = append(how, "-")
		}
	}
	t.Logf("runs: %s", strings.Join(how, " "))
	t.Logf("%d of %d runs resumed from checkpoints, %d writes", resumed, len(runs.all), ops.Load())
	if resumed < 3 {
		t.Fatal("fewer than 3 runs resumed from checkpoints: restarts flush")
	}
}

// startSupervisor runs a supervisor until the returned stop is called.
func startSupervisor(t *testing.T, d *destination, srcs ...config.Source) (*syncer.Supervisor, func()) {
	t.Helper()
	sup, err := syncer.New(syncer.Config{
		Sources: srcs, Destination: d.dest,
		Logger:   harness.Logger(t, slog.LevelInfo),
		RetryMin: 20 * time.Millisecond, RetryMax: 500 * time.Millisecond,
		SampleInterval: 50 * time.Millisecond, ShardCheckInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(ctx) }()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return sup, stop
}

// A restarted supervisor resumes from the checkpoints (no flush, partial
// resync); one given another source list starts over.
func TestSyncResumesFromCheckpoints(t *testing.T) {
	ctx := harness.Context(t, 2*time.Minute)
	src, other := harness.StartRedis(t, "--repl-diskless-sync-delay", "0"), harness.StartRedis(t, "--repl-diskless-sync-delay", "0")
	harness.LoadDataset(ctx, src.Client(), "", 1, 1000)
	d := startDestination(t, 3)
	w := &harness.Workload{Seed: 3}
	srcs := map[int][]*redis.Client{0: {src.Client()}}
	dst := map[int][]*redis.Client{0: d.clients(0)}

	sup, stop := startSupervisor(t, d, source(t, "src", src, ""))
	waitState(t, sup, syncer.StateSynced, time.Minute)
	if err := w.Run(ctx, src.Client(), nil, 1000); err != nil {
		t.Fatal(err)
	}
	waitEqual(t, ctx, srcs, dst, time.Minute)
	stop()

	// Writes while replicaof is down, then a new process.
	if err := w.Run(ctx, src.Client(), nil, 1000); err != nil {
		t.Fatal(err)
	}
	sup, stop = startSupervisor(t, d, source(t, "src", src, ""))
	waitState(t, sup, syncer.StateSynced, time.Minute)
	waitEqual(t, ctx, srcs, dst, time.Minute)
	if err := w.CheckCounters(ctx, dst); err != nil {
		t.Fatal(err)
	}
	st := sup.Status().Sources[0]
	if sup.Resumes() != 1 || sup.Flushes() != 0 || st.FullSyncs != 0 || st.PartialSyncs != 1 {
		t.Fatalf("want a resume without flush: resumes %d flushes %d, status %+v", sup.Resumes(), sup.Flushes(), st)
	}
	stop()

	// Another source list: flush and full sync of all.
	sup, _ = startSupervisor(t, d, source(t, "src", src, ""), source(t, "other", other, ""))
	waitState(t, sup, syncer.StateSynced, time.Minute)
	waitEqual(t, ctx, map[int][]*redis.Client{0: {src.Client(), other.Client()}}, dst, time.Minute)
	if sup.Resumes() != 0 || sup.Flushes() != 1 {
		t.Fatalf("changed sources: resumes %d flushes %d, want a flush", sup.Resumes(), sup.Flushes())
	}
}

// A destination shard that restarts empty, or is flushed behind
// replicaof's back, is detected and repaired by a full resync.
func TestSyncRepairsShardRestartedEmpty(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	src := harness.StartRedis(t, "--repl-diskless-sync-delay", "0")
	harness.LoadDataset(ctx, src.Client(), "", 1, 2000)
	d := startDestination(t, 3)
	sup, _ := startSupervisor(t, d, source(t, "src", src, ""))
	srcs := map[int][]*redis.Client{0: {src.Client()}, 3: {src.ClientDB(3)}}
	dst := map[int][]*redis.Client{0: d.clients(0), 3: d.clients(3)}
	w := &harness.Workload{Seed: 5, DB: 3}
	waitState(t, sup, syncer.StateSynced, time.Minute)

	for i, hole := range []struct {
		name, reason string
		make         func()
	}{
		{"restart", "shard 1", func() { d.shards[1].Restart() }},
		{"flushall", "shard 2", func() { d.shards[2].Client().FlushAll(ctx) }},
	} {
		if err := w.Run(ctx, src.Client(), src.ClientDB(3), 500); err != nil {
			t.Fatal(err)
		}
		waitEqual(t, ctx, srcs, dst, time.Minute)
		flushes := sup.Flushes()
		hole.make()
		if err := w.Run(ctx, src.Client(), src.ClientDB(3), 500); err != nil {
			t.Fatal(err)
		}
		harness.WaitFor(t, 30*time.Second, hole.name+": repair by flush + full sync", func() bool { return sup.Flushes() > flushes })
		st := waitState(t, sup, syncer.StateSynced, time.Minute)
		if s := st.Sources[0]; s.FullSyncs != i+2 || !strings.Contains(s.LastError, hole.reason) {
			t.Fatalf("%s: status %+v, want full sync #%d and last_error naming %q", hole.name, s, i+2, hole.reason)
		}
		waitEqual(t, ctx, srcs, dst, time.Minute)
		if err := w.CheckCounters(ctx, dst); err != nil {
			t.Fatalf("%s: %v", hole.name, err)
		}
	}
}
