package destination

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

// Shard is how to reach one destination shard (its primary), or one node
// of a Redis Cluster destination.
type Shard struct {
	Addr     string // host:port
	User     string // ACL user; "" means the default user
	Password string // "" means no AUTH
	// Dial opens connections (the TLS hook); nil means plain TCP.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Cluster marks a node of a Redis Cluster: its connections send
	// READONLY after AUTH (so a replica serves reads; a master ignores
	// it), and it has database 0 only: a backend of another database
	// fails every call with ErrClusterDB.
	Cluster bool
}

// Config describes the destination. Zero fields take the documented
// defaults.
type Config struct {
	// Shards are the shards; for Open, the nodes to ask first (a Redis
	// Cluster's seeds: any node will do, and the first one's User,
	// Password and Dial reach every node of the cluster).
	Shards []Shard
	// Replicas lists, per shard (same order as Shards; may be shorter),
	// replicas of that shard to read from besides those its primary
	// reports (the proxy's read_from), each reached with its own AUTH and
	// dialer. A cluster reports its replicas itself: Open refuses them.
	Replicas [][]Shard
	// Map places keys on Shards; nil means router.EvenSlotMap(len(Shards)).
	// A cluster's map is the cluster's: Open refuses one.
	Map *router.SlotMap
	// Pool is the template of the backends Backend returns (the syncer's
	// writes): its Addr, Dial, Init and Shard are filled in per shard and
	// database (its Observer is shared). Conns defaults to 4.
	Pool pool.Config
	// Refresh is how often a cluster destination re-reads its topology
	// besides on MOVED and connection errors (default 5s).
	Refresh time.Duration
	// Logger receives what Open and the cluster refresher have to say;
	// nil discards it.
	Logger *slog.Logger
}

// Destination is the sharded destination that the syncer writes, the
// proxy serves and verify reads. It holds the current slot map, how to
// reach each shard (address, AUTH, TLS), and the connection pools per
// (shard, db), created on first use with AUTH and SELECT in their Init.
// A Redis Cluster destination (Open) is the same with shard = group: a
// master and its replicas, whose master a failover changes (cluster.go).
// All methods are safe for concurrent use.
type Destination struct {
	cfg Config
	m   atomic.Pointer[router.SlotMap]
	v   atomic.Pointer[view]
	def *Pools        // the backends of Backend
	cl  *clusterState // nil for standalone shards

	mu     sync.Mutex
	sets   []*Pools    // every pool set, closed by Close
	info   []ShardInfo // nil until Info succeeded
	marker string      // the value Mark set
	closed bool
	fence  Fence      // nil: no lease
	runs   []groupRun // a cluster's run ids as Probe last saw them, by group
}

// view is how to reach every shard now: fixed for standalone shards,
// swapped by a cluster's refresh.
type view struct {
	masters  []Shard   // by shard
	replicas [][]Shard // by shard
	// A cluster's nodes (nil otherwise): every node with its group, the
	// current masters first in group order, and the groups of the
	// addresses of current masters and of every node.
	nodes    []NodeInfo
	ids      []string       // by group: its master's node ID
	masterOf map[string]int // current master address -> group
	known    map[string]int // node address -> group
}

// New checks cfg and returns a Destination of standalone shards. It
// opens no connection. Open also recognizes a Redis Cluster.
func New(cfg Config) (*Destination, error) {
	if len(cfg.Shards) == 0 {
		return nil, errors.New("destination: no shards")
	}
	m := cfg.Map
	if m == nil {
		var err error
		if m, err = router.EvenSlotMap(len(cfg.Shards)); err != nil {
			return nil, err
		}
	}
	if m.Len() != len(cfg.Shards) {
		return nil, fmt.Errorf("destination: slot map has %d shards, config %d", m.Len(), len(cfg.Shards))
	}
	for i, s := range cfg.Shards {
		if s.Addr == "" {
			return nil, fmt.Errorf("destination: shard %d has no address", i)
		}
	}
	if len(cfg.Replicas) > len(cfg.Shards) {
		return nil, fmt.Errorf("destination: replicas listed for %d shards, there are %d", len(cfg.Replicas), len(cfg.Shards))
	}
	for i, rs := range cfg.Replicas {
		for _, r := range rs {
			if r.Addr == "" {
				return nil, fmt.Errorf("destination: shard %d has a replica with no address", i)
			}
		}
	}
	d := newDestination(cfg)
	v := &view{masters: cfg.Shards, replicas: make([][]Shard, len(cfg.Shards))}
	copy(v.replicas, cfg.Replicas)
	d.v.Store(v)
	d.m.Store(m)
	d.def = d.NewPools(d.cfg.Pool)
	return d, nil
}

