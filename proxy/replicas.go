package proxy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

// ReadFrom says which nodes of a shard serve reads (Config.ReadFrom).
type ReadFrom uint8

// ReadFrom values; the zero value is ReadPrimary.
const (
	// ReadPrimary sends every read to the shard's primary.
	ReadPrimary ReadFrom = iota
	// ReadPreferPrimary reads from the primary, from replicas only while
	// the primary is down.
	ReadPreferPrimary
	// ReadReplica reads from the replicas in rotation, from the primary
	// when none is.
	ReadReplica
	// ReadPreferReplica is ReadReplica: on a standalone destination the
	// two behave the same (a replica first, the primary as the fallback).
	ReadPreferReplica
	// ReadAny spreads reads over the primary and the replicas in rotation.
	ReadAny
)

var readFromNames = [...]string{
	ReadPrimary: "primary", ReadPreferPrimary: "prefer-primary", ReadReplica: "replica",
	ReadPreferReplica: "prefer-replica", ReadAny: "any",
}

func (r ReadFrom) String() string {
	if int(r) < len(readFromNames) {
		return readFromNames[r]
	}
	return "ReadFrom(" + strconv.Itoa(int(r)) + ")"
}

// ParseReadFrom parses a proxy.read_from value ("" is primary).
func ParseReadFrom(s string) (ReadFrom, error) {
	if s == "" {
		return ReadPrimary, nil
	}
	for i, n := range readFromNames {
		if n == s {
			return ReadFrom(i), nil
		}
	}
	return 0, fmt.Errorf("read_from %q: want primary, prefer-primary, replica, prefer-replica or any", s)
}

// Replica defaults.
const (
	DefaultMaxReplicaLag  = time.Second
	DefaultReplicaRefresh = 2 * time.Second
	// maxLagSamples bounds a shard's primary offset samples: at the
	// default refresh they reach back two minutes, and a replica further
	// behind has the oldest sample's age as its lag (a lower bound).
	maxLagSamples = 64
)

// NodeStatus is one destination node as the proxy sees it (Server.Nodes).
type NodeStatus struct {
	Shard int
	Addr  string
	Role  string // "primary" or "replica"
	// Up: the primary answered its last check; a replica is in rotation
	// (answered, link up, within MaxReplicaLag).
	Up bool
	// Lag is a replica's replication lag at its last check, measured as
	// time against samples of the primary's offset; 0 for the primary.
	Lag time.Duration
	// Reads counts reads the proxy sent to the node (only while ReadFrom
	// is not primary).
	Reads int64
	// Stale and LinkDown count the checks that took the replica out of
	// rotation for lag over MaxReplicaLag, and for master_link_status
	// down; Errors counts failed checks and failed reads.
	Stale, LinkDown, Errors int64
	// Static is true for a replica listed in the config (Config.Replicas)
	// rather than found in the primary's INFO replication.
	Static bool
	// Slots are a primary's slots in the destination's current map.
	Slots []router.SlotRange
	// ID is a Redis Cluster node's ID ("" for standalone shards).
	ID string
	// Unread marks a cluster replica the proxy neither reads from nor
	// checks (ReadFrom is ReadPrimary): listed for the topology only.
	Unread bool
}

// rnode is one replica of a shard.
type rnode struct {
	addr   string
	static bool
	shard  int

	inRotation atomic.Bool
	reachable  atomic.Bool  // the last check answered (whatever its lag)
	state      atomic.Int32 // the last check's nodeState
	lag        atomic.Int64 // ns
	reads      atomic.Int64
	stale      atomic.Int64
	linkDown   atomic.Int64
	errors     atomic.Int64

	pool *destination.NodePool // its backends, one per database
}

// backend returns the node's backend of database db.
func (n *rnode) backend(db int) *pool.Backend { return n.pool.Get(db) }

func (n *rnode) close() { n.pool.Close() }

// A node's state after its last check.
const (
	nodeUnknown int32 = iota
	nodeOK
	nodeStale    // lag over MaxReplicaLag
	nodeLinkDown // master_link_status down, or not a replica
	nodeFailed   // the check or a read failed
)

