package destination

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/replicaof/replicaof/internal/topology"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

// A Redis Cluster destination.
//
// Open asks the listed nodes INFO cluster; with cluster_enabled:1 the
// listed nodes are seeds and the destination is the cluster: a list of
// groups, each a master and its replicas, numbered by lowest owned slot
// at discovery and stable for the Destination's life. Everything written
// for "shards" (apply's per-shard batches, the proxy's fan-out, verify)
// works on groups: Len is the number of groups, Map places slots on
// groups, Backend and Pools.Get reach a group's current master.
//
// The topology (CLUSTER SHARDS, or CLUSTER SLOTS before 7.0) is read
// again every Config.Refresh, when a pool's connection fails, and after a
// MOVED (Moved); Refresh does it at once. A refresh recognizes a group by
// the node IDs it has seen in it, so a failover only changes the group's
// master (its address), and a reshard only changes Map. A master that
// belongs to no known group (a new master got slots) fails the refresh
// with ErrTopologyChanged, for good: replicaof must be restarted.

// DefaultRefresh is how often a cluster destination re-reads its
// topology when Config.Refresh is 0.
const DefaultRefresh = 5 * time.Second

const (
	// minRefreshGap spaces refreshes: callers asking sooner wait.
	minRefreshGap = 100 * time.Millisecond
	// nodeTimeout bounds one node's answer during Open and a refresh.
	nodeTimeout = 2 * time.Second
	// refreshTimeout bounds one background refresh.
	refreshTimeout = 10 * time.Second
)

// NodeInfo describes one node of the destination, for status, metrics
// and the dashboard.
type NodeInfo struct {
	Addr   string
	ID     string // cluster node ID ("" for standalone shards)
	Group  int    // the shard (group) it belongs to
	Master bool
	// Slots are a master's slots under the current Map; nil for replicas.
	Slots []router.SlotRange
}

// clusterState is what a cluster destination keeps beyond the view.
type clusterState struct {
	seeds []Shard // the listed nodes
	node  Shard   // how to reach any node: the seed's AUTH and dialer; Addr per node
	tls   bool    // nodes are reached at their TLS port
	// tagSlot is each group's lowest slot at discovery: the hash slot of
	// its marker key (MarkerKeyOf).
	tagSlot []uint16

	kickc chan struct{} // a refresh is wanted soon; buffered 1
	stop  context.CancelFunc
	done  chan struct{} // closed when the refresher ended

	mu        sync.Mutex
	flight    *flight // the refresh running, nil when none
	lastStart time.Time
	groupOf   map[string]int // node ID -> group, every node seen in a group
	fatal     error          // sticky ErrTopologyChanged
	failing   bool           // the background refresh failed last time
}

// flight is one refresh; callers arriving while it runs wait for it.
type flight struct {
	done chan struct{}
	err  error
}

// kick asks the refresher for a refresh soon, without waiting.
func (c *clusterState) kick() {
	select {
	case c.kickc <- struct{}{}:
	default:
	}
}

func (c *clusterState) close() {
	c.stop()
	<-c.done
}

// nodeShard is how to reach the node at addr.
func (c *clusterState) nodeShard(addr string) Shard {
	s := c.node
	s.Addr = addr
	return s
}

