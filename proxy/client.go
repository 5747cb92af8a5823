package proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/tidwall/redcon"
)

// Batch bounds: a pipeline is forwarded in slices of at most this many
// commands or request bytes, so one client's burst cannot hold unbounded
// replies in memory.
const (
	maxBatchOps   = 1024
	maxBatchBytes = 4 << 20
	readBufSize   = 16 << 10
	keepBufCap    = 64 << 10 // larger buffers are dropped after a batch
)

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}
	outPool    = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}
)

// client is one application connection, driven by its own goroutine
// (serve): it reads a batch of complete commands, has its session plan
// each one (a local reply, shard calls and how to merge their replies, or
// a continuation for a multi-step command), has its executor run the
// batch's calls pipelined per shard, and writes the replies in command
// order.
//
// Between batches an idle client holds no read or write buffer: it waits
// for the socket to become readable first (waitReadable) and takes pooled
// buffers only then.
type client struct {
	lastActive time.Time // end of the last batch; kept only with IdleTimeout
	nc         net.Conn

	br           *bufio.Reader // nil while idle
	cmd          resp.Command
	readDeadline time.Time // zero: none set
	perReply     int64     // expected bytes per reply, 0 before the first batch (pending.go)

	wmu           sync.Mutex // guards writes to nc: pub/sub pushes come from other goroutines
	writeDeadline time.Time  // under wmu

	session
	ex executor

	// Served by an event loop (loop.go): its state there, and the
	// connection's addresses (the loop holds the socket, not a net.Conn).
	// Both stay after the loop hands the client over to a goroutine.
	ls           *loopState
	raddr, laddr net.Addr
}

// readTarget marks a read planned with Config.ReadFrom: node is the
// replica it went to, nil for the primary; retried says it already failed
// once.
type readTarget struct {
	read    bool
	retried bool
	node    *rnode
	db      int           // the database it reads
	primary *pool.Backend // the shard's primary for db
}

func newClient(s *Server, nc net.Conn) *client {
	c := &client{nc: nc, lastActive: time.Now()}
	c.session.init(s, c, s.nextID.Add(1))
	c.ex.ctx, c.ex.srv = s.ctx, s
	return c
}

func (c *client) serve() {
	defer c.close()
	if c.s.cfg.TLS != nil && c.s.cfg.TLSReplicationOnly {
		// A TLS client starts with a handshake record (0x16); a Redis
		// command never does. Peeked, not read: the socket keeps it.
		b, err := peekByte(c.nc)
		if err != nil {
			return
		}
		if b == tlsHandshakeRecord {
			c.nc = tls.Server(c.nc, c.s.cfg.TLS)
		}
	}
	if tc, ok := c.nc.(*tls.Conn); ok {
		if err := c.handshake(tc); err != nil {
			c.s.log.Debug("proxy: TLS handshake", "client", c.id, "remote", c.nc.RemoteAddr(), "err", err)
			return
		}
		// Start hot: records that came with the handshake's last flight
		// sit in the TLS layer, where waitReadable cannot see them.
		c.br = readerPool.Get().(*bufio.Reader)
		c.br.Reset(c.nc)
	}
	c.serveLoop()
}

// serveLoop serves batches until the client leaves, then relays
// replication if it asked for it.
func (c *client) serveLoop() {
	for !c.closeNow {
		switch {
		case c.br == nil:
			// Cold: wait without a buffer. For TLS, only reached after a
			// read timed out, so the TLS layer holds no plaintext and at
			// most part of a record: the socket is what to watch.
			if it := c.s.cfg.IdleTimeout; it > 0 && c.sub == nil {
				left := it - time.Since(c.lastActive)
				if left <= 0 {
					return // idle too long: close it, like Redis' timeout
				}
				_ = c.nc.SetReadDeadline(time.Now().Add(left))
			}
			if err := waitReadable(c.nc); err != nil {
				return // a deadline here is the idle timeout
			}
			if c.s.cfg.IdleTimeout > 0 && c.sub == nil {
				c.clearReadDeadline()
			}
			c.br = readerPool.Get().(*bufio.Reader)
			c.br.Reset(c.nc)
		case c.br.Buffered() == 0:
			// Hot: wait with the buffer, for up to idleAfter; the deadline
			// is moved only when half of it is used up, not per batch. A
			// timeout is not fatal to a *tls.Conn: it keeps what it read.
			idleAfter := c.s.cfg.idleAfter
			if it := c.s.cfg.IdleTimeout; it > 0 && it < idleAfter {
				idleAfter = it
			}
			if now := time.Now(); c.readDeadline.Sub(now) < idleAfter/2 {
				c.readDeadline = now.Add(idleAfter)
				_ = c.nc.SetReadDeadline(c.readDeadline)
			}
			if _, err := c.br.Peek(1); err != nil {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					return
				}
				c.clearReadDeadline()
				if it := c.s.cfg.IdleTimeout; it > 0 && c.sub == nil && time.Since(c.lastActive) >= it {
					return
				}
				c.idle()
				c.s.idled.Add(1)
				continue
			}
		}
		// The first command of a batch may need more reads: those must not
		// time out.
		if !c.readDeadline.IsZero() && !complete(c.peek(), c.s.cfg.Limits) {
			c.clearReadDeadline()
		}
		if err := c.batch(); err != nil {
			return
		}
		if c.s.cfg.IdleTimeout > 0 {
			c.lastActive = time.Now()
		}
	}
	if c.repl != nil {
		c.relay(c.repl) // PSYNC from an admin client: the connection is a relay now
	}
}

// defaultIdleAfter is how long a client waits for its next command
// holding its read buffer before it gives the buffer back.
const defaultIdleAfter = 2 * time.Second

