package destination

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

// Shard is how to reach one destination shard (its primary).
type Shard struct {
	Addr     string // host:port
	User     string // ACL user; "" means the default user
	Password string // "" means no AUTH
	// Dial opens connections (the TLS hook); nil means plain TCP.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Config describes the destination. Zero fields take the documented
// defaults.
type Config struct {
	Shards []Shard
	// Replicas lists, per shard (same order as Shards; may be shorter),
	// replicas of that shard to read from besides those its primary
	// reports (the proxy's read_from), each reached with its own AUTH and
	// dialer.
	Replicas [][]Shard
	// Map places keys on Shards; nil means router.EvenSlotMap(len(Shards)).
	Map *router.SlotMap
	// Pool is the template of the backends Backend returns (the syncer's
	// writes): its Addr, Dial, Init and Shard are filled in per shard and
	// database (its Observer is shared). Conns defaults to 4.
	Pool pool.Config
}

// Destination is the sharded destination that the syncer writes, the
// proxy serves and verify reads. It holds the current slot map, how to
// reach each shard (address, AUTH, TLS), and the connection pools per
// (shard, db), created on first use with AUTH and SELECT in their Init.
// All methods are safe for concurrent use.
type Destination struct {
	cfg Config
	m   atomic.Pointer[router.SlotMap]
	def *Pools // the backends of Backend

	mu     sync.Mutex
	sets   []*Pools    // every pool set, closed by Close
	info   []ShardInfo // nil until Info succeeded
	marker string      // the value Mark set
	closed bool
	fence  Fence // nil: no lease
}

// New checks cfg and returns a Destination. It opens no connection.
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
	if cfg.Pool.Conns <= 0 {
		cfg.Pool.Conns = 4
	}
	d := &Destination{cfg: cfg}
	d.m.Store(m)
	d.def = d.NewPools(cfg.Pool)
	return d, nil
}

// Map is the current placement of keys on shards. Callers that place
// several keys for one decision take the map once and use it throughout.
func (d *Destination) Map() *router.SlotMap { return d.m.Load() }

// SetMap makes m the current placement. It must place slots on the same
// shards (m.Len() == Len()).
func (d *Destination) SetMap(m *router.SlotMap) error {
	if m == nil || m.Len() != d.Len() {
		return fmt.Errorf("destination: a slot map must cover the %d shards", d.Len())
	}
	d.m.Store(m)
	return nil
}

// Len is the number of shards.
func (d *Destination) Len() int { return len(d.cfg.Shards) }

// Addr is shard's address.
func (d *Destination) Addr(shard int) string { return d.cfg.Shards[shard].Addr }

// Shard returns how to reach shard.
func (d *Destination) Shard(shard int) Shard { return d.cfg.Shards[shard] }

// Replicas returns the replicas Config.Replicas lists for shard.
func (d *Destination) Replicas(shard int) []Shard {
	if shard < len(d.cfg.Replicas) {
		return d.cfg.Replicas[shard]
	}
	return nil
}

// Init returns the raw commands every connection to (shard, db) runs
// first: AUTH when the shard has a password, SELECT when db is not 0.
func (d *Destination) Init(shard, db int) []byte { return d.cfg.Shards[shard].Init(db) }

// Init returns the raw commands every connection to s in database db
// runs first: AUTH when s has a password, SELECT when db is not 0.
func (s Shard) Init(db int) []byte {
	var init []byte
	switch {
	case s.Password != "" && s.User != "":
		init = resp.AppendCommandString(init, "AUTH", s.User, s.Password)
	case s.Password != "":
		init = resp.AppendCommandString(init, "AUTH", s.Password)
	}
	if db != 0 {
		init = resp.AppendCommandString(init, "SELECT", strconv.Itoa(db))
	}
	return init
}

