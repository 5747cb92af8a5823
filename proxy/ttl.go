package proxy

import (
	"github.com/replicaof/replicaof/resp"
	"github.com/tidwall/redcon"
)

// TTL reads (Config.TTLGrace). The syncer writes every TTL with a grace
// added (see syncer/apply/ttl.go), so the destination keeps a key until the
// source's DEL for it arrives. Reads through the proxy report the source's
// TTL: the commands below are sent to the shard in their millisecond form
// and the grace is taken off the reply.
//
//	TTL, PTTL                 relative: max(0, ms - grace), TTL in seconds rounded like Redis
//	EXPIRETIME, PEXPIRETIME   absolute: ms - grace (the source's expire time)
//	HTTL, HPTTL               per field, as TTL/PTTL (seconds rounded up, like Redis)
//	HEXPIRETIME, HPEXPIRETIME per field, as EXPIRETIME/PEXPIRETIME
//
// Replies -1 (no TTL) and -2 (no key or field) pass unchanged, as do
// errors. A key whose source TTL has passed but whose DEL has not arrived
// yet is lagging data: TTL and PTTL answer 0 for it (Redis answers 0 too
// for a key in its last millisecond), EXPIRETIME and PEXPIRETIME the
// source's expire time, in the past. Inside MULTI the same holds for each
// element of EXEC's reply; in scripts the replies are the shard's own,
// grace included.

// ttlMode says how a TTL reply is adjusted.
type ttlMode uint8

const (
	ttlSeconds  ttlMode = 1 << iota // reply in seconds (the shard answered ms)
	ttlAbsolute                     // a unix time, not a time to live
	ttlFields                       // an array, one value per hash field
)

// ttlForms maps each TTL read to its millisecond form and its mode.
var ttlForms = map[string]struct {
	ms   []byte
	mode ttlMode
}{
	"ttl":          {[]byte("PTTL"), ttlSeconds},
	"pttl":         {[]byte("PTTL"), 0},
	"expiretime":   {[]byte("PEXPIRETIME"), ttlSeconds | ttlAbsolute},
	"pexpiretime":  {[]byte("PEXPIRETIME"), ttlAbsolute},
	"httl":         {[]byte("HPTTL"), ttlFields | ttlSeconds},
	"hpttl":        {[]byte("HPTTL"), ttlFields},
	"hexpiretime":  {[]byte("HPEXPIRETIME"), ttlFields | ttlSeconds | ttlAbsolute},
	"hpexpiretime": {[]byte("HPEXPIRETIME"), ttlFields | ttlAbsolute},
}

// ttlRead plans a TTL read with the grace taken off its reply. It returns
// false for commands it does not handle (or without a grace), which are
// then routed as usual.
func (c *session) ttlRead(name string, args [][]byte) bool {
	if c.s.cfg.TTLGrace <= 0 {
		return false
	}
	form, ok := ttlForms[name]
	if !ok {
		return false
	}
	// Malformed commands go as sent: the shard's error names them.
	if form.mode&ttlFields == 0 && len(args) != 2 || form.mode&ttlFields != 0 && len(args) < 5 {
		return false
	}
	ms := make([][]byte, len(args))
	copy(ms, args)
	ms[0] = form.ms
	n := len(c.ops)
	c.route(ms, c.s.cfg.Table.Lookup(ms))
	if len(c.ops) == n+1 && c.ops[n].kind == opForward {
		c.ops[n].kind, c.ops[n].arg = opTTL, int(form.mode)
	}
	return true
}

// ttlReply appends reply, a TTL read's answer from the shard, with the
// grace taken off.
func (c *session) ttlReply(out, reply []byte, mode ttlMode) []byte {
	grace := c.s.cfg.TTLGrace.Milliseconds()
	if mode&ttlFields == 0 {
		v, ok := intReply(reply)
		if !ok {
			return append(out, reply...)
		}
		return redcon.AppendInt(out, ungrace(v, grace, mode))
	}
	n, p, ok := resp.AggregateHeader(reply)
	if !ok || reply[0] != resp.TypeArray {
		return append(out, reply...)
	}
	if n == 0 {
		return append(out, reply...)
	}
	start := len(out)
	out = append(out, reply[:p]...)
	for range n {
		l, err := resp.ReplyLen(reply[p:], relayed)
		if err != nil {
			return redcon.AppendError(out[:start], "ERR unexpected reply from shard")
		}
		e := reply[p : p+l]
		if v, ok := intReply(e); ok {
			out = redcon.AppendInt(out, ungrace(v, grace, mode))
		} else {
			out = append(out, e...)
		}
		p += l
	}
	return out
}

// ungrace turns a millisecond value from a shard into what the source
// would answer.
func ungrace(v, grace int64, mode ttlMode) int64 {
	if v < 0 {
		return v // -1 no TTL, -2 no key / field
	}
	v -= grace
	if v < 0 {
		v = 0
	}
	if mode&ttlSeconds == 0 {
		return v
	}
	if mode&ttlFields != 0 {
		return (v + 999) / 1000 // HTTL, HEXPIRETIME round up
	}
	return (v + 500) / 1000 // TTL, EXPIRETIME round to nearest
}

// ttlMark is a TTL read queued in MULTI: the index of its reply in EXEC's
// array and how to adjust it.
type ttlMark struct {
	at   int
	mode ttlMode
}

// ttlQueued turns a TTL read queued in MULTI into its millisecond form
// and marks its reply for ttlExec.
func (c *session) ttlQueued(t *txState, name string, args [][]byte) [][]byte {
	if c.s.cfg.TTLGrace <= 0 {
		return args
	}
	form, ok := ttlForms[name]
	if !ok || form.mode&ttlFields == 0 && len(args) != 2 || form.mode&ttlFields != 0 && len(args) < 5 {
		return args
	}
	ms := make([][]byte, len(args))
	copy(ms, args)
	ms[0] = form.ms
	t.ttls = append(t.ttls, ttlMark{at: len(t.ends), mode: form.mode})
	return ms
}

// ttlExec takes the grace off the marked elements of EXEC's reply.
func (c *session) ttlExec(t *txState, reply []byte) []byte {
	if len(t.ttls) == 0 {
		return reply
	}
	n, p, ok := resp.AggregateHeader(reply)
	if !ok || reply[0] != resp.TypeArray || n != len(t.ends) {
		return reply // EXECABORT, a nil reply (WATCH is refused), …
	}
	out := append([]byte(nil), reply[:p]...)
	marks := t.ttls
	for i := range n {
		l, err := resp.ReplyLen(reply[p:], relayed)
		if err != nil {
			return redcon.AppendError(nil, "ERR unexpected reply from shard")
		}
		e := reply[p : p+l]
		if len(marks) > 0 && marks[0].at == i {
			out = c.ttlReply(out, e, marks[0].mode)
			marks = marks[1:]
		} else {
			out = append(out, e...)
		}
		p += l
	}
	return out
}
