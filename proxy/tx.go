package proxy

import (
	"strconv"

	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

// Transaction bounds: what MULTI may queue before EXEC.
const (
	maxTxCommands = 10000
	maxTxBytes    = 64 << 20
)

// txState is an open MULTI: commands queued on the proxy, checked to live
// on one shard, sent as MULTI … EXEC in one Pipeline: pool.Backend
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
func (c *session) queue(name string, args [][]byte) {
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
	case "ping", "echo", "unwatch":
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
		shard, err := c.s.shards().Route(args, keys)
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
	c.replySimple("QUEUED")
}

// exec sends the queued commands wrapped in MULTI/EXEC and answers EXEC's
// reply: on the WATCH connection when the client watches keys, else as
// one block on the shared connection.
func (c *session) exec() {
	t := c.tx
	c.tx = nil
	if c.watching != nil {
		c.drv.execWatched(t)
		return
	}
	switch {
	case t.dirty:
		c.replyErr("EXECABORT Transaction discarded because of previous errors.")
		return
	case len(t.ends) == 0:
		c.replyArrayLen(0)
		return
	}
	shard := max(t.shard, 0)
	bk := c.bk[shard]
	k := &cont{block: true} // one block no other client's command can split
	k.add(bk, resp.AppendCommandString(nil, "MULTI"))
	start := 0
	for _, end := range t.ends {
		k.add(bk, t.reqs[start:end])
		start = end
	}
	k.add(bk, resp.AppendCommandString(nil, "EXEC"))
	hops := 0
	var done func(k *cont)
	done = func(k *cont) {
		for i := range k.calls {
			if err := k.calls[i].Err; err != nil {
				c.replyErr(shardErr(shard, err))
				return
			}
		}
		if to, ok := c.s.txMoved(k.calls, hops); ok {
			// The slot moved: the node ran nothing; send it all there.
			hops++
			reqs := make([][]byte, len(k.calls))
			for i := range k.calls {
				reqs[i] = k.calls[i].Req
			}
			k.round(done)
			for _, req := range reqs {
				k.add(to, req)
			}
			return
		}
		c.replyRaw(c.ttlExec(t, k.calls[len(k.calls)-1].Reply))
	}
	k.next = done
	c.then(k) // after the commands planned before it
}

// WATCH pins the client to the watched keys' shard: WATCH runs on a shard
// connection the client holds (dialed on the first WATCH, counted in
// Config.MaxBlocking) until EXEC, DISCARD or UNWATCH, and the transaction
// that follows runs there too, so the shard's own WATCH semantics apply:
// a write by anyone to a watched key (through the proxy or by the syncer)
// makes EXEC answer nil. Keys on several shards, or on another shard than
// the keys already watched, answer -CROSSSLOT, and so does a transaction
// command whose keys are on another shard.
func (c *client) watch(args [][]byte) {
	if len(args) < 2 {
		c.wrongArgs("watch")
		return
	}
	keys := c.keys[:0]
	for i := 1; i < len(args); i++ {
		keys = append(keys, i)
	}
	c.keys = keys
	args, _ = c.hide(args, keys, false)
	shard, err := c.s.shards().Route(args, keys)
	if err != nil || (c.watching != nil && c.watching.shard != shard) {
		c.replyErr(router.ErrCrossShard.Error())
		return
	}
	c.run() // commands planned before go first
	if c.watching == nil {
		select {
		case c.s.blockSem <- struct{}{}:
		default:
			c.replyErr(errMaxBlocking(c.s.cfg.MaxBlocking))
			return
		}
		d, err := c.s.dialDedicated(shard, c.db)
		if err != nil {
			<-c.s.blockSem
			c.replyErr(shardErr(shard, err))
			return
		}
		c.watching = d
	}
	reply, err := c.watching.last(resp.AppendCommand(nil, args...), 1, c.s.cfg.Timeout)
	if err != nil {
		c.unwatch()
		c.replyErr(shardErr(shard, err))
		return
	}
	if r, moved := c.s.dedicatedReply(reply); moved {
		// A cluster's slot moved: the watch holds the wrong node.
		c.unwatch()
		reply = r
	}
	c.replyRaw(reply)
}

// unwatch ends a watch: closing its connection unwatches every key.
func (c *session) unwatch() {
	if c.watching == nil {
		return
	}
	c.watching.close()
	c.watching = nil
	<-c.s.blockSem
}

// execWatched runs a transaction on the WATCH connection and ends the
// watch, as EXEC does.
func (c *client) execWatched(t *txState) {
	d := c.watching
	defer c.unwatch()
	if t.dirty {
		c.replyErr("EXECABORT Transaction discarded because of previous errors.")
		return
	}
	c.run() // earlier commands of the batch go first
	var req []byte
	n := 2
	if d.db != c.db { // SELECT after WATCH: the transaction runs in the new database
		req = resp.AppendCommandString(req, "SELECT", strconv.Itoa(c.db))
		n++
	}
	req = resp.AppendCommandString(req, "MULTI")
	req = append(req, t.reqs...)
	req = resp.AppendCommandString(req, "EXEC")
	reply, err := d.last(req, n+len(t.ends), c.s.cfg.Timeout)
	if err != nil {
		c.replyErr(shardErr(d.shard, err))
		return
	}
	c.replyRaw(reply)
}
