// Package topology reads a Redis Cluster's (or Valkey cluster's) layout:
// which master serves which hash slots, and its replicas. It parses
// CLUSTER SHARDS (Redis 7.0+, Valkey) and CLUSTER SLOTS (older servers)
// into one form, so cluster sources (package syncer) and a cluster
// destination (package destination) read a cluster the same way.
//
// Read asks CLUSTER SHARDS and falls back to CLUSTER SLOTS when the
// server does not know it. Both parsers take the decoded reply
// (resp.Value, RESP2 or RESP3) and never trust it: a malformed reply is
// an error, not a panic.
package topology

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

// Node is one cluster node as a topology reply names it.
type Node struct {
	ID   string // the node's cluster ID ("" when the reply names none)
	Host string // its address: the preferred endpoint, else its IP
	// Port is the plain port, TLSPort the TLS port (0 when unknown or
	// off). CLUSTER SLOTS gives one port, the one matching the
	// connection it was asked on; it is put in Port.
	Port, TLSPort int
	// Master is true for the shard's master.
	Master bool
	// Healthy is false when the node is known to have failed or to be
	// loading (CLUSTER SHARDS' health field); CLUSTER SLOTS lists
	// healthy nodes only.
	Healthy bool
}

// Addr is the node's host:port, with the TLS port when tls is set and
// the node has one.
func (n Node) Addr(tls bool) string {
	p := n.Port
	if tls && n.TLSPort != 0 || p == 0 {
		p = n.TLSPort
	}
	return net.JoinHostPort(n.Host, strconv.Itoa(p))
}

// Shard is one master, its replicas and the slots it serves. A master
// that serves no slot (a new one, or one whose slots all moved away)
// has no Slots; CLUSTER SLOTS does not show such shards at all.
type Shard struct {
	Slots []router.SlotRange // ascending
	// Nodes lists the master first (when the reply names one), then
	// the replicas.
	Nodes []Node
}

// Master returns the shard's master, false when the reply names none.
func (s Shard) Master() (Node, bool) {
	if len(s.Nodes) > 0 && s.Nodes[0].Master {
		return s.Nodes[0], true
	}
	return Node{}, false
}

// Replicas returns the shard's nodes other than its master.
func (s Shard) Replicas() []Node {
	if _, ok := s.Master(); ok {
		return s.Nodes[1:]
	}
	return s.Nodes
}

// Topology is a cluster's shards: those with slots in the order of their
// first slot, then those without.
type Topology []Shard

// Covered is how many of the 16384 slots some shard serves.
func (t Topology) Covered() int {
	n := 0
	for _, s := range t {
		for _, r := range s.Slots {
			n += r.Len()
		}
	}
	return n
}

// Do sends one command to a node and returns its decoded reply. An error
// reply is a Value (Type resp.TypeError), not an error: an error means
// the node did not answer.
type Do func(ctx context.Context, args ...string) (resp.Value, error)

// Read asks a node for the topology: CLUSTER SHARDS, or CLUSTER SLOTS
// when the node refuses it (before Redis 7.0). Nodes that name no
// address are at host (the address the node was reached at).
func Read(ctx context.Context, do Do, host string) (Topology, error) {
	v, err := do(ctx, "CLUSTER", "SHARDS")
	if err != nil {
		return nil, err
	}
	if v.Err() == nil {
		return ParseShards(v, host)
	}
	shardsErr := v.Err()
	if v, err = do(ctx, "CLUSTER", "SLOTS"); err != nil {
		return nil, err
	}
	if e := v.Err(); e != nil {
		return nil, fmt.Errorf("topology: CLUSTER SHARDS: %v; CLUSTER SLOTS: %w", shardsErr, e)
	}
	return ParseSlots(v, host)
}

