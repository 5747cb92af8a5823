package proxy

import (
	"errors"
	"strconv"
	"strings"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
	"github.com/tidwall/redcon"
)

// Error replies, worded like Redis' own.
const (
	errNoAuth    = "NOAUTH Authentication required."
	errReadOnly  = "READONLY You can't write against a read only replica."
	errWrongPass = "WRONGPASS invalid username-password pair or user is disabled."
	errReserved  = "ERR keys starting with '" + destination.KeyPrefix + "' are reserved"
)

// plan turns one command into an op of the batch: a local reply, calls
// to shards and the way their replies merge, or a continuation (cont) for
// a command that needs shard replies before it can answer (DBSIZE, INFO,
// EXEC…), which the executor runs after the calls planned before it. The
// commands that hold a connection of their own (SUBSCRIBE, WATCH,
// blocking ones) have the executor run the plan so far first, so replies
// keep command order.
func (c *session) plan(args [][]byte) {
	var nb [32]byte
	name := lowerName(nb[:0], args[0])
	if c.s.pools.follow {
		c.bk = c.s.pools.db(c.db) // a cluster group's master may have changed
	}
	if !c.authed {
		switch name {
		case "auth", "hello", "quit":
		default:
			c.replyErr(errNoAuth)
			return
		}
	}
	if c.tx != nil {
		switch name {
		case "exec":
			c.exec()
		case "discard":
			c.tx = nil
			c.unwatch() // DISCARD ends the watch, as in Redis
			c.replyOK()
		case "multi":
			c.replyErr("ERR MULTI calls can not be nested")
		case "watch":
			c.replyErr("ERR WATCH inside MULTI is not allowed")
		default:
			c.queue(name, args)
		}
		return
	}
	if c.sub.active() {
		switch name {
		case "subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ping", "quit":
		default:
			c.replyErr("ERR Can't execute '" + printable(args[0]) +
				"': only (P)SUBSCRIBE / (P)UNSUBSCRIBE / PING / QUIT are allowed in this context")
			return
		}
	}
	if sp, ok := specials[name]; ok && sp.run != nil {
		sp.run(c, name, args)
		return
	}
	c.route(args, c.lookup(name, args))
}

func (c *session) echo(args [][]byte) {
	if len(args) != 2 {
		c.wrongArgs("echo")
		return
	}
	c.replyBulk(args[1])
}

// publish goes to the channel's shard, where the syncer publishes too.
func (c *session) publish(name string, args [][]byte) {
	if len(args) != 3 {
		c.wrongArgs(name)
		return
	}
	c.forward(c.s.shards().ShardOf(args[1]), args)
}

func (c *session) multi(args [][]byte) {
	if len(args) != 1 {
		c.wrongArgs("multi")
		return
	}
	c.tx = &txState{shard: -1}
	if c.watching != nil {
		c.tx.shard = c.watching.shard // the transaction runs where the watch is
	}
	c.replyOK()
}

func (c *session) unwatchCmd(args [][]byte) {
	if len(args) != 1 {
		c.wrongArgs("unwatch")
		return
	}
	c.unwatch()
	c.replyOK()
}

// lookup finds a command, swapping scripts for their read-only variants
// when writes are not allowed: the shard then refuses writes inside them.
func (c *session) lookup(name string, args [][]byte) *router.Command {
	if !c.s.cfg.AllowWrites {
		switch name {
		case "eval", "evalsha", "fcall":
			args[0] = roNames[name]
		}
	}
	return c.s.cfg.Table.Lookup(args)
}

var roNames = map[string][]byte{
	"eval": []byte("EVAL_RO"), "evalsha": []byte("EVALSHA_RO"), "fcall": []byte("FCALL_RO"),
}

