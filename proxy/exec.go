package proxy

import (
	"context"
	"errors"

	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
)

// executor sends a plan's calls through the shared pool.Backends and
// completes the plan: the calls of a batch are queued as one block per
// backend in a reused pool.Batch, all backends before waiting on any, so
// the shards work in parallel without a goroutine per shard. A read that
// failed on a replica, or on a primary with replicas in rotation, is sent
// once more to another node of its shard (Config.ReadFrom).
type executor struct {
	ctx    context.Context
	srv    *Server // for redirects; nil follows none
	groups []group
	bt     pool.Batch // reused by every run
}

type group struct {
	bk    *pool.Backend
	calls []*pool.Call
}

// run sends every call of p not yet sent, pipelined per backend, the
// backends in parallel, and waits for all replies.
func (e *executor) run(p *batchPlan, rep *replicas) {
	if p.ran == p.ncalls {
		return
	}
	from := p.ran
	e.groups = e.groups[:0]
	for i := from; i < p.ncalls; i++ {
		e.addToGroup(p, i)
	}
	p.ran = p.ncalls
	e.sendGroups()
	e.redirects(p, from) // a cluster destination's MOVED, ASK, TRYAGAIN (redirect.go)
	if rep != nil {
		e.retryReads(p, rep, from)
	}
}

// retryReads sends each read among calls[from:] that failed (no reply: its
// node died, stalled or was closed) once more, to another node of its
// shard: reads are idempotent, so the client sees no error. The failed
// node leaves rotation until its next good check.
func (e *executor) retryReads(p *batchPlan, rep *replicas, from int) {
	again := false
	for i := from; i < p.ncalls; i++ {
		rd := &p.callrd[i]
		if !rd.read || rd.retried || p.calls[i].Err == nil || e.ctx.Err() != nil || overLimit(p.calls[i].Err) {
			continue
		}
		rd.retried = true
		failed := rd.node
		sn := rep.shards[p.callsh[i]]
		if failed != nil {
			failed.down()
		} else if !sn.primaryDown.Swap(true) {
			sn.primaryErrs.Add(1)
		}
		rd.node = rep.pick(p.callsh[i], failed, failed == nil)
		if rd.node == nil {
			if failed == nil {
				continue // the primary failed and no replica is in rotation
			}
			p.callbk[i] = rd.primary
			sn.primaryRead.Add(1)
		} else {
			p.callbk[i] = rd.node.backend(rd.db)
			rd.node.reads.Add(1)
		}
		again = true
	}
	if !again {
		return
	}
	// Only the retried calls go out: the others keep their replies.
	e.groups = e.groups[:0]
	for i := from; i < p.ncalls; i++ {
		rd := p.callrd[i]
		if rd.retried && p.calls[i].Err != nil {
			e.addToGroup(p, i)
		}
	}
	e.sendGroups()
}

// overLimit tells a reply over the proxy's reply limits, read whole and
// dropped: the node is fine and any other would answer the same.
func overLimit(err error) bool {
	var le *resp.LimitError
	return errors.As(err, &le)
}

func (e *executor) addToGroup(p *batchPlan, i int) {
	bk := p.callbk[i]
	for g := range e.groups {
		if e.groups[g].bk == bk {
			e.groups[g].calls = append(e.groups[g].calls, p.calls[i])
			return
		}
	}
	var calls []*pool.Call
	if g := len(e.groups); g < cap(e.groups) {
		calls = e.groups[:g+1][g].calls[:0]
	}
	e.groups = append(e.groups, group{bk: bk, calls: append(calls, p.calls[i])})
}

func (e *executor) sendGroups() {
	// Every shard's block is queued before waiting on any, so the shards
	// work in parallel without a goroutine per shard, and the writes are
	// left to Wait, so other clients' calls can join them.
	for g := range e.groups {
		e.bt.Add(e.ctx, e.groups[g].bk, e.groups[g].calls)
	}
	e.bt.Wait()
}

// cont is the rest of a command that needs shard replies before it can
// answer or go on (the fan-outs, EXEC): its op in the plan waits for it.
// The executor runs it once every call planned before it has its reply,
// and before any call planned after it is sent, so commands keep their
// order as if each ran alone: it sends the round of calls the cont holds,
// then hands the replies to next, which either answers (with the
// session's reply helpers, which then fill the cont's op) or asks for
// another round (add, then a new next).
type cont struct {
	at    int // calls[:at] were planned before it
	op    int // index of its op
	block bool
	calls []pool.Call
	bks   []*pool.Backend
	next  func(k *cont)
}

// add queues a call to bk for the cont's next round.
func (k *cont) add(bk *pool.Backend, req []byte) {
	k.calls = append(k.calls, pool.Call{Req: req})
	k.bks = append(k.bks, bk)
}

// each queues req to every backend of bk, call i to bk[i].
func (k *cont) each(bk []*pool.Backend, req []byte) {
	for _, b := range bk {
		k.add(b, req)
	}
}

// round starts the next round: the last round's calls are dropped.
func (k *cont) round(next func(k *cont)) {
	k.calls, k.bks = k.calls[:0], k.bks[:0]
	k.next = next
}

// runAll completes p: the calls before each cont, the cont, and so on,
// then the calls after the last cont.
func (e *executor) runAll(p *batchPlan, rep *replicas) {
	for p.nextCont < len(p.conts) {
		k := p.conts[p.nextCont]
		p.nextCont++
		e.runTo(p, rep, k.at)
		e.runCont(p, k)
	}
	e.runTo(p, rep, p.ncalls)
}

// runTo sends calls[ran:to].
func (e *executor) runTo(p *batchPlan, rep *replicas, to int) {
	if to <= p.ran {
		return
	}
	n := p.ncalls
	p.ncalls = to
	e.run(p, rep)
	p.ncalls = n
}

// runCont sends the cont's rounds until it has answered. A round's calls
// go out as one block per call (all backends queued before waiting on
// any), or, for a block cont, as one contiguous block on its backend
// that no other client's command can split (MULTI … EXEC).
func (e *executor) runCont(p *batchPlan, k *cont) {
	var ptrs []*pool.Call
	for k.next != nil {
		ptrs = ptrs[:0]
		for i := range k.calls {
			ptrs = append(ptrs, &k.calls[i])
		}
		switch {
		case len(ptrs) == 0:
		case k.block:
			e.bt.Add(e.ctx, k.bks[0], ptrs)
		default:
			for i := range ptrs {
				e.bt.Add(e.ctx, k.bks[i], ptrs[i:i+1])
			}
		}
		if len(ptrs) > 0 {
			e.bt.Wait()
		}
		next := k.next
		k.next = nil
		p.replyTo = k.op + 1
		next(k)
		p.replyTo = 0
	}
}
