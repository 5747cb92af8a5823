package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/router"
	"github.com/tidwall/redcon"
)

// Server is a running proxy: a listener, its clients and the shard
// backends. Build it with New, run it with Serve; Serve returns when its
// context ends, after every client and goroutine it started has stopped.
type Server struct {
	cfg   Config
	log   *slog.Logger
	pools *shardPools
	ln    net.Listener
	start time.Time

	ctx    context.Context // canceled when Serve stops
	cancel context.CancelFunc

	mu      sync.Mutex
	clients map[*client]struct{}
	admins  map[*session]struct{} // authenticated as AdminUser
	closed  bool
	wg      sync.WaitGroup // client goroutines

	nextID   atomic.Int64
	accepted atomic.Int64
	rejected atomic.Int64
	commands atomic.Int64
	idled    atomic.Int64 // times a client gave its buffers back while idle
	served   atomic.Bool
	relays   atomic.Int64 // replication relays running
	// clients closed for replies over MaxPendingHard (pending.go)
	overPending atomic.Int64

	hidden hiddenCache
	rep    *replicas // nil with ReadPrimary
	loops  *loops    // nil: every client on a goroutine

	blockSem chan struct{} // a token per blocking command running (MaxBlocking)
	blocked  atomic.Int64  // blocking commands waiting on a shard
}

// New validates cfg, listens on cfg.Listen and returns a server ready to
// Serve. It starts the event loops (Config.Loops) and nothing else; call
// Close instead of Serve to release the listener and the loops of a
// server that will not run.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	network, addr := "tcp", cfg.Listen
	if p, ok := strings.CutPrefix(cfg.Listen, "unix:"); ok {
		network, addr = "unix", p
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		pools:   newShardPools(cfg.Destination, cfg.Backend, cfg.Databases),
		ln:      ln,
		start:   time.Now(),
		clients: make(map[*client]struct{}),
		admins:  make(map[*session]struct{}),

		blockSem: make(chan struct{}, cfg.MaxBlocking),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.ReadFrom != ReadPrimary {
		s.rep = newReplicas(s)
	}
	if n := cfg.loops(); n > 0 && cfg.TLS == nil {
		if !s.loopsUsable() {
			s.log.Info("proxy: shards reached through a Dial hook (TLS): clients are served on goroutines, not event loops")
		} else if s.loops, err = s.startLoops(n); err != nil {
			ln.Close()
			s.cancel()
			return nil, err
		}
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts clients until ctx ends, then closes the listener and every
// client, waits for their goroutines and closes the shard backends. It
// returns nil after a cancellation and the accept error otherwise. Serve
// may be called once.
func (s *Server) Serve(ctx context.Context) error {
	if s.served.Swap(true) {
		return errors.New("proxy: Serve called twice")
	}
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	if s.rep != nil {
		go s.rep.run(s.ctx) // stopped and waited for by shutdown
	}
	var err error
	for {
		var nc net.Conn
		nc, err = s.ln.Accept()
		if err != nil {
			var ne net.Error
			if ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if ctx.Err() == nil && isTemporaryAccept(err) {
				s.log.Warn("proxy: accept", "err", err)
				select {
				case <-time.After(10 * time.Millisecond):
				case <-ctx.Done():
				}
				continue
			}
			break
		}
		s.admit(nc)
	}
	s.shutdown()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("proxy: accept: %w", err)
}

// Close stops a server whose Serve was never called (Serve cleans up on
// its own when its context ends).
func (s *Server) Close() error {
	if s.served.Swap(true) {
		return nil
	}
	s.ln.Close()
	if s.rep != nil {
		close(s.rep.done) // never ran, so it opened no backend
	}
	s.shutdown()
	return nil
}

func isTemporaryAccept(err error) bool {
	// EMFILE / ENFILE and friends: keep serving those already connected.
	return !errors.Is(err, net.ErrClosed)
}

func (s *Server) admit(nc net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if len(s.clients) >= s.cfg.MaxClients {
		s.mu.Unlock()
		s.rejected.Add(1)
		if s.cfg.TLS == nil {
			// Over TLS the reply would need a handshake, here on the
			// accept loop: the client is just closed.
			_ = nc.SetWriteDeadline(time.Now().Add(s.cfg.Timeout))
			_, _ = nc.Write(redcon.AppendError(nil, "ERR max number of clients reached"))
		}
		nc.Close()
		return
	}
	if s.cfg.TLS != nil && !s.cfg.TLSReplicationOnly {
		nc = tls.Server(nc, s.cfg.TLS) // the client's goroutine shakes hands
	}
	c := newClient(s, nc)
	s.clients[c] = struct{}{}
	onLoop := s.loops != nil
	if onLoop {
		c.nc = nil // the loop owns the socket
	} else {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	s.accepted.Add(1)
	if o := s.cfg.Observer; o != nil {
		o.ConnOpened()
	}
	if onLoop {
		if s.loops.attach(c, nc) {
			return
		}
		s.mu.Lock()
		c.nc = nc // not a socket a loop can own: a goroutine serves it
		s.wg.Add(1)
		s.mu.Unlock()
	}
	go func() {
		defer s.wg.Done()
		c.serve()
	}()
}

func (s *Server) forget(c *client) {
	s.mu.Lock()
	delete(s.clients, c)
	delete(s.admins, &c.session)
	s.mu.Unlock()
}

func (s *Server) clientCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}

func (s *Server) shutdown() {
	s.mu.Lock()
	s.closed = true
	for c := range s.clients {
		if c.nc != nil {
			c.nc.Close() // its goroutine notices and cleans up
		}
	}
	s.mu.Unlock()
	s.cancel()
	if s.loops != nil {
		s.loops.stop() // closes the loops' clients and shard connections
	}
	if s.rep != nil {
		<-s.rep.done // it closed the replicas' backends
	}
	s.pools.close() // fails calls in flight at once
	s.wg.Wait()
}

// shards is the destination's current slot map. A command takes it once
// and places all its keys with it.
func (s *Server) shards() *router.SlotMap { return s.cfg.Destination.Map() }

// shardConfig is how the proxy reaches shard in database db.
func (s *Server) shardConfig(shard, db int) pool.Config {
	return s.cfg.Destination.PoolConfig(shard, db, s.cfg.Backend)
}

// shardPools holds the shard backends, one set per database, taken from
// the destination on first use (their Init holds AUTH and SELECT) and
// kept per database so a client's lookups take no lock. On a cluster
// destination a group's master changes with a failover, and the set
// follows it (current, in cluster.go).
type shardPools struct {
	set    *destination.Pools
	d      *destination.Destination
	shards int
	follow bool // a cluster: masters change

	mu  sync.Mutex
	dbs []atomic.Pointer[[]*pool.Backend] // by database, then shard
}

func newShardPools(d *destination.Destination, tmpl pool.Config, databases int) *shardPools {
	return &shardPools{set: d.NewPools(tmpl), d: d, shards: d.Len(), follow: d.Cluster(),
		dbs: make([]atomic.Pointer[[]*pool.Backend], databases)}
}

// db returns the backends of database db, one per shard (a cluster
// group's current master's).
func (p *shardPools) db(db int) []*pool.Backend {
	if bs := p.dbs[db].Load(); bs != nil && (!p.follow || p.current(*bs)) {
		return *bs
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	bs := make([]*pool.Backend, p.shards)
	for i := range bs {
		bs[i] = p.set.Get(i, db)
	}
	p.dbs[db].Store(&bs)
	return bs
}

// close closes the backends; calls in flight fail with pool.ErrClosed,
// and backends asked for later are closed ones.
func (p *shardPools) close() { p.set.Close() }