// setState records a check's outcome: the node is in rotation only when
// it is nodeOK; entering another state is counted once per episode.
func (n *rnode) setState(st int32) {
	n.inRotation.Store(st == nodeOK)
	n.reachable.Store(st != nodeFailed)
	if n.state.Swap(st) == st {
		return
	}
	switch st {
	case nodeStale:
		n.stale.Add(1)
	case nodeLinkDown:
		n.linkDown.Add(1)
	case nodeFailed:
		n.errors.Add(1)
	}
}

// down takes the node out of rotation after a failed read; the next
// successful check puts it back.
func (n *rnode) down() { n.setState(nodeFailed) }

type lagSample struct {
	offset int64
	at     time.Time
}

// shardNodes is one shard's replicas and the primary's health.
type shardNodes struct {
	shard       int
	primary     destination.Shard // reported replicas are reached like it
	tmpl        pool.Config
	nodes       atomic.Pointer[[]*rnode]
	primaryDown atomic.Bool
	primaryRead atomic.Int64
	primaryErrs atomic.Int64
	rr          atomic.Uint32

	samples []lagSample // monitor goroutine only; offsets ascending
}

// replicas finds and checks every shard's replicas and picks the node of
// each read. It exists only when Config.ReadFrom is not ReadPrimary.
type replicas struct {
	s      *Server
	mode   ReadFrom
	shards []*shardNodes
	done   chan struct{}
}

func newReplicas(s *Server) *replicas {
	r := &replicas{s: s, mode: s.cfg.ReadFrom, done: make(chan struct{})}
	d := s.cfg.Destination
	for i := range d.Len() {
		sn := &shardNodes{shard: i, primary: d.Shard(i), tmpl: s.cfg.Backend}
		var nodes []*rnode
		for _, rc := range d.Replicas(i) {
			nodes = append(nodes, &rnode{addr: rc.Addr, static: true, shard: i, pool: replicaPool(rc, i, s.cfg.Backend)})
		}
		sn.nodes.Store(&nodes)
		r.shards = append(r.shards, sn)
	}
	return r
}

// newNode is a replica the primary reported, reached like the primary.
func (sn *shardNodes) newNode(addr string) *rnode {
	node := sn.primary
	node.Addr = addr
	return &rnode{addr: addr, shard: sn.shard, pool: replicaPool(node, sn.shard, sn.tmpl)}
}

// replicaPool returns the backends of a replica of shard, built from the
// proxy's template without its observer: shard metrics are the primary's.
func replicaPool(node destination.Shard, shard int, tmpl pool.Config) *destination.NodePool {
	tmpl.Observer = nil
	return destination.NewNodePool(node, shard, tmpl)
}

// run checks the nodes every ReplicaRefresh until ctx ends, then closes
// the replicas' backends. It closes r.done when it returns.
func (r *replicas) run(ctx context.Context) {
	defer close(r.done)
	defer func() {
		for _, sn := range r.shards {
			for _, n := range *sn.nodes.Load() {
				n.close()
			}
		}
	}()
	t := time.NewTicker(r.s.cfg.ReplicaRefresh)
	defer t.Stop()
	for {
		r.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check runs one round: every shard at once, each bounded by the
// refresh period and Config.Timeout.
func (r *replicas) check(ctx context.Context) {
	timeout := min(r.s.cfg.Timeout, r.s.cfg.ReplicaRefresh)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, sn := range r.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.checkShard(ctx, sn)
		}()
	}
	wg.Wait()
}

var infoReplication = resp.AppendCommandString(nil, "INFO", "replication")

// infoRepl asks b for INFO replication and returns its fields, the
// slaveN lines' addresses of online replicas separately.
func infoRepl(ctx context.Context, b *pool.Backend) (map[string]string, []string, error) {
	reply, err := b.Do(ctx, infoReplication, nil)
	if err != nil {
		return nil, nil, err
	}
	if len(reply) == 0 || reply[0] != '$' {
		return nil, nil, fmt.Errorf("INFO replication: %s", bytes.TrimSpace(reply))
	}
	fields, online := parseReplInfo(reply)
	return fields, online, nil
}

