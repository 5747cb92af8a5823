//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replicaof/replicaof/internal/evloop"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/tidwall/redcon"
	"golang.org/x/sys/unix"
)

// The event-loop driver. Each of Config.Loops loops (internal/evloop, one
// goroutine each) owns the plain clients handed to it, round robin, and
// its own pipelined connection to every shard backend its clients use
// (shard and database, or a replica): a client's batch is read, planned,
// sent, answered and written on one goroutine, with no hand-off between
// threads. A loop pass reads each readable socket once; the shard writes
// its clients made in the pass go out as one write per shard connection
// at the end of the pass, with the replies to every client answered in
// it. The executor is the same as the goroutine driver's (exec.go): the
// loop sends each round on its connections and advances the plan when
// the round's last reply comes in, so a client waiting on a shard holds
// up nobody else.
//
// A client that needs a connection of its own or a long-lived stream —
// SUBSCRIBE and the other pub/sub commands, WATCH, a blocking command,
// SCRIPT/FUNCTION KILL, the PSYNC relay — is answered up to that command,
// then handed over (evloop's Release: the socket and the input the loop
// had buffered) to the goroutine driver, which runs the command and
// serves the client from then on.

// loops is the running loops of a Server.
type loops struct {
	s    *Server
	all  []*loop
	next atomic.Uint32
	wg   sync.WaitGroup // loop goroutines and shard dials
}

// loop is one event loop and what it owns.
type loop struct {
	s       *Server
	ls      *loops
	l       *evloop.Loop
	shards  map[*pool.Backend]*lshard
	clients []*client // clients[i].ls.idx == i
	out     []byte    // rendering scratch
}

// startLoops starts n loops; on error none is left running.
func (s *Server) startLoops(n int) (*loops, error) {
	ls := &loops{s: s}
	for range n {
		l, err := evloop.New(evloop.Config{})
		if err != nil {
			ls.stop()
			return nil, fmt.Errorf("proxy: %w", err)
		}
		lp := &loop{s: s, ls: ls, l: l, shards: make(map[*pool.Backend]*lshard)}
		ls.all = append(ls.all, lp)
		ls.wg.Add(1)
		go func() {
			defer ls.wg.Done()
			if err := l.Run(); err != nil {
				s.log.Error("proxy: event loop stopped", "err", err)
			}
		}()
		if err := l.Execute(func() {
			lp.l.After(shardIdle/2, lp.pruneShards)
			lp.tick()
		}); err != nil {
			ls.stop()
			return nil, fmt.Errorf("proxy: %w", err)
		}
	}
	return ls, nil
}

// stop stops every loop (each closes its clients and shard connections)
// and waits for them and for the dials they started.
func (ls *loops) stop() {
	for _, lp := range ls.all {
		lp.l.Stop()
	}
	ls.wg.Wait()
}

// loopsUsable tells whether clients can be served by loops: every shard
// connection must be a plain socket the loop can own (a Dial hook means
// TLS to the shards, or a custom transport).
func (s *Server) loopsUsable() bool {
	d := s.cfg.Destination
	for i := range d.Len() {
		if s.shardConfig(i, 0).Dial != nil {
			return false
		}
		for _, rc := range d.Replicas(i) {
			if rc.Dial != nil {
				return false
			}
		}
	}
	return true
}

// attach hands nc, a plain client connection already admitted as c, to a
// loop. It reports false when nc should be served on a goroutine instead
// (its socket could not be taken out of Go's poller); then nc is as it was.
func (ls *loops) attach(c *client, nc net.Conn) bool {
	c.raddr, c.laddr = nc.RemoteAddr(), nc.LocalAddr()
	fd, err := evloop.Detach(nc)
	if err != nil {
		return false
	}
	lp := ls.all[int(ls.next.Add(1))%len(ls.all)]
	c.ls = &loopState{lp: lp, idx: -1}
	c.drv = (*loopDriver)(c)
	if err := lp.l.Execute(func() { lp.attach(c, fd) }); err != nil {
		unix.Close(fd)
		c.loopGone(nil)
	}
	return true
}

