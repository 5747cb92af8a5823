package main

import (
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/admin"
	"github.com/replicaof/replicaof/syncer"
)

func TestRenderStatusUnsupportedKeys(t *testing.T) {
	st := syncer.Status{Status: syncer.StateSynced, Sources: []syncer.SourceStatus{
		{UID: 1, Name: "orders", SyncState: syncer.StateSynced,
			UnsupportedKeys: map[string]int64{"module ReJSON-RL (encver 3)": 12, "module MBbloom-- (encver 1)": 2}, DroppedCommands: 3},
		{UID: 2, Name: "carts", SyncState: syncer.StateSynced},
	}}
	var b strings.Builder
	renderStatus(&b, st, time.Now())
	want := "orders: keys left out (unsupported_keys: skip): 2 module MBbloom-- (encver 1), 12 module ReJSON-RL (encver 3); stream commands dropped: 3"
	if !strings.Contains(b.String(), want) || strings.Contains(b.String(), "carts: keys left out") {
		t.Fatalf("status:\n%s\nwant the line %q", b.String(), want)
	}
}

func TestRenderStatusStandby(t *testing.T) {
	var b strings.Builder
	renderStatus(&b, syncer.Status{Status: syncer.StateSyncing, Role: syncer.RoleStandby, Active: "http://other:8380"}, time.Now())
	if !strings.Contains(b.String(), "STANDBY (active: http://other:8380)") {
		t.Fatalf("status:\n%s", b.String())
	}
	b.Reset()
	renderStatus(&b, syncer.Status{Status: syncer.StateSynced, Role: syncer.RoleActive}, time.Now())
	if strings.Contains(b.String(), "STANDBY") {
		t.Fatalf("active shown as standby:\n%s", b.String())
	}
}

func TestRenderNodes(t *testing.T) {
	var b strings.Builder
	renderNodes(&b, "", nil)
	if b.Len() != 0 {
		t.Fatalf("nodes rendered without any: %q", b.String())
	}
	renderNodes(&b, "cluster", []admin.DestinationNode{
		{Shard: 0, Addr: "10.0.0.1:7001", Role: "primary", Up: true, Slots: "0-8191", Reads: 3},
		{Shard: 1, Addr: "10.0.0.2:7002", Role: "primary", Slots: "8192-16383"},
		{Shard: 1, Addr: "10.0.0.3:7003", Role: "replica", Unread: true},
		{Shard: 0, Addr: "10.0.0.4:7004", Role: "replica", Up: true, LagSeconds: 0.012},
	})
	out := b.String()
	for _, want := range []string{
		"destination nodes (a Redis Cluster):\n",
		"0      10.0.0.1:7001  primary  up           0-8191      -     3",
		"1      10.0.0.2:7002  primary  down         8192-16383",
		"10.0.0.3:7003  replica  not read",
		"10.0.0.4:7004  replica  in rotation  -           12ms",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("nodes:\n%s\nlack %q", out, want)
		}
	}
}
