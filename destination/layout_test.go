package destination

import (
	"errors"
	"testing"

	"github.com/replicaof/replicaof/internal/topology"
	"github.com/replicaof/replicaof/router"
)

func node(id string, port int, master bool) topology.Node {
	return topology.Node{ID: id, Host: "127.0.0.1", Port: port, TLSPort: port + 1000, Master: master, Healthy: true}
}

func slots(s string) []router.SlotRange {
	r, err := router.ParseSlotRanges(s)
	if err != nil {
		panic(err)
	}
	return r
}

// layout numbers groups by lowest slot, recognizes them by node IDs
// across a failover and a reshard, keeps a group without slots, and
// refuses a master it does not know.
func TestLayout(t *testing.T) {
	c := &clusterState{groupOf: map[string]int{}}
	start := topology.Topology{
		{Slots: slots("0-8191"), Nodes: []topology.Node{node("a", 1, true), node("a2", 2, false)}},
		{Slots: slots("8192-16383"), Nodes: []topology.Node{node("b", 3, true), node("b2", 4, false)}},
		{Nodes: []topology.Node{node("x", 9, true)}}, // a master without slots: not a group
	}
	v, m, err := c.layout(start, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.masters) != 2 || v.masters[1].Addr != "127.0.0.1:3" || m.ShardOfSlot(9000) != 1 || len(v.replicas[0]) != 1 {
		t.Fatalf("start: %+v", v)
	}
	// b2 took over group 1, which also got slots 0-99; a new replica b3
	// joined it.
	after := topology.Topology{
		{Slots: slots("100-8191"), Nodes: []topology.Node{node("a", 1, true), node("a2", 2, false)}},
		{Slots: slots("0-99,8192-16383"), Nodes: []topology.Node{node("b2", 4, true), node("b", 3, false), node("b3", 5, false)}},
	}
	v2, m2, err := c.layout(after, v)
	if err != nil {
		t.Fatal(err)
	}
	if v2.masters[1].Addr != "127.0.0.1:4" || m2.ShardOfSlot(5) != 1 || len(v2.replicas[1]) != 2 || v2.masterOf["127.0.0.1:4"] != 1 {
		t.Fatalf("after failover: %+v", v2)
	}
	if c.groupOf["b3"] != 1 {
		t.Fatal("a new replica did not join its group")
	}
	// Group 0 gives all its slots away: it stays, with its master.
	empty := topology.Topology{
		{Slots: slots("0-16383"), Nodes: []topology.Node{node("b2", 4, true)}},
		{Nodes: []topology.Node{node("a", 1, true)}},
	}
	v3, m3, err := c.layout(empty, v2)
	if err != nil || v3.masters[0].Addr != "127.0.0.1:1" || len(m3.Ranges(0)) != 0 {
		t.Fatalf("group without slots: %v %+v", err, v3)
	}
	// A master nobody knows that serves slots.
	stranger := topology.Topology{
		{Slots: slots("0-100"), Nodes: []topology.Node{node("z", 7, true)}},
		{Slots: slots("101-16383"), Nodes: []topology.Node{node("b2", 4, true)}},
	}
	if _, _, err := c.layout(stranger, v3); !errors.Is(err, ErrTopologyChanged) {
		t.Fatalf("unknown master: %v", err)
	}
	// Slots nobody serves: not installed, not fatal.
	partial := topology.Topology{{Slots: slots("0-100"), Nodes: []topology.Node{node("b2", 4, true)}}}
	if _, _, err := c.layout(partial, v3); err == nil || errors.Is(err, ErrTopologyChanged) {
		t.Fatalf("partial coverage: %v", err)
	}
	// A seed at a node's TLS port: every node at its TLS port.
	if !usesTLSPort(start, "127.0.0.1:1001") || usesTLSPort(start, "127.0.0.1:1") {
		t.Fatal("usesTLSPort")
	}
	c.tls = true
	if v4, _, err := c.layout(after, v2); err != nil || v4.masters[1].Addr != "127.0.0.1:1004" {
		t.Fatalf("TLS ports: %v %+v", err, v4)
	}
}

// withSlot moves one slot and nothing else.
func TestWithSlot(t *testing.T) {
	m, _ := router.EvenSlotMap(3)
	m2, err := withSlot(m, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	for s := 0; s < router.SlotCount; s++ {
		want := m.ShardOfSlot(uint16(s))
		if s == 0 {
			want = 2
		}
		if got := m2.ShardOfSlot(uint16(s)); got != want {
			t.Fatalf("slot %d on %d, want %d", s, got, want)
		}
	}
	if got := router.FormatSlotRanges(m2.Ranges(2)); got != "0-0,10923-16383" {
		t.Fatalf("ranges %s", got)
	}
}
