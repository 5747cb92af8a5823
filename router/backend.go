package router

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replicaof/replicaof/resp"
)

// BackendConfig describes one destination shard. Zero fields take the
// documented defaults.
type BackendConfig struct {
	// Addr is the shard's host:port (or socket path for Network "unix").
	Addr    string
	Network string // default "tcp"
	// Conns is how many connections the pool keeps (default 2). Calls of
	// one Pipeline share a connection; batches spread round-robin.
	Conns int
	// MaxInflight bounds the calls queued or awaiting a reply on one
	// connection (default 8192); callers wait for room beyond it.
	MaxInflight int

	DialTimeout  time.Duration // default 2s
	ReadTimeout  time.Duration // longest wait for a reply once sent; default 10s
	WriteTimeout time.Duration // default 10s
	// RetryBackoff is how long a shard that failed to connect answers
	// ErrShardDown at once before the next dial (default 100ms, doubling
	// to 2s while it stays down).
	RetryBackoff time.Duration

	// Dial opens the connection; nil means a net.Dialer. It is the TLS hook.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Init holds raw RESP commands sent on every new connection before it
	// is used (AUTH, SELECT, CLIENT SETNAME); an error reply fails the dial.
	Init []byte
	// Limits bound replies read from the shard.
	Limits resp.Limits
}

func (c BackendConfig) withDefaults() BackendConfig {
	if c.Network == "" {
		c.Network = "tcp"
	}
	if c.Conns <= 0 {
		c.Conns = 2
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 8192
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 2 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 100 * time.Millisecond
	}
	if c.Dial == nil {
		d := &net.Dialer{}
		c.Dial = d.DialContext
	}
	return c
}

// Errors a Backend returns.
var (
	ErrShardDown = errors.New("router: shard is down")
	ErrClosed    = errors.New("router: backend closed")
)

// Call is one request and its reply. Req holds exactly one raw RESP
// command; Reply receives the raw reply (appended to Reply[:0], so a Call
// can be reused); Err is set instead when the call failed (a reply that is
// a Redis error is a Reply, not an Err).
type Call struct {
	Req   []byte
	Reply []byte
	Err   error

	batch *batch
}

// batch tracks the completion of one Pipeline.
type batch struct {
	left atomic.Int32
	done chan struct{}
}

func (b *batch) finish() {
	if b.left.Add(-1) == 0 {
		close(b.done)
	}
}