// newDestination applies cfg's defaults.
func newDestination(cfg Config) *Destination {
	if cfg.Pool.Conns <= 0 {
		cfg.Pool.Conns = 4
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Destination{cfg: cfg}
}

// Map is the current placement of keys on shards. Callers that place
// several keys for one decision take the map once and use it throughout.
// A cluster's map changes when slots move (Refresh, Moved).
func (d *Destination) Map() *router.SlotMap { return d.m.Load() }

// SetMap makes m the current placement. It must place slots on the same
// shards (m.Len() == Len()). A cluster's map is the cluster's: SetMap
// refuses to change it.
func (d *Destination) SetMap(m *router.SlotMap) error {
	if d.cl != nil {
		return errors.New("destination: a Redis Cluster places its slots itself")
	}
	if m == nil || m.Len() != d.Len() {
		return fmt.Errorf("destination: a slot map must cover the %d shards", d.Len())
	}
	d.m.Store(m)
	return nil
}

// Cluster reports whether the destination is a Redis Cluster (Open found
// cluster_enabled:1): then a shard is a group (a master and its
// replicas), and only database 0 exists.
func (d *Destination) Cluster() bool { return d.cl != nil }

// Len is the number of shards (a cluster's groups: fixed for the
// Destination's life).
func (d *Destination) Len() int { return len(d.v.Load().masters) }

// Addr is shard's address (a cluster group's current master's).
func (d *Destination) Addr(shard int) string { return d.v.Load().masters[shard].Addr }

// Shard returns how to reach shard (a cluster group's current master).
func (d *Destination) Shard(shard int) Shard { return d.v.Load().masters[shard] }

// Replicas returns the replicas Config.Replicas lists for shard; for a
// cluster, the group's current replicas that the cluster reports healthy.
func (d *Destination) Replicas(shard int) []Shard { return d.v.Load().replicas[shard] }

// Init returns the raw commands every connection to (shard, db) runs
// first: AUTH when the shard has a password, SELECT when db is not 0.
func (d *Destination) Init(shard, db int) []byte { return d.Shard(shard).Init(db) }

// Init returns the raw commands every connection to s in database db
// runs first: AUTH when s has a password, READONLY on a cluster node,
// SELECT when db is not 0.
func (s Shard) Init(db int) []byte {
	var init []byte
	switch {
	case s.Password != "" && s.User != "":
		init = resp.AppendCommandString(init, "AUTH", s.User, s.Password)
	case s.Password != "":
		init = resp.AppendCommandString(init, "AUTH", s.Password)
	}
	if s.Cluster {
		init = resp.AppendCommandString(init, "READONLY")
	}
	if db != 0 {
		init = resp.AppendCommandString(init, "SELECT", strconv.Itoa(db))
	}
	return init
}

// PoolConfig returns tmpl completed for (shard, db): the shard's address
// and dialer, its Init (AUTH, SELECT) and its index as Shard.
func (d *Destination) PoolConfig(shard, db int, tmpl pool.Config) pool.Config {
	return d.Shard(shard).PoolConfig(shard, db, tmpl)
}

// PoolConfig returns tmpl completed for node s (a shard's primary or one
// of its replicas) in database db: s's address, dialer and Init, and
// shard as the Observer's label.
func (s Shard) PoolConfig(shard, db int, tmpl pool.Config) pool.Config {
	tmpl.Addr, tmpl.Dial, tmpl.Shard = s.Addr, s.Dial, shard
	if s.Cluster && db != 0 {
		tmpl.Fail = fmt.Errorf("%w (asked for database %d on %s)", ErrClusterDB, db, s.Addr)
		return tmpl
	}
	tmpl.Init = s.Init(db)
	return tmpl
}

// Backend returns the syncer's backend of (shard, db) (Config.Pool),
// creating it on first use: a cluster group's current master's. After
// Close it returns a closed backend whose calls fail with pool.ErrClosed.
func (d *Destination) Backend(shard, db int) *pool.Backend { return d.def.Get(shard, db) }

// NodeBackend returns the syncer's backend (Config.Pool) of the cluster
// node at addr in database db, for a redirect's target (ASK). The node
// must be one the last refresh saw; call Refresh first for others.
func (d *Destination) NodeBackend(addr string, db int) (*pool.Backend, error) {
	return d.def.Node(addr, db)
}

// Follow returns the syncer's backend of r's target in database db,
// after recording r when it is a MOVED (Moved). A target the last refresh
// did not see is looked up again after a Refresh; still unknown, it is
// ErrUnknownNode. r's host must be filled in (Redirect.From).
func (d *Destination) Follow(ctx context.Context, r Redirect, db int) (*pool.Backend, error) {
	if !r.Ask {
		d.Moved(r)
	}
	b, err := d.NodeBackend(r.Addr, db)
	if errors.Is(err, ErrUnknownNode) {
		if err = d.Refresh(ctx); err == nil {
			b, err = d.NodeBackend(r.Addr, db)
		}
	}
	return b, err
}

// NodePool is the backends of one node, one per database, created on
// first use from one template. A shard's primary and each of its replicas
// (the proxy's replica reads) have one. Get takes no lock once a
// database's backend exists.
type NodePool struct {
	node  Shard
	shard int
	tmpl  pool.Config
	dbs   atomic.Pointer[[]*pool.Backend] // by database, nil until built; copied on growth

	mu     sync.Mutex
	closed bool
}

// NewNodePool returns the backends of node, which serves shard, built
// from tmpl (see Shard.PoolConfig).
func NewNodePool(node Shard, shard int, tmpl pool.Config) *NodePool {
	return &NodePool{node: node, shard: shard, tmpl: tmpl}
}

// Get returns the backend of database db, creating it on first use. After
// Close it returns a closed backend whose calls fail with pool.ErrClosed.
// On a cluster node, the backend of a database other than 0 fails every
// call with ErrClusterDB.
func (p *NodePool) Get(db int) *pool.Backend {
	if bs := p.dbs.Load(); bs != nil && db < len(*bs) {
		if b := (*bs)[db]; b != nil {
			return b
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var bs []*pool.Backend
	if cur := p.dbs.Load(); cur != nil {
		bs = *cur
	}
	if db < len(bs) && bs[db] != nil {
		return bs[db]
	}
	b := pool.NewBackend(p.node.PoolConfig(p.shard, db, p.tmpl))
	if p.closed {
		_ = b.Close()
		return b
	}
	grown := make([]*pool.Backend, max(len(bs), db+1))
	copy(grown, bs)
	grown[db] = b
	p.dbs.Store(&grown)
	return b
}

// Close closes every backend of the node. Calls in flight fail with
// pool.ErrClosed.
func (p *NodePool) Close() {
	p.mu.Lock()
	p.closed = true
	bs := p.dbs.Swap(nil)
	p.mu.Unlock()
	if bs == nil {
		return
	}
	for _, b := range *bs {
		if b != nil {
			_ = b.Close()
		}
	}
}

// Pools is a set of backends, one NodePool per shard's primary, all from
// one template: the syncer's (Destination.Backend) and the proxy's differ
// in connection counts, timeouts and reply limits. On a cluster it holds
// one NodePool per node it was asked for, and Get follows each group's
// current master.
type Pools struct {
	d    *Destination
	tmpl pool.Config
	cur  atomic.Pointer[[]*NodePool] // by shard: its (current) master's

	mu     sync.Mutex
	byAddr map[string]*NodePool // a cluster's nodes, by address
	closed bool
}

// NewPools returns a new set of backends built from tmpl (see
// PoolConfig). Close closes it, as does the Destination's Close. On a
// cluster, a connection failure of any of its backends also asks for a
// topology refresh (tmpl.Down is chained).
func (d *Destination) NewPools(tmpl pool.Config) *Pools {
	p := &Pools{d: d, tmpl: tmpl}
	if d.cl != nil {
		down := tmpl.Down
		p.tmpl.Down = func() {
			d.cl.kick()
			if down != nil {
				down()
			}
		}
		p.byAddr = map[string]*NodePool{}
	}
	d.mu.Lock()
	p.follow(d.v.Load())
	d.sets = append(d.sets, p)
	closed := d.closed
	d.mu.Unlock()
	if closed {
		p.Close()
	}
	return p
}

// follow points the set at v's masters. Callers hold d.mu, so views are
// installed in order.
func (p *Pools) follow(v *view) {
	cur := make([]*NodePool, len(v.masters))
	if p.byAddr == nil {
		if old := p.cur.Load(); old != nil {
			return // standalone shards never move
		}
		for i, s := range v.masters {
			cur[i] = NewNodePool(s, i, p.tmpl)
		}
		p.cur.Store(&cur)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, s := range v.masters {
		cur[i] = p.nodeLocked(s, i)
	}
	p.cur.Store(&cur)
}

// nodeLocked returns the set's NodePool of node s in group g, creating
// it; p.mu is held.
func (p *Pools) nodeLocked(s Shard, g int) *NodePool {
	np := p.byAddr[s.Addr]
	if np == nil {
		np = NewNodePool(s, g, p.tmpl)
		if p.closed {
			np.Close()
		}
		p.byAddr[s.Addr] = np
	}
	return np
}

// Get returns the backend of (shard, db), creating it on first use: a
// cluster group's current master's. After Close it returns a closed
// backend whose calls fail with pool.ErrClosed.
func (p *Pools) Get(shard, db int) *pool.Backend { return (*p.cur.Load())[shard].Get(db) }

// Node returns the backend of the cluster node at addr in database db
// (a redirect's target), creating it on first use. The node must be one
// the last refresh saw: ErrUnknownNode otherwise (Refresh, then ask
// again); standalone shards have no nodes.
func (p *Pools) Node(addr string, db int) (*pool.Backend, error) {
	if p.byAddr == nil {
		return nil, fmt.Errorf("%w: %s (the destination is not a cluster)", ErrUnknownNode, addr)
	}
	v := p.d.v.Load()
	g, ok := v.known[addr]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownNode, addr)
	}
	s := v.masters[g]
	s.Addr = addr
	p.mu.Lock()
	np := p.nodeLocked(s, g)
	p.mu.Unlock()
	return np.Get(db), nil
}

// Close closes every backend of the set. Calls in flight fail with
// pool.ErrClosed.
func (p *Pools) Close() {
	p.mu.Lock()
	p.closed = true
	nodes := make([]*NodePool, 0, len(p.byAddr))
	for _, np := range p.byAddr {
		nodes = append(nodes, np)
	}
	p.mu.Unlock()
	if p.byAddr == nil {
		nodes = *p.cur.Load()
	}
	for _, n := range nodes {
		n.Close()
	}
}

// Close stops a cluster's refresher and closes every backend of every
// pool set. Calls in flight fail with pool.ErrClosed.
func (d *Destination) Close() error {
	d.mu.Lock()
	d.closed = true
	sets := d.sets
	d.mu.Unlock()
	if d.cl != nil {
		d.cl.close()
	}
	for _, p := range sets {
		p.Close()
	}
	return nil
}

// Each runs fn for every shard concurrently and returns the errors joined
// in shard order. On a cluster that is every group, so every master.
func (d *Destination) Each(fn func(shard int) error) error {
	errs := make([]error, d.Len())
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
