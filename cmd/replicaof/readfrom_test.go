package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/internal/redisproc"
)

// TestServeReadFromReplica: serve wires proxy.read_from and a shard's
// configured replicas to the proxy: GETs through it reach the replica.
func TestServeReadFromReplica(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	src := harness.StartRedis(t)
	shard := harness.StartRedis(t, "--repl-diskless-sync-delay", "0")
	rep := harness.StartReplica(t, shard)
	proxyPort, _ := redisproc.FreePort()
	adminPort, _ := redisproc.FreePort()
	dir := t.TempDir()
	path := filepath.Join(dir, "replicaof.yaml")
	yaml := fmt.Sprintf(`proxy: { listen: "127.0.0.1:%d", read_from: replica, max_replica_lag: 2s }
admin: { listen: "127.0.0.1:%d" }
destination:
  shards:
    - { uri: "redis://%s", replicas: ["redis://%s"] }
replica_of:
  sources: ["src: redis://%s"]
state_dir: %q
`, proxyPort, adminPort, shard.Addr, rep.Addr, src.Addr, filepath.Join(dir, "state"))
	writeConfig(t, path, yaml)
	startServe(t, ctx, path)
	if err := src.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", proxyPort), MaxRetries: -1})
	defer pc.Close()
	rc := rep.Client()
	harness.WaitFor(t, 30*time.Second, "a GET served by the replica", func() bool {
		if v, err := pc.Get(ctx, "k").Result(); err != nil && err != redis.Nil || err == nil && v != "v" {
			t.Fatalf("GET k = %q, %v", v, err)
		}
		s, _ := rc.Info(ctx, "commandstats").Result()
		return strings.Contains(s, "cmdstat_get:")
	})
	// The metrics show the reads per node and role.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<22))
	resp.Body.Close()
	want := fmt.Sprintf(`replicaof_proxy_node_reads_total{addr=%q,role="replica",shard="0"} `, rep.Addr)
	if !strings.Contains(string(body), want) || !strings.Contains(string(body), "replicaof_proxy_replica_lag_seconds{") {
		t.Errorf("no node series %s in /metrics:\n%s", want, body)
	}

	// GET /v1/status lists the nodes.
	resp, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/status", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Status           string `json:"status"`
		DestinationNodes []struct {
			Shard int    `json:"shard"`
			Addr  string `json:"addr"`
			Role  string `json:"role"`
			Up    bool   `json:"up"`
			Reads int64  `json:"reads"`
		} `json:"destination_nodes"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.Status == "" || len(st.DestinationNodes) != 2 ||
		st.DestinationNodes[0].Role != "primary" || st.DestinationNodes[0].Addr != shard.Addr ||
		st.DestinationNodes[1].Role != "replica" || st.DestinationNodes[1].Addr != rep.Addr || st.DestinationNodes[1].Reads == 0 {
		t.Errorf("/v1/status nodes: %+v %v", st, err)
	}
}