// Backend is a pool of pipelined connections to one shard. Requests are
// forwarded as raw bytes, many per write; replies are framed without being
// decoded and handed back in request order. A connection that fails fails
// every call it holds and is replaced on next use; while the shard cannot be
// reached, calls fail at once with ErrShardDown for a backoff period.
//
// All methods are safe for concurrent use. Close stops every goroutine the
// backend started.
type Backend struct {
	cfg   BackendConfig
	slots []*slot
	next  atomic.Uint32

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewBackend returns a pool for one shard. It connects lazily.
func NewBackend(cfg BackendConfig) *Backend {
	cfg = cfg.withDefaults()
	b := &Backend{cfg: cfg, slots: make([]*slot, cfg.Conns)}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	for i := range b.slots {
		b.slots[i] = &slot{}
	}
	return b
}

// Addr is the shard's address.
func (b *Backend) Addr() string { return b.cfg.Addr }

// Close fails calls in flight with ErrClosed and waits for the connection
// goroutines to end.
func (b *Backend) Close() error {
	b.cancel()
	for _, s := range b.slots {
		s.mu.Lock()
		if s.conn != nil {
			s.conn.fail(ErrClosed)
		}
		s.mu.Unlock()
	}
	b.wg.Wait()
	return nil
}

// Do sends one raw command and returns its raw reply, appended to
// reply[:0]. A Redis error reply is returned as a reply, not an error.
func (b *Backend) Do(ctx context.Context, req, reply []byte) ([]byte, error) {
	c := Call{Req: req, Reply: reply}
	calls := [1]*Call{&c}
	b.Pipeline(ctx, calls[:])
	return c.Reply, c.Err
}

// Pipeline sends every call on one connection in one or more writes and
// returns when each has its reply or error. ctx bounds the wait for a
// connection and for room in the pipeline; once sent, a call is bounded by
// the read timeout.
func (b *Backend) Pipeline(ctx context.Context, calls []*Call) {
	if len(calls) == 0 {
		return
	}
	bt := &batch{done: make(chan struct{})}
	bt.left.Store(int32(len(calls)))
	for _, c := range calls {
		c.batch = bt
		c.Err = nil
		c.Reply = c.Reply[:0]
	}
	s := b.slots[int(b.next.Add(1))%len(b.slots)]
	cn, err := b.conn(ctx, s)
	if err != nil {
		for _, c := range calls {
			c.Err = err
		}
		return
	}
	for i, c := range calls {
		if err := cn.enqueue(ctx, c); err != nil {
			for _, rest := range calls[i:] {
				rest.Err = err
				bt.finish()
			}
			break
		}
	}
	<-bt.done
}

// slot holds the current connection of one pool position.
type slot struct {
	mu       sync.Mutex
	conn     *conn
	downErr  error     // why the last dial failed
	downTill time.Time // fail fast until then
	backoff  time.Duration
}

func (b *Backend) conn(ctx context.Context, s *slot) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if s.conn != nil && !s.conn.isDead() {
		return s.conn, nil
	}
	if s.downErr != nil && time.Now().Before(s.downTill) {
		return nil, fmt.Errorf("%w: %s: %v", ErrShardDown, b.cfg.Addr, s.downErr)
	}
	cn, err := b.dial(ctx)
	if err != nil {
		if s.backoff == 0 {
			s.backoff = b.cfg.RetryBackoff
		} else if s.backoff = s.backoff * 2; s.backoff > 2*time.Second {
			s.backoff = 2 * time.Second
		}
		s.downErr, s.downTill = err, time.Now().Add(s.backoff)
		return nil, fmt.Errorf("%w: %s: %v", ErrShardDown, b.cfg.Addr, err)
	}
	s.downErr, s.backoff = nil, 0
	s.conn = cn
	return cn, nil
}

func (b *Backend) dial(ctx context.Context) (*conn, error) {
	dctx, cancel := context.WithTimeout(ctx, b.cfg.DialTimeout)
	defer cancel()
	nc, err := b.cfg.Dial(dctx, b.cfg.Network, b.cfg.Addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	cn := &conn{
		nc:       nc,
		r:        bufio.NewReaderSize(nc, 64<<10),
		w:        bufio.NewWriterSize(nc, 64<<10),
		cfg:      &b.cfg,
		room:     make(chan struct{}, b.cfg.MaxInflight),
		wake:     make(chan struct{}, 1),
		inflight: make(chan *Call, b.cfg.MaxInflight),
		dead:     make(chan struct{}),
	}
	if len(b.cfg.Init) > 0 {
		if err := cn.handshake(b.cfg.Init); err != nil {
			nc.Close()
			return nil, err
		}
	}
	b.wg.Add(2)
	go func() { defer b.wg.Done(); cn.writeLoop() }()
	go func() { defer b.wg.Done(); cn.readLoop() }()
	return cn, nil
}

// conn is one pipelined connection: callers append to pending, the writer
// moves pending calls to the wire and to inflight, the reader completes
// inflight calls in order.
type conn struct {
	nc  net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	cfg *BackendConfig

	room     chan struct{} // a token per queued or inflight call: bounds both
	wake     chan struct{} // the writer has pending work
	inflight chan *Call    // written, awaiting a reply, in order

	mu      sync.Mutex
	pending []*Call
	spare   []*Call
	err     error         // set once, under mu, when the conn fails
	dead    chan struct{} // closed with err
}

func (cn *conn) isDead() bool {
	select {
	case <-cn.dead:
		return true
	default:
		return false
	}
}

// handshake sends init commands and checks that none was refused.
func (cn *conn) handshake(init []byte) error {
	deadline := time.Now().Add(cn.cfg.ReadTimeout)
	_ = cn.nc.SetDeadline(deadline)
	defer cn.nc.SetDeadline(time.Time{})
	if _, err := cn.nc.Write(init); err != nil {
		return err
	}
	cmds := bufio.NewReader(bytes.NewReader(init))
	var reply []byte
	for {
		var cmd resp.Command
		if err := resp.ReadCommand(cmds, &cmd, resp.Limits{}); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("router: bad init command: %w", err)
		}
		var err error
		if reply, err = resp.ReadReply(cn.r, reply[:0], cn.cfg.Limits); err != nil {
			return err
		}
		if len(reply) > 0 && reply[0] == resp.TypeError {
			return fmt.Errorf("router: %s refused %q: %s", cn.cfg.Addr, cmd.Name(), reply[1:len(reply)-2])
		}
	}
}