// check applies the policies every routed command passes: known,
// arity, not denied, read-only mode. It returns the key
// positions, or false after replying.
func (c *session) check(args [][]byte, cmd *router.Command) ([]int, bool) {
	if cmd == nil || (cmd.Subcommands != nil && len(args) > 1) {
		c.unknown(args) // an unknown command or subcommand
		return nil, false
	}
	if deniedReasons[parentName(cmd.Name)] != "" || cmd.Flags&(router.FlagAdmin|router.FlagPubSub) != 0 {
		c.unsupported(args)
		return nil, false
	}
	if !arityOK(cmd, len(args)) {
		c.wrongArgs(cmd.Name)
		return nil, false
	}
	if cmd.Write() && !c.s.cfg.AllowWrites {
		c.replyErr(errReadOnly)
		return nil, false
	}
	keys, err := cmd.Keys(args, c.keys[:0])
	c.keys = keys
	if err != nil && !errors.Is(err, router.ErrBadKeyCount) {
		c.unsupported(args)
		return nil, false
	}
	if len(keys) == 0 && len(cmd.KeySpecs) == 0 && cmd.FirstKey == 0 {
		// Keyless and not one the proxy answers: there is no shard to ask.
		c.unsupported(args)
		return nil, false
	}
	return keys, true
}

// route forwards a command whose keys all live on one shard. A bad key
// count goes to shard 0, whose error reply is the right one.
func (c *session) route(args [][]byte, cmd *router.Command) {
	keys, ok := c.check(args, cmd)
	if !ok {
		return
	}
	args, ok = c.hide(args, keys, cmd.Write())
	if !ok {
		return
	}
	if cmd.Flags&router.FlagBlocking != 0 && !nonBlockingRead(cmd, args) {
		c.drv.blocking(cmd.Name, args, keys)
		return
	}
	shard, err := c.s.shards().Route(args, keys)
	if err != nil {
		c.replyErr(err.Error())
		return
	}
	if shard < 0 {
		shard = 0
	}
	c.forwardCmd(cmd, shard, args)
}

// forwardCmd is forward, to a replica when cmd is a read one may serve.
func (c *session) forwardCmd(cmd *router.Command, shard int, args [][]byte) {
	if !replicaRead(cmd) {
		c.forward(shard, args)
		return
	}
	cl := c.readCall(c.s.rep, shard)
	cl.Req = resp.AppendCommand(cl.Req, args...)
	c.ops = append(c.ops, op{kind: opForward, first: c.ncalls - 1, n: 1})
}

// replicaRead tells the commands a replica may serve under
// Config.ReadFrom: read-only ones, less EVALSHA_RO (SCRIPT LOAD reaches
// the primaries only, so a replica may not have the script). EVAL_RO
// carries its script and FCALL_RO's libraries replicate.
func replicaRead(cmd *router.Command) bool {
	return cmd.Flags&router.FlagReadonly != 0 && !cmd.Write() && cmd.Name != "evalsha_ro"
}

// nonBlockingRead tells XREAD and XREADGROUP without BLOCK, which never
// block and so share the shard connections, from blocking commands.
func nonBlockingRead(cmd *router.Command, args [][]byte) bool {
	if cmd.Name != "xread" && cmd.Name != "xreadgroup" {
		return false
	}
	for _, a := range args[1:] {
		if equalFold(a, "block") {
			return false
		}
		if equalFold(a, "streams") {
			return true
		}
	}
	return true
}

// hide applies the hidden-key rule: a read of a hidden key reads a key
// that never exists (in the same slot, so routing is unchanged), a write
// is refused.
func (c *session) hide(args [][]byte, keys []int, write bool) ([][]byte, bool) {
	copied := false
	for _, k := range keys {
		if !isHidden(args[k]) {
			continue
		}
		if write {
			c.replyErr(errReserved)
			return nil, false
		}
		if !copied {
			args = append([][]byte(nil), args...)
			copied = true
		}
		args[k] = absentKey(args[k])
	}
	return args, true
}

// absentKey names a key in key's slot that replicaof never writes.
func absentKey(key []byte) []byte {
	k := append([]byte(destination.KeyPrefix+"absent{"), router.HashTag(key)...)
	return append(k, '}')
}

// forward plans one command to one shard, answered as the shard answers.
func (c *session) forward(shard int, args [][]byte) {
	i := c.ncalls
	cl := c.call(c.bk, shard)
	cl.Req = resp.AppendCommand(cl.Req, args...)
	c.ops = append(c.ops, op{kind: opForward, first: i, n: 1})
}

