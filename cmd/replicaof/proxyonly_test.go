package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/internal/redisproc"
)

// TestServeProxyOnly: --proxy-only serves the destination as it is
// (nothing flushed, nothing written: no checkpoint, no lease), reads from
// its replica, and refuses the sync controls.
func TestServeProxyOnly(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	shard := harness.StartRedis(t, "--repl-diskless-sync-delay", "0")
	rep := harness.StartReplica(t, shard)
	sc := shard.Client()
	if err := sc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	src := harness.StartRedis(t) // listed, and ignored
	proxyPort, _ := redisproc.FreePort()
	adminPort, _ := redisproc.FreePort()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`proxy: { listen: "127.0.0.1:%d", read_from: replica }
admin: { listen: "127.0.0.1:%d" }
destination: { shards: ["redis://%s"] }
replica_of: { sources: ["src: redis://%s"] }
state_dir: %q
`, proxyPort, adminPort, shard.Addr, src.Addr, t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- serveProxyOnly(sctx, cfg, discardLogger(), func(running) { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serveProxyOnly: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveProxyOnly: %v", err)
		}
	}()
	pc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", proxyPort), MaxRetries: -1})
	defer pc.Close()
	rc := rep.Client()
	harness.WaitFor(t, 30*time.Second, "a GET served by the replica", func() bool {
		if v, err := pc.Get(ctx, "k").Result(); err != nil || v != "v" {
			t.Fatalf("GET k = %q, %v", v, err)
		}
		s, _ := rc.Info(ctx, "commandstats").Result()
		return strings.Contains(s, "cmdstat_get:")
	})
	if keys, err := sc.Keys(ctx, "*").Result(); err != nil || len(keys) != 1 {
		t.Errorf("the destination was written to: keys %v, %v", keys, err)
	}
	if n, _ := src.Client().DBSize(ctx).Result(); n != 0 {
		t.Errorf("source touched")
	}
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/sync/restart", adminPort), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("POST /v1/sync/restart: %d", resp.StatusCode)
	}
	resp, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/status", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Role  string `json:"role"`
		Nodes []struct {
			Role string `json:"role"`
		} `json:"destination_nodes"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.Role != "proxy-only" || len(st.Nodes) != 2 {
		t.Errorf("/v1/status: %+v %v", st, err)
	}
}

// TestServeProxyOnlyCluster: naming one node of a Redis Cluster as the
// destination serves the whole cluster: keys of every master, DBSIZE
// summed over the masters.
func TestServeProxyOnlyCluster(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	c := harness.StartCluster(t, 3, 0)
	cc := c.Client()
	var keys []string
	for g := 0; g < 3; g++ {
		k := c.KeyInShard(g, "k")
		if err := cc.Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	proxyPort, _ := redisproc.FreePort()
	adminPort, _ := redisproc.FreePort()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`proxy: { listen: "127.0.0.1:%d" }
admin: { listen: "127.0.0.1:%d" }
destination: { shards: ["redis://%s"], refresh: 1s }
state_dir: %q
`, proxyPort, adminPort, c.Nodes[2].Addr, t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- serveProxyOnly(sctx, cfg, discardLogger(), func(running) { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serveProxyOnly: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveProxyOnly: %v", err)
		}
	}()
	pc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", proxyPort), MaxRetries: -1})
	defer pc.Close()
	for _, k := range keys {
		if v, err := pc.Get(ctx, k).Result(); err != nil || v != k {
			t.Fatalf("GET %s through the proxy = %q, %v", k, v, err)
		}
	}
	if n, err := pc.DBSize(ctx).Result(); err != nil || n != int64(len(keys)) {
		t.Fatalf("DBSIZE through the proxy = %d, %v; want %d", n, err, len(keys))
	}
}
