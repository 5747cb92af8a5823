package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/internal/redisproc"
	"github.com/replicaof/replicaof/syncer"
)

// haServeEnv, set to a config file's path, makes this test binary run
// `replicaof serve -c PATH` instead of the tests: a real serve process the
// HA test can kill -9 and SIGSTOP.
const haServeEnv = "REPLICAOF_HA_SERVE"

// haLeaseEnv overrides the HA test's replica_of.lease (default 3s), e.g.
// 10s to measure takeovers with the default lease.
const haLeaseEnv = "REPLICAOF_HA_LEASE"

func haLease() string {
	if l := os.Getenv(haLeaseEnv); l != "" {
		return l
	}
	return "3s"
}

func init() {
	if path := os.Getenv(haServeEnv); path != "" {
		os.Exit(run([]string{"serve", "-c", path}))
	}
}

// haInstance is one `replicaof serve` process of the HA test.
type haInstance struct {
	name, path, proxy, admin string
	cmd                      *exec.Cmd
	log                      *syncBuffer
	alive                    atomic.Bool // its proxy must answer
}

func newHAInstance(t *testing.T, name string, shards []string, sources string) *haInstance {
	t.Helper()
	proxyPort, _ := redisproc.FreePort()
	adminPort, _ := redisproc.FreePort()
	dir := t.TempDir()
	in := &haInstance{name: name, path: filepath.Join(dir, "replicaof.yaml"),
		proxy: fmt.Sprintf("127.0.0.1:%d", proxyPort), admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), log: &syncBuffer{}}
	yaml := fmt.Sprintf("proxy: { listen: %q }\nadmin: { listen: \"127.0.0.1:%d\" }\ndestination: { shards: [%s] }\n"+
		"replica_of: { lease: %s, sources: [%s] }\nstate_dir: %q\n",
		in.proxy, adminPort, strings.Join(shards, ", "), haLease(), sources, filepath.Join(dir, "state"))
	if err := os.WriteFile(in.path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return in
}

func (in *haInstance) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), haServeEnv+"="+in.path)
	cmd.Stdout, cmd.Stderr = in.log, in.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.cmd = cmd
	harness.WaitFor(t, 30*time.Second, in.name+" admin API up", func() bool {
		_, err := in.status()
		return err == nil
	})
	in.alive.Store(true)
}

// kill is kill -9.
func (in *haInstance) kill() {
	in.alive.Store(false)
	if in.cmd != nil && in.cmd.Process != nil {
		_ = in.cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies only once resumed
		_ = in.cmd.Process.Kill()
		_ = in.cmd.Wait()
		in.cmd = nil
	}
}

func (in *haInstance) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := in.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

