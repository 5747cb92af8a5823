package proxy

import (
	"github.com/replicaof/replicaof/pool"
)

// session is one client's protocol state and the batch it is planning.
// Planning a command (plan, dispatch.go) reads and changes the session
// and appends to the plan: local replies, calls to shards and how their
// replies merge, and continuations for commands that need shard replies
// before they can go on (fan-outs, EXEC). It does no I/O of its own on
// the common path: the executor (exec.go) sends the calls and runs the
// continuations, and the driver (client.go) reads commands and writes
// the replies.
type session struct {
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

// batchPlan is a batch: the ops owed to the client in command order, and the
// calls they wait for. calls[:ncalls] belong to the batch (the slices
// are reused from batch to batch); calls[:ran] have been sent.
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

func (ss *session) init(s *Server, id int64) {
	ss.id = id
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