// errOverPending closes a loop client over Config.MaxPendingHard (logged
// and counted by closedOverPending).
var errOverPending = errors.New("proxy: replies pending over the hard limit")

// loopState is a client's state on its loop.
type loopState struct {
	lp     *loop
	conn   *evloop.Conn
	idx    int // in lp.clients, -1 when not there
	framer resp.CommandFramer
	// framing: the framer is inside a command (resp.ErrIncomplete).
	framing   bool
	handReady bool // the batch before a hand-over is answered
	busy      bool // a batch is being run
	paused    bool // reading paused while busy
	inData    bool // in Data: input not yet handed back to the loop
	eof       bool
	dead      bool // closed, or handed over
	left      int  // calls of the round in flight without a reply yet
	last      time.Time
	// written is the connection's Written count at the last tick; stalled
	// says that tick saw replies waiting and none taken since the one
	// before, first at stallAt.
	written int64
	stalled bool
	stallAt time.Time
	// handoff is the command to run on a goroutine once the batch before
	// it is answered; protoErr the protocol error to answer last.
	handoff  func(c *client)
	protoErr string
	args     [][]byte
	cmd      resp.Command // inline commands
}

func (lp *loop) attach(c *client, fd int) {
	conn, err := lp.l.Attach(fd, (*loopClient)(c), evloop.Limits{
		// A command is bounded by the framer (Limits.MaxReply); input
		// left while a batch runs is bounded by pausing the reads.
		MaxInput:    int(min(lp.s.cfg.Limits.MaxReply+64<<10, 1<<31-1)),
		PauseOutput: int(min(lp.s.cfg.MaxPending, 1<<40)),
		// MaxPendingHard is enforced per batch (finishBatch): a single
		// reply larger than it is still delivered.
		MaxOutput: 1 << 50,
	})
	if err != nil {
		unix.Close(fd)
		c.loopGone(nil)
		return
	}
	st := c.ls
	st.conn = conn
	st.last = lp.l.Now()
	st.framer = *resp.NewCommandFramer(lp.s.cfg.Limits)
	st.idx = len(lp.clients)
	lp.clients = append(lp.clients, c)
}

// loopGone ends a loop client's life on the server: no longer counted,
// observed or listed. err is why its connection closed.
func (c *client) loopGone(err error) {
	c.loopOff()
	switch {
	case errors.Is(err, errOverPending), errors.Is(err, errStalledClient):
	case errors.Is(err, evloop.ErrInputTooLarge):
		c.s.log.Warn("proxy: client closed: command larger than the input limits", "client", c.id, "remote", c.raddr)
	case err != nil && !errors.Is(err, evloop.ErrClosed):
		c.s.log.Debug("proxy: client connection", "client", c.id, "err", err)
	}
	if o := c.s.cfg.Observer; o != nil {
		o.ConnClosed()
	}
	c.s.forget(c)
}