// ParseShards parses a CLUSTER SHARDS reply (RESP2 flat arrays or RESP3
// maps). Nodes that name no address are at host.
func ParseShards(v resp.Value, host string) (Topology, error) {
	if !isList(v) {
		return nil, fmt.Errorf("topology: CLUSTER SHARDS: not an array (type %q)", v.Type)
	}
	var t Topology
	for i, sv := range v.Elems {
		f, err := fields(sv)
		if err != nil {
			return nil, fmt.Errorf("topology: CLUSTER SHARDS shard %d: %w", i, err)
		}
		var s Shard
		if sl, ok := f["slots"]; ok {
			if !isList(sl) || len(sl.Elems)%2 != 0 {
				return nil, fmt.Errorf("topology: CLUSTER SHARDS shard %d: bad slots", i)
			}
			for j := 0; j < len(sl.Elems); j += 2 {
				r, err := slotRange(sl.Elems[j], sl.Elems[j+1])
				if err != nil {
					return nil, fmt.Errorf("topology: CLUSTER SHARDS shard %d: %w", i, err)
				}
				s.Slots = append(s.Slots, r)
			}
		}
		nodes := f["nodes"]
		if !isList(nodes) {
			return nil, fmt.Errorf("topology: CLUSTER SHARDS shard %d: no nodes", i)
		}
		for j, nv := range nodes.Elems {
			n, err := shardsNode(nv, host)
			if err != nil {
				return nil, fmt.Errorf("topology: CLUSTER SHARDS shard %d node %d: %w", i, j, err)
			}
			s.Nodes = append(s.Nodes, n)
		}
		// Master first; a shard may name more than one node with the
		// master role (a failed master whose replica took over shows as
		// a shard of its own, without slots, in some versions): keep the
		// healthy one first.
		if len(s.Nodes) == 0 {
			return nil, fmt.Errorf("topology: CLUSTER SHARDS shard %d: no nodes", i)
		}
		slices.SortStableFunc(s.Nodes, func(a, b Node) int { return rank(a) - rank(b) })
		first := s.Nodes[0]
		s.Nodes = slices.DeleteFunc(s.Nodes, func(n Node) bool { return n.Master && n != first })
		t = append(t, s)
	}
	return sorted(t)
}

// rank orders a shard's nodes: the healthy master, another master, then
// replicas.
func rank(n Node) int {
	switch {
	case n.Master && n.Healthy:
		return 0
	case n.Master:
		return 1
	}
	return 2
}

func shardsNode(v resp.Value, host string) (Node, error) {
	f, err := fields(v)
	if err != nil {
		return Node{}, err
	}
	n := Node{ID: text(f["id"]), Healthy: true}
	n.Host = text(f["endpoint"])
	if n.Host == "" || n.Host == "?" {
		n.Host = text(f["ip"])
	}
	if n.Host == "" || n.Host == "?" {
		n.Host = host
	}
	if p, ok := f["port"]; ok {
		if n.Port, err = port(p); err != nil {
			return Node{}, err
		}
	}
	if p, ok := f["tls-port"]; ok {
		if n.TLSPort, err = port(p); err != nil {
			return Node{}, err
		}
	}
	if n.Port == 0 && n.TLSPort == 0 {
		return Node{}, fmt.Errorf("no port")
	}
	switch text(f["role"]) {
	case "master", "primary":
		n.Master = true
	case "replica", "slave":
	default:
		return Node{}, fmt.Errorf("role %q", text(f["role"]))
	}
	if h := text(f["health"]); h != "" && h != "online" {
		n.Healthy = false
	}
	return n, nil
}

// ParseSlots parses a CLUSTER SLOTS reply: per range, its first and last
// slot, then its master and replicas as [ip, port, id, …]. Nodes that
// name no IP are at host.
func ParseSlots(v resp.Value, host string) (Topology, error) {
	if !isList(v) {
		return nil, fmt.Errorf("topology: CLUSTER SLOTS: not an array (type %q)", v.Type)
	}
	var t Topology
	byMaster := map[string]int{} // master ID (or address) -> index in t
	for i, e := range v.Elems {
		if !isList(e) || len(e.Elems) < 2 {
			return nil, fmt.Errorf("topology: CLUSTER SLOTS entry %d: malformed", i)
		}
		r, err := slotRange(e.Elems[0], e.Elems[1])
		if err != nil {
			return nil, fmt.Errorf("topology: CLUSTER SLOTS entry %d: %w", i, err)
		}
		if len(e.Elems) < 3 {
			return nil, fmt.Errorf("topology: CLUSTER SLOTS: slots %s have no node", r)
		}
		var nodes []Node
		for j, nv := range e.Elems[2:] {
			if !isList(nv) || len(nv.Elems) < 2 {
				return nil, fmt.Errorf("topology: CLUSTER SLOTS entry %d node %d: malformed", i, j)
			}
			n := Node{Host: text(nv.Elems[0]), Master: j == 0, Healthy: true}
			if n.Host == "" || n.Host == "?" {
				n.Host = host
			}
			if n.Port, err = port(nv.Elems[1]); err != nil || n.Port == 0 {
				return nil, fmt.Errorf("topology: CLUSTER SLOTS entry %d node %d: bad port", i, j)
			}
			if len(nv.Elems) > 2 {
				n.ID = text(nv.Elems[2])
			}
			nodes = append(nodes, n)
		}
		key := nodes[0].ID
		if key == "" {
			key = nodes[0].Addr(false)
		}
		k, ok := byMaster[key]
		if !ok {
			k = len(t)
			byMaster[key] = k
			t = append(t, Shard{Nodes: nodes})
		}
		t[k].Slots = append(t[k].Slots, r)
	}
	return sorted(t)
}