func (in *haInstance) status() (syncer.Status, error) {
	var st syncer.Status
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(in.admin + "/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// streaming: active, every source synced and streaming.
func (in *haInstance) streaming(sources int) bool {
	st, err := in.status()
	if err != nil || st.Role != syncer.RoleActive || len(st.Sources) != sources || st.Status != syncer.StateSynced {
		return false
	}
	for _, s := range st.Sources {
		if s.Phase != syncer.PhaseStreaming {
			return false
		}
	}
	return true
}

func (in *haInstance) standbyOf(other *haInstance) bool {
	st, err := in.status()
	return err == nil && st.Role == syncer.RoleStandby && st.Active == other.admin
}

// syncFull is r's count of full syncs served to replicas.
func syncFull(t *testing.T, ctx context.Context, r *harness.Redis) string {
	t.Helper()
	return harness.InfoField(t, ctx, r.Client(), "stats", "sync_full")
}

// Two instances over one 2-shard destination: exactly one is active; kill
// -9 of the active → the standby takes over from the checkpoints (no
// full sync); the new active frozen past its lease → the first, restarted,
// takes over, and the frozen one, thawed, writes nothing; the active
// killed and restarted at once takes its own lease back; a source added
// by REST on the active survives the takeovers; both proxies serve reads
// throughout; counters exact and the destination equal at the end.
func TestFaultHATakeover(t *testing.T) {
	ctx := harness.Context(t, 4*time.Minute)
	a := harness.StartRedis(t, "--repl-backlog-size", "64mb", "--repl-diskless-sync-delay", "0")
	b := harness.StartRedis(t, "--repl-backlog-size", "64mb", "--repl-diskless-sync-delay", "0")
	s0, s1 := harness.StartRedis(t), harness.StartRedis(t)
	if err := harness.LoadDataset(ctx, a.Client(), "a:", 1, 2000); err != nil {
		t.Fatal(err)
	}
	if err := harness.LoadDataset(ctx, b.Client(), "b:", 2, 500); err != nil {
		t.Fatal(err)
	}
	shards := []string{fmt.Sprintf("%q", "redis://"+s0.Addr), fmt.Sprintf("%q", "redis://"+s1.Addr)}
	srcA := fmt.Sprintf("%q", "a: redis://"+a.Addr)
	i1 := newHAInstance(t, "first", shards, srcA)
	i2 := newHAInstance(t, "second", shards, srcA)
	t.Cleanup(func() {
		i1.kill()
		i2.kill()
		if t.Failed() {
			for _, in := range []*haInstance{i1, i2} {
				l := in.log.String()
				if len(l) > 8000 {
					l = "…" + l[len(l)-8000:]
				}
				t.Logf("%s instance log:\n%s", in.name, l)
			}
		}
	})

	i1.start(t)
	harness.WaitFor(t, time.Minute, "first instance active and streaming", func() bool { return i1.streaming(1) })
	i2.start(t)
	harness.WaitFor(t, 20*time.Second, "second instance standby of the first", func() bool { return i2.standbyOf(i1) })
	if !i1.streaming(1) {
		t.Fatal("the first instance is no longer active once the second started")
	}

	// Both proxies serve reads the whole time (while their process runs).
	stopReads := make(chan struct{})
	var readWG sync.WaitGroup
	var reads, readErrs atomic.Int64
	for _, in := range []*haInstance{i1, i2} {
		readWG.Add(1)
		go func() {
			defer readWG.Done()
			c := redis.NewClient(&redis.Options{Addr: in.proxy, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
			defer c.Close()
			for n := 0; n < 100000; n++ {
				select {
				case <-stopReads:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if !in.alive.Load() {
					continue
				}
				err := c.Get(ctx, "a:str:1").Err()
				if !in.alive.Load() {
					continue // killed or frozen meanwhile
				}
				reads.Add(1)
				if err != nil && err != redis.Nil {
					readErrs.Add(1)
					t.Logf("%s proxy read: %v", in.name, err)
				}
			}
		}()
	}
	defer func() { close(stopReads); readWG.Wait() }()

	// A counter workload streams into source a the whole time.
	w := &harness.Workload{Prefix: "a:", Seed: 31}
	stopWork := make(chan struct{})
	workDone := make(chan error, 1)
	var ops atomic.Int64
	go func() {
		for chunk := int64(0); chunk < 2000; chunk++ {
			select {
			case <-stopWork:
				workDone <- nil
				return
			default:
			}
			w.Seed = 31 + chunk*7919
			if err := w.Run(ctx, a.Client(), nil, 50); err != nil {
				workDone <- err
				return
			}
			ops.Add(50)
			time.Sleep(5 * time.Millisecond)
		}
		workDone <- nil
	}()

	// A source added by REST on the active; the standby refuses changes.
	code, out := cli(t, "sources", "add", "b: redis://"+b.Addr, "--admin", strings.TrimPrefix(i1.admin, "http://"))
	if code != exitOK {
		t.Fatalf("sources add on the active: %d %s", code, out)
	}
	harness.WaitFor(t, time.Minute, "both sources streaming on the first instance", func() bool { return i1.streaming(2) })
	code, out = cli(t, "stop", "--admin", strings.TrimPrefix(i2.admin, "http://"))
	if code == exitOK || !strings.Contains(out, "standby") || !strings.Contains(out, i1.admin) {
		t.Fatalf("stop on the standby: exit %d, %s", code, out)
	}
	fullA, fullB := syncFull(t, ctx, a), syncFull(t, ctx, b)

	// kill -9 of the active: the standby takes over from the checkpoints.
	time.Sleep(time.Second)
	killed := time.Now()
	i1.kill()
	harness.WaitFor(t, 20*time.Second, "the second instance takes over", func() bool { return i2.streaming(2) })
	took1 := time.Since(killed)
	if st, _ := i2.status(); st.Sources[1].Name != "b" {
		t.Fatalf("the REST change did not survive the takeover: %+v", st.Sources)
	}
	if fa, fb := syncFull(t, ctx, a), syncFull(t, ctx, b); fa != fullA || fb != fullB {
		t.Fatalf("takeover made a full sync: sync_full a %s→%s, b %s→%s", fullA, fa, fullB, fb)
	}
	t.Logf("lease %s; kill -9 of the active: the standby streams again after %v", haLease(), took1.Round(time.Millisecond))

	// The first, restarted, is a standby of the second.
	i1.start(t)
	harness.WaitFor(t, 20*time.Second, "restarted first instance is a standby", func() bool { return i1.standbyOf(i2) })

	// The new active frozen past its lease: the first takes over; the
	// frozen one, thawed, writes nothing.
	time.Sleep(time.Second)
	frozen := time.Now()
	i2.alive.Store(false)
	i2.signal(t, syscall.SIGSTOP)
	harness.WaitFor(t, 20*time.Second, "the first instance takes over from the frozen one", func() bool { return i1.streaming(2) })
	took2 := time.Since(frozen)
	t.Logf("SIGSTOP of the active: the standby streams again after %v", took2.Round(time.Millisecond))
	time.Sleep(time.Second) // the new active writes a while
	i2.signal(t, syscall.SIGCONT)
	i2.alive.Store(true)
	harness.WaitFor(t, 20*time.Second, "thawed instance is a standby", func() bool { return i2.standbyOf(i1) })
	time.Sleep(2 * time.Second)

	// kill -9 of the active and an immediate restart: it takes its own
	// lease back at once (same instance id) instead of waiting for it to
	// expire, and resumes.
	killed = time.Now()
	i1.kill()
	i1.start(t)
	harness.WaitFor(t, 20*time.Second, "restarted active takes its lease back", func() bool { return i1.streaming(2) })
	t.Logf("kill -9 and restart of the active: streaming again after %v", time.Since(killed).Round(time.Millisecond))
	if !i2.standbyOf(i1) {
		t.Fatal("the second instance is not a standby of the restarted first one")
	}
	time.Sleep(time.Second)

	close(stopWork)
	if err := <-workDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d workload operations, %d proxy reads", ops.Load(), reads.Load())
	skip := func(k string) bool { return strings.HasPrefix(k, "__replicaof:") }
	src := []*redis.Client{a.Client(), b.Client()}
	dst := []*redis.Client{s0.Client(), s1.Client()}
	harness.WaitEqual(t, ctx, time.Minute, src, func() []*redis.Client { return dst }, harness.CompareOptions{Skip: skip})
	if err := w.CheckCounters(ctx, map[int][]*redis.Client{0: dst}); err != nil {
		t.Fatal(err)
	}
	if fa, fb := syncFull(t, ctx, a), syncFull(t, ctx, b); fa != fullA || fb != fullB {
		t.Fatalf("takeovers made a full sync: sync_full a %s→%s, b %s→%s", fullA, fa, fullB, fb)
	}
	if n := readErrs.Load(); n > 0 {
		t.Fatalf("%d of %d proxy reads failed", n, reads.Load())
	}
	for _, line := range strings.Split(i2.log.String(), "\n") {
		if strings.Contains(line, "fenced") || strings.Contains(line, "lease") {
			t.Logf("thawed instance: %s", line)
		}
	}
}
