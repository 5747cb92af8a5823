package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/resp"
	"github.com/tidwall/redcon"
)

// opKind says how an op's reply is made.
type opKind uint8

const (
	opLocal   opKind = iota // the reply is local[lo:hi]
	opForward               // calls[first]'s reply, as the shard sent it
	opArray                 // MGET: n parts; ords[lo:hi] place their elements
	opSum                   // n integer replies, summed
	opOK                    // n +OK replies: +OK
	opKeys                  // KEYS: n arrays, concatenated, hidden keys dropped
	opScan                  // SCAN on shard arg: cursor re-encoded, hidden keys dropped
	opTTL                   // a TTL read: the grace taken off (ttl.go), arg is its ttlMode
	opCont                  // a continuation's: it turns into opLocal when it answers
)

// op is one command of a batch: the reply it owes, in order.
type op struct {
	kind     opKind
	lo, hi   int    // span in local (opLocal) or ords (opArray)
	first, n int    // calls[first:first+n]
	arg      int    // opScan: the shard; opTTL: the ttlMode
	tags     uint32 // opScan: the cursor's topology tags (scanStart)
	// The command to report to Config.Observer: name is "" when none.
	name   string
	start  time.Time
	failed bool // its reply is an error
	silent bool // CLIENT REPLY OFF/SKIP: not written
}

// isHidden reports a key replicaof keeps for itself on the destination
// (destination.KeyPrefix): clients never see them.
func isHidden(key []byte) bool { return bytes.HasPrefix(key, []byte(destination.KeyPrefix)) }

// reply appends o's reply to out.
func (c *session) reply(out []byte, o *op) []byte {
	if o.kind == opLocal {
		return append(out, c.local[o.lo:o.hi]...)
	}
	// A failed call, or an error reply from any part, is the answer.
	for i := o.first; i < o.first+o.n; i++ {
		cl := c.calls[i]
		if cl.Err != nil {
			return c.appendCallErr(out, i)
		}
		if o.kind != opForward && (len(cl.Reply) == 0 || cl.Reply[0] == resp.TypeError) {
			return append(out, cl.Reply...)
		}
	}
	switch o.kind {
	case opForward:
		return append(out, c.calls[o.first].Reply...)
	case opSum:
		var sum int64
		for i := o.first; i < o.first+o.n; i++ {
			n, ok := intReply(c.calls[i].Reply)
			if !ok {
				return redcon.AppendError(out, "ERR unexpected reply from shard")
			}
			sum += n
		}
		return redcon.AppendInt(out, sum)
	case opOK:
		for i := o.first; i < o.first+o.n; i++ {
			if !bytes.Equal(c.calls[i].Reply, []byte("+OK\r\n")) {
				return append(out, c.calls[i].Reply...)
			}
		}
		return redcon.AppendOK(out)
	case opArray:
		return c.mergeArray(out, o)
	case opKeys:
		return c.mergeKeys(out, o)
	case opScan:
		return c.mergeScan(out, o)
	case opTTL:
		return c.ttlReply(out, c.calls[o.first].Reply, ttlMode(o.arg))
	}
	return redcon.AppendError(out, "ERR internal: unknown op")
}

func (c *session) appendCallErr(out []byte, i int) []byte {
	return redcon.AppendError(out, shardErr(c.callsh[i], c.calls[i].Err))
}

// shardErr is the error a client sees when shard cannot answer.
func shardErr(shard int, err error) string {
	msg := strings.NewReplacer("\r", " ", "\n", " ").Replace(err.Error())
	var le *resp.LimitError
	if errors.As(err, &le) {
		// The shard answered; only this reply could not be relayed.
		return fmt.Sprintf("ERR shard %d: %s", shard, msg)
	}
	return fmt.Sprintf("ERR shard %d unavailable: %s", shard, msg)
}

