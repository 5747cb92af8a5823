package proxy

import (
	"sort"
	"strconv"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/resp"
	"github.com/tidwall/redcon"
)

// flushScript runs FLUSHDB or FLUSHALL on one shard and puts back the
// keys replicaof keeps for itself (the syncer's checkpoints and marker),
// in one atomic step: no syncer write can fall between the copy and the
// flush, so a checkpoint is never rolled back. ARGV: "db" or "all", the
// number of databases to keep keys in for "all", then the flush options
// (ASYNC or SYNC).
const flushScript = `
local keep = {}
local function collect(db)
  for _, k in ipairs(redis.call('KEYS', '` + destination.KeyPrefix + `*')) do
    keep[#keep+1] = {db, k, redis.call('DUMP', k), redis.call('PTTL', k)}
  end
end
local opts = {}
for i = 3, #ARGV do opts[#opts+1] = ARGV[i] end
if ARGV[1] == 'db' then
  collect(nil)
  redis.call('FLUSHDB', unpack(opts))
else
  for db = 0, tonumber(ARGV[2]) - 1 do
    if redis.pcall('SELECT', db)['err'] then break end
    collect(db)
  end
  redis.call('FLUSHALL', unpack(opts))
end
for _, e in ipairs(keep) do
  if e[1] then redis.call('SELECT', e[1]) end
  local ttl = e[4]
  if ttl < 0 then ttl = 0 end
  redis.call('RESTORE', e[2], ttl, e[3])
end
return {ok='OK'}
`

// flush runs FLUSHDB or FLUSHALL on every shard, keeping replicaof's own
// keys. It needs AllowWrites. While the syncer runs, the flush empties
// the destination of the sources' data but not of the checkpoints, so
// the syncer carries on from where it was (no full resync): the keys come
// back only as the sources write them again, and the destination differs
// from the sources until then, which is what flushing a replica means.
func (c *session) flushCmd(name string, args [][]byte) {
	if !c.s.cfg.AllowWrites {
		c.replyErr(errReadOnly)
		return
	}
	opts := args[1:]
	if len(opts) > 1 || (len(opts) == 1 && !equalFold(opts[0], "async") && !equalFold(opts[0], "sync")) {
		c.replyErr("ERR syntax error")
		return
	}
	mode := "db"
	if name == "flushall" {
		mode = "all"
	}
	script, dbs := flushScript, c.s.cfg.Databases
	if c.s.cfg.Destination.Cluster() {
		// It reads and restores keys of many slots of the node; a
		// cluster has database 0 only.
		script, dbs = "#!lua flags=allow-cross-slot-keys\n"+flushScript, 1
	}
	eval := [][]byte{[]byte("EVAL"), []byte(script), []byte("0"), []byte(mode), []byte(strconv.Itoa(dbs))}
	c.everyShard(append(eval, opts...), func(replies [][]byte) {
		c.s.forgetHidden()
		c.agreeReply(replies)
	})
}

// time answers TIME from shard 0: one clock for every client.
func (c *session) timeCmd(args [][]byte) {
	if len(args) != 1 {
		c.wrongArgs("time")
		return
	}
	c.forward(0, args)
}

// pubsubNumpat is the largest shard's NUMPAT: the proxy subscribes
// each pattern on every shard, so a sum would count it once per shard.
// (Channel lists are merged and NUMSUB summed: a channel's subscribers
// are on its slot's shard.)
func (c *session) pubsubNumpat(args [][]byte) {
	if len(args) != 2 {
		c.wrongArgs("pubsub|numpat")
		return
	}
	c.everyShard(args, func(replies [][]byte) {
		var most int64
		for _, r := range replies {
			n, ok := intReply(r)
			if !ok {
				c.replyRaw(r)
				return
			}
			most = max(most, n)
		}
		lo := len(c.local)
		c.local = redcon.AppendInt(c.local, most)
		c.localOp(lo)
	})
}

func (c *session) pubsubChannels(args [][]byte) {
	if len(args) > 3 {
		c.wrongArgs("pubsub|" + lowerArg(args[1]))
		return
	}
	c.everyShard(args, func(replies [][]byte) {
		seen := map[string]bool{}
		var all []string
		for _, r := range replies {
			es, ok := elems(r)
			if !ok {
				c.replyRaw(r)
				return
			}
			for _, e := range es {
				ch := string(resp.BulkBody(e))
				if !seen[ch] {
					seen[ch] = true
					all = append(all, ch)
				}
			}
		}
		sort.Strings(all)
		lo := len(c.local)
		c.local = redcon.AppendArray(c.local, len(all))
		for _, ch := range all {
			c.local = redcon.AppendBulkString(c.local, ch)
		}
		c.localOp(lo)
	})
}

func (c *session) pubsubNumsub(args [][]byte) {
	chans := cloneArgs(args[2:]) // args are reused before the replies come
	c.everyShard(args, func(replies [][]byte) {
		counts := make([]int64, len(chans))
		for _, r := range replies {
			es, ok := elems(r)
			if !ok || len(es) != 2*len(counts) {
				c.replyRaw(r)
				return
			}
			for i := range counts {
				n, _ := intReply(es[2*i+1])
				counts[i] += n
			}
		}
		lo := len(c.local)
		c.local = redcon.AppendArray(c.local, 2*len(counts))
		for i, n := range counts {
			c.local = redcon.AppendBulk(c.local, chans[i])
			c.local = redcon.AppendInt(c.local, n)
		}
		c.localOp(lo)
	})
}

// clientReply runs CLIENT REPLY ON|OFF|SKIP: the proxy withholds the
// replies, as Redis does (OFF and SKIP are not answered themselves).
func (c *session) clientReply(args [][]byte) {
	if len(args) != 3 {
		c.wrongArgs("client|reply")
		return
	}
	switch {
	case equalFold(args[2], "on"):
		c.replyOff, c.skipReplies = false, 0
		c.silentFrom = -1 // ON is answered
		c.replyOK()
	case equalFold(args[2], "off"):
		c.replyOff = true
	case equalFold(args[2], "skip"):
		c.skipReplies = 1 // the next command
	default:
		c.replyErr("ERR syntax error")
	}
}

// onOff checks a CLIENT NO-EVICT / NO-TOUCH argument.
func onOff(b []byte) bool { return equalFold(b, "on") || equalFold(b, "off") }

// forgetHidden drops the cached hidden-key names after a flush.
func (s *Server) forgetHidden() {
	s.hidden.mu.Lock()
	s.hidden.m = nil
	s.hidden.mu.Unlock()
}