// PoolConfig returns tmpl completed for (shard, db): the shard's address
// and dialer, its Init (AUTH, SELECT) and its index as Shard.
func (d *Destination) PoolConfig(shard, db int, tmpl pool.Config) pool.Config {
	return d.cfg.Shards[shard].PoolConfig(shard, db, tmpl)
}

// PoolConfig returns tmpl completed for node s (a shard's primary or one
// of its replicas) in database db: s's address, dialer and Init, and
// shard as the Observer's label.
func (s Shard) PoolConfig(shard, db int, tmpl pool.Config) pool.Config {
	tmpl.Addr, tmpl.Dial, tmpl.Shard = s.Addr, s.Dial, shard
	tmpl.Init = s.Init(db)
	return tmpl
}

// Backend returns the syncer's backend of (shard, db) (Config.Pool),
// creating it on first use. After Close it returns a closed backend whose
// calls fail with pool.ErrClosed.
func (d *Destination) Backend(shard, db int) *pool.Backend { return d.def.Get(shard, db) }

// NodePool is the backends of one node, one per database, created on
// first use from one template. A shard's primary and each of its replicas
// (the proxy's replica reads) have one.
type NodePool struct {
	node  Shard
	shard int
	tmpl  pool.Config

	mu       sync.Mutex
	closed   bool
	backends map[int]*pool.Backend // by database
}

// NewNodePool returns the backends of node, which serves shard, built
// from tmpl (see Shard.PoolConfig).
func NewNodePool(node Shard, shard int, tmpl pool.Config) *NodePool {
	return &NodePool{node: node, shard: shard, tmpl: tmpl, backends: map[int]*pool.Backend{}}
}

// Get returns the backend of database db, creating it on first use. After
// Close it returns a closed backend whose calls fail with pool.ErrClosed.
func (p *NodePool) Get(db int) *pool.Backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.backends[db]; b != nil {
		return b
	}
	b := pool.NewBackend(p.node.PoolConfig(p.shard, db, p.tmpl))
	if p.closed {
		_ = b.Close()
		return b
	}
	p.backends[db] = b
	return b
}

// Close closes every backend of the node. Calls in flight fail with
// pool.ErrClosed.
func (p *NodePool) Close() {
	p.mu.Lock()
	p.closed = true
	bs := p.backends
	p.backends = map[int]*pool.Backend{}
	p.mu.Unlock()
	for _, b := range bs {
		_ = b.Close()
	}
}

// Pools is a set of backends, one NodePool per shard's primary, all from
// one template: the syncer's (Destination.Backend) and the proxy's differ
// in connection counts, timeouts and reply limits.
type Pools struct {
	nodes []*NodePool // by shard
}

// NewPools returns a new set of backends built from tmpl (see
// PoolConfig). Close closes it, as does the Destination's Close.
func (d *Destination) NewPools(tmpl pool.Config) *Pools {
	p := &Pools{nodes: make([]*NodePool, d.Len())}
	for i := range p.nodes {
		p.nodes[i] = NewNodePool(d.cfg.Shards[i], i, tmpl)
	}
	d.mu.Lock()
	d.sets = append(d.sets, p)
	closed := d.closed
	d.mu.Unlock()
	if closed {
		p.Close()
	}
	return p
}

// Get returns the backend of (shard, db), creating it on first use. After
// Close it returns a closed backend whose calls fail with pool.ErrClosed.
func (p *Pools) Get(shard, db int) *pool.Backend { return p.nodes[shard].Get(db) }

// Close closes every backend of the set. Calls in flight fail with
// pool.ErrClosed.
func (p *Pools) Close() {
	for _, n := range p.nodes {
		n.Close()
	}
}

// Close closes every backend of every pool set. Calls in flight fail with
// pool.ErrClosed.
func (d *Destination) Close() error {
	d.mu.Lock()
	d.closed = true
	sets := d.sets
	d.mu.Unlock()
	for _, p := range sets {
		p.Close()
	}
	return nil
}

// Each runs fn for every shard concurrently and returns the errors joined
// in shard order.
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