// sorted sorts each shard's ranges and the shards by first slot (those
// without slots last, by master ID), and checks that no slot is served
// twice.
func sorted(t Topology) (Topology, error) {
	var seen [router.SlotCount]bool
	for i := range t {
		rs := t[i].Slots
		slices.SortFunc(rs, func(a, b router.SlotRange) int { return int(a.Lo) - int(b.Lo) })
		for _, r := range rs {
			for s := int(r.Lo); s <= int(r.Hi); s++ {
				if seen[s] {
					return nil, fmt.Errorf("topology: slot %d is served twice", s)
				}
				seen[s] = true
			}
		}
	}
	slices.SortStableFunc(t, func(a, b Shard) int {
		switch {
		case len(a.Slots) == 0 && len(b.Slots) == 0:
			return strings.Compare(a.Nodes[0].ID, b.Nodes[0].ID)
		case len(a.Slots) == 0:
			return 1
		case len(b.Slots) == 0:
			return -1
		}
		return int(a.Slots[0].Lo) - int(b.Slots[0].Lo)
	})
	return t, nil
}

func slotRange(lo, hi resp.Value) (router.SlotRange, error) {
	if lo.Type != resp.TypeInteger || hi.Type != resp.TypeInteger ||
		lo.Int < 0 || hi.Int < lo.Int || hi.Int >= router.SlotCount {
		return router.SlotRange{}, fmt.Errorf("bad slot range %s-%s", lo.Text(), hi.Text())
	}
	return router.SlotRange{Lo: uint16(lo.Int), Hi: uint16(hi.Int)}, nil
}

func port(v resp.Value) (int, error) {
	var n int64
	switch v.Type {
	case resp.TypeInteger:
		n = v.Int
	case resp.TypeBulk, resp.TypeSimple:
		var err error
		if n, err = strconv.ParseInt(string(v.Str), 10, 32); err != nil {
			return 0, fmt.Errorf("bad port %q", v.Str)
		}
	default:
		return 0, fmt.Errorf("bad port")
	}
	if n < 0 || n > 65535 {
		return 0, fmt.Errorf("bad port %d", n)
	}
	return int(n), nil
}

func isList(v resp.Value) bool {
	return !v.Null && (v.Type == resp.TypeArray || v.Type == resp.TypeSet)
}

// fields reads a flat [name, value, …] array or a RESP3 map.
func fields(v resp.Value) (map[string]resp.Value, error) {
	if v.Null || v.Type != resp.TypeArray && v.Type != resp.TypeMap || len(v.Elems)%2 != 0 {
		return nil, fmt.Errorf("not a list of fields")
	}
	m := make(map[string]resp.Value, len(v.Elems)/2)
	for i := 0; i < len(v.Elems); i += 2 {
		m[text(v.Elems[i])] = v.Elems[i+1]
	}
	return m, nil
}

// text is a scalar's text ("" for anything else).
func text(v resp.Value) string {
	switch v.Type {
	case resp.TypeBulk, resp.TypeSimple, resp.TypeVerbatim:
		if v.Null {
			return ""
		}
		return string(v.Str)
	case resp.TypeInteger:
		return v.Text()
	}
	return ""
}
