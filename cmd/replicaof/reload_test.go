package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/internal/redisproc"
	"github.com/replicaof/replicaof/syncer"
)

// A changed source list in the config file, applied by SIGHUP, restarts
// sync of all sources; an unchanged or broken file changes nothing.
func TestReloadOnSIGHUP(t *testing.T) {
	// Keep the default action (exit) away from the test process even
	// before serve registers its own handler.
	guard := make(chan os.Signal, 8)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)

	a, b, shard := harness.StartRedis(t), harness.StartRedis(t), harness.StartRedis(t)
	ctx := harness.Context(t, 2*time.Minute)
	a.Client().Set(ctx, "from-a", 1, 0)
	b.Client().Set(ctx, "from-b", 1, 0)
	adminPort, _ := redisproc.FreePort()
	proxyPort, _ := redisproc.FreePort()
	dir := t.TempDir()
	path := filepath.Join(dir, "replicaof.yaml")
	write := func(sources string) {
		yaml := fmt.Sprintf("proxy: { listen: \"127.0.0.1:%d\" }\nadmin: { listen: \"127.0.0.1:%d\" }\ndestination: { shards: [\"redis://%s\"] }\nreplica_of: { sources: [%s] }\nstate_dir: %q\n",
			proxyPort, adminPort, shard.Addr, sources, filepath.Join(dir, "state"))
		writeConfig(t, path, yaml)
	}
	write(fmt.Sprintf("%q", "a: redis://"+a.Addr))
	run, stop := startServe(t, ctx, path)
	defer stop()
	sup := run.Supervisor
	harness.WaitFor(t, time.Minute, "synced", func() bool { return sup.Status().Status == syncer.StateSynced })
	flushes := sup.Flushes()

	hup := func() { _ = syscall.Kill(os.Getpid(), syscall.SIGHUP) }
	write("not: [valid") // a broken file is logged and ignored
	hup()
	write(fmt.Sprintf("%q, %q", "a: redis://"+a.Addr, "b: redis://"+b.Addr))
	harness.WaitFor(t, 30*time.Second, "reload adds source b", func() bool {
		hup() // repeated: serve may not have registered its handler yet
		time.Sleep(50 * time.Millisecond)
		return len(sup.Sources()) == 2
	})
	harness.WaitFor(t, time.Minute, "both synced after the restart", func() bool {
		st := sup.Status()
		return st.Status == syncer.StateSynced && len(st.Sources) == 2
	})
	if sup.Flushes() <= flushes {
		t.Fatalf("adding a source by SIGHUP did not flush and restart (%d flushes)", sup.Flushes())
	}
	n, _ := shard.Client().Exists(ctx, "from-a", "from-b").Result()
	if n != 2 {
		t.Fatalf("destination holds %d of the two sources' keys", n)
	}
}

// `make demo` itself: it builds, prints a redis-cli line that works, and
// stops every process it started on Ctrl-C.
func TestMakeDemo(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make not found: apt-get install -y make")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out syncBuffer
	cmd := exec.CommandContext(ctx, "make", "-C", "../..", "demo")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	interrupt := func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	defer func() {
		interrupt()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}()
	lineRE := regexp.MustCompile(`redis-cli -p (\d+) get (\S+)`)
	var m []string
	deadline := time.Now().Add(2 * time.Minute)
	for m == nil || !strings.Contains(out.String(), "synced") {
		select {
		case err := <-exited:
			t.Fatalf("make demo exited early (%v):\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("make demo printed no redis-cli line or never synced:\n%s", out.String())
		}
		m = lineRE.FindStringSubmatch(out.String())
	}
	var got string
	for time.Now().Before(deadline) {
		b, err := exec.CommandContext(ctx, "redis-cli", "-p", m[1], "get", m[2]).CombinedOutput()
		if got = strings.TrimSpace(string(b)); err == nil && regexp.MustCompile(`^\d+$`).MatchString(got) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !regexp.MustCompile(`^\d+$`).MatchString(got) {
		t.Fatalf("the printed line answered %q:\n%s", got, out.String())
	}
	interrupt()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("make demo did not stop on Ctrl-C:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "every process the demo started is stopped") {
		t.Fatalf("no shutdown message:\n%s", out.String())
	}
}