// parseReplInfo reads INFO replication text (the raw bulk reply or its
// body): its fields, and the addresses of slaveN lines in state online.
func parseReplInfo(text []byte) (map[string]string, []string) {
	fields := make(map[string]string)
	var online []string
	for _, line := range bytes.Split(text, []byte("\n")) {
		line = bytes.TrimSpace(line)
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(k) == 0 || k[0] == '#' {
			continue
		}
		key := string(k)
		if len(key) > 5 && key[:5] == "slave" && key[5] >= '0' && key[5] <= '9' {
			var ip, port, state string
			for _, kv := range bytes.Split(v, []byte(",")) {
				a, b, _ := bytes.Cut(kv, []byte("="))
				switch string(a) {
				case "ip":
					ip = string(b)
				case "port":
					port = string(b)
				case "state":
					state = string(b)
				}
			}
			if p, err := strconv.Atoi(port); err == nil && p > 0 && p < 65536 && validHost(ip) && state == "online" {
				online = append(online, net.JoinHostPort(ip, port))
			}
			continue
		}
		fields[key] = string(v)
	}
	return fields, online
}

// validHost accepts what a primary may report as a replica's ip: an IP
// address, or a host name (replica-announce-ip may hold one).
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for i := 0; i < len(h); i++ {
		ch := h[i]
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '.' || ch == '_') {
			return false
		}
	}
	return true
}

func (r *replicas) checkShard(ctx context.Context, sn *shardNodes) {
	fields, online, err := infoRepl(ctx, r.s.pools.db(0)[sn.shard])
	now := time.Now()
	if err != nil {
		if !sn.primaryDown.Swap(true) {
			sn.primaryErrs.Add(1)
		}
		r.s.log.Debug("proxy: primary check", "shard", sn.shard, "err", err)
	} else {
		sn.primaryDown.Store(false)
		if off, err := strconv.ParseInt(fields["master_repl_offset"], 10, 64); err == nil {
			sn.sample(off, now)
		}
	}
	// The node list: the config's, plus the online replicas the primary
	// reports (kept as they were while the primary cannot be asked); on a
	// cluster, the group's replicas as the destination's last refresh saw
	// them (a failover changes them).
	old := *sn.nodes.Load()
	byAddr := make(map[string]*rnode, len(old))
	for _, n := range old {
		byAddr[n.addr] = n
	}
	var nodes []*rnode
	var gone []*rnode
	if d := r.s.cfg.Destination; d.Cluster() {
		seen := make(map[string]bool)
		for _, rc := range d.Replicas(sn.shard) {
			seen[rc.Addr] = true
			if n := byAddr[rc.Addr]; n != nil {
				nodes = append(nodes, n)
			} else {
				nodes = append(nodes, &rnode{addr: rc.Addr, static: true, shard: sn.shard, pool: replicaPool(rc, sn.shard, sn.tmpl)})
			}
		}
		for _, n := range old {
			if !seen[n.addr] {
				gone = append(gone, n)
			}
		}
		sn.nodes.Store(&nodes)
	} else if err != nil {
		nodes = old
	} else {
		seen := make(map[string]bool)
		for _, n := range old {
			if n.static {
				nodes = append(nodes, n)
				seen[n.addr] = true
			}
		}
		for _, a := range online {
			if seen[a] {
				continue
			}
			seen[a] = true
			if n := byAddr[a]; n != nil {
				nodes = append(nodes, n)
			} else {
				nodes = append(nodes, sn.newNode(a))
			}
		}
		for _, n := range old {
			if !seen[n.addr] {
				gone = append(gone, n)
			}
		}
		sn.nodes.Store(&nodes)
	}
	for _, n := range gone {
		n.inRotation.Store(false)
		n.close() // reads in flight on it fail and are retried elsewhere
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.checkNode(ctx, sn, n)
		}()
	}
	wg.Wait()
}

func (r *replicas) checkNode(ctx context.Context, sn *shardNodes, n *rnode) {
	fields, _, err := infoRepl(ctx, n.backend(0))
	if err != nil {
		n.down()
		r.s.log.Debug("proxy: replica check", "shard", sn.shard, "addr", n.addr, "err", err)
		return
	}
	if fields["role"] != "slave" || fields["master_link_status"] != "up" {
		n.setState(nodeLinkDown)
		return
	}
	off, err := strconv.ParseInt(fields["slave_repl_offset"], 10, 64)
	if err != nil {
		n.down()
		return
	}
	lag := sn.lagOf(off, time.Now())
	n.lag.Store(int64(lag))
	if lag > r.s.cfg.MaxReplicaLag {
		n.setState(nodeStale)
		return
	}
	n.setState(nodeOK)
}

