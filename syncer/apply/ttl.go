package apply

import (
	"strconv"

	"github.com/replicaof/replicaof/router"
)

// TTL grace (Options.TTLGrace): a replica never expires a key itself, it
// waits for its master's DEL. The destination shards are masters and do
// expire keys, so every TTL the syncer writes is the source's plus the
// grace: a key the source keeps alive (renewing its TTL, the session-store
// pattern) is still there when the renewal arrives late, and a key the
// source lets expire goes away when the source's DEL (or UNLINK) arrives,
// or at the latest a grace after its TTL. The proxy subtracts the grace
// again from what TTL, PTTL, EXPIRETIME, PEXPIRETIME and the hash-field
// equivalents answer.
//
// Every form that sets a TTL is rewritten, relative or absolute (Redis
// 7.0+ masters propagate absolute times, 5.0 and 6.2 relative ones):
//
//	SET … EX s | PX ms | EXAT s | PXAT ms   → PX s*1000+g, PX ms+g, PXAT s*1000+g, PXAT ms+g
//	GETEX … (same options)                  → the same
//	SETEX key s v, PSETEX key ms v          → PSETEX key (ms)+g v
//	EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT    → PEXPIRE / PEXPIREAT with ms+g
//	RESTORE key ttl … [ABSTTL]              → ttl+g (0, no TTL, stays 0)
//	HEXPIRE, HPEXPIRE, HEXPIREAT, HPEXPIREAT → HPEXPIRE / HPEXPIREAT with ms+g
//	HSETEX, HGETEX … EX|PX|EXAT|PXAT … FIELDS → as SET, before FIELDS
//
// NX/XX/GT/LT keep their meaning: every TTL on the destination carries the
// same grace, so comparisons between an old and a new expire time come out
// as on the source. SET … KEEPTTL, COPY, RENAME and MOVE keep the TTL the
// key already has (graced). A relative TTL of zero or less is left alone:
// a master never propagates one (it deletes the key and propagates DEL
// instead, src/expire.c expireGenericCommand), so it means "delete now"
// wherever it comes from. An absolute time in the past gets the grace like
// any other: it is the late renewal of a key whose DEL, if the source
// deleted it, is still on its way. Values too large for the grace to matter
// (beyond maxGraced) are left alone, so adding it can never overflow.
//
// The snapshot path adds the grace to each key's absolute expire time
// (RESTORE … ABSTTL, or PEXPIREAT when rebuilt) and to hash-field expire
// times (HPEXPIREAT). Verbatim Lua scripts (5.0/6.2 sources with
// lua-replicate-commands no) are applied as sent: the TTLs they set have
// no grace.

// maxGraced bounds the TTL values the grace is added to: 2^46 ms is about
// 2,200 years, relative or as a unix time, far beyond any real TTL.
const maxGraced = 1 << 46

// ttlRewriter adds the grace to stream commands. It is owned by the
// stream's goroutine; what rewrite returns is valid until its next call.
type ttlRewriter struct {
	grace int64 // ms; 0 rewrites nothing
	args  [][]byte
	num   []byte
}

// Command names substituted by rewrite.
var (
	namePX         = []byte("PX")
	namePXAT       = []byte("PXAT")
	namePSETEX     = []byte("PSETEX")
	namePEXPIRE    = []byte("PEXPIRE")
	namePEXPIREAT  = []byte("PEXPIREAT")
	nameHPEXPIRE   = []byte("HPEXPIRE")
	nameHPEXPIREAT = []byte("HPEXPIREAT")
)

