package proxy

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/replicaof/replicaof/resp"
	"github.com/tidwall/redcon"
)

// Scripts and functions live on every shard: a script loaded on one shard
// only would fail EVALSHA for keys of the others. So SCRIPT LOAD/FLUSH and
// FUNCTION LOAD/DELETE/FLUSH/RESTORE go to every shard and answer when
// all shards answered the same (an error naming the first shard that
// differs otherwise). They are allowed without AllowWrites: they load
// code and change no data, and a script that writes still needs
// AllowWrites to run (EVALSHA and FCALL run as their _RO variants
// without it). SCRIPT EXISTS and FUNCTION LIST/DUMP/STATS ask every shard
// and merge; SCRIPT KILL and FUNCTION KILL go to every shard over
// connections of their own (the shared connection of a shard running a
// script waits behind it) and answer as the shard running one does.

func lowerArg(b []byte) string {
	var nb [32]byte
	return lowerName(nb[:0], b)
}

// everyShard plans args on every shard of the client's database, and
// done with the replies (a continuation: commands planned before go
// first); a shard that fails is answered for done.
func (c *session) everyShard(args [][]byte, done func(replies [][]byte)) {
	c.fanOut(resp.AppendCommand(nil, args...), done)
}

// everyShardNoError is everyShard that also answers the first error
// reply a shard gave, if any, instead of calling done.
func (c *session) everyShardNoError(args [][]byte, done func(replies [][]byte)) {
	c.everyShard(args, func(replies [][]byte) {
		if e := firstError(replies); e != nil {
			c.replyRaw(e)
			return
		}
		done(replies)
	})
}

// agree answers the shards' common reply, or names the first shard whose
// reply differs from shard 0's.
func (c *session) agree(args [][]byte) {
	c.everyShard(args, c.agreeReply)
}

// agreeReply answers agree's replies.
func (c *session) agreeReply(replies [][]byte) {
	for i, r := range replies[1:] {
		if !bytes.Equal(r, replies[0]) {
			c.replyErr(fmt.Sprintf("ERR shards disagree: shard 0 answered %s, shard %d answered %s",
				brief(replies[0]), i+1, brief(r)))
			return
		}
	}
	c.replyRaw(replies[0])
}

// brief is a reply made fit for an error line: its first line or bulk,
// printable, at most 64 bytes.
func brief(r []byte) string {
	if b := resp.BulkBody(r); b != nil {
		return printable(b)
	}
	r = bytes.TrimRight(r, "\r\n")
	if len(r) > 0 && (r[0] == resp.TypeError || r[0] == resp.TypeSimple || r[0] == resp.TypeInteger) {
		r = r[1:]
	}
	return printable(r)
}

// firstError returns the first error reply, or nil.
func firstError(replies [][]byte) []byte {
	for _, r := range replies {
		if len(r) > 0 && r[0] == resp.TypeError {
			return r
		}
	}
	return nil
}

// scriptExists answers 1 for a script every shard has: only then does
// EVALSHA work for keys of any shard.
func (c *session) scriptExists(args [][]byte) {
	c.everyShardNoError(args, func(replies [][]byte) {
		var all []int64
		for i, r := range replies {
			n, at, ok := resp.AggregateHeader(r)
			if !ok || (i > 0 && n != len(all)) {
				c.replyErr("ERR shard " + fmt.Sprint(i) + " answered SCRIPT EXISTS unexpectedly")
				return
			}
			for j := 0; j < n; j++ {
				l, err := resp.ReplyLen(r[at:], relayed)
				v, ok := intReply(r[at : at+l])
				if err != nil || !ok {
					c.replyErr("ERR shard " + fmt.Sprint(i) + " answered SCRIPT EXISTS unexpectedly")
					return
				}
				at += l
				if i == 0 {
					all = append(all, v)
				} else if v == 0 {
					all[j] = 0
				}
			}
		}
		lo := len(c.local)
		c.local = redcon.AppendArray(c.local, len(all))
		for _, v := range all {
			c.local = redcon.AppendInt(c.local, v)
		}
		c.localOp(lo)
	})
}

