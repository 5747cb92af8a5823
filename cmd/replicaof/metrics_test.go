package main

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/internal/redisproc"
	"github.com/replicaof/replicaof/metrics/metricstest"
	"github.com/replicaof/replicaof/syncer"
)

// TestServeMetrics runs serve over a real source and two real shards, reads
// through the proxy, and checks that /metrics carries the proxy, shard
// pipeline and applied series the hooks feed.
func TestServeMetrics(t *testing.T) {
	src := harness.StartRedis(t)
	s0, s1 := harness.StartRedis(t), harness.StartRedis(t)
	ctx := harness.Context(t, 2*time.Minute)
	const keys = 300
	if err := harness.LoadDataset(ctx, src.Client(), "mx:", 3, keys); err != nil {
		t.Fatal(err)
	}
	proxyPort, _ := redisproc.FreePort()
	adminPort, _ := redisproc.FreePort()
	dir := t.TempDir()
	path := filepath.Join(dir, "replicaof.yaml")
	yaml := fmt.Sprintf(`proxy: { listen: "127.0.0.1:%d" }
admin: { listen: "127.0.0.1:%d" }
destination: { shards: ["redis://%s", "redis://%s"] }
replica_of: { sources: ["orders: redis://%s"] }
state_dir: %q
`, proxyPort, adminPort, s0.Addr, s1.Addr, src.Addr, filepath.Join(dir, "state"))
	writeConfig(t, path, yaml)
	run, _ := startServe(t, ctx, path)
	harness.WaitFor(t, time.Minute, "synced", func() bool { return run.Supervisor.Status().Status == syncer.StateSynced })
	// A write on the source after the snapshot goes through the stream.
	if err := src.Client().Set(ctx, "mx:after", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}

	pc := redis.NewClient(&redis.Options{Addr: run.ProxyAddr, Protocol: 2, DisableIdentity: true})
	defer pc.Close()
	harness.WaitFor(t, 30*time.Second, "the stream write readable through the proxy", func() bool {
		v, err := pc.Get(ctx, "mx:after").Result()
		return err == nil && v == "1"
	})
	const gets = 20
	for i := 0; i < gets; i++ {
		if err := pc.Get(ctx, fmt.Sprintf("nokey:%d", i)).Err(); err != redis.Nil {
			t.Fatalf("GET: %v", err)
		}
	}
	if err := pc.MGet(ctx, "a", "b", "c", "d").Err(); err != nil {
		t.Fatalf("MGET: %v", err)
	}
	if err := pc.Do(ctx, "NOSUCHCOMMAND").Err(); err == nil {
		t.Fatal("unknown command did not fail")
	}
	// The proxy reports a command after writing its reply; the reply to
	// the next command on the same connection comes after that report.
	if err := pc.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	mfs, body := metricstest.Scrape(t, ctx, run.AdminURL)
	check := func(name string, labels []string, ok func(float64) bool, want string) {
		t.Helper()
		v, found := metricstest.Value(mfs, name, labels...)
		if !found {
			t.Errorf("no series %s%v", name, labels)
		} else if !ok(v) {
			t.Errorf("%s%v = %v, want %s", name, labels, v, want)
		}
	}
	atLeast := func(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }
	check("replicaof_proxy_connections", nil, atLeast(1), "≥ 1 (our client)")
	check("replicaof_proxy_connections_accepted_total", nil, atLeast(1), "≥ 1")
	check("replicaof_proxy_commands_total", []string{"command=get", "result=ok"}, atLeast(gets+1), fmt.Sprintf("≥ %d", gets+1))
	check("replicaof_proxy_commands_total", []string{"command=mget", "result=ok"}, atLeast(1), "≥ 1")
	check("replicaof_proxy_commands_total", []string{"command=other", "result=error"}, atLeast(1), "≥ 1")
	check("replicaof_proxy_command_duration_seconds", []string{"command=get"}, atLeast(gets+1), "a sample per GET")
	var applied float64
	for _, shard := range []string{"0", "1"} {
		check("replicaof_shard_up", []string{"shard=" + shard}, func(v float64) bool { return v == 1 }, "1")
		check("replicaof_shard_pipeline_depth", []string{"shard=" + shard}, atLeast(1), "≥ 1 batch")
		check("replicaof_shard_pipeline_duration_seconds", []string{"shard=" + shard}, atLeast(1), "≥ 1 batch")
		v, _ := metricstest.Value(mfs, "replicaof_syncer_commands_applied_total", "source=orders", "shard="+shard)
		check("replicaof_syncer_commands_applied_total", []string{"source=orders", "shard=" + shard}, atLeast(1), "≥ 1")
		applied += v
	}
	// Every key of the snapshot was loaded, and the stream's SET is one
	// command more than the snapshot's (small strings share MSETs, so
	// commands and keys no longer match one to one).
	check("replicaof_syncer_keys_loaded", []string{"source=orders"}, func(v float64) bool { return v == keys }, fmt.Sprint(keys))
	if applied < 2 {
		t.Errorf("%v commands applied, want ≥ 2 (snapshot and stream)", applied)
	}
	if _, found := metricstest.Value(mfs, "replicaof_shard_pipeline_failures_total", "shard=0"); found {
		t.Errorf("pipeline failures on a healthy shard:\n%s", body)
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", body)
	}
}
