package proxy

import (
	"net"
	"time"

	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
)

// session is one client's protocol state and the batch it is planning.
// Its methods are the planner (command, plan in dispatch.go, and the
// command files): planning a command reads and changes the session and
// appends to the plan local replies, calls to shards and how their
// replies merge, and continuations for commands that need shard replies
// before they can go on (fan-outs, EXEC). The session waits on no I/O: the
// executor (exec.go) sends the calls and runs the continuations, and the
// driver (client.go) reads commands, writes the replies, and runs the few
// commands that need a connection of their own (driver).
type session struct {
	s         *Server
	drv       driver
	id        int64
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

	batchPlan

	keys    []int // scratch for key positions
	scratch [][]byte

	// The command being planned, while Config.Observer is set: its name
	// and start go to the first op it adds, ops[mark].
	cur  op
	mark int
}

// driver is what planning needs from what runs the session: its
// connection (addresses, TLS, closing an admin's), and the commands that
// do their I/O while planned, after having the executor complete the plan
// so far, because they hold a connection of their own (blocking
// commands, WATCH and the EXEC that follows it, SCRIPT/FUNCTION KILL) or
// write to the client out of turn (pub/sub). The goroutine driver
// (client) runs them on the spot; the event-loop driver (loopDriver)
// answers the batch so far and hands the client over to a goroutine,
// which runs the command and serves the client from then on.
type driver interface {
	addrs() (remote, local net.Addr)
	onTLS() bool
	// kill closes the client's connection from any goroutine but an
	// event loop's, without Server.mu held, and returns once the client
	// can no longer read or write; its driver notices and cleans up.
	kill()
	blocking(name string, args [][]byte, keys []int)
	pubsub(name string, args [][]byte)
	watch(args [][]byte)
	execWatched(t *txState)
	killScript(args [][]byte)
}

// batchPlan is a batch: the ops owed to the client in command order,
// and the calls they wait for. calls[:ncalls] belong to the batch (the
// slices are reused from batch to batch); calls[:ran] have been sent.
type batchPlan struct {
	ops    []op
	calls  []*pool.Call // pooled
	callsh []int        // shard of each call
	callbk []*pool.Backend
	callrd []readTarget // reads that may go to a replica, with Config.ReadFrom
	ncalls int
	ran    int
	local  []byte // local replies, spans in ops
	ords   []int  // MGET key ordinals, spans in ops
	// Continuations, in op order; conts[:nextCont] have run.
	conts    []*cont
	nextCont int
	// replyTo is 1 + the op of the cont answering now, 0 when none: a
	// local reply made then fills that op instead of adding one.
	replyTo int
}

func (ss *session) init(s *Server, drv driver, id int64) {
	ss.s, ss.drv, ss.id = s, drv, id
	ss.replShard, ss.silentFrom = -1, -1
	ss.authed = s.cfg.Password == ""
	ss.bk = s.pools.db(0)
}

// reset empties the plan for the next batch, keeping its buffers.
func (p *batchPlan) reset() {
	p.ops = p.ops[:0]
	p.ncalls, p.ran = 0, 0
	p.local = p.local[:0]
	p.ords = p.ords[:0]
	clear(p.conts)
	p.conts, p.nextCont = p.conts[:0], 0
}

// call adds a call for shard to the plan and returns it; its Req is
// empty and ready to append to.
func (p *batchPlan) call(bk []*pool.Backend, shard int) *pool.Call {
	if p.ncalls == len(p.calls) {
		p.calls = append(p.calls, &pool.Call{})
		p.callsh = append(p.callsh, 0)
		p.callbk = append(p.callbk, nil)
		p.callrd = append(p.callrd, readTarget{})
	}
	cl := p.calls[p.ncalls]
	cl.Req = cl.Req[:0]
	p.callsh[p.ncalls] = shard
	p.callbk[p.ncalls] = bk[shard]
	p.callrd[p.ncalls] = readTarget{}
	p.ncalls++
	return cl
}

// readCall is call for a read that may go to a replica of shard (see
// Config.ReadFrom); without replicas configured it is call.
func (ss *session) readCall(rep *replicas, shard int) *pool.Call {
	cl := ss.call(ss.bk, shard)
	if rep == nil || ss.watching != nil {
		return cl
	}
	i := ss.ncalls - 1
	n := rep.pick(shard, nil, false)
	ss.callrd[i] = readTarget{read: true, node: n, db: ss.db, primary: ss.bk[shard]}
	if n != nil {
		ss.callbk[i] = n.backend(ss.db)
		n.reads.Add(1)
	} else {
		rep.shards[shard].primaryRead.Add(1)
	}
	return cl
}

// command plans one parsed command (args not empty) into the batch.
func (c *session) command(args [][]byte) {
	c.s.commands.Add(1)
	c.silentFrom = -1
	if c.replyOff || c.skipReplies > 0 {
		c.silentFrom = len(c.ops)
		c.skipReplies = max(c.skipReplies-1, 0)
	}
	if c.s.cfg.Observer != nil {
		c.begin(args)
		c.plan(args)
		c.tag()
	} else {
		c.plan(args)
	}
	c.silence()
}

// silence marks the ops of the command being planned as not to be
// written, when CLIENT REPLY says so.
func (c *session) silence() {
	if c.silentFrom < 0 {
		return
	}
	for i := c.silentFrom; i < len(c.ops); i++ {
		c.ops[i].silent = true
	}
	c.silentFrom = -1
}

// begin notes the command about to be planned, for the Observer. The
// name is the table's own string: reporting it allocates nothing.
func (c *session) begin(args [][]byte) {
	c.cur.name = "other"
	if cmd := c.s.cfg.Table.Lookup(args[:1]); cmd != nil {
		c.cur.name = cmd.Name
	}
	c.cur.start = time.Now()
	c.mark = len(c.ops)
}

// tag marks the first op the command being planned added (if it was not
// flushed already) as the one to report.
func (c *session) tag() {
	if c.cur.name != "" && c.mark < len(c.ops) {
		c.ops[c.mark].name, c.ops[c.mark].start = c.cur.name, c.cur.start
	}
	c.cur.name = ""
}

// render appends the replies of a run plan to out, in command order,
// less those CLIENT REPLY withholds, marking for the Observer which
// failed.
func (c *session) render(out []byte) []byte {
	if c.silentFrom >= 0 {
		c.silence()
		c.silentFrom = 0 // the silent command's later ops, if any
	}
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
	return out
}

// observe reports the batch's tagged commands, their replies queued at
// now, and untags them.
func (c *session) observe(obs Observer, now time.Time) {
	for i := range c.ops {
		o := &c.ops[i]
		if o.name != "" {
			obs.Command(o.name, now.Sub(o.start), o.failed)
			o.name = ""
		}
	}
}
