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

// client is one application connection. Its goroutine reads a batch of
// complete commands, plans each (a local reply, or calls to shards and how
// to merge their replies), runs the calls of the batch pipelined per shard,
// and writes the replies in command order.
//
// Between batches an idle client holds no read or write buffer: it waits
// for the socket to become readable first (waitReadable) and takes pooled
// buffers only then.
type client struct {
	lastActive time.Time // end of the last batch; kept only with IdleTimeout
	s          *Server
	nc         net.Conn
	id         int64

	br           *bufio.Reader // nil while idle
	cmd          resp.Command
	readDeadline time.Time // zero: none set

	wmu           sync.Mutex // guards writes to nc: pub/sub pushes come from other goroutines
	writeDeadline time.Time  // under wmu

	// Session state.
	db        int
	bk        []*pool.Backend // backends of db
	authed    bool
	name      string
	libName   string
	libVer    string
	closeNow  bool         // QUIT or a fatal error: close after this batch
	admin     bool         // authenticated as AdminUser: may replicate
	replShard int          // REPLCONF rof-shard, -1 before
	replLevel int          // REPLCONF rof-compress gzip level, 0 for none
	repl      *replRequest // PSYNC/SYNC to relay after the batch
	tx        *txState
	watching  *dedicated // the connection WATCH pinned the client to, or nil
	// CLIENT REPLY: replies withheld while replyOff, and for the next
	// skipReplies commands; silentFrom is the first op of the command
	// being planned when it is silent, else -1.
	replyOff    bool
	skipReplies int
	silentFrom  int
	sub         *subState

	// The batch being planned.
	ops     []op
	calls   []*pool.Call // pooled; calls[:ncalls] belong to this batch
	callsh  []int        // shard of each call
	callbk  []*pool.Backend
	callrd  []readTarget // reads that may go to a replica, with Config.ReadFrom
	ncalls  int
	ran     int    // calls[:ran] have been sent
	local   []byte // local replies, spans in ops
	ords    []int  // MGET key ordinals, spans in ops
	keys    []int  // scratch for key positions
	groups  []group
	bt      pool.Batch // reused by every run
	scratch [][]byte

	// The command being planned, while Config.Observer is set: its name
	// and start go to the first op it adds, ops[mark].
	cur  op
	mark int
}

// readTarget marks a read planned with Config.ReadFrom: node is the
// replica it went to, nil for the primary; retried says it already failed
// once.
type readTarget struct {
	read    bool
	retried bool
	node    *rnode
}

type group struct {
	bk    *pool.Backend
	calls []*pool.Call
}