// mergeArray re-assembles MGET: part p answered one element per key, and
// ords (in part order) says where each goes.
func (c *session) mergeArray(out []byte, o *op) []byte {
	nkeys := o.hi - o.lo
	elems := c.scratch[:0]
	for i := 0; i < nkeys; i++ {
		elems = append(elems, nil)
	}
	ords := c.ords[o.lo:o.hi]
	at := 0
	for i := o.first; i < o.first+o.n; i++ {
		b := c.calls[i].Reply
		n, p, ok := resp.AggregateHeader(b)
		if !ok || at+n > nkeys {
			return redcon.AppendError(out, "ERR unexpected reply from shard")
		}
		for j := 0; j < n; j++ {
			l, err := resp.ReplyLen(b[p:], relayed)
			if err != nil {
				return redcon.AppendError(out, "ERR unexpected reply from shard")
			}
			elems[ords[at]] = b[p : p+l]
			at++
			p += l
		}
	}
	if at != nkeys {
		return redcon.AppendError(out, "ERR unexpected reply from shard")
	}
	out = redcon.AppendArray(out, nkeys)
	for _, e := range elems {
		out = append(out, e...)
	}
	c.scratch = elems[:0]
	return out
}

// mergeKeys concatenates KEYS replies without hidden keys.
func (c *session) mergeKeys(out []byte, o *op) []byte {
	total, base := 0, len(out)
	for pass := 0; pass < 2; pass++ {
		if pass == 1 {
			out = redcon.AppendArray(out, total)
		}
		for i := o.first; i < o.first+o.n; i++ {
			b := c.calls[i].Reply
			n, p, ok := resp.AggregateHeader(b)
			if !ok {
				return redcon.AppendError(out[:base], "ERR unexpected reply from shard")
			}
			for j := 0; j < n; j++ {
				l, err := resp.ReplyLen(b[p:], relayed)
				if err != nil {
					return redcon.AppendError(out[:base], "ERR unexpected reply from shard")
				}
				if e := b[p : p+l]; !isHidden(resp.BulkBody(e)) {
					if pass == 0 {
						total++
					} else {
						out = append(out, e...)
					}
				}
				p += l
			}
		}
	}
	return out
}

// mergeScan turns one shard's SCAN reply into the proxy's: the cursor
// names the shard to continue on, hidden keys are dropped.
func (c *session) mergeScan(out []byte, o *op) []byte {
	v, _, err := resp.ParseValue(c.calls[o.first].Reply, c.s.cfg.Limits)
	if err != nil || v.Type != resp.TypeArray || len(v.Elems) != 2 {
		return redcon.AppendError(out, "ERR unexpected reply from shard")
	}
	sc, err := strconv.ParseUint(string(v.Elems[0].Str), 10, 64)
	if err != nil {
		return redcon.AppendError(out, "ERR unexpected reply from shard")
	}
	next, ok := c.s.scanNext(o.tags, o.arg, sc)
	if !ok {
		return redcon.AppendError(out, "ERR shard cursor out of range")
	}
	keys := v.Elems[1].Elems
	n := 0
	for _, k := range keys {
		if !isHidden(k.Str) {
			n++
		}
	}
	out = redcon.AppendArray(out, 2)
	out = redcon.AppendBulk(out, strconv.AppendUint(nil, next, 10))
	out = redcon.AppendArray(out, n)
	for _, k := range keys {
		if !isHidden(k.Str) {
			out = redcon.AppendBulk(out, k.Str)
		}
	}
	return out
}

// intReply parses ":n\r\n".
func intReply(b []byte) (int64, bool) {
	if len(b) < 4 || b[0] != resp.TypeInteger {
		return 0, false
	}
	return resp.ParseInt(b[1 : len(b)-2])
}

// relayed are the limits a shard's reply is framed again with: none it
// could be over, since resp.ReadReply framed it whole under the shard's
// limits already (their MaxDepth, at the most resp.DefaultLimits', in
// particular).
var relayed = resp.Limits{MaxBulk: 1 << 62, MaxArray: 1 << 62, MaxInline: 1 << 30, MaxDepth: 1 << 20, MaxReply: 1 << 62}