// tick looks at the loop's clients every second (or every IdleTimeout,
// if shorter): it closes those idle for Config.IdleTimeout (when set),
// and, with a log line, those that have had replies waiting and taken
// none of them for Config.Timeout, as the goroutine driver's write
// deadline does.
func (lp *loop) tick() {
	now := lp.l.Now()
	it, wt := lp.s.cfg.IdleTimeout, lp.s.cfg.Timeout
	for i := 0; i < len(lp.clients); i++ {
		c := lp.clients[i]
		st := c.ls
		conn := st.conn
		if conn.Closed() {
			continue
		}
		switch w := conn.Written(); {
		case conn.Pending() == 0 || w != st.written:
			st.written, st.stalled = w, false
		case !st.stalled:
			st.stalled, st.stallAt = true, now // replies wait, none taken since the last look
		case now.Sub(st.stallAt) >= wt:
			c.s.log.Info("proxy: client closed: it took no reply within the timeout",
				"client", c.id, "remote", c.raddr, "timeout", wt)
			// Reset, not closed: the replies in the socket's send queue
			// would otherwise stay there, unread, until the kernel gives
			// up on the orphaned socket.
			_ = unix.SetsockoptLinger(conn.Fd(), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			conn.Abort(errStalledClient)
			continue
		}
		if it > 0 && !st.busy && st.handoff == nil && now.Sub(st.last) >= it {
			conn.Close() // Closed takes it off the list later
		}
	}
	every := time.Second
	if it > 0 {
		every = min(it, every)
	}
	lp.l.After(every, lp.tick)
}

// errStalledClient closes a loop client that took no reply for Timeout.
var errStalledClient = errors.New("proxy: client took no reply within the timeout")

// shardIdle is how long a loop keeps a connection to a backend none of
// its clients used: backends come and go (replicas leave rotation, a
// cluster's nodes change), and a loop holds one connection per backend.
const shardIdle = 2 * time.Minute

// pruneShards closes the loop's connections unused for shardIdle, and
// forgets their backends; a later call dials again.
func (lp *loop) pruneShards() {
	now := lp.l.Now()
	for bk, sh := range lp.shards {
		if sh.dialing || len(sh.queue) > 0 || now.Sub(sh.lastUse) < shardIdle {
			continue
		}
		if cn := sh.cur; cn != nil {
			if cn.head < len(cn.wait) {
				continue
			}
			cn.c.Close()
		}
		delete(lp.shards, bk)
	}
	lp.l.After(shardIdle/2, lp.pruneShards)
}

// loopClient is a client as its loop's evloop.Handler.
type loopClient client

func (h *loopClient) Data(conn *evloop.Conn, b []byte) int {
	c := (*client)(h)
	st := c.ls
	if st.busy || st.handoff != nil || st.dead {
		if len(b) > maxBatchBytes && !st.paused {
			st.paused = true
			conn.PauseRead()
		}
		return 0
	}
	st.inData = true
	off := 0
	// A batch starts only while the client's pending replies are under
	// MaxPending (the loop stops reading it past that, and hands the
	// input back once it has read half of them).
	mp := int(min(c.s.cfg.MaxPending, 1<<40))
	for off < len(b) && !st.busy && !st.dead && !st.handReady && !conn.Closed() && conn.Pending() < mp {
		n := c.loopBatch(b[off:])
		off += n
		if n == 0 && !st.busy {
			break // an incomplete command
		}
	}
	st.inData = false
	if st.handReady {
		st.handReady = false
		c.handOff(b[off:]) // the input not consumed goes with it
		return off
	}
	if st.eof && !st.busy && !st.dead && !conn.Closed() && conn.Pending() < mp {
		conn.Close() // the peer sent all it will: answered
	}
	return off
}

func (h *loopClient) EOF(conn *evloop.Conn) {
	c := (*client)(h)
	st := c.ls
	st.eof = true
	if !st.busy && st.handoff == nil && int64(conn.Pending()) < c.s.cfg.MaxPending {
		// Data consumed every whole command already: what is left is
		// part of one that will never end.
		conn.Close()
	}
}

func (h *loopClient) Closed(conn *evloop.Conn, err error) {
	c := (*client)(h)
	if !c.ls.dead {
		c.loopGone(err)
	}
}

// loopBatch plans the commands b starts with, as one batch, and starts
// running it. It returns how many bytes it consumed.
func (c *client) loopBatch(b []byte) int {
	st := c.ls
	lim := c.s.cfg.Limits
	c.batchPlan.reset()
	off, size := 0, 0
	for off < len(b) {
		n, args, err := st.next(b[off:], lim)
		if err == resp.ErrIncomplete {
			break
		}
		if err != nil {
			var pe *resp.ProtocolError
			msg := err.Error()
			if errors.As(err, &pe) {
				msg = pe.Msg
			}
			st.protoErr = "ERR Protocol error: " + msg
			c.s.log.Debug("proxy: protocol error", "client", c.id, "err", err)
			off = len(b)
			break
		}
		off += n
		size += n
		if len(args) > 0 {
			c.command(args)
		}
		if c.closeNow || st.handoff != nil || len(c.ops) >= maxBatchOps || size >= maxBatchBytes || c.batchFull() {
			break
		}
	}
	if off == 0 && st.protoErr == "" {
		return 0
	}
	st.last = st.lp.l.Now()
	st.busy = true
	c.proceed()
	return off
}

// next frames and parses the command b starts with: its length and
// arguments (views into b, or into st.cmd for an inline command), or
// resp.ErrIncomplete, or the error ReadCommand would give.
func (st *loopState) next(b []byte, lim resp.Limits) (int, [][]byte, error) {
	if !st.framing && len(b) > 0 && b[0] != resp.TypeArray {
		// An inline command (or an empty line): rare, so parsed the
		// simple way, with ReadCommand's own splitting rules.
		n, err := resp.CommandLen(b, lim)
		if err == resp.ErrIncomplete && len(b) > lim.MaxInline+2 {
			return 0, nil, &resp.ProtocolError{Msg: "line too long", Snippet: string(b[:min(32, len(b))])}
		}
		if err != nil {
			return 0, nil, err
		}
		br := bufio.NewReaderSize(bytes.NewReader(b[:n]), 16)
		if err := resp.ReadCommand(br, &st.cmd, lim); err != nil {
			return 0, nil, err
		}
		return n, st.cmd.Args, nil
	}
	n, err := st.framer.Next(b)
	if err == resp.ErrIncomplete {
		st.framing = true
		return 0, nil, err
	}
	st.framing = false
	if err != nil {
		return 0, nil, err
	}
	st.args = st.framer.Args(b[:n], st.args[:0])
	return n, st.args, nil
}

// proceed sends the plan's rounds until one waits for a shard, or the
// plan is complete; then it answers the batch.
func (c *client) proceed() {
	st := c.ls
	for {
		if c.ex.advance(&c.batchPlan, c.s.rep) {
			c.finishBatch()
			return
		}
		if w := c.ex.wait; w > 0 {
			// A redirect to wait for (TRYAGAIN, CLUSTERDOWN): the round
			// goes out from a timer, the loop serving others meanwhile.
			c.ex.wait = 0
			st.lp.l.After(w, func() {
				if !st.dead && c.sendRound() {
					c.proceed()
				}
			})
			return
		}
		if !c.sendRound() {
			return // callDone comes back
		}
	}
}

// sendRound sends the executor's round on the loop's connections and
// reports whether every call of it is already answered (failed at once).
func (c *client) sendRound() bool {
	st := c.ls
	st.left = 1 // held until every block is sent
	for g := range c.ex.groups {
		gr := &c.ex.groups[g]
		st.left += len(gr.calls)
		st.lp.shard(gr.bk).send(c, gr.calls)
	}
	st.left--
	return st.left == 0
}

// callDone is a call of the client's round answered (or failed).
func (c *client) callDone() {
	st := c.ls
	st.left--
	if st.left == 0 && !st.dead {
		c.proceed()
	}
}

// finishBatch writes the batch's replies and goes on: with the input
// left, the hand-over, or closing.
func (c *client) finishBatch() {
	st := c.ls
	lp := st.lp
	conn := st.conn
	out := c.render(lp.out[:0])
	c.learn(len(out), len(c.ops))
	if pend := int64(conn.Pending()); len(c.ops) > 1 && pend > 0 && pend+int64(len(out)) > c.s.cfg.MaxPendingHard {
		// Replies over the hard limit for a client that has not taken
		// earlier ones: closed (a single reply is always delivered).
		c.s.closedOverPending(c.id, c.raddr, pend+int64(len(out)))
		c.batchPlan.reset()
		c.mark = 0
		st.busy = false
		conn.Abort(errOverPending)
		return
	}
	obs := c.s.cfg.Observer
	var queued time.Time
	if obs != nil {
		queued = time.Now()
	}
	conn.Write(out)
	if obs != nil {
		c.observe(obs, queued)
	}
	if cap(out) <= keepBufCap {
		lp.out = out[:0]
	}
	c.batchPlan.reset()
	c.mark = 0
	st.busy = false
	if cap(st.cmd.Buf) > keepBufCap {
		st.cmd = resp.Command{}
	}
	c.idle() // buffers a large command or reply left over are dropped
	switch {
	case st.protoErr != "":
		conn.Write(redcon.AppendError(nil, st.protoErr))
		conn.Close()
		return
	case st.handoff != nil || c.repl != nil:
		if st.inData {
			st.handReady = true // Data hands over, with the input it holds
		} else {
			c.handOff(nil)
		}
		return
	case c.closeNow:
		conn.Close()
		return
	}
	if st.paused {
		st.paused = false
		conn.ResumeRead()
	}
	if st.inData {
		return // Data goes on with the input
	}
	if conn.Buffered() > 0 {
		conn.Redeliver()
	} else if st.eof {
		conn.Close()
	}
}

// handOff moves the client to a goroutine of the goroutine driver: the
// replies not yet written and the input not yet read go with it, and the
// goroutine runs the command that needs it (st.handoff) first, or the
// replication relay. rest is the input not consumed when called from
// Data (the loop has not kept it yet), else nil.
func (c *client) handOff(rest []byte) {
	st := c.ls
	conn := st.conn
	act := st.handoff
	st.handoff = nil
	out := conn.TakeOutput(nil)
	fd, buffered, err := conn.Release()
	if err != nil {
		// Not expected (the client is neither closed nor written to
		// here): it gets what it was owed, and is closed.
		c.s.log.Warn("proxy: handing a client over to a goroutine", "client", c.id, "err", err)
		conn.Write(out)
		conn.Close()
		return
	}
	if rest != nil {
		buffered = rest
	}
	buffered = slices.Clone(buffered)
	f := os.NewFile(uintptr(fd), "client")
	nc, err := net.FileConn(f)
	f.Close()
	c.loopOff()
	if err != nil {
		c.s.log.Warn("proxy: handing a client over to a goroutine", "client", c.id, "err", err)
		c.loopGoneQuiet()
		return
	}
	s := c.s
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		c.loopGoneQuiet()
		return
	}
	c.nc = nc
	c.drv = c
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.serveHandedOver(out, buffered, act)
	}()
}

