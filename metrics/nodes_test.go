package metrics

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestNodeSeries(t *testing.T) {
	p, err := New(Config{NoRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	if mfs, body := scrape(t, p); mfs["replicaof_proxy_node_reads_total"] != nil {
		t.Errorf("node series before SetNodes:\n%s", body)
	}
	p.SetNodes(func() []Node {
		return []Node{
			{Shard: 0, Addr: "127.0.0.1:7001", Role: "primary", Up: true, Reads: 3},
			{Shard: 0, Addr: "127.0.0.1:7101", Role: "replica", Up: false, Lag: 1500 * time.Millisecond, Reads: 40, Stale: 2, LinkDown: 1, Errors: 5},
		}
	})
	_, body := scrape(t, p)
	for _, want := range []string{
		`replicaof_proxy_node_reads_total{addr="127.0.0.1:7001",role="primary",shard="0"} 3`,
		`replicaof_proxy_node_reads_total{addr="127.0.0.1:7101",role="replica",shard="0"} 40`,
		`replicaof_proxy_node_up{addr="127.0.0.1:7001",role="primary",shard="0"} 1`,
		`replicaof_proxy_node_up{addr="127.0.0.1:7101",role="replica",shard="0"} 0`,
		`replicaof_proxy_replica_lag_seconds{addr="127.0.0.1:7101",shard="0"} 1.5`,
		`replicaof_proxy_replica_out_of_rotation_total{addr="127.0.0.1:7101",reason="stale",shard="0"} 2`,
		`replicaof_proxy_replica_out_of_rotation_total{addr="127.0.0.1:7101",reason="link_down",shard="0"} 1`,
		`replicaof_proxy_replica_out_of_rotation_total{addr="127.0.0.1:7101",reason="error",shard="0"} 5`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("missing %s in:\n%s", want, body)
		}
	}
	if strings.Contains(body, `replicaof_proxy_replica_lag_seconds{addr="127.0.0.1:7001"`) {
		t.Errorf("lag series for a primary")
	}

	// A cluster destination: topology series for every node, read
	// series only for the nodes the proxy reads from.
	p.SetNodes(func() []Node {
		return []Node{
			{Shard: 0, Addr: "127.0.0.1:7001", Role: "primary", Up: true, Slots: 8192},
			{Shard: 1, Addr: "127.0.0.1:7002", Role: "primary", Up: true, Slots: 8192},
			{Shard: 1, Addr: "127.0.0.1:7102", Role: "replica", Unread: true},
		}
	})
	_, body = scrape(t, p)
	for _, want := range []string{
		`replicaof_destination_node{addr="127.0.0.1:7002",role="primary",shard="1"} 1`,
		`replicaof_destination_node{addr="127.0.0.1:7102",role="replica",shard="1"} 1`,
		`replicaof_destination_node_slots{addr="127.0.0.1:7002",shard="1"} 8192`,
		`replicaof_proxy_node_up{addr="127.0.0.1:7002",role="primary",shard="1"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("missing %s in:\n%s", want, body)
		}
	}
	if strings.Contains(body, `replicaof_proxy_node_up{addr="127.0.0.1:7102"`) {
		t.Errorf("read series for a replica the proxy does not read from:\n%s", body)
	}
}
