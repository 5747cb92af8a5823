package main

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The demo runs end to end: it prints a redis-cli line that works against
// its proxy, reaches synced, and stops everything on cancel.
func TestDemoEndToEnd(t *testing.T) {
	out := runDemoUntilSynced(t, "--keys", "2000")
	if strings.Contains(out, "Redis Cluster") {
		t.Fatalf("a plain demo shows a cluster destination:\n%s", out)
	}
}

// demo --cluster: the same, into a local 3-master, 3-replica Redis Cluster
// named by one seed node.
func TestDemoCluster(t *testing.T) {
	out := runDemoUntilSynced(t, "--keys", "2000", "--cluster")
	if !strings.Contains(out, "Redis Cluster, 3 masters + 3 replicas") {
		t.Fatalf("the demo does not show its cluster destination:\n%s", out)
	}
}

// runDemoUntilSynced runs demo --quiet with args until it is synced and
// its printed redis-cli line answers, cancels it, and returns what it
// printed.
func runDemoUntilSynced(t *testing.T, args ...string) string {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("redis-cli not found: apt-get install -y redis-tools")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- runWith(ctx, append([]string{"demo", "--quiet"}, args...), &out, &errOut) }()

	lineRE := regexp.MustCompile(`redis-cli -p (\d+) get (\S+)`)
	var m []string
	deadline := time.Now().Add(60 * time.Second)
	for m == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no redis-cli line printed:\n%s\n%s", out.String(), errOut.String())
		}
		select {
		case code := <-done:
			t.Fatalf("demo exited early with %d:\n%s\n%s", code, out.String(), errOut.String())
		case <-time.After(50 * time.Millisecond):
		}
		m = lineRE.FindStringSubmatch(out.String())
	}
	for !strings.Contains(out.String(), "status: synced") {
		if time.Now().After(deadline) {
			t.Fatalf("demo never synced:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The printed line, run as printed, answers the counter the demo's
	// traffic increments.
	var got string
	for time.Now().Before(deadline) {
		b, err := exec.CommandContext(ctx, "redis-cli", "-p", m[1], "get", m[2]).CombinedOutput()
		got = strings.TrimSpace(string(b))
		if err == nil && regexp.MustCompile(`^\d+$`).MatchString(got) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !regexp.MustCompile(`^\d+$`).MatchString(got) {
		t.Fatalf("redis-cli -p %s get %s answered %q", m[1], m[2], got)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("demo exit %d:\n%s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop after cancel")
	}
	return out.String()
}