// split plans MGET, EXISTS, TOUCH, DEL, UNLINK and MSET: one part per shard,
// merged by the router's rule.
func (c *session) split(args [][]byte) {
	cmd := c.s.cfg.Table.Lookup(args)
	keys, ok := c.check(args, cmd)
	if !ok {
		return
	}
	if args, ok = c.hide(args, keys, cmd.Write()); !ok {
		return
	}
	merge, parts := c.s.shards().Split(args, false)
	if merge != router.MergeNone && c.s.cfg.Destination.Cluster() {
		parts = bySlot(parts, 1+b2i(merge == router.MergeOK)) // one slot per part
	}
	if merge == router.MergeNone || len(parts) == 1 {
		shard := 0
		if len(parts) == 1 {
			shard = parts[0].Shard
		}
		c.forwardCmd(cmd, shard, args)
		return
	}
	o := op{first: c.ncalls, n: len(parts), lo: len(c.ords)}
	switch merge {
	case router.MergeArray:
		o.kind = opArray
	case router.MergeSum:
		o.kind = opSum
	default:
		o.kind = opOK
	}
	read := replicaRead(cmd)
	for _, p := range parts {
		var cl *pool.Call
		if read {
			cl = c.readCall(c.s.rep, p.Shard)
		} else {
			cl = c.call(c.bk, p.Shard)
		}
		cl.Req = resp.AppendCommand(cl.Req, p.Args...)
		if o.kind == opArray {
			c.ords = append(c.ords, p.Keys...)
		}
	}
	o.hi = len(c.ords)
	c.ops = append(c.ops, o)
}

// keysCmd fans KEYS out to every shard.
func (c *session) keysCmd(args [][]byte) {
	if len(args) != 2 {
		c.wrongArgs("keys")
		return
	}
	o := op{kind: opKeys, first: c.ncalls, n: len(c.bk)}
	for i := range c.bk {
		cl := c.call(c.bk, i)
		cl.Req = resp.AppendCommand(cl.Req, args...)
	}
	c.ops = append(c.ops, o)
}

// scan runs SCAN on the shard the cursor names (scancursor.go: the
// cursor carries the shard, the shard's own cursor and a tag of the
// topology it is valid in): 0 starts on shard 0, and a shard that
// finishes hands over to the next one.
func (c *session) scan(args [][]byte) {
	if len(args) < 2 {
		c.wrongArgs("scan")
		return
	}
	cur, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		c.replyErr("ERR invalid cursor")
		return
	}
	shard, sc, tags, msg := c.s.scanStart(cur)
	if msg != "" {
		c.replyErr(msg)
		return
	}
	i := c.ncalls
	cl := c.call(c.bk, shard)
	var num [20]byte
	cl.Req = redcon.AppendArray(cl.Req, len(args))
	cl.Req = redcon.AppendBulk(cl.Req, args[0])
	cl.Req = redcon.AppendBulk(cl.Req, strconv.AppendUint(num[:0], sc, 10))
	for _, a := range args[2:] {
		cl.Req = redcon.AppendBulk(cl.Req, a)
	}
	c.ops = append(c.ops, op{kind: opScan, first: i, n: 1, arg: shard, tags: tags})
}

// Local reply helpers: each appends one op.

func (c *session) localOp(lo int) {
	if c.replyTo > 0 {
		// A continuation answering: its op gets the reply.
		o := &c.ops[c.replyTo-1]
		o.kind, o.lo, o.hi = opLocal, lo, len(c.local)
		c.replyTo = 0
		return
	}
	c.ops = append(c.ops, op{kind: opLocal, lo: lo, hi: len(c.local)})
}

// then plans k: an op the cont answers, run in order with the batch's
// calls (executor.runAll).
func (c *session) then(k *cont) {
	k.at, k.op = c.ncalls, len(c.ops)
	c.ops = append(c.ops, op{kind: opCont})
	c.conts = append(c.conts, k)
}

// cloneArgs copies args that a continuation needs: the command's own
// buffer is reused by the next command read.
func cloneArgs(args [][]byte) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = append([]byte(nil), a...)
	}
	return out
}