func (cn *conn) enqueue(ctx context.Context, c *Call) error {
	select {
	case cn.room <- struct{}{}:
	case <-cn.dead:
		return cn.err
	case <-ctx.Done():
		return ctx.Err()
	}
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		<-cn.room
		return cn.err
	}
	cn.pending = append(cn.pending, c)
	first := len(cn.pending) == 1
	cn.mu.Unlock()
	if first {
		select {
		case cn.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// complete hands a call back to its Pipeline.
func (cn *conn) complete(c *Call, err error) {
	if err != nil {
		c.Err = err
	}
	<-cn.room
	c.batch.finish()
}

// fail marks the conn dead once, closes the socket (which stops both loops)
// and fails every call not yet answered.
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return
	}
	cn.err = fmt.Errorf("%w: %s: %v", ErrShardDown, cn.cfg.Addr, err)
	if errors.Is(err, ErrClosed) {
		cn.err = ErrClosed
	}
	close(cn.dead)
	pending := cn.pending
	cn.pending = nil
	cn.mu.Unlock()
	cn.nc.Close()
	for _, c := range pending {
		cn.complete(c, cn.err)
	}
}

func (cn *conn) writeLoop() {
	for {
		select {
		case <-cn.wake:
		case <-cn.dead:
			cn.drainInflight()
			return
		}
		cn.mu.Lock()
		calls := cn.pending
		cn.pending = cn.spare[:0]
		cn.mu.Unlock()
		if len(calls) == 0 {
			continue
		}
		// Queue for the reader before writing: a reply can arrive before
		// the write call returns. inflight has room for every token.
		for _, c := range calls {
			cn.inflight <- c
		}
		_ = cn.nc.SetWriteDeadline(time.Now().Add(cn.cfg.WriteTimeout))
		var err error
		for _, c := range calls {
			if _, err = cn.w.Write(c.Req); err != nil {
				break
			}
		}
		if err == nil {
			err = cn.w.Flush()
		}
		for i := range calls {
			calls[i] = nil
		}
		cn.mu.Lock()
		cn.spare = calls[:0]
		cn.mu.Unlock()
		if err != nil {
			cn.fail(err)
		}
	}
}

// drainInflight fails what was written but will never be answered. Only
// the writer sends to inflight, and it has stopped.
func (cn *conn) drainInflight() {
	for {
		select {
		case c := <-cn.inflight:
			cn.complete(c, cn.err)
		default:
			return
		}
	}
}

func (cn *conn) readLoop() {
	var deadlineSet time.Time
	for {
		var c *Call
		select {
		case c = <-cn.inflight:
		case <-cn.dead:
			return // the writer drains what is left
		}
		// Keep the deadline at least 7/8 of ReadTimeout ahead without
		// paying for a deadline update on every reply.
		if now := time.Now(); now.Sub(deadlineSet) > cn.cfg.ReadTimeout/8 {
			_ = cn.nc.SetReadDeadline(now.Add(cn.cfg.ReadTimeout))
			deadlineSet = now
		}
		var err error
		c.Reply, err = resp.ReadReply(cn.r, c.Reply[:0], cn.cfg.Limits)
		if err != nil {
			cn.fail(err)
			cn.complete(c, cn.err)
			return
		}
		cn.complete(c, nil)
	}
}
