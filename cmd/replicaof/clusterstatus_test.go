package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/admin"
	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/internal/redisproc"
	"github.com/replicaof/replicaof/metrics/metricstest"
	"github.com/replicaof/replicaof/router"
)

// TestStatusClusterDestination: over a Redis Cluster destination, GET
// /v1/status, replicaof status and /metrics show the destination's kind
// and every node: the masters with their slots, the replicas.
func TestStatusClusterDestination(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	c := harness.StartCluster(t, 3, 1)
	proxyPort, _ := redisproc.FreePort()
	adminPort, _ := redisproc.FreePort()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`proxy: { listen: "127.0.0.1:%d" }
admin: { listen: "127.0.0.1:%d" }
destination: { shards: ["redis://%s"] }
state_dir: %q
`, proxyPort, adminPort, c.Nodes[0].Addr, t.TempDir())))
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
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	ac, err := (&adminFlags{url: adminURL}).client()
	if err != nil {
		t.Fatal(err)
	}
	st, err := ac.status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.DestinationKind != "cluster" || len(st.DestinationNodes) != 6 {
		t.Fatalf("status: kind %q, nodes %+v", st.DestinationKind, st.DestinationNodes)
	}
	slots := 0
	for g := 0; g < 3; g++ {
		var master, replica *admin.DestinationNode
		for i, n := range st.DestinationNodes {
			switch {
			case n.Shard == g && n.Role == "primary":
				master = &st.DestinationNodes[i]
			case n.Shard == g && n.Role == "replica":
				replica = &st.DestinationNodes[i]
			}
		}
		if master == nil || replica == nil || master.Addr != c.MasterOf(g).Addr || master.ID == "" || !master.Up ||
			!replica.Unread || replica.ID == "" {
			t.Fatalf("group %d: master %+v, replica %+v", g, master, replica)
		}
		rs, err := router.ParseSlotRanges(master.Slots)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			slots += r.Len()
		}
	}
	if slots != router.SlotCount {
		t.Fatalf("the masters own %d slots", slots)
	}

	code, out := cli(t, "status", "--admin", adminURL)
	if code != exitOK || !strings.Contains(out, "destination nodes (a Redis Cluster):") || !strings.Contains(out, c.MasterOf(1).Addr+"  primary  up") ||
		!strings.Contains(out, "not read") {
		t.Fatalf("replicaof status: exit %d\n%s", code, out)
	}

	code, out = cli(t, "status", "--admin", adminURL, "--json")
	if code != exitOK || !strings.Contains(out, `"destination_kind": "cluster"`) {
		t.Fatalf("replicaof status --json: exit %d\n%s", code, out)
	}
	_, body := metricstest.Scrape(t, ctx, adminURL)
	for _, want := range []string{
		fmt.Sprintf(`replicaof_destination_node{addr=%q,role="replica",shard="0"} 1`, c.Nodes[3].Addr),
		fmt.Sprintf(`replicaof_destination_node_slots{addr=%q,shard="0"} 5461`, c.MasterOf(0).Addr),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