// fanOut plans req to every backend of the client's database (as of
// now), and done with the replies once all arrived; a shard that fails
// is answered for done.
func (c *session) fanOut(req []byte, done func(replies [][]byte)) {
	bk := c.bk
	k := &cont{}
	k.each(bk, req)
	k.next = func(k *cont) {
		replies := make([][]byte, len(k.calls))
		for i := range k.calls {
			if err := k.calls[i].Err; err != nil {
				c.replyErr(shardErr(i, err))
				return
			}
			replies[i] = k.calls[i].Reply
		}
		done(replies)
	}
	c.then(k)
}

func (c *session) replyErr(msg string) {
	lo := len(c.local)
	c.local = redcon.AppendError(c.local, msg)
	c.localOp(lo)
}

func (c *session) replyOK() {
	lo := len(c.local)
	c.local = redcon.AppendOK(c.local)
	c.localOp(lo)
}

func (c *session) replyBulk(b []byte) {
	lo := len(c.local)
	c.local = redcon.AppendBulk(c.local, b)
	c.localOp(lo)
}

func (c *session) replySimple(str string) {
	lo := len(c.local)
	c.local = redcon.AppendString(c.local, str)
	c.localOp(lo)
}

func (c *session) replyNull() {
	lo := len(c.local)
	c.local = redcon.AppendNull(c.local)
	c.localOp(lo)
}

func (c *session) replyArrayLen(n int) {
	lo := len(c.local)
	c.local = redcon.AppendArray(c.local, n)
	c.localOp(lo)
}

func (c *session) replyRaw(b []byte) {
	lo := len(c.local)
	c.local = append(c.local, b...)
	c.localOp(lo)
}

func (c *session) wrongArgs(name string) {
	c.replyErr("ERR wrong number of arguments for '" + name + "' command")
}

// unknown answers a command the table does not know in Redis' words,
// which client libraries match on.
func (c *session) unknown(args [][]byte) {
	if parent := c.s.cfg.Table.Lookup(args[:1]); parent != nil && len(args) > 1 {
		c.replyErr("ERR unknown subcommand '" + printable128(args[1]) + "'. Try " + upper(parent.Name) + " HELP.")
		return
	}
	var rest strings.Builder
	for _, a := range args[1:] {
		if rest.Len() >= 128 {
			break
		}
		a = a[:min(len(a), 128-rest.Len())]
		rest.WriteString("'" + printable128(a) + "' ")
	}
	c.replyErr("ERR unknown command '" + printable128(args[0]) + "', with args beginning with: " + rest.String())
}

// printable128 is printable with Redis' 128-byte cut, CR and LF as
// spaces.
func printable128(b []byte) string {
	b = b[:min(len(b), 128)]
	out := make([]byte, len(b))
	for i, ch := range b {
		if ch == '\r' || ch == '\n' {
			ch = ' '
		}
		out[i] = ch
	}
	return string(out)
}

func (c *session) unsupported(args [][]byte) {
	name := printable(args[0])
	if len(args) > 1 {
		if cmd := c.s.cfg.Table.Lookup(args[:1]); cmd != nil && cmd.Subcommands != nil {
			name += "|" + printable(args[1])
		}
	}
	c.replyErr("ERR unsupported command '" + name + "'")
}

func arityOK(cmd *router.Command, n int) bool {
	if cmd.Arity >= 0 {
		return n == cmd.Arity
	}
	return n >= -cmd.Arity
}

func parentName(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] == '|' {
			return name[:i]
		}
	}
	return name
}

// lowerName lower-cases a command name into dst; names longer than dst's
// capacity come back empty, which matches no command.
func lowerName(dst []byte, b []byte) string {
	if len(b) > cap(dst) {
		return ""
	}
	return string(router.AppendLower(dst, b))
}

func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ch != lower[i] {
			return false
		}
	}
	return true
}

func upper(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if 'a' <= ch && ch <= 'z' {
			b[i] = ch - ('a' - 'A')
		}
	}
	return string(b)
}

// printable quotes nothing but keeps an error line safe: no CR/LF, at
// most 64 bytes.
func printable(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	out := make([]byte, len(b))
	for i, ch := range b {
		if ch < ' ' || ch > '~' {
			ch = '?'
		}
		out[i] = ch
	}
	return string(out)
}
