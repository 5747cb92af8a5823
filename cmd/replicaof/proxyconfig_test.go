package main

import (
	"log/slog"
	"testing"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/metrics"
	"github.com/replicaof/replicaof/proxy"
)

// proxy.loops and proxy.max_pending reach proxy.Config: unset loops is
// LoopsAuto, 0 stays 0 (goroutines only), and the pending bound is the
// file's (its hard limit the proxy's default multiple).
func TestProxyConfigLoopsAndPending(t *testing.T) {
	m, err := metrics.New(metrics.Config{NoRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		yaml    string
		loops   int
		pending int64
	}{
		{"", proxy.LoopsAuto, config.DefaultMaxPending},
		{"proxy: { loops: auto, max_pending: 1mb }", proxy.LoopsAuto, 1 << 20},
		{"proxy: { loops: 0 }", 0, config.DefaultMaxPending},
		{"proxy: { loops: 3, max_pending: 128mb }", 3, 128 << 20},
	} {
		cfg, err := config.Parse([]byte(tc.yaml + "\ndestination: { shards: [redis://127.0.0.1:7001] }\n"))
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		pc := proxyConfig(cfg, nil, nil, proxy.ReadPrimary, slog.Default(), m)
		if pc.Loops != tc.loops || pc.MaxPending != tc.pending || pc.MaxPendingHard != 0 {
			t.Errorf("%q: Loops %d MaxPending %d MaxPendingHard %d, want %d %d 0", tc.yaml, pc.Loops, pc.MaxPending, pc.MaxPendingHard, tc.loops, tc.pending)
		}
	}
}