// loopOff takes the client off its loop's list (it stays on the server's).
func (c *client) loopOff() {
	if c.ls.dead {
		return
	}
	lp := c.ls.lp
	if i := c.ls.idx; i >= 0 && i < len(lp.clients) && lp.clients[i] == c {
		last := len(lp.clients) - 1
		lp.clients[i] = lp.clients[last]
		lp.clients[i].ls.idx = i
		lp.clients[last] = nil
		lp.clients = lp.clients[:last]
	}
	c.ls.idx = -1
	c.ls.dead = true
}

// loopGoneQuiet is loopGone for a client whose socket is already closed.
func (c *client) loopGoneQuiet() {
	if o := c.s.cfg.Observer; o != nil {
		o.ConnClosed()
	}
	c.s.forget(c)
}

// serveHandedOver is the goroutine driver taking over from a loop: it
// writes the replies the loop had not written, runs the command the
// client was handed over for, then serves the client as any other,
// starting with the input the loop had read.
func (c *client) serveHandedOver(out, buffered []byte, act func(*client)) {
	defer c.close()
	if len(out) > 0 {
		c.write(out)
	}
	if act != nil {
		act(c) // as in a batch: its reply is planned, and written now
		if len(c.ops) > 0 {
			c.flush()
		}
	}
	switch {
	case len(buffered) == 0:
	case c.repl != nil:
		// The relay takes what the client sent after PSYNC (REPLCONF
		// ACKs) from the reader's buffer.
		if len(buffered) <= readBufSize {
			c.br = readerPool.Get().(*bufio.Reader)
			c.br.Reset(bytes.NewReader(buffered))
		} else {
			c.br = bufio.NewReaderSize(bytes.NewReader(buffered), len(buffered))
		}
		_, _ = c.br.Peek(len(buffered))
	case !c.closeNow:
		c.br = readerPool.Get().(*bufio.Reader)
		c.br.Reset(io.MultiReader(bytes.NewReader(buffered), c.nc))
	}
	c.serveLoop()
}