// rewrite returns args with the grace added to the TTL it sets, or args
// itself when it sets none. name is the lower-case command name.
func (r *ttlRewriter) rewrite(name string, args [][]byte) [][]byte {
	if r.grace <= 0 {
		return args
	}
	switch name {
	case "set":
		if len(args) > 3 {
			return r.options(args, 3, false)
		}
	case "getex":
		if len(args) > 2 {
			return r.options(args, 2, false)
		}
	case "hsetex", "hgetex":
		if len(args) > 2 {
			return r.options(args, 2, true)
		}
	case "setex":
		if len(args) == 4 {
			return r.one(args, 2, namePSETEX, 1000, true)
		}
	case "psetex":
		if len(args) == 4 {
			return r.one(args, 2, nil, 1, true)
		}
	case "expire":
		if len(args) >= 3 {
			return r.one(args, 2, namePEXPIRE, 1000, true)
		}
	case "pexpire":
		if len(args) >= 3 {
			return r.one(args, 2, nil, 1, true)
		}
	case "expireat":
		if len(args) >= 3 {
			return r.one(args, 2, namePEXPIREAT, 1000, false)
		}
	case "pexpireat":
		if len(args) >= 3 {
			return r.one(args, 2, nil, 1, false)
		}
	case "hexpire":
		if len(args) >= 3 {
			return r.one(args, 2, nameHPEXPIRE, 1000, true)
		}
	case "hpexpire":
		if len(args) >= 3 {
			return r.one(args, 2, nil, 1, true)
		}
	case "hexpireat":
		if len(args) >= 3 {
			return r.one(args, 2, nameHPEXPIREAT, 1000, false)
		}
	case "hpexpireat":
		if len(args) >= 3 {
			return r.one(args, 2, nil, 1, false)
		}
	case "restore":
		// ttl 0 means no TTL, relative or ABSTTL alike.
		if len(args) >= 4 {
			if v, ok := parseTTL(args[2]); ok && v > 0 {
				return r.one(args, 2, nil, 1, false)
			}
		}
	}
	return args
}

// one rewrites args[at] (a TTL in units of unit ms) to ms plus the grace,
// renaming the command to newName when set. A relative TTL (relative)
// of zero or less is left alone, as is anything unparsable.
func (r *ttlRewriter) one(args [][]byte, at int, newName []byte, unit int64, relative bool) [][]byte {
	ms, ok := r.graced(args[at], unit, relative)
	if !ok {
		return args
	}
	out := r.copyArgs(args)
	if newName != nil {
		out[0] = newName
	}
	out[at] = ms
	return out
}

// options rewrites the EX/PX/EXAT/PXAT option among args[from:] (for
// HSETEX/HGETEX only before FIELDS). EX becomes PX and EXAT PXAT, in ms.
func (r *ttlRewriter) options(args [][]byte, from int, stopAtFields bool) [][]byte {
	var out [][]byte
	for i := from; i < len(args); i++ {
		opt := args[i]
		if len(opt) < 2 || len(opt) > 6 {
			continue
		}
		var lb [6]byte
		lower := string(router.AppendLower(lb[:0], opt))
		if stopAtFields && lower == "fields" {
			break
		}
		var (
			unit    int64
			newName []byte
			rel     bool
		)
		switch lower {
		case "ex":
			unit, newName, rel = 1000, namePX, true
		case "px":
			unit, rel = 1, true
		case "exat":
			unit, newName = 1000, namePXAT
		case "pxat":
			unit = 1
		default:
			continue
		}
		if i+1 >= len(args) {
			break
		}
		ms, ok := r.graced(args[i+1], unit, rel)
		if !ok {
			i++
			continue
		}
		if out == nil {
			out = r.copyArgs(args)
		}
		if newName != nil {
			out[i] = newName
		}
		out[i+1] = ms
		i++
	}
	if out == nil {
		return args
	}
	return out
}

// graced parses a TTL argument in units of unit ms and returns it in ms
// plus the grace, formatted.
func (r *ttlRewriter) graced(arg []byte, unit int64, relative bool) ([]byte, bool) {
	v, ok := parseTTL(arg)
	if !ok || (relative && v <= 0) || v > maxGraced/unit {
		return nil, false
	}
	ms := v*unit + r.grace
	start := len(r.num)
	r.num = strconv.AppendInt(r.num, ms, 10)
	return r.num[start:len(r.num):len(r.num)], true
}

// copyArgs returns a reused copy of the argument vector (not of the
// arguments) to substitute some of them in. Numbers formatted before the
// copy stay valid: r.num only grows between rewrites (see reset).
func (r *ttlRewriter) copyArgs(args [][]byte) [][]byte {
	r.args = append(r.args[:0], args...)
	return r.args
}

// reset drops the numbers formatted by the previous rewrite; call it
// before each command.
func (r *ttlRewriter) reset() {
	if cap(r.num) > 4096 {
		r.num = nil
	}
	r.num = r.num[:0]
}

// parseTTL parses a decimal int64 the way Redis does (no sign but '-',
// no spaces).
func parseTTL(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 || b[0] == '+' {
		return 0, false
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	return v, err == nil
}

// graceMs returns Options.TTLGrace in ms.
func (o Options) graceMs() int64 { return o.TTLGrace.Milliseconds() }

// withGrace adds the grace to an absolute expire time from a snapshot
// (ms <= 0: none).
func withGrace(ms, grace int64) int64 {
	if ms <= 0 || grace <= 0 || ms > maxGraced {
		return ms
	}
	return ms + grace
}