// Open checks cfg and returns the destination its listed shards are: a
// Redis Cluster when the first of them that answers reports
// cluster_enabled:1 (see above), else standalone shards as New returns
// them. It retries, with backoff, until some listed node answers or ctx
// ends; a refused AUTH fails at once. A cluster must serve all 16384
// slots to be opened. Close stops a cluster's refresher.
func Open(ctx context.Context, cfg Config) (*Destination, error) {
	if len(cfg.Shards) == 0 {
		return nil, errors.New("destination: no shards")
	}
	for i, s := range cfg.Shards {
		if s.Addr == "" {
			return nil, fmt.Errorf("destination: shard %d has no address", i)
		}
	}
	d := newDestination(cfg)
	backoff := 100 * time.Millisecond
	for {
		var errs []error
		for _, s := range cfg.Shards {
			on, err := clusterEnabled(ctx, s)
			if err == nil && !on {
				return New(cfg)
			}
			if err == nil {
				if err = d.openCluster(ctx, s); err == nil {
					return d, nil
				}
			}
			if isAuthErr(err) || errors.Is(err, errBadConfig) {
				return nil, err
			}
			errs = append(errs, fmt.Errorf("%s: %w", s.Addr, err))
		}
		err := errors.Join(errs...)
		d.cfg.Logger.Warn("destination: no listed node answered yet, retrying", "error", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("destination: no listed node answered: %w", err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// errBadConfig marks configuration a cluster cannot take.
var errBadConfig = errors.New("destination: bad configuration")

func isAuthErr(err error) bool {
	var re resp.Error
	return errors.As(err, &re) && re.Auth()
}

// clusterEnabled asks s INFO cluster. A node whose ACL refuses INFO is
// taken for a standalone shard.
func clusterEnabled(ctx context.Context, s Shard) (bool, error) {
	v, err := oneShot(ctx, s, "INFO", "cluster")
	if err != nil {
		return false, err
	}
	if e := v.Err(); e != nil {
		if resp.Error(v.Str).Code() == "NOPERM" {
			return false, nil
		}
		return false, e
	}
	for line := range strings.SplitSeq(string(v.Str), "\n") {
		if strings.TrimSpace(line) == "cluster_enabled:1" {
			return true, nil
		}
	}
	return false, nil
}

// oneShot sends one command to s on a connection of its own (with AUTH),
// within nodeTimeout, and returns the decoded reply.
func oneShot(ctx context.Context, s Shard, args ...string) (resp.Value, error) {
	ctx, cancel := context.WithTimeout(ctx, nodeTimeout)
	defer cancel()
	s.Cluster = false
	nc, br, err := pool.Dial(ctx, pool.Config{Addr: s.Addr, Dial: s.Dial, Init: s.Init(0),
		DialTimeout: nodeTimeout, ReadTimeout: nodeTimeout}, 32<<10)
	if err != nil {
		return resp.Value{}, err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	_ = nc.SetDeadline(time.Now().Add(nodeTimeout))
	if _, err := nc.Write(resp.AppendCommandString(nil, args...)); err != nil {
		return resp.Value{}, err
	}
	raw, err := resp.ReadReply(br, nil, resp.Limits{})
	if err != nil {
		return resp.Value{}, err
	}
	v, _, err := resp.ParseValue(raw, resp.Limits{})
	return v, err
}

// readTopology reads the topology from the node s.
func readTopology(ctx context.Context, s Shard) (topology.Topology, error) {
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return nil, err
	}
	do := func(ctx context.Context, args ...string) (resp.Value, error) { return oneShot(ctx, s, args...) }
	return topology.Read(ctx, do, host)
}

// openCluster makes d the cluster seed belongs to and starts its
// refresher.
func (d *Destination) openCluster(ctx context.Context, seed Shard) error {
	if d.cfg.Map != nil {
		return fmt.Errorf("%w: a Redis Cluster places its slots itself: no slot map", errBadConfig)
	}
	for _, rs := range d.cfg.Replicas {
		if len(rs) > 0 {
			return fmt.Errorf("%w: a Redis Cluster reports its replicas: list none", errBadConfig)
		}
	}
	top, err := readTopology(ctx, seed)
	if err != nil {
		return err
	}
	node := seed
	node.Cluster = true
	c := &clusterState{seeds: d.cfg.Shards, node: node, tls: usesTLSPort(top, seed.Addr),
		kickc: make(chan struct{}, 1), done: make(chan struct{}), groupOf: map[string]int{}}
	v, m, err := c.layout(top, nil)
	if err != nil {
		return err
	}
	for g := range v.masters {
		c.tagSlot = append(c.tagSlot, m.Ranges(g)[0].Lo)
	}
	d.cl = c
	d.v.Store(v)
	d.m.Store(m)
	d.def = d.NewPools(d.cfg.Pool)
	var rctx context.Context
	rctx, c.stop = context.WithCancel(context.Background())
	go d.refresher(rctx)
	d.cfg.Logger.Info("destination is a Redis Cluster", "seed", seed.Addr, "groups", len(v.masters), "nodes", len(v.nodes))
	return nil
}

// usesTLSPort reports whether addr (a seed) is some node's TLS port: then
// every node is reached at its TLS port.
func usesTLSPort(top topology.Topology, addr string) bool {
	for _, s := range top {
		for _, n := range s.Nodes {
			if n.TLSPort != 0 && n.TLSPort != n.Port && n.Addr(true) == addr {
				return true
			}
		}
	}
	return false
}

// layout turns a topology into a view and a map. With prev nil it
// numbers the groups (the shards that serve slots, by lowest slot);
// otherwise it finds each shard's group by the node IDs seen in it
// before. Nodes seen in a group join it. Callers hold c.mu (or own c
// alone).
func (c *clusterState) layout(top topology.Topology, prev *view) (*view, *router.SlotMap, error) {
	if n := top.Covered(); n != router.SlotCount {
		return nil, nil, fmt.Errorf("destination: the cluster serves %d of 16384 slots", n)
	}
	var entry []*topology.Shard // by group
	joins := map[string]int{}
	if prev == nil {
		for i := range top {
			s := &top[i]
			if len(s.Slots) == 0 {
				continue
			}
			if _, ok := s.Master(); !ok {
				return nil, nil, fmt.Errorf("destination: slots %s have no master", router.FormatSlotRanges(s.Slots))
			}
			for _, n := range s.Nodes {
				joins[n.ID] = len(entry)
			}
			entry = append(entry, s)
		}
	} else {
		entry = make([]*topology.Shard, len(prev.masters))
		for i := range top {
			s := &top[i]
			g := c.groupOfShard(s)
			switch {
			case g < 0 && len(s.Slots) > 0:
				m, _ := s.Master()
				return nil, nil, fmt.Errorf("%w: node %s (%s) serves slots %s", ErrTopologyChanged,
					m.ID, m.Addr(c.tls), router.FormatSlotRanges(s.Slots))
			case g < 0:
				continue // a master without slots nobody knows: not ours
			case len(s.Slots) > 0 && entry[g] != nil && len(entry[g].Slots) > 0:
				m, _ := s.Master()
				return nil, nil, fmt.Errorf("%w: node %s (%s) serves slots %s beside group %d's master",
					ErrTopologyChanged, m.ID, m.Addr(c.tls), router.FormatSlotRanges(s.Slots), g)
			case len(s.Slots) == 0 && entry[g] != nil:
				continue // the group's shard with slots, or one seen first, wins
			case len(s.Slots) == 0:
				if m, ok := s.Master(); !ok || !m.Healthy {
					continue
				}
			}
			entry[g] = s
			for _, n := range s.Nodes {
				if n.ID != "" {
					joins[n.ID] = g
				}
			}
		}
	}
	ranges := make([][]router.SlotRange, len(entry))
	for g, s := range entry {
		if s != nil {
			ranges[g] = s.Slots
		}
	}
	m, err := router.NewSlotMap(ranges)
	if err != nil {
		return nil, nil, fmt.Errorf("destination: cluster slots: %w", err)
	}
	v := &view{masters: make([]Shard, len(entry)), replicas: make([][]Shard, len(entry)),
		ids: make([]string, len(entry)), masterOf: map[string]int{}, known: map[string]int{}}
	for g, s := range entry {
		var master topology.Node
		ok := false
		if s != nil {
			master, ok = s.Master()
		}
		if !ok { // no news of the group: keep what we knew
			v.masters[g], v.ids[g], v.replicas[g] = prev.masters[g], prev.ids[g], prev.replicas[g]
		} else {
			v.masters[g], v.ids[g] = c.nodeShard(master.Addr(c.tls)), master.ID
			for _, n := range s.Replicas() {
				if n.Healthy {
					v.replicas[g] = append(v.replicas[g], c.nodeShard(n.Addr(c.tls)))
				}
			}
		}
		v.masterOf[v.masters[g].Addr] = g
		v.known[v.masters[g].Addr] = g
		v.nodes = append(v.nodes, NodeInfo{Addr: v.masters[g].Addr, ID: v.ids[g], Group: g, Master: true})
	}
	for g, s := range entry {
		if s == nil {
			continue
		}
		for _, n := range s.Replicas() {
			a := n.Addr(c.tls)
			if _, dup := v.known[a]; dup {
				continue
			}
			v.known[a] = g
			v.nodes = append(v.nodes, NodeInfo{Addr: a, ID: n.ID, Group: g})
		}
	}
	if prev != nil { // replicas of groups without news
		for _, n := range prev.nodes {
			if _, ok := v.known[n.Addr]; !ok && entry[n.Group] == nil {
				v.known[n.Addr] = n.Group
				v.nodes = append(v.nodes, NodeInfo{Addr: n.Addr, ID: n.ID, Group: n.Group})
			}
		}
	}
	for id, g := range joins {
		if id != "" {
			c.groupOf[id] = g
		}
	}
	return v, m, nil
}

// groupOfShard finds the group of a topology shard by its master's ID,
// else by any of its nodes' IDs; -1 when none is known.
func (c *clusterState) groupOfShard(s *topology.Shard) int {
	if m, ok := s.Master(); ok && m.ID != "" {
		if g, ok := c.groupOf[m.ID]; ok {
			return g
		}
	}
	for _, n := range s.Nodes {
		if g, ok := c.groupOf[n.ID]; ok && n.ID != "" {
			return g
		}
	}
	return -1
}

// Refresh re-reads a cluster's topology now and installs it: the map,
// every group's master and replicas. Callers arriving while a refresh
// runs wait for it and share its result; refreshes start at most every
// 100 ms (a caller asking sooner waits, within ctx). After
// ErrTopologyChanged every Refresh returns it. Standalone shards have
// nothing to refresh: nil.
func (d *Destination) Refresh(ctx context.Context) error {
	c := d.cl
	if c == nil {
		return nil
	}
	for {
		c.mu.Lock()
		if c.fatal != nil {
			c.mu.Unlock()
			return c.fatal
		}
		if f := c.flight; f != nil {
			c.mu.Unlock()
			select {
			case <-f.done:
				return f.err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if wait := time.Until(c.lastStart.Add(minRefreshGap)); wait > 0 {
			c.mu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
			continue
		}
		f := &flight{done: make(chan struct{})}
		c.flight, c.lastStart = f, time.Now()
		c.mu.Unlock()
		f.err = d.refresh(ctx)
		c.mu.Lock()
		c.flight = nil
		c.mu.Unlock()
		close(f.done)
		return f.err
	}
}

// refresh reads the topology from the first node that answers (current
// masters, then other known nodes, then the seeds) and installs it.
func (d *Destination) refresh(ctx context.Context) error {
	c := d.cl
	prev := d.v.Load()
	var addrs []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			addrs = append(addrs, a)
		}
	}
	for _, n := range prev.nodes { // masters first
		add(n.Addr)
	}
	for _, s := range c.seeds {
		add(s.Addr)
	}
	var errs []error
	var top topology.Topology
	for _, a := range addrs {
		t, err := readTopology(ctx, c.nodeShard(a))
		if err == nil {
			top = t
			break
		}
		errs = append(errs, fmt.Errorf("%s: %w", a, err))
		if ctx.Err() != nil {
			break
		}
	}
	if top == nil {
		return fmt.Errorf("destination: no cluster node answered: %w", errors.Join(errs...))
	}
	c.mu.Lock()
	v, m, err := c.layout(top, prev)
	if errors.Is(err, ErrTopologyChanged) {
		c.fatal = err
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.v.Store(v)
	d.m.Store(m)
	for _, p := range d.sets {
		p.follow(v)
	}
	d.mu.Unlock()
	for g := range v.masters {
		if old := prev.masters[g].Addr; old != v.masters[g].Addr {
			d.cfg.Logger.Info("destination: cluster group has a new master", "group", g, "from", old, "to", v.masters[g].Addr)
		}
	}
	return nil
}

// refresher refreshes every Config.Refresh and when kicked, until ctx
// ends.
func (d *Destination) refresher(ctx context.Context) {
	c := d.cl
	defer close(c.done)
	t := time.NewTicker(d.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kickc:
		}
		rctx, cancel := context.WithTimeout(ctx, refreshTimeout)
		err := d.Refresh(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		was := c.failing
		c.failing = err != nil
		c.mu.Unlock()
		switch {
		case err != nil && !was:
			d.cfg.Logger.Warn("destination: cluster topology refresh failed", "error", err)
		case err == nil && was:
			d.cfg.Logger.Info("destination: cluster topology refresh works again")
		}
	}
}

// Moved records a -MOVED redirect: when its target is a group's current
// master, the slot goes to that group in Map at once; in any case a
// refresh is asked for (a slot seldom moves alone). ASK redirects change
// nothing. Cheap and non-blocking; a no-op for standalone shards.
func (d *Destination) Moved(r Redirect) {
	c := d.cl
	if c == nil || r.Ask {
		return
	}
	if g, ok := d.v.Load().masterOf[r.Addr]; ok {
		for {
			m := d.m.Load()
			if m.ShardOfSlot(r.Slot) == g {
				break
			}
			nm, err := withSlot(m, r.Slot, g)
			if err != nil || d.m.CompareAndSwap(m, nm) {
				break
			}
		}
	}
	c.kick()
}

// withSlot returns m with slot placed on shard g.
func withSlot(m *router.SlotMap, slot uint16, g int) (*router.SlotMap, error) {
	ranges := make([][]router.SlotRange, m.Len())
	for s := 0; s < router.SlotCount; s++ {
		o := m.ShardOfSlot(uint16(s))
		if s == int(slot) {
			o = g
		}
		rs := ranges[o]
		if n := len(rs); n > 0 && int(rs[n-1].Hi) == s-1 {
			rs[n-1].Hi = uint16(s)
		} else {
			ranges[o] = append(rs, router.SlotRange{Lo: uint16(s), Hi: uint16(s)})
		}
	}
	return router.NewSlotMap(ranges)
}

// Nodes describes every node: a cluster's masters (one per group, in
// group order) then its replicas as the last refresh saw them; standalone
// shards and the replicas Config.Replicas lists otherwise. A master's
// Slots are its slots in the current Map.
func (d *Destination) Nodes() []NodeInfo {
	v := d.v.Load()
	m := d.Map()
	var out []NodeInfo
	if d.cl == nil {
		for g, s := range v.masters {
			out = append(out, NodeInfo{Addr: s.Addr, Group: g, Master: true})
		}
		for g, rs := range v.replicas {
			for _, r := range rs {
				out = append(out, NodeInfo{Addr: r.Addr, Group: g})
			}
		}
	} else {
		out = slices.Clone(v.nodes)
	}
	for i := range out {
		if out[i].Master {
			out[i].Slots = slices.Clone(m.Ranges(out[i].Group))
		}
	}
	return out
}

// MarkerKeyOf is the marker key of shard (Mark, Probe): MarkerKey for
// standalone shards; on a cluster, MarkerKey with the hash tag of the
// group's lowest slot at discovery (router.SlotTag), so each group's
// marker lives on it as long as that slot does.
func (d *Destination) MarkerKeyOf(shard int) string {
	if d.cl == nil {
		return MarkerKey
	}
	return MarkerKey + "{" + router.SlotTag(d.cl.tagSlot[shard]) + "}"
}