// loopDriver is the session's driver while a loop serves the client:
// the commands that need a connection of their own end the batch and
// hand the client over (handOff), to run on the goroutine driver.
type loopDriver client

func (d *loopDriver) addrs() (remote, local net.Addr) { return d.raddr, d.laddr }
func (d *loopDriver) onTLS() bool                     { return false }

// kill closes the client on its loop, and waits for that: the socket is
// shut down on the spot (its descriptor is closed at the end of the
// pass); if the loop has handed the client over meanwhile, its
// goroutine's connection is closed.
func (d *loopDriver) kill() {
	c := (*client)(d)
	done := make(chan struct{})
	if c.ls.lp.l.Execute(func() {
		defer close(done)
		if st := c.ls; !st.dead && st.conn != nil {
			_ = unix.Shutdown(st.conn.Fd(), unix.SHUT_RDWR)
			st.conn.Abort(errKilled)
		}
	}) != nil {
		close(done) // the loop stopped: it closed its clients
	}
	<-done
	c.kill() // handed over: the goroutine's connection
}

// errKilled closes a loop client from outside (DropAdmin).
var errKilled = errors.New("proxy: connection closed by the server")

// later hands the client over once the batch so far is answered, to run
// f on its goroutine as the command being planned (for the Observer too).
func (d *loopDriver) later(f func(c *client)) {
	cur := d.cur
	d.ls.handoff = func(c *client) {
		c.cur, c.mark = cur, 0
		f(c)
	}
}

