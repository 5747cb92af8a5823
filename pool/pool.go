package pool

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/resp"
)

// Config describes one destination shard. Zero fields take the
// documented defaults.
type Config struct {
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

	// Observer, when set, is told about every write batch and about the
	// shard going up or down; nil reports nothing and costs nothing.
	Observer Observer
	// Shard is the shard's index, passed to Observer as its label.
	Shard int

	// Down, when set, is called after every failed dial and every
	// connection failure (not after Close), without waiting for it: a
	// cluster destination re-reads its topology then. It must not block.
	Down func()
	// Fail, when set, makes every call fail with it at once, without a
	// connection: a backend that must not be used (a database a Redis
	// Cluster does not have) still answers clearly.
	Fail error
}

// Observer receives a Backend's health and pipelining events. Methods are
// called concurrently from callers' and connection goroutines, and must
// neither block nor call back into the Backend.
type Observer interface {
	// Pipeline reports one write to the shard: calls is the number of
	// calls it carried (one flush of the connection's buffered writer,
	// from one caller or several), d the time from the start of the write
	// to the reply of its last call, and failed whether the connection
	// failed before that reply arrived (d then runs to the failure). Error
	// replies are replies: they do not fail a batch.
	Pipeline(shard, calls int, d time.Duration, failed bool)
	// ShardUp reports a transition of the backend's view of the shard: up
	// after a successful dial, down after a failed dial or a connection
	// failure (not after Close). Each Backend reports its own
	// transitions; several backends of one shard may interleave.
	ShardUp(shard int, up bool)
}

