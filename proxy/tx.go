package proxy

import (
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

// Transaction bounds: what MULTI may queue before EXEC.
const (
	maxTxCommands = 10000
	maxTxBytes    = 64 << 20
)

// txState is an open MULTI: commands queued on the proxy, checked to live
// on one shard, sent as MULTI … EXEC in one Pipeline: router.Backend
// writes a Pipeline as one block no other client's command can split, so
// the shared connections serve transactions too.
type txState struct {
	shard int // -1 until a command has keys
	dirty bool
	reqs  []byte
	ends  []int // end offset of each queued command in reqs
	ttls  []ttlMark
}

func (t *txState) queued() int {
	if t == nil {
		return 0
	}
	return len(t.ends)
}

// queue checks one command inside MULTI and answers +QUEUED, or an error
// that makes EXEC abort, as Redis does.
func (c *client) queue(name string, args [][]byte) {
	t := c.tx
	fail := func(msg string) {
		t.dirty = true
		c.replyErr(msg)
	}
	if len(t.ends) >= maxTxCommands || len(t.reqs) >= maxTxBytes {
		fail("ERR transaction too large")
		return
	}
	switch name {
	case "ping", "echo":
		// Keyless but harmless: they run on the transaction's shard.
	case "select", "auth", "hello", "client", "subscribe", "psubscribe", "unsubscribe",
		"punsubscribe", "quit", "keys", "scan", "dbsize", "randomkey", "info", "command":
		fail("ERR '" + name + "' is not supported inside MULTI by the proxy")
		return
	default:
		cmd := c.lookup(name, args)
		keys, ok := c.check(args, cmd)
		if !ok {
			t.dirty = true // check replied
			return
		}
		if args, ok = c.hide(args, keys, cmd.Write()); !ok {
			t.dirty = true
			return
		}
		shard, err := c.s.shards.Route(args, keys)
		if err != nil || (shard >= 0 && t.shard >= 0 && shard != t.shard) {
			fail(router.ErrCrossShard.Error())
			return
		}
		if shard >= 0 {
			t.shard = shard
		}
	}
	args = c.ttlQueued(t, name, args)
	t.reqs = resp.AppendCommand(t.reqs, args...)
	t.ends = append(t.ends, len(t.reqs))
	c.replyRaw([]byte("+QUEUED\r\n"))
}

// exec sends the queued commands wrapped in MULTI/EXEC and answers EXEC's
// reply.
func (c *client) exec() {
	t := c.tx
	c.tx = nil
	switch {
	case t.dirty:
		c.replyErr("EXECABORT Transaction discarded because of previous errors.")
		return
	case len(t.ends) == 0:
		c.replyRaw([]byte("*0\r\n"))
		return
	}
	c.run() // earlier commands of the batch go first
	shard := max(t.shard, 0)
	calls := make([]*router.Call, 0, len(t.ends)+2)
	calls = append(calls, &router.Call{Req: resp.AppendCommandString(nil, "MULTI")})
	start := 0
	for _, end := range t.ends {
		calls = append(calls, &router.Call{Req: t.reqs[start:end]})
		start = end
	}
	calls = append(calls, &router.Call{Req: resp.AppendCommandString(nil, "EXEC")})
	c.bk[shard].Pipeline(c.s.ctx, calls)
	for _, cl := range calls {
		if cl.Err != nil {
			c.replyErr(shardErr(shard, cl.Err))
			return
		}
	}
	c.replyRaw(c.ttlExec(t, calls[len(calls)-1].Reply))
}