func (d *loopDriver) blocking(name string, args [][]byte, keys []int) {
	args, keys = cloneArgs(args), slices.Clone(keys)
	d.later(func(c *client) { c.blocking(name, args, keys) })
}

func (d *loopDriver) pubsub(name string, args [][]byte) {
	args = cloneArgs(args)
	d.later(func(c *client) { c.pubsub(name, args) })
}

func (d *loopDriver) watch(args [][]byte) {
	args = cloneArgs(args)
	d.later(func(c *client) { c.watch(args) })
}

func (d *loopDriver) execWatched(t *txState) {
	d.later(func(c *client) { c.execWatched(t) })
}

func (d *loopDriver) killScript(args [][]byte) {
	args = cloneArgs(args)
	d.later(func(c *client) { c.killScript(args) })
}

// lshard is a loop's own connection to one backend (a shard in one
// database, or a replica): the calls written on it wait in order for
// their replies. It dials on first use, on a goroutine, and again after
// a failure; while a dial fails the shard's calls fail at once for a
// backoff period, as pool.Backend does.
type lshard struct {
	lp  *loop
	bk  *pool.Backend
	cfg pool.Config

	cur      *lconn
	dialing  bool
	queue    []lcall // calls waiting for the dial
	downErr  error
	downTill time.Time
	backoff  time.Duration
	lastUse  time.Time
}

type lcall struct {
	call *pool.Call
	cl   *client
}

// shard is the loop's connection to bk, made on first use.
func (lp *loop) shard(bk *pool.Backend) *lshard {
	sh := lp.shards[bk]
	if sh == nil {
		sh = &lshard{lp: lp, bk: bk, cfg: bk.Config()}
		lp.shards[bk] = sh
	}
	return sh
}

// send writes calls, as one contiguous block, for cl; each call ends in
// cl.callDone, maybe before send returns.
func (sh *lshard) send(cl *client, calls []*pool.Call) {
	for _, call := range calls {
		call.Err = nil
		call.Reply = call.Reply[:0]
	}
	sh.lastUse = sh.lp.l.Now()
	if err := sh.cfg.Fail; err != nil {
		// A backend that must not be used answers with its error at once,
		// as pool.Backend does.
		for _, call := range calls {
			call.Err = err
			cl.callDone()
		}
		return
	}
	if cn := sh.cur; cn != nil && !cn.c.Closed() {
		cn.send(cl, calls)
		return
	}
	if sh.dialing {
		for _, call := range calls {
			sh.queue = append(sh.queue, lcall{call, cl})
		}
		return
	}
	if sh.downErr != nil && sh.lp.l.Now().Before(sh.downTill) {
		err := fmt.Errorf("%w: %s: %v", pool.ErrShardDown, sh.cfg.Addr, sh.downErr)
		for _, call := range calls {
			call.Err = err
			cl.callDone()
		}
		return
	}
	for _, call := range calls {
		sh.queue = append(sh.queue, lcall{call, cl})
	}
	sh.dial()
}