// elems splits a raw array reply into its raw elements.
func elems(r []byte) ([][]byte, bool) {
	n, at, ok := resp.AggregateHeader(r)
	if !ok {
		return nil, false
	}
	out := make([][]byte, 0, n)
	for j := 0; j < n; j++ {
		l, err := resp.ReplyLen(r[at:], relayed)
		if err != nil {
			return nil, false
		}
		out = append(out, r[at:at+l])
		at += l
	}
	return out, true
}

// field finds a key of a RESP2 key/value array (FUNCTION LIST's and
// FUNCTION STATS' replies) and returns its value.
func field(v resp.Value, key string) (resp.Value, bool) {
	for i := 0; i+1 < len(v.Elems); i += 2 {
		if string(v.Elems[i].Str) == key {
			return v.Elems[i+1], true
		}
	}
	return resp.Value{}, false
}

// functionList merges the shards' libraries by name: a library loaded
// through the proxy is on every shard and is listed once.
func (c *session) functionList(args [][]byte) {
	c.everyShardNoError(args, func(replies [][]byte) {
		seen := map[string]bool{}
		var libs [][]byte
		for i, r := range replies {
			es, ok := elems(r)
			if !ok {
				c.replyErr(fmt.Sprintf("ERR shard %d answered FUNCTION LIST unexpectedly", i))
				return
			}
			for _, e := range es {
				v, _, err := resp.ParseValue(e, resp.Limits{MaxArray: 1 << 31})
				if err != nil {
					c.replyErr(fmt.Sprintf("ERR shard %d answered FUNCTION LIST unexpectedly", i))
					return
				}
				name, _ := field(v, "library_name")
				if seen[string(name.Str)] {
					continue
				}
				seen[string(name.Str)] = true
				libs = append(libs, e)
			}
		}
		lo := len(c.local)
		c.local = redcon.AppendArray(c.local, len(libs))
		for _, l := range libs {
			c.local = append(c.local, l...)
		}
		c.localOp(lo)
	})
}

// functionStats answers the stats of the shard running a function, or
// shard 0's when none is: the libraries are the same on every shard.
func (c *session) functionStats(args [][]byte) {
	c.everyShardNoError(args, func(replies [][]byte) {
		for _, r := range replies {
			v, _, err := resp.ParseValue(r, resp.Limits{MaxArray: 1 << 31})
			if err != nil {
				continue
			}
			if run, ok := field(v, "running_script"); ok && !run.Null {
				c.replyRaw(r)
				return
			}
		}
		c.replyRaw(replies[0])
	})
}

// killScript sends SCRIPT KILL or FUNCTION KILL to every shard, each on a
// connection of its own, and answers +OK if a shard killed a script;
// otherwise a shard's refusal (UNKILLABLE before NOTBUSY).
func (c *client) killScript(args [][]byte) {
	c.run()
	req := resp.AppendCommand(nil, args...)
	n := c.s.shards().Len()
	replies := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d, err := c.s.dialDedicated(i, c.db)
			if err != nil {
				errs[i] = err
				return
			}
			defer d.close()
			replies[i], errs[i] = d.last(req, 1, c.s.cfg.Timeout)
		}(i)
	}
	wg.Wait()
	var refusal []byte
	for i := 0; i < n; i++ {
		switch r := replies[i]; {
		case errs[i] != nil:
			if refusal == nil {
				refusal = redcon.AppendError(nil, shardErr(i, errs[i]))
			}
		case bytes.HasPrefix(r, []byte("+OK")):
			c.replyRaw(r)
			return
		case bytes.HasPrefix(r, []byte("-NOTBUSY")):
			if refusal == nil {
				refusal = r
			}
		default:
			refusal = r
		}
	}
	c.replyRaw(refusal)
}