// sample records the primary's offset at time at.
func (sn *shardNodes) sample(offset int64, at time.Time) {
	if k := len(sn.samples); k > 0 && sn.samples[k-1].offset >= offset {
		return
	}
	if len(sn.samples) == maxLagSamples {
		copy(sn.samples, sn.samples[1:])
		sn.samples = sn.samples[:maxLagSamples-1]
	}
	sn.samples = append(sn.samples, lagSample{offset, at})
}

// lagOf is the lag of a replica at offset off: the age of the oldest
// primary sample it has not reached (every write up to that sample's
// offset had reached the primary by then), 0 when it has reached them
// all.
func (sn *shardNodes) lagOf(off int64, now time.Time) time.Duration {
	for _, s := range sn.samples {
		if s.offset > off {
			return max(now.Sub(s.at), 0)
		}
	}
	return 0
}

// pick chooses the node for one read on shard: nil means the primary.
// except is a node that just failed the read, not to be chosen again.
func (r *replicas) pick(shard int, except *rnode, primaryFailed bool) *rnode {
	sn := r.shards[shard]
	nodes := *sn.nodes.Load()
	primaryUp := !sn.primaryDown.Load() && !primaryFailed
	if r.mode == ReadPreferPrimary && primaryUp {
		return nil
	}
	k := len(nodes)
	if k == 0 {
		return nil
	}
	start := int(sn.rr.Add(1))
	slots := k
	if r.mode == ReadAny && primaryUp {
		slots = k + 1 // slot k is the primary
	}
	for i := 0; i < slots; i++ {
		j := (start + i) % slots
		if j == k {
			return nil
		}
		if n := nodes[j]; n != except && n.inRotation.Load() {
			return n
		}
	}
	if !primaryUp {
		// The primary is down too, which also takes its replicas' links
		// down: a replica that answers serves, possibly stale, rather
		// than every read failing.
		for i := 0; i < k; i++ {
			if n := nodes[(start+i)%k]; n != except && n.reachable.Load() {
				return n
			}
		}
	}
	return nil
}

// Nodes reports every destination node the proxy reads from: each
// shard's primary, then its replicas. Without Config.ReadFrom set it
// lists the primaries only.
func (s *Server) Nodes() []NodeStatus {
	var out []NodeStatus
	m := s.shards()
	for i := range s.cfg.Destination.Len() {
		ns := NodeStatus{Shard: i, Addr: s.cfg.Destination.Addr(i), Role: "primary", Up: true, Slots: m.Ranges(i)}
		if s.rep != nil {
			sn := s.rep.shards[i]
			ns.Up = !sn.primaryDown.Load()
			ns.Reads = sn.primaryRead.Load()
			ns.Errors = sn.primaryErrs.Load()
		}
		out = append(out, ns)
		if s.rep == nil {
			continue
		}
		for _, n := range *s.rep.shards[i].nodes.Load() {
			out = append(out, NodeStatus{Shard: i, Addr: n.addr, Role: "replica", Up: n.inRotation.Load(),
				Lag: time.Duration(n.lag.Load()), Reads: n.reads.Load(), Stale: n.stale.Load(),
				LinkDown: n.linkDown.Load(), Errors: n.errors.Load(), Static: n.static})
		}
	}
	if s.cfg.Destination.Cluster() {
		out = s.clusterNodes(out)
	}
	return out
}

// clusterNodes completes a cluster destination's node list: the node IDs,
// and the replicas the proxy does not read from (Unread), after their
// group's other nodes.
func (s *Server) clusterNodes(out []NodeStatus) []NodeStatus {
	listed := make(map[string]int, len(out))
	for i, n := range out {
		listed[n.Addr] = i
	}
	var extra []NodeStatus
	for _, n := range s.cfg.Destination.Nodes() {
		if i, ok := listed[n.Addr]; ok {
			out[i].ID = n.ID
			continue
		}
		role := "replica"
		if n.Master {
			role = "primary" // a master not the group's current one: a refresh is due
		}
		extra = append(extra, NodeStatus{Shard: n.Group, Addr: n.Addr, Role: role, ID: n.ID, Unread: true, Slots: n.Slots})
	}
	for _, e := range extra {
		at := len(out)
		for at > 0 && out[at-1].Shard > e.Shard {
			at--
		}
		out = slices.Insert(out, at, e)
	}
	return out
}