// dial connects on a goroutine (the loop never blocks on a dial) and
// attaches the connection on the loop, or fails the queued calls.
func (sh *lshard) dial() {
	sh.dialing = true
	lp := sh.lp
	s := lp.s
	cfg := sh.cfg
	lp.ls.wg.Add(1)
	go func() {
		defer lp.ls.wg.Done()
		fd, err := dialFd(s.ctx, cfg)
		if lp.l.Execute(func() { sh.dialed(fd, err) }) != nil && err == nil {
			unix.Close(fd)
		}
	}()
}

// dialFd dials cfg the way pool.Backend does (Init included) and returns
// the socket's descriptor, out of Go's poller.
func dialFd(ctx context.Context, cfg pool.Config) (int, error) {
	nc, br, err := pool.Dial(ctx, cfg, 512)
	if err != nil {
		return -1, err
	}
	if br.Buffered() > 0 {
		nc.Close()
		return -1, errors.New("shard sent data nobody asked for")
	}
	fd, err := evloop.Detach(nc)
	if err != nil {
		nc.Close()
		return -1, fmt.Errorf("an event loop needs a plain socket: %w", err)
	}
	return fd, nil
}

func (sh *lshard) dialed(fd int, err error) {
	sh.dialing = false
	q := sh.queue
	sh.queue = nil
	obs := sh.cfg.Observer
	if err == nil {
		lim := sh.cfg.Limits.WithDefaults()
		cn := &lconn{sh: sh}
		var c *evloop.Conn
		c, err = sh.lp.l.Attach(fd, cn, evloop.Limits{
			MaxInput:    int(min(max(2*lim.MaxReply, 64<<20), 1<<31-1)),
			PauseOutput: -1,
		})
		if err != nil {
			unix.Close(fd)
		} else {
			cn.c = c
			sh.cur = cn
			sh.downErr, sh.backoff = nil, 0
			if obs != nil {
				obs.ShardUp(sh.cfg.Shard, true)
			}
			// Sent per client, in the order they were queued.
			for i := 0; i < len(q); {
				j := i + 1
				for j < len(q) && q[j].cl == q[i].cl {
					j++
				}
				calls := make([]*pool.Call, 0, j-i)
				for _, lc := range q[i:j] {
					calls = append(calls, lc.call)
				}
				cn.send(q[i].cl, calls)
				i = j
			}
			return
		}
	}
	if sh.backoff == 0 {
		sh.backoff = sh.cfg.RetryBackoff
	} else if sh.backoff *= 2; sh.backoff > 2*time.Second {
		sh.backoff = 2 * time.Second
	}
	sh.downErr, sh.downTill = err, sh.lp.l.Now().Add(sh.backoff)
	if sh.lp.s.ctx.Err() == nil {
		if obs != nil {
			obs.ShardUp(sh.cfg.Shard, false)
		}
		if sh.cfg.Down != nil {
			sh.cfg.Down() // a cluster destination re-reads its topology
		}
	}
	ferr := fmt.Errorf("%w: %s: %v", pool.ErrShardDown, sh.cfg.Addr, err)
	for _, lc := range q {
		lc.call.Err = ferr
		lc.cl.callDone()
	}
}

// lconn is one connection of an lshard, as its evloop.Handler.
type lconn struct {
	sh     *lshard
	c      *evloop.Conn
	wait   []lcall // written, awaiting a reply, oldest first
	head   int
	sent   []time.Time // when each of wait was written (its pass)
	writes []lwrite    // with an Observer: the passes' writes
	timer  *evloop.Timer
	failed bool
}

// lwrite is the calls written to a shard in one pass, reported to the
// Observer when the last is answered.
type lwrite struct {
	calls, left int
	at          time.Time
}

func (cn *lconn) send(cl *client, calls []*pool.Call) {
	now := cn.sh.lp.l.Now()
	for _, call := range calls {
		cn.c.Write(call.Req)
		cn.wait = append(cn.wait, lcall{call, cl})
		cn.sent = append(cn.sent, now)
	}
	if cn.sh.cfg.Observer != nil {
		if k := len(cn.writes) - 1; k >= 0 && cn.writes[k].at.Equal(now) {
			cn.writes[k].calls += len(calls)
			cn.writes[k].left += len(calls)
		} else {
			cn.writes = append(cn.writes, lwrite{calls: len(calls), left: len(calls), at: now})
		}
	}
	if cn.timer == nil {
		cn.timer = cn.sh.lp.l.After(cn.sh.cfg.ReadTimeout, cn.checkTimeout)
	}
}