// handshake runs the TLS handshake within Timeout, so a client that never
// completes it holds its goroutine no longer; Serve's end cancels it too.
func (c *client) handshake(tc *tls.Conn) error {
	_ = tc.SetDeadline(time.Now().Add(c.s.cfg.Timeout))
	if err := tc.HandshakeContext(c.s.ctx); err != nil {
		return err
	}
	return tc.SetDeadline(time.Time{})
}

func (c *client) clearReadDeadline() {
	_ = c.nc.SetReadDeadline(time.Time{})
	c.readDeadline = time.Time{}
}

// idle returns the buffers a waiting client does not need.
func (c *client) idle() {
	if c.br != nil {
		c.br.Reset(nil)
		readerPool.Put(c.br)
		c.br = nil
	}
	if cap(c.cmd.Buf) > keepBufCap {
		c.cmd.Buf = nil
	}
	if cap(c.cmd.Args) > 1024 {
		c.cmd.Args = nil
	}
	if cap(c.local) > keepBufCap {
		c.local = nil
	}
	for _, call := range c.calls {
		if cap(call.Reply) > keepBufCap {
			call.Reply = nil
		}
		if cap(call.Req) > keepBufCap {
			call.Req = nil
		}
	}
	if len(c.calls) > 64 {
		c.calls = c.calls[:64]
	}
}

// batch reads one command (waiting for it), then every further complete
// command already buffered, and answers them all.
func (c *client) batch() error {
	c.batchPlan.reset()
	lim := c.s.cfg.Limits
	size := 0
	for {
		if err := resp.ReadCommand(c.br, &c.cmd, lim); err != nil {
			var pe *resp.ProtocolError
			if errors.As(err, &pe) {
				// Answer what came before, then the error, then close.
				c.flush()
				c.write(redcon.AppendError(nil, "ERR Protocol error: "+pe.Msg))
				c.s.log.Debug("proxy: protocol error", "client", c.id, "err", err)
				return err
			}
			if len(c.ops) > 0 {
				c.flush()
			}
			return err
		}
		size += c.cmd.Size
		if len(c.cmd.Args) > 0 {
			c.command(c.cmd.Args)
		}
		if c.closeNow || len(c.ops) >= maxBatchOps || size >= maxBatchBytes || c.batchFull() ||
			c.br.Buffered() == 0 || !complete(c.peek(), lim) {
			break
		}
	}
	if len(c.ops) > 0 {
		c.flush()
	}
	if cap(c.cmd.Buf) > keepBufCap {
		c.cmd.Buf = nil
	}
	return nil
}

func (c *client) peek() []byte {
	b, _ := c.br.Peek(c.br.Buffered())
	return b
}

// flush runs the batch's calls, merges replies in order and writes them.
func (c *client) flush() {
	c.wmu.Lock()
	c.flushLocked()
	c.wmu.Unlock()
}

// flushLocked is flush with wmu held.
func (c *client) flushLocked() {
	c.run()
	if c.overPending() {
		c.batchPlan.reset()
		c.mark = 0
		return
	}
	ob := outPool.Get().(*[]byte)
	out := c.render((*ob)[:0])
	c.learn(len(out), len(c.ops))
	obs := c.s.cfg.Observer
	var queued time.Time
	if obs != nil {
		queued = time.Now()
	}
	c.writeLocked(out)
	if obs != nil {
		c.observe(obs, queued) // after the write: the client waits for no report
	}
	if cap(out) <= keepBufCap {
		*ob = out[:0]
		outPool.Put(ob)
	}
	c.batchPlan.reset()
	c.mark = 0
}

// write sends b to the client. A failed or late write closes the client.
func (c *client) write(b []byte) {
	c.wmu.Lock()
	c.writeLocked(b)
	c.wmu.Unlock()
}

func (c *client) writeLocked(b []byte) {
	c.writeOut(b) // pending.go
}

// armWrite keeps a write deadline at least Timeout/2 ahead without paying
// for a deadline update on every write. Call with wmu held.
func (c *client) armWrite() {
	if now := time.Now(); c.writeDeadline.Sub(now) < c.s.cfg.Timeout/2 {
		c.writeDeadline = now.Add(c.s.cfg.Timeout)
		_ = c.nc.SetWriteDeadline(c.writeDeadline)
	}
}

func (c *client) close() {
	c.nc.Close()
	if o := c.s.cfg.Observer; o != nil {
		defer o.ConnClosed()
	}
	if c.sub != nil {
		c.sub.closeAll()
	}
	c.unwatch()
	if c.br != nil {
		c.br.Reset(nil)
		readerPool.Put(c.br)
		c.br = nil
	}
	c.s.forget(c)
}

// complete reports whether b starts with a whole command, or with input
// ReadCommand will reject without reading further. It is conservative:
// false only ends the batch early.
func complete(b []byte, lim resp.Limits) bool {
	_, err := resp.CommandLen(b, lim)
	return err != resp.ErrIncomplete
}

// addrs are the client connection's addresses (driver).
func (c *client) addrs() (remote, local net.Addr) {
	if c.nc == nil {
		return c.raddr, c.laddr
	}
	return c.nc.RemoteAddr(), c.nc.LocalAddr()
}

// onTLS tells a TLS client (driver).
func (c *client) onTLS() bool {
	_, ok := c.nc.(*tls.Conn)
	return ok
}

// kill closes the client's connection (driver).
func (c *client) kill() {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.nc != nil {
		c.nc.Close()
	}
}

// run has the executor send every call planned so far and run every
// continuation.
func (c *client) run() { c.ex.runAll(&c.batchPlan, c.s.rep) }