func (c Config) withDefaults() Config {
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

// Errors a Backend returns. ErrShardDown is retried (errclass.Retry).
var (
	ErrShardDown = errclass.New(errclass.Retry, "pool: shard is down")
	ErrClosed    = errors.New("pool: backend closed")
)

// Call is one request and its reply. Req holds exactly one raw RESP
// command; Reply receives the raw reply (appended to Reply[:0], so a Call
// can be reused); Err is set instead when the call failed (a reply that is
// a Redis error is a Reply, not an Err).
type Call struct {
	Req   []byte
	Reply []byte
	Err   error

	batch *Batch
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
	cfg   Config
	lanes []*lane
	next  atomic.Uint32

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	up atomic.Int32 // last state told to Observer: 0 unknown, 1 up, 2 down
}

// setUp tells the observer about a transition of the shard's health.
func (b *Backend) setUp(up bool) {
	o := b.cfg.Observer
	if o == nil {
		return
	}
	v := int32(2)
	if up {
		v = 1
	}
	if b.up.Swap(v) != v {
		o.ShardUp(b.cfg.Shard, up)
	}
}

// NewBackend returns a pool for one shard. It connects lazily.
func NewBackend(cfg Config) *Backend {
	cfg = cfg.withDefaults()
	b := &Backend{cfg: cfg, lanes: make([]*lane, cfg.Conns)}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	for i := range b.lanes {
		b.lanes[i] = &lane{}
	}
	return b
}

// Addr is the shard's address.
func (b *Backend) Addr() string { return b.cfg.Addr }

// Config is the backend's configuration, defaults filled in: for a caller
// that opens connections of its own to the same node the same way (the
// proxy's event loops, each with its own pipelined connection).
func (b *Backend) Config() Config { return b.cfg }

// Close fails calls in flight with ErrClosed and waits for the connection
// goroutines to end.
func (b *Backend) Close() error {
	b.cancel()
	for _, s := range b.lanes {
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

// Pipeline sends every call on one connection, as one contiguous block
// that no other caller's command can split (so MULTI…EXEC stays intact),
// and returns when each has its reply or error. ctx bounds the wait for a
// connection and for room in the pipeline; once sent, a call is bounded by
// the read timeout.
func (b *Backend) Pipeline(ctx context.Context, calls []*Call) {
	bt := batchPool.Get().(*Batch)
	bt.Add(ctx, b, calls)
	bt.Wait()
	for _, c := range calls {
		c.batch = nil
	}
	batchPool.Put(bt)
}

// batchPool holds Batches for Pipeline. Once Wait has returned nothing
// touches a Batch any more, so it can be reused at once.
var batchPool = sync.Pool{New: func() any { return new(Batch) }}

// Batch gathers blocks of calls, on one backend or several, and waits for
// all of them at once, so one caller can have blocks in flight on several
// shards without a goroutine per shard:
//
//	var bt pool.Batch // or one kept by the caller: it is reusable
//	bt.Add(ctx, shard1, calls1)
//	bt.Add(ctx, shard2, calls2)
//	bt.Wait()
//
// Add queues a block; the write to the shard may be left to Wait, so
// blocks added together by one caller and blocks of other callers share
// writes. Every Add must therefore be followed by a Wait, from the same
// goroutine, before the Batch is added to again; the calls must not be
// touched until Wait returns. The zero Batch is ready to use.
type Batch struct {
	// left counts unanswered calls plus one while the batch is open
	// (between its first Add and its Wait), so it cannot reach zero
	// before Wait.
	left atomic.Int32
	open bool
	done chan struct{} // one token when left reaches zero
	owed []*conn       // connections whose pending calls this caller writes
}

// Add queues calls on b as one contiguous block (see Pipeline).
func (bt *Batch) Add(ctx context.Context, b *Backend, calls []*Call) {
	if len(calls) == 0 {
		return
	}
	if !bt.open {
		if bt.done == nil {
			bt.done = make(chan struct{}, 1)
		}
		bt.open = true
		bt.left.Store(1)
	}
	bt.left.Add(int32(len(calls)))
	for _, c := range calls {
		c.batch = bt
		c.Err = nil
		c.Reply = c.Reply[:0]
	}
	s := b.lanes[int(b.next.Add(1))%len(b.lanes)]
	cn, err := b.conn(ctx, s)
	if err != nil {
		for _, c := range calls {
			c.Err = err
			bt.finish()
		}
		return
	}
	if cn.enqueue(ctx, bt, calls) {
		bt.owed = append(bt.owed, cn)
	}
}

// Wait writes what the batch owes, then blocks until every call added
// since the last Wait has its reply or error.
func (bt *Batch) Wait() {
	if bt == nil || !bt.open {
		return
	}
	bt.flushOwed()
	bt.open = false
	if bt.left.Add(-1) != 0 {
		<-bt.done
	}
}

// flushOwed writes the pending calls of every connection this caller
// became the flusher of. A caller must not block on another connection
// while it owes a flush: the callers waiting on this one could be the ones
// it waits for.
func (bt *Batch) flushOwed() {
	for i, cn := range bt.owed {
		cn.flush()
		bt.owed[i] = nil
	}
	bt.owed = bt.owed[:0]
}

func (bt *Batch) finish() {
	if bt.left.Add(-1) == 0 {
		bt.done <- struct{}{}
	}
}

// Start is Pipeline without the wait: it queues the calls in a new Batch
// and returns it. Wait must be called, from the same goroutine; Batch.Add
// on a Batch of the caller's own does the same without an allocation.
func (b *Backend) Start(ctx context.Context, calls []*Call) *Batch {
	bt := new(Batch)
	bt.Add(ctx, b, calls)
	return bt
}

// lane holds the current connection of one pool position.
type lane struct {
	mu       sync.Mutex
	conn     *conn
	downErr  error     // why the last dial failed
	downTill time.Time // fail fast until then
	backoff  time.Duration
}

func (b *Backend) conn(ctx context.Context, s *lane) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if b.cfg.Fail != nil {
		return nil, b.cfg.Fail
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
		if b.ctx.Err() == nil {
			b.setUp(false)
			if b.cfg.Down != nil {
				b.cfg.Down()
			}
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrShardDown, b.cfg.Addr, err)
	}
	s.downErr, s.backoff = nil, 0
	s.conn = cn
	b.setUp(true)
	return cn, nil
}

func (b *Backend) dial(ctx context.Context) (*conn, error) {
	nc, br, err := dial(ctx, &b.cfg, 64<<10)
	if err != nil {
		return nil, err
	}
	cn := &conn{
		nc:   nc,
		r:    br,
		w:    bufio.NewWriterSize(nc, 64<<10),
		cfg:  &b.cfg,
		b:    b,
		room: make(chan struct{}, b.cfg.MaxInflight),
		dead: make(chan struct{}),
	}
	b.wg.Add(1)
	go func() { defer b.wg.Done(); cn.readLoop() }()
	return cn, nil
}

// Dial opens a dedicated connection to cfg.Addr, for one caller that
// needs a connection of its own (pub/sub, a replication relay, a blocking
// command, WATCH … EXEC): it dials with cfg.Dial within cfg.DialTimeout,
// sends cfg.Init and reads its replies within cfg.ReadTimeout, and fails
// with an *InitError when one is an error reply. Zero fields of cfg take
// the defaults of Config. The returned reader (bufSize bytes) may already
// hold what the server sent after the Init replies.
func Dial(ctx context.Context, cfg Config, bufSize int) (net.Conn, *bufio.Reader, error) {
	cfg = cfg.withDefaults()
	return dial(ctx, &cfg, bufSize)
}

// InitError is Dial's error when the server refused an Init command.
type InitError struct {
	Addr    string
	Command string     // the refused command's name, as sent
	Reply   resp.Error // the error reply without its '-' and CRLF
}

// Unwrap gives the refusing reply, so errors.As finds its resp.Error.
func (e *InitError) Unwrap() error { return e.Reply }

func (e *InitError) Error() string {
	return fmt.Sprintf("pool: %s refused %q: %s", e.Addr, e.Command, e.Reply)
}

func dial(ctx context.Context, cfg *Config, bufSize int) (net.Conn, *bufio.Reader, error) {
	if cfg.Fail != nil {
		return nil, nil, cfg.Fail
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	nc, err := cfg.Dial(dctx, cfg.Network, cfg.Addr)
	if err != nil {
		return nil, nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	br := bufio.NewReaderSize(nc, bufSize)
	if len(cfg.Init) > 0 {
		if err := handshake(nc, br, cfg); err != nil {
			nc.Close()
			return nil, nil, err
		}
	}
	return nc, br, nil
}

// conn is one pipelined connection. Callers append their calls to pending
// as one block; the first caller to find no flush in progress becomes the
// flusher and writes everything pending (its own and others') until none is
// left, so a lone caller writes without a goroutine hand-off and busy
// callers share writes. The reader waits for the socket to have data
// first and only then takes the calls written so far from inflight, so a
// caller queuing calls never has to wake it: the reply does.
type conn struct {
	nc  net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	cfg *Config
	b   *Backend

	room chan struct{} // a token per queued or inflight call: bounds both

	order sync.Mutex // held while one caller's block is being queued

	mu       sync.Mutex
	pending  []*Call
	spare    []*Call
	inflight []*Call // written (or being written), awaiting a reply, in order
	// writes are the writes of inflight's calls, in order; kept only when
	// cfg.Observer is set.
	writes []write
	// rdeadline is when the read deadline was last set, zero when none
	// is set: it is set only while calls are in flight, so an idle
	// connection never times out.
	rdeadline time.Time
	flushing  bool          // a caller is writing pending calls
	wdeadline time.Time     // when the write deadline was last set; flusher only
	err       error         // set once, under mu, when the conn fails
	dead      chan struct{} // closed with err
}

func (cn *conn) isDead() bool {
	select {
	case <-cn.dead:
		return true
	default:
		return false
	}
}

// handshake sends cfg.Init on a new connection and checks that none of
// its commands was refused.
func handshake(nc net.Conn, br *bufio.Reader, cfg *Config) error {
	_ = nc.SetDeadline(time.Now().Add(cfg.ReadTimeout))
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write(cfg.Init); err != nil {
		return err
	}
	cmds := bufio.NewReader(bytes.NewReader(cfg.Init))
	var reply []byte
	for {
		var cmd resp.Command
		if err := resp.ReadCommand(cmds, &cmd, resp.Limits{}); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("pool: bad init command: %w", err)
		}
		var err error
		if reply, err = resp.ReadReply(br, reply[:0], cfg.Limits); err != nil {
			return err
		}
		if len(reply) > 0 && reply[0] == resp.TypeError {
			return &InitError{Addr: cfg.Addr, Command: string(cmd.Name()), Reply: resp.Error(bytes.TrimRight(reply[1:], "\r\n"))}
		}
	}
}

// enqueue queues calls as one contiguous block and reports whether the
// caller became the connection's flusher: then it must call flush (Batch
// does, in Wait), and meanwhile other callers' calls join the same write.
// A block larger than MaxInflight is queued in parts, written as they are
// queued while other callers wait, so it still reaches the wire unsplit.
// If the block cannot be queued whole, the calls not queued fail and, when
// part of it was queued, the connection is failed too: a half-sent MULTI
// must not swallow other callers' commands. Before blocking, the caller
// writes what it owes on other connections.
func (cn *conn) enqueue(ctx context.Context, bt *Batch, calls []*Call) bool {
	if !cn.order.TryLock() {
		bt.flushOwed()
		cn.order.Lock()
	}
	queued := 0
	var err error
	for queued < len(calls) && err == nil {
		n := min(len(calls)-queued, cap(cn.room))
		got := 0
		for got < n && err == nil {
			select {
			case cn.room <- struct{}{}:
				got++
				continue
			default:
			}
			bt.flushOwed()
			select {
			case cn.room <- struct{}{}:
				got++
			case <-cn.dead:
				err = cn.deadErr()
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		cn.mu.Lock()
		if err == nil && cn.err != nil {
			err = cn.err
		}
		if err != nil {
			cn.mu.Unlock()
			for ; got > 0; got-- {
				<-cn.room
			}
			break
		}
		cn.pending = append(cn.pending, calls[queued:queued+n]...)
		queued += n
		lead := !cn.flushing
		cn.flushing = true
		cn.mu.Unlock()
		if lead && queued < len(calls) {
			// Make room for the rest of this block by writing what is queued.
			cn.flush()
		} else if lead {
			cn.order.Unlock()
			return true
		}
	}
	cn.order.Unlock()
	if err != nil {
		for _, c := range calls[queued:] {
			c.Err = err
			c.batch.finish()
		}
		if queued > 0 {
			cn.fail(err)
		}
	}
	return false
}

func (cn *conn) deadErr() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}

// flush writes pending calls until none is left. Only the caller that set
// flushing runs it.
func (cn *conn) flush() {
	for {
		// Let callers that are runnable now queue their calls first, so
		// one write carries them all: a write to a socket costs far more
		// than a yield.
		runtime.Gosched()
		cn.mu.Lock()
		calls := cn.pending
		if len(calls) == 0 || cn.err != nil {
			cn.flushing = false
			cn.mu.Unlock()
			return
		}
		cn.pending = cn.spare[:0]
		// Queue for the reader before writing: a reply can arrive before
		// the write returns. Keep the read deadline at least 7/8 of
		// ReadTimeout ahead of the newest call without paying for an
		// update on every batch.
		cn.inflight = append(cn.inflight, calls...)
		now := time.Now()
		if cn.cfg.Observer != nil {
			cn.writes = append(cn.writes, write{calls: len(calls), at: now})
		}
		if now.Sub(cn.rdeadline) > cn.cfg.ReadTimeout/8 {
			_ = cn.nc.SetReadDeadline(now.Add(cn.cfg.ReadTimeout))
			cn.rdeadline = now
		}
		cn.mu.Unlock()
		// The same for the write deadline; only the flusher writes.
		if now.Sub(cn.wdeadline) > cn.cfg.WriteTimeout/8 {
			_ = cn.nc.SetWriteDeadline(now.Add(cn.cfg.WriteTimeout))
			cn.wdeadline = now
		}
		var err error
		for _, c := range calls {
			if _, err = cn.w.Write(c.Req); err != nil {
				break
			}
		}
		if err == nil {
			err = cn.w.Flush()
		}
		clear(calls)
		cn.mu.Lock()
		cn.spare = calls[:0]
		cn.mu.Unlock()
		if err != nil {
			cn.fail(err)
		}
	}
}

// write is one flush of pending calls, reported to the Observer when its
// last call is answered.
type write struct {
	calls int
	at    time.Time
}

// observe reports writes whose calls are answered (failed: or failed).
func (cn *conn) observe(ws []write, failed bool) {
	now := time.Now()
	for _, w := range ws {
		cn.cfg.Observer.Pipeline(cn.cfg.Shard, w.calls, now.Sub(w.at), failed)
	}
}

// complete hands a call back to its Pipeline.
func (cn *conn) complete(c *Call, err error) {
	if err != nil {
		c.Err = err
	}
	<-cn.room
	c.batch.finish()
}

// fail marks the conn dead once, closes the socket (which stops the
// reader) and fails every call queued and every call in flight the reader
// has not taken yet.
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
	pending, inflight, writes := cn.pending, cn.inflight, cn.writes
	cn.pending, cn.inflight, cn.writes = nil, nil, nil
	cn.mu.Unlock()
	cn.nc.Close()
	if cn.cfg.Observer != nil {
		cn.observe(writes, true)
		if !errors.Is(err, ErrClosed) && cn.b.ctx.Err() == nil {
			cn.b.setUp(false)
		}
	}
	if cn.cfg.Down != nil && !errors.Is(err, ErrClosed) && cn.b.ctx.Err() == nil {
		cn.cfg.Down()
	}
	for _, c := range inflight {
		cn.complete(c, cn.err)
	}
	for _, c := range pending {
		cn.complete(c, cn.err)
	}
}

// errUnexpectedReply means a shard sent data no call was waiting for.
var errUnexpectedReply = errors.New("pool: reply without a request")

func (cn *conn) readLoop() {
	var taken []*Call // calls taken from inflight, answered in order
	var ws []write    // their writes, when observed
	obs := cn.cfg.Observer != nil
	for {
		if cn.r.Buffered() == 0 {
			if _, err := cn.r.Peek(1); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && cn.idleTimeout() {
					continue
				}
				cn.fail(err)
				return
			}
		}
		cn.mu.Lock()
		if cn.err != nil {
			cn.mu.Unlock()
			return
		}
		if len(cn.inflight) == 0 {
			cn.mu.Unlock()
			cn.fail(errUnexpectedReply)
			return
		}
		taken, cn.inflight = cn.inflight, taken[:0]
		if obs {
			ws, cn.writes = cn.writes, ws[:0]
		}
		cn.mu.Unlock()
		w, left := 0, 0 // ws[w] is the write being answered, left calls of it to go
		if len(ws) > 0 {
			left = ws[0].calls
		}
		for i, c := range taken {
			var err error
			c.Reply, err = resp.ReadReply(cn.r, c.Reply[:0], cn.cfg.Limits)
			if _, over := err.(*resp.LimitError); over {
				// Read whole and dropped: the connection is in sync, so
				// only this call fails, not the others sharing it.
				c.Reply = c.Reply[:0]
			} else if err != nil {
				cn.fail(err)
				for _, c := range taken[i:] {
					cn.complete(c, cn.deadErr())
				}
				if obs && w < len(ws) {
					cn.observe(ws[w:], true)
				}
				return
			}
			cn.complete(c, err)
			if left--; obs && left == 0 && w < len(ws) {
				cn.observe(ws[w:w+1], false)
				if w++; w < len(ws) {
					left = ws[w].calls
				}
			}
		}
		clear(taken)
		taken = taken[:0]
		ws = ws[:0]
	}
}

// idleTimeout handles a read deadline that passed while waiting for data:
// true when no call is in flight (the deadline is cleared and the reader
// waits on) or when the deadline has been moved since (a call was queued
// just as it passed), false when a call waited too long for its reply.
func (cn *conn) idleTimeout() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.err != nil {
		return false
	}
	if len(cn.inflight) > 0 {
		return time.Now().Before(cn.rdeadline.Add(cn.cfg.ReadTimeout))
	}
	_ = cn.nc.SetReadDeadline(time.Time{})
	cn.rdeadline = time.Time{}
	return true
}