// checkTimeout fails the connection when its oldest call has waited
// ReadTimeout for its reply: a stalled shard fails its own calls within
// the timeout, while the loop goes on serving every other shard.
func (cn *lconn) checkTimeout() {
	cn.timer = nil
	if cn.failed || cn.head == len(cn.wait) {
		return
	}
	rt := cn.sh.cfg.ReadTimeout
	waited := cn.sh.lp.l.Now().Sub(cn.sent[cn.head])
	if waited >= rt {
		cn.fail(fmt.Errorf("no reply within %v", rt))
		return
	}
	cn.timer = cn.sh.lp.l.After(rt-waited, cn.checkTimeout)
}

func (cn *lconn) Data(c *evloop.Conn, b []byte) int {
	lim := cn.sh.cfg.Limits
	off := 0
	for off < len(b) {
		n, err := resp.ReplyLen(b[off:], lim)
		if err == resp.ErrIncomplete {
			break
		}
		var over *resp.LimitError
		if err != nil && !errors.As(err, &over) {
			cn.fail(err)
			return 0
		}
		if cn.head == len(cn.wait) {
			cn.fail(errors.New("pool: reply without a request"))
			return 0
		}
		w := cn.wait[cn.head]
		cn.wait[cn.head] = lcall{}
		cn.head++
		if over != nil {
			// Framed whole and dropped: the connection stays in sync,
			// only this call fails.
			w.call.Err = over
		} else {
			w.call.Reply = append(w.call.Reply[:0], b[off:off+n]...)
		}
		off += n
		cn.answered(false)
		w.cl.callDone()
		if cn.failed {
			return 0
		}
	}
	if cn.head == len(cn.wait) {
		clear(cn.wait)
		cn.wait, cn.sent, cn.head = cn.wait[:0], cn.sent[:0], 0
	}
	return off
}

// answered counts a reply (or failure) against the oldest write, for the
// Observer.
func (cn *lconn) answered(failed bool) {
	if len(cn.writes) == 0 {
		return
	}
	w := &cn.writes[0]
	if w.left--; w.left == 0 {
		cn.sh.cfg.Observer.Pipeline(cn.sh.cfg.Shard, w.calls, cn.sh.lp.l.Now().Sub(w.at), failed)
		cn.writes = cn.writes[:copy(cn.writes, cn.writes[1:])]
	}
}

func (cn *lconn) EOF(c *evloop.Conn) { cn.fail(io.EOF) }

func (cn *lconn) Closed(c *evloop.Conn, err error) {
	if err == nil || errors.Is(err, evloop.ErrClosed) {
		err = pool.ErrClosed
	}
	cn.fail(err)
}

// fail closes the connection and fails every call waiting on it; the
// next call dials again.
func (cn *lconn) fail(err error) {
	if cn.failed {
		return
	}
	cn.failed = true
	sh := cn.sh
	if sh.cur == cn {
		sh.cur = nil
	}
	if cn.timer != nil {
		sh.lp.l.StopTimer(cn.timer)
		cn.timer = nil
	}
	cn.c.Abort(err)
	closing := errors.Is(err, pool.ErrClosed)
	if !closing && sh.lp.s.ctx.Err() == nil {
		if sh.cfg.Observer != nil {
			sh.cfg.Observer.ShardUp(sh.cfg.Shard, false)
		}
		if sh.cfg.Down != nil {
			sh.cfg.Down() // a cluster destination re-reads its topology
		}
	}
	ferr := error(pool.ErrClosed)
	if !closing {
		ferr = fmt.Errorf("%w: %s: %v", pool.ErrShardDown, sh.cfg.Addr, err)
	}
	wait := cn.wait[cn.head:]
	cn.wait, cn.sent, cn.head = nil, nil, 0
	for range wait {
		cn.answered(true)
	}
	for _, w := range wait {
		w.call.Err = ferr
		w.cl.callDone()
	}
}
