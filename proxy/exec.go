package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
)

// executor completes a plan: it decides what to send next and what to
// do with the replies (advance), and a driver sends each round its way:
// the goroutine driver through the shared pool.Backends, all of a
// round's blocks queued in a reused pool.Batch before waiting on any, so
// the shards work in parallel without a goroutine per shard (runAll); an
// event loop through its own pipelined shard connections, coming back
// to advance when the round's last reply arrives, never blocking (loop.go).
// A read that failed on a replica, or on a primary with replicas in
// rotation, is sent once more to another node of its shard
// (Config.ReadFrom).
type executor struct {
	ctx    context.Context
	srv    *Server       // for a cluster destination's redirects; nil follows none
	groups []group       // the round to send: blocks, each on one backend
	wait   time.Duration // send the round only once this has passed
	bt     pool.Batch
	ptrs   []*pool.Call

	phase phase
	from  int   // phaseCalls, phaseRetry, phaseRedirect: calls[from:ran]
	k     *cont // phaseCont: the cont whose round is out
	hops  int   // phaseRedirect: redirect rounds so far
}

// group is one block of a round: calls sent contiguously on bk.
type group struct {
	bk    *pool.Backend
	calls []*pool.Call
}

// phase is what the round in flight is.
type phase uint8

const (
	phaseIdle     phase = iota // nothing in flight
	phaseCalls                 // plan calls calls[from:ran]
	phaseRetry                 // reads of calls[from:ran] sent once more
	phaseCont                  // a round of cont k
	phaseRedirect              // redirected calls of calls[from:ran] sent again
)

// advance takes the replies of the round in flight (if any) and prepares
// the next one in e.groups: false means the round is to be sent and
// advance called again once every call of it has its reply or error;
// true means p is complete. The order is the plan's: the calls before
// each cont, the cont's rounds until it answered, and so on, then the
// calls after the last cont, so every command sees the effects of the
// ones before it, as on one server.
func (e *executor) advance(p *batchPlan, rep *replicas) bool {
	for {
		switch e.phase {
		case phaseCalls, phaseRedirect:
			if e.phase == phaseCalls {
				e.hops = 0
			} else {
				e.hops++
			}
			e.phase = phaseIdle
			if e.redirectRound(p) { // a cluster destination's MOVED, ASK, TRYAGAIN
				e.phase = phaseRedirect
				return false
			}
			if rep != nil && e.retryReads(p, rep, e.from) {
				e.phase = phaseRetry
				return false
			}
		case phaseRetry:
			e.phase = phaseIdle
		case phaseCont:
			k := e.k
			next := k.next
			k.next = nil
			p.replyTo = k.op + 1
			next(k)
			p.replyTo = 0
			if k.next != nil {
				if e.contRound(k) {
					return false
				}
				continue // a round of no calls: straight to next
			}
			e.phase, e.k = phaseIdle, nil
		}
		if p.nextCont < len(p.conts) {
			k := p.conts[p.nextCont]
			if k.at > p.ran {
				e.callRound(p, k.at)
				return false
			}
			p.nextCont++
			if k.next == nil {
				continue
			}
			e.k, e.phase = k, phaseCont
			if e.contRound(k) {
				return false
			}
			continue
		}
		if p.ran < p.ncalls {
			e.callRound(p, p.ncalls)
			return false
		}
		return true
	}
}

// callRound prepares calls[ran:to], one block per backend.
func (e *executor) callRound(p *batchPlan, to int) {
	e.groups = e.groups[:0]
	for i := p.ran; i < to; i++ {
		e.addToGroup(p.callbk[i], p.calls[i])
	}
	e.from, p.ran = p.ran, to
	e.phase = phaseCalls
}

// contRound prepares the round k holds and reports whether it has any
// call: one block per call, or, for a block cont, one contiguous block
// on its backend that no other client's command can split (MULTI … EXEC).
func (e *executor) contRound(k *cont) bool {
	e.groups = e.groups[:0]
	if len(k.calls) == 0 {
		return false
	}
	e.ptrs = e.ptrs[:0]
	for i := range k.calls {
		e.ptrs = append(e.ptrs, &k.calls[i])
	}
	if k.block {
		e.groups = append(e.groups, group{bk: k.bks[0], calls: e.ptrs[:len(e.ptrs):len(e.ptrs)]})
		return true
	}
	for i := range e.ptrs {
		e.groups = append(e.groups, group{bk: k.bks[i], calls: e.ptrs[i : i+1 : i+1]})
	}
	return true
}

// redirectRound prepares, as the next round, every call of calls[from:ran]
// a cluster destination redirected (redirect.go decides where to, and
// after how long: e.wait), and reports whether there is any. Calls going
// to one node go as one block, in their order, each ASKed one after its
// ASKING.
func (e *executor) redirectRound(p *batchPlan) bool {
	if e.srv == nil {
		return false
	}
	var ok bool
	e.groups, e.wait, ok = e.srv.redirectRound(p.calls[e.from:p.ran], p.callbk[e.from:p.ran], e.hops, e.groups[:0])
	return ok
}

// runAll completes p on the calling goroutine: each round's blocks are
// queued on the shared backends, every one before waiting on any, and
// the writes are left to Wait, so other clients' calls can join them.
func (e *executor) runAll(p *batchPlan, rep *replicas) {
	for !e.advance(p, rep) {
		if e.wait > 0 {
			t := time.NewTimer(e.wait)
			select {
			case <-e.ctx.Done(): // shutting down: the calls fail at once
			case <-t.C:
			}
			t.Stop()
			e.wait = 0
		}
		for g := range e.groups {
			e.bt.Add(e.ctx, e.groups[g].bk, e.groups[g].calls)
		}
		e.bt.Wait()
	}
}

// retryReads prepares, as the next round, each read among calls[from:]
// that failed (no reply: its node died, stalled or was closed), to
// another node of its shard: reads are idempotent, so the client sees no
// error. The failed node leaves rotation until its next good check. It
// reports whether there is any.
func (e *executor) retryReads(p *batchPlan, rep *replicas, from int) bool {
	again := false
	for i := from; i < p.ran; i++ {
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
		return false
	}
	// Only the retried calls go out: the others keep their replies.
	e.groups = e.groups[:0]
	for i := from; i < p.ran; i++ {
		if p.callrd[i].retried && p.calls[i].Err != nil {
			e.addToGroup(p.callbk[i], p.calls[i])
		}
	}
	return true
}

// overLimit tells a reply over the proxy's reply limits, read whole and
// dropped: the node is fine and any other would answer the same.
func overLimit(err error) bool {
	var le *resp.LimitError
	return errors.As(err, &le)
}

func (e *executor) addToGroup(bk *pool.Backend, call *pool.Call) {
	for g := range e.groups {
		if e.groups[g].bk == bk {
			e.groups[g].calls = append(e.groups[g].calls, call)
			return
		}
	}
	var calls []*pool.Call
	if g := len(e.groups); g < cap(e.groups) {
		calls = e.groups[:g+1][g].calls[:0]
	}
	e.groups = append(e.groups, group{bk: bk, calls: append(calls, call)})
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