func newClient(s *Server, nc net.Conn) *client {
	c := &client{s: s, nc: nc, id: s.nextID.Add(1), lastActive: time.Now(), replShard: -1, silentFrom: -1}
	c.authed = s.cfg.Password == ""
	c.bk = s.pools.db(0)
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
	c.ops = c.ops[:0]
	c.ncalls, c.ran = 0, 0
	c.local = c.local[:0]
	c.ords = c.ords[:0]
	lim := c.s.cfg.Limits
	size := 0
	for {
		if err := resp.ReadCommand(c.br, &c.cmd, lim); err != nil {
			var pe *resp.ProtocolError
			if errors.As(err, &pe) {
				// Answer what came before, then the error, then close.
				c.flush()
				c.write(resp.AppendError(nil, "ERR Protocol error: "+pe.Msg))
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
			c.s.commands.Add(1)
			c.silentFrom = -1
			if c.replyOff || c.skipReplies > 0 {
				c.silentFrom = len(c.ops)
				c.skipReplies = max(c.skipReplies-1, 0)
			}
			if c.s.cfg.Observer != nil {
				c.begin(c.cmd.Args)
				c.plan(c.cmd.Args)
				c.tag()
			} else {
				c.plan(c.cmd.Args)
			}
			c.silence()
		}
		if c.closeNow || len(c.ops) >= maxBatchOps || size >= maxBatchBytes ||
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

// silence marks the ops of the command being planned as not to be
// written, when CLIENT REPLY says so.
func (c *client) silence() {
	if c.silentFrom < 0 {
		return
	}
	for i := c.silentFrom; i < len(c.ops); i++ {
		c.ops[i].silent = true
	}
	c.silentFrom = -1
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

// begin notes the command about to be planned, for the Observer. The
// name is the table's own string: reporting it allocates nothing.
func (c *client) begin(args [][]byte) {
	c.cur.name = "other"
	if cmd := c.s.cfg.Table.Lookup(args[:1]); cmd != nil {
		c.cur.name = cmd.Name
	}
	c.cur.start = time.Now()
	c.mark = len(c.ops)
}

// tag marks the first op the command being planned added (if it was not
// flushed already) as the one to report.
func (c *client) tag() {
	if c.cur.name != "" && c.mark < len(c.ops) {
		c.ops[c.mark].name, c.ops[c.mark].start = c.cur.name, c.cur.start
	}
	c.cur.name = ""
}

// flushLocked is flush with wmu held.
func (c *client) flushLocked() {
	c.run()
	if c.silentFrom >= 0 {
		c.silence()
		c.silentFrom = 0 // the silent command's later ops, if any
	}
	ob := outPool.Get().(*[]byte)
	out := (*ob)[:0]
	obs := c.s.cfg.Observer
	if obs != nil {
		c.tag() // a command flushing the batch itself (SUBSCRIBE…)
	}
	for i := range c.ops {
		o := &c.ops[i]
		if o.silent {
			continue
		}
		n := len(out)
		out = c.reply(out, o)
		if obs != nil {
			o.failed = len(out) > n && out[n] == resp.TypeError
		}
	}
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
	c.ops = c.ops[:0]
	c.mark = 0
	c.ncalls, c.ran = 0, 0
	c.local = c.local[:0]
	c.ords = c.ords[:0]
}

// observe reports the batch's tagged commands, their replies queued at
// now, and untags them.
func (c *client) observe(obs Observer, now time.Time) {
	for i := range c.ops {
		o := &c.ops[i]
		if o.name != "" {
			obs.Command(o.name, now.Sub(o.start), o.failed)
			o.name = ""
		}
	}
}

// write sends b to the client. A failed or late write closes the client.
func (c *client) write(b []byte) {
	c.wmu.Lock()
	c.writeLocked(b)
	c.wmu.Unlock()
}

func (c *client) writeLocked(b []byte) {
	if len(b) == 0 {
		return
	}
	c.armWrite()
	if _, err := c.nc.Write(b); err != nil {
		c.closeNow = true
		c.nc.Close()
	}
}

// armWrite keeps a write deadline at least Timeout/2 ahead without paying
// for a deadline update on every write. Call with wmu held.
func (c *client) armWrite() {
	if now := time.Now(); c.writeDeadline.Sub(now) < c.s.cfg.Timeout/2 {
		c.writeDeadline = now.Add(c.s.cfg.Timeout)
		_ = c.nc.SetWriteDeadline(c.writeDeadline)
	}
}

// run sends every planned call not yet sent, pipelined per backend, the
// backends in parallel, and waits for all replies.
func (c *client) run() {
	if c.ran == c.ncalls {
		return
	}
	from := c.ran
	c.runCalls(from)
	if c.s.rep != nil {
		c.retryReads(from)
	}
}

// retryReads sends each read among calls[from:] that failed (no reply: its
// node died, stalled or was closed) once more, to another node of its
// shard: reads are idempotent, so the client sees no error. The failed
// node leaves rotation until its next good check.
func (c *client) retryReads(from int) {
	again := false
	for i := from; i < c.ncalls; i++ {
		rd := &c.callrd[i]
		if !rd.read || rd.retried || c.calls[i].Err == nil || c.s.ctx.Err() != nil || overLimit(c.calls[i].Err) {
			continue
		}
		rd.retried = true
		failed := rd.node
		sn := c.s.rep.shards[c.callsh[i]]
		if failed != nil {
			failed.down()
		} else if !sn.primaryDown.Swap(true) {
			sn.primaryErrs.Add(1)
		}
		rd.node = c.s.rep.pick(c.callsh[i], failed, failed == nil)
		if rd.node == nil {
			if failed == nil {
				continue // the primary failed and no replica is in rotation
			}
			c.callbk[i] = c.bk[c.callsh[i]]
			sn.primaryRead.Add(1)
		} else {
			c.callbk[i] = rd.node.backend(c.db)
			rd.node.reads.Add(1)
		}
		again = true
	}
	if !again {
		return
	}
	// Only the retried calls go out: the others keep their replies.
	c.groups = c.groups[:0]
	for i := from; i < c.ncalls; i++ {
		rd := c.callrd[i]
		if rd.retried && c.calls[i].Err != nil {
			c.addToGroup(i)
		}
	}
	c.sendGroups()
}

// overLimit tells a reply over the proxy's reply limits, read whole and
// dropped: the node is fine and any other would answer the same.
func overLimit(err error) bool {
	var le *resp.LimitError
	return errors.As(err, &le)
}

// runCalls sends calls[from:], pipelined per backend, the backends in
// parallel, and waits for all replies.
func (c *client) runCalls(from int) {
	c.groups = c.groups[:0]
	for i := from; i < c.ncalls; i++ {
		c.addToGroup(i)
	}
	c.ran = c.ncalls
	c.sendGroups()
}

func (c *client) addToGroup(i int) {
	bk := c.callbk[i]
	for g := range c.groups {
		if c.groups[g].bk == bk {
			c.groups[g].calls = append(c.groups[g].calls, c.calls[i])
			return
		}
	}
	var calls []*pool.Call
	if g := len(c.groups); g < cap(c.groups) {
		calls = c.groups[:g+1][g].calls[:0]
	}
	c.groups = append(c.groups, group{bk: bk, calls: append(calls, c.calls[i])})
}

func (c *client) sendGroups() {
	// Every shard's block is queued before waiting on any, so the shards
	// work in parallel without a goroutine per shard, and the writes are
	// left to Wait, so other clients' calls can join them.
	for g := range c.groups {
		c.bt.Add(c.s.ctx, c.groups[g].bk, c.groups[g].calls)
	}
	c.bt.Wait()
}

// readCall is call for a read that may go to a replica of shard (see
// Config.ReadFrom); without replicas configured it is call.
func (c *client) readCall(shard int) *pool.Call {
	cl := c.call(c.bk, shard)
	if c.s.rep == nil || c.watching != nil {
		return cl
	}
	i := c.ncalls - 1
	n := c.s.rep.pick(shard, nil, false)
	c.callrd[i] = readTarget{read: true, node: n}
	if n != nil {
		c.callbk[i] = n.backend(c.db)
		n.reads.Add(1)
	} else {
		c.s.rep.shards[shard].primaryRead.Add(1)
	}
	return cl
}

// call adds a call for shard to the batch and returns it; its Req is
// empty and ready to append to.
func (c *client) call(bk []*pool.Backend, shard int) *pool.Call {
	if c.ncalls == len(c.calls) {
		c.calls = append(c.calls, &pool.Call{})
		c.callsh = append(c.callsh, 0)
		c.callbk = append(c.callbk, nil)
		c.callrd = append(c.callrd, readTarget{})
	}
	cl := c.calls[c.ncalls]
	cl.Req = cl.Req[:0]
	c.callsh[c.ncalls] = shard
	c.callbk[c.ncalls] = bk[shard]
	c.callrd[c.ncalls] = readTarget{}
	c.ncalls++
	return cl
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
