package proxy

import (
	"bytes"
	"fmt"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
)

// Following a Redis Cluster destination's redirects.
//
// The proxy routes by the destination's live slot map, which a cluster
// changes under it (resharding, failovers). A node that no longer serves
// a command's slot answers -MOVED (the slot has moved: the map is told,
// Destination.Moved, and the command goes to the new owner), -ASK (the
// slot is migrating and the key is already on the importing node: ASKING
// and the command go there, the map stays), -TRYAGAIN (a multi-key
// command whose keys a migration split) or -CLUSTERDOWN (no node serves
// the slot yet). redirectOf decides, for one completed call, what to do;
// redirectRound gathers a round of them (one block per node), which the
// executor's redirect phase sends (exec.go), on either driver. A call is followed at most
// maxRedirects times; TRYAGAIN and CLUSTERDOWN wait redirectWait, doubled
// each round, before the call is sent again. Clients never see MOVED or
// ASK: one still redirected after maxRedirects is answered -TRYAGAIN
// naming it (cluster clients retry on TRYAGAIN), and a TRYAGAIN or
// CLUSTERDOWN that outlasts the rounds is answered as the node answered.
// Only replies are followed: a call that failed on its connection (the
// node died) is not sent again here, since its effect is unknown (reads
// are retried on another node by retryReads, with Config.ReadFrom).

const (
	maxRedirects = 5
	redirectWait = 20 * time.Millisecond
)

// hop is what to do with a redirected call: send it again to bk, after
// ASKING when ask, once wait has passed.
type hop struct {
	bk   *pool.Backend
	ask  bool
	wait time.Duration
}

// mayRedirect is a cheap first test: a reply a cluster node redirects
// with starts "-MOVED", "-ASK", "-TRYAGAIN" or "-CLUSTERDOWN".
func mayRedirect(reply []byte) bool {
	if len(reply) < 2 || reply[0] != resp.TypeError {
		return false
	}
	switch reply[1] {
	case 'M', 'A', 'T', 'C':
		return true
	}
	return false
}

// redirectOf tells what to do with a completed call of a cluster
// destination that was sent to bk, after attempt hops (0 for the first
// reply): ok false means its reply is final. A -MOVED is recorded with the
// destination at once (Destination.Moved). A MOVED or ASK whose target
// the destination does not know yet (a refresh is under way) waits and
// goes to the slot's owner in the map. After maxRedirects hops a MOVED or
// ASK reply is replaced by a -TRYAGAIN naming it. It blocks on nothing,
// so an asynchronous executor can call it from its completion path.
func (s *Server) redirectOf(cl *pool.Call, bk *pool.Backend, attempt int) (hop, bool) {
	if cl.Err != nil || !mayRedirect(cl.Reply) {
		return hop{}, false
	}
	d := s.cfg.Destination
	wait := redirectWait << min(attempt, 6)
	r, isRedirect := destination.ParseRedirect(cl.Reply)
	if !isRedirect {
		if (destination.IsTryAgain(cl.Reply) || destination.IsClusterDown(cl.Reply)) && attempt < maxRedirects {
			return hop{bk: bk, wait: wait}, true
		}
		return hop{}, false
	}
	r = r.From(bk.Addr())
	d.Moved(r) // a no-op for ASK
	if attempt >= maxRedirects {
		kind := "MOVED"
		if r.Ask {
			kind = "ASK"
		}
		cl.Reply = fmt.Appendf(nil, "-TRYAGAIN the destination's slot %d is moving (%s to %s after %d redirects): try again\r\n",
			r.Slot, kind, r.Addr, attempt)
		return hop{}, false
	}
	to, err := s.pools.set.Node(r.Addr, 0)
	if err != nil {
		// Not a node the last refresh saw: Moved asked for a refresh;
		// meanwhile the map's owner of the slot.
		return hop{bk: s.pools.db(0)[d.Map().ShardOfSlot(r.Slot)], wait: wait}, true
	}
	return hop{bk: to, ask: r.Ask}, true
}

// redirectRound prepares the next round of redirected calls among calls
// (call i last sent to bks[i]) after attempt rounds: it appends to groups
// one block per node, the calls in their order, each ASKed one after an
// ASKING (so a client's commands on one slot keep their order), points
// bks[i] at the call's new node, and returns how long to wait before
// sending the round; false when no call is redirected (every reply is
// final). It blocks on nothing: the executor (exec.go) has either driver
// send the round, then calls it again with attempt+1 once every call of
// it has its reply.
func (s *Server) redirectRound(calls []*pool.Call, bks []*pool.Backend, attempt int, groups []group) ([]group, time.Duration, bool) {
	if !s.cfg.Destination.Cluster() {
		return groups, 0, false
	}
	first := len(groups)
	var wait time.Duration
	for i, cl := range calls {
		h, ok := s.redirectOf(cl, bks[i], attempt)
		if !ok {
			continue
		}
		bks[i] = h.bk
		wait = max(wait, h.wait)
		j := first
		for j < len(groups) && groups[j].bk != h.bk {
			j++
		}
		if j == len(groups) {
			groups = append(groups, group{bk: h.bk})
		}
		if h.ask {
			groups[j].calls = append(groups[j].calls, &pool.Call{Req: destination.Asking})
		}
		groups[j].calls = append(groups[j].calls, cl)
	}
	return groups, wait, len(groups) > first
}

// dedicatedReply is a reply read on a dedicated connection (a blocking
// command, WATCH) as the client gets it: a MOVED or ASK, which the proxy
// cannot follow there, is recorded with the destination and answered
// -TRYAGAIN (moved true), so the client retries.
func (s *Server) dedicatedReply(reply []byte) (out []byte, moved bool) {
	if !mayRedirect(reply) {
		return reply, false
	}
	r, ok := destination.ParseRedirect(reply)
	if !ok {
		return reply, false
	}
	s.cfg.Destination.Moved(r)
	return fmt.Appendf(nil, "-TRYAGAIN the destination's slot %d is moving: try again\r\n", r.Slot), true
}

// txMoved tells where to send a MULTI … EXEC block (calls: MULTI, the
// commands, EXEC) again after hops resends: when EXEC answered
// -EXECABORT because a queued command was answered -MOVED, the node ran
// nothing, and the whole block goes to the slot's new owner, which the
// destination is told of. A block redirected by ASK or TRYAGAIN (its slot
// migrating) is not resent there: ASKING covers one command, not a
// transaction; its -EXECABORT reaches the client, which retries.
func (s *Server) txMoved(calls []pool.Call, hops int) (*pool.Backend, bool) {
	d := s.cfg.Destination
	if !d.Cluster() || hops >= maxRedirects || len(calls) < 3 {
		return nil, false
	}
	if last := calls[len(calls)-1].Reply; !bytes.HasPrefix(last, []byte("-EXECABORT")) {
		return nil, false
	}
	for i := 1; i < len(calls)-1; i++ {
		r, ok := destination.ParseRedirect(calls[i].Reply)
		if !ok || r.Ask {
			continue
		}
		d.Moved(r)
		to, err := s.pools.set.Node(r.Addr, 0)
		if err != nil {
			to = s.pools.db(0)[d.Map().ShardOfSlot(r.Slot)]
		}
		return to, true
	}
	return nil, false
}
