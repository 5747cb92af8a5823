package apply

// Cross-shard emulation: a stream command whose keys live on more than one
// destination shard and that cannot be split (RENAME, SMOVE, LMOVE,
// SUNIONSTORE, BITOP, …), or a MULTI/EXEC block (script effects included)
// holding such a command, is carried out as a short sequence. The syncer
// is the only writer of the source's keys, so nothing changes them in
// between.
//
// The job (the command, or the whole block) runs on one staging shard S:
// the home shard of its first written key. Its keys get internal names
// "__replicaof:x:{tag}:<applier id>:<n>" whose hash tag lands on S, and
// S keeps a record "__replicaof:x:{tag}:<applier id>:rec" in db 0. With O
// the offset of the command (of the block's EXEC):
//
//  0. barrier: everything routed before the job is sent first (with its
//     checkpoints);
//  1. gather: DUMP and PEXPIRETIME (PTTL before Redis 7) of every key of
//     the job on its home shard; nothing is written;
//  2. stage, one MULTI on S: RESTORE … REPLACE ABSTTL (or DEL) of every
//     internal name, the job's commands on the internal names, and the
//     record "O <fingerprint>";
//  3. write back, one MULTI per other home shard H: RESTORE … REPLACE
//     ABSTTL (or DEL when the job removed it) of every key of H the job
//     writes, from the staged results (DUMP of the internal names on S),
//     the block's PUBLISHes on H, and H's checkpoint O;
//  4. final, one MULTI on S: S's own written keys as in 3, DEL of every
//     internal name and of the record, and S's checkpoint O.
//
// Crashes (docs/reliability.md): until 2 commits, no shard changed
// (internal names aside, which 2 overwrites). After 2, the results are
// on S and the inputs are no longer needed: a redelivered job finds the
// record naming O and goes straight to 3, from the staged results, so a
// key already written back (whose old value an input may have been) is
// never read again. Every write-back is a RESTORE REPLACE of a staged
// value, idempotent, in the same transaction as its shard's checkpoint
// O, so a shard that holds O is skipped and one that does not gets it
// whole. S's checkpoint reaches O only in 4, after every other shard
// holds O; the stream resumes at the lowest checkpoint, so an unfinished
// job is always redelivered, and a shard whose checkpoint is at or past O
// means the job is done.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

// CrossShard is what Apply does with a command whose keys span
// destination shards and that cannot be split (Options.CrossShard).
type CrossShard uint8

const (
	// CrossShardEmulate carries the command out through a staging shard
	// (the default).
	CrossShardEmulate CrossShard = iota
	// CrossShardStop stops sync with a *CrossSlotError, as the reproduced
	// product does.
	CrossShardStop
)

func (m CrossShard) String() string {
	if m == CrossShardStop {
		return "stop"
	}
	return "emulate"
}

// ParseCrossShard reads "emulate" or "stop" ("" is emulate).
func ParseCrossShard(s string) (CrossShard, error) {
	switch strings.ToLower(s) {
	case "", "emulate":
		return CrossShardEmulate, nil
	case "stop":
		return CrossShardStop, nil
	}
	return 0, fmt.Errorf("cross_shard %q: want emulate or stop", s)
}

// xsPrefix starts every internal name of the emulation.
const xsPrefix = destination.KeyPrefix + "x:"

// EmulateError names a command whose keys span destination shards and
// that cannot be emulated (docs: README, Semantics). It wraps
// router.ErrCrossShard: sync stops as it would with cross_shard: stop.
type EmulateError struct {
	Command string
	Keys    []string
	Offset  int64
	Reason  string
}

func (e *EmulateError) Error() string {
	return fmt.Sprintf("apply: %s: keys %q span destination shards (cross-slot) and cannot be emulated: %s",
		e.Command, e.Keys, e.Reason)
}

func (e *EmulateError) Unwrap() error { return router.ErrCrossShard }

// Class makes an EmulateError Fatal (errclass).
func (e *EmulateError) Class() errclass.Class { return errclass.Fatal }

// xjob is one command, or one MULTI/EXEC block, to emulate.
type xjob struct {
	offset int64
	db     int // the database selected when it starts
	cmds   [][][]byte
	block  bool
}

// xsState is the Applier's emulation state.
type xsState struct {
	a    *Applier
	id   string   // distinguishes this applier's internal names
	tags []string // per shard: a hash tag whose slot it owns
	// hook, set by tests, runs after each step ("gather", "stage",
	// "writeback <shard>", "final"); an error aborts the job there, as a
	// crash would.
	hook func(step string) error
}

func (x *xsState) init(a *Applier) {
	x.a = a
	id := a.opts.Source
	if k := a.opts.Checkpoint.Key; k != "" {
		id = strings.TrimPrefix(k, CheckpointPrefix)
	}
	if id == "" {
		id = "0"
	}
	x.id = strings.Map(func(r rune) rune {
		if r <= ' ' || r == '{' || r == '}' || r >= 0x7f {
			return '_'
		}
		return r
	}, id)
	x.tags = make([]string, a.unitCount())
	if a.cluster {
		for slot := range x.tags {
			x.tags[slot] = router.SlotTag(uint16(slot))
		}
		return
	}
	m := a.d.Map()
	for n, found := 0, 0; found < len(x.tags) && n < 1<<20; n++ {
		t := "x" + strconv.Itoa(n)
		if s := m.ShardOf([]byte(t)); x.tags[s] == "" {
			x.tags[s] = t
			found++
		}
	}
}

func (x *xsState) step(name string) error {
	if x.hook != nil {
		return x.hook(name)
	}
	return nil
}

func (x *xsState) tmpName(shard, n int) string {
	return xsPrefix + "{" + x.tags[shard] + "}:" + x.id + ":" + strconv.Itoa(n)
}

func (x *xsState) recName(shard int) string {
	return xsPrefix + "{" + x.tags[shard] + "}:" + x.id + ":rec"
}

// recValue is the record of a job staged for offset: the offset and the
// source list's fingerprint (not the replication id, which a failover
// changes while offsets go on).
func (x *xsState) recValue(offset int64) string {
	fp := x.a.ckpt.fp
	if fp == "" {
		fp = "-"
	}
	return strconv.FormatInt(offset, 10) + " " + fp
}

// xkey is one key of a job.
type xkey struct {
	db    int
	name  []byte
	home  int
	tmp   string
	write bool
	// The value last read: gathered from home, then staged from S.
	payload []byte // nil when the key does not exist
	expire  int64  // unix ms; 0 without TTL
}

// xcmd is one command of a job, its keys renamed.
type xcmd struct {
	db   int
	args [][]byte
	refs []xref
}

type xref struct{ pos, key int }

type xpub struct {
	shard int
	args  [][]byte
}

// xplan is a job resolved: its keys, commands and staging shard.
type xplan struct {
	name   string
	offset int64
	keys   []*xkey
	cmds   []xcmd
	pubs   []xpub
	endDB  int
	stage  int
}

// prepare resolves a job, or says why it cannot be emulated.
func (x *xsState) prepare(j *xjob) (*xplan, error) {
	a := x.a
	m := a.units()
	mapping := a.cluster
	p := &xplan{name: "MULTI/EXEC", offset: j.offset}
	if !j.block && len(j.cmds) == 1 {
		p.name = strings.ToUpper(string(j.cmds[0][0]))
	}
	index := map[string]int{}
	db := j.db
	var nb [16]byte
	for _, args := range j.cmds {
		if len(args) == 0 {
			continue
		}
		name := lowerName(nb[:0], args[0])
		switch name {
		case "ping", "replconf", "multi":
			continue
		case "select":
			n, err := parseDB(args)
			if err != nil {
				return nil, err
			}
			db = n
			continue
		case "publish", "spublish":
			if len(args) < 2 {
				return nil, fmt.Errorf("%w: %s without a channel", ErrUnsupported, args[0])
			}
			p.pubs = append(p.pubs, xpub{m.ShardOf(args[1]), args})
			continue
		}
		if ownKeyCommand(args) {
			continue
		}
		cdb := db
		if mapping {
			to, keep, err := a.mapDB(db)
			if err != nil {
				return nil, err
			}
			if !keep {
				continue
			}
			cdb = to
		}
		refuse := func(why string) error {
			e := &EmulateError{Command: string(args[0]), Offset: j.offset, Reason: why}
			if j.block {
				e.Command = "MULTI/EXEC " + e.Command
			}
			e.Keys = a.stream.keyNames(args)
			return e
		}
		if why := notEmulable(name, args); why != "" {
			return nil, refuse(why)
		}
		cmd := a.opts.Table.Lookup(args)
		if cmd == nil {
			return nil, refuse("unknown command")
		}
		refs, err := cmd.KeyRefs(args)
		if err != nil {
			return nil, refuse(err.Error())
		}
		if len(refs) == 0 {
			return nil, refuse("a keyless command in a block whose keys span shards")
		}
		if ownKey(args[refs[0].Pos]) {
			continue // another replicaof's staging, as in route
		}
		c := xcmd{db: cdb, args: append([][]byte(nil), args...)}
		for _, r := range refs {
			if r.Flags&router.KeyIncomplete != 0 {
				return nil, refuse("its key specs do not name every key it touches")
			}
			id := strconv.Itoa(cdb) + ":" + string(args[r.Pos])
			k, ok := index[id]
			if !ok {
				k = len(p.keys)
				index[id] = k
				p.keys = append(p.keys, &xkey{db: cdb, name: args[r.Pos], home: m.ShardOf(args[r.Pos])})
			}
			p.keys[k].write = p.keys[k].write || r.Writes()
			c.refs = append(c.refs, xref{r.Pos, k})
		}
		p.cmds = append(p.cmds, c)
	}
	p.endDB = db
	if len(p.keys) == 0 && mapping {
		// Every command was in a dropped database.
		return p, nil
	}
	if len(p.keys) == 0 {
		return nil, fmt.Errorf("%w: cross-shard job without keys at offset %d", ErrUnsupported, j.offset)
	}
	p.stage = p.keys[0].home
	for _, k := range p.keys {
		if k.write {
			p.stage = k.home
			break
		}
	}
	for i, k := range p.keys {
		k.tmp = x.tmpName(p.stage, i)
	}
	for _, c := range p.cmds {
		for _, r := range c.refs {
			c.args[r.pos] = []byte(p.keys[r.key].tmp)
		}
	}
	return p, nil
}

// notEmulable says why a command cannot run on renamed keys, "" if it can.
func notEmulable(name string, args [][]byte) string {
	switch name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		return "a script may touch keys it does not declare"
	case "move", "swapdb", "flushdb", "flushall":
		return "it moves or deletes keys outside its key list"
	case "copy":
		for _, a := range args[3:] {
			if strings.EqualFold(string(a), "db") {
				return "COPY … DB writes another database"
			}
		}
	}
	return ""
}

// emulate carries out one job (see the top of this file). The plan routed
// before it has been sent.
func (a *Applier) emulate(ctx context.Context, j *xjob) error {
	x := &a.xs
	p, err := x.prepare(j)
	if err != nil {
		return err
	}
	if len(p.keys) == 0 {
		a.stream.db = p.endDB
		return nil
	}
	s := p.stage
	if a.ckpt.skip(s, j.offset) {
		// A previous process finished it: S's checkpoint moves last.
		a.skipped.Add(1)
		a.stream.db = p.endDB
		return nil
	}
	if x.tags[s] == "" {
		return fmt.Errorf("%w: no hash tag lands on shard %d", ErrUnsupported, s)
	}
	infos, err := a.d.Info(ctx)
	if err != nil {
		return err
	}
	// 1. gather every key from its home shard, and read the record.
	val := x.recValue(j.offset)
	rec, err := a.xsRead(ctx, p, infos, false)
	if err != nil {
		return err
	}
	staged := string(rec) == val
	if !staged {
		if err := x.step("gather"); err != nil {
			return err
		}
		// 2. stage: inputs under internal names, the job, the record, and
		// the results read back in the same transaction.
		if err := a.xsStage(ctx, p, infos[a.group(s)], val); err != nil {
			return err
		}
		if err := x.step("stage"); err != nil {
			return err
		}
	} else if _, err := a.xsRead(ctx, p, infos, true); err != nil {
		// A previous run staged it: write back from its results.
		return err
	}
	// 3. write back from the staged results, S last.
	var homes []int
	for _, k := range p.keys {
		if k.write && k.home != s {
			homes = append(homes, k.home)
		}
	}
	for _, pb := range p.pubs {
		if pb.shard != s {
			homes = append(homes, pb.shard)
		}
	}
	sort.Ints(homes)
	for i, h := range homes {
		if i > 0 && homes[i-1] == h {
			continue
		}
		if a.ckpt.skip(h, j.offset) {
			a.skipped.Add(1)
			continue
		}
		if err := a.xsWriteBack(ctx, p, h, j.offset, false); err != nil {
			return err
		}
		if err := x.step("writeback " + strconv.Itoa(h)); err != nil {
			return err
		}
	}
	// 4. final: S's keys, internal names dropped, S's checkpoint.
	if err := a.xsWriteBack(ctx, p, s, j.offset, true); err != nil {
		return err
	}
	a.crossShard.Add(1)
	a.stream.db = p.endDB
	a.opts.Logger.Debug("cross-shard command emulated", "source", a.opts.Source, "command", p.name,
		"offset", j.offset, "keys", len(p.keys), "stage_shard", s, "resumed", staged)
	return x.step("final")
}

// xsStage sends step 2 to S: every key under its internal name, the
// job's commands, the record, then DUMP and expiry of every written key,
// whose replies in EXEC's are the results to write back.
func (a *Applier) xsStage(ctx context.Context, p *xplan, si destination.ShardInfo, val string) error {
	b := a.txBatch(p.stage)
	b.commandString("MULTI")
	for _, k := range p.keys {
		b.use(k.db)
		restoreOrDel(b, k.tmp, k)
	}
	for _, c := range p.cmds {
		b.use(c.db)
		b.command(c.args)
	}
	ttlCmd, abs := ttlCommand(si)
	var at []int // per written key: its DUMP's index among the queued commands
	for _, k := range p.keys {
		if k.write {
			b.use(k.db)
			at = append(at, b.Len()-1)
			b.commandString("DUMP", k.tmp)
			b.commandString(ttlCmd, k.tmp)
		}
	}
	b.use(0)
	b.commandString("SET", a.xs.recName(p.stage), val)
	b.commandString("EXEC")
	b.markExec(1)
	now := time.Now().UnixMilli()
	if err := a.xsSend(ctx, b); err != nil {
		return err
	}
	v, _, err := resp.ParseValue(b.calls[b.Len()-1].Reply, resp.Limits{})
	if err != nil {
		return fmt.Errorf("apply: shard %d: EXEC reply: %w", p.stage, err)
	}
	vals := &xsValues{a: a, p: p}
	i := 0
	for _, k := range p.keys {
		if !k.write {
			continue
		}
		if at[i]+1 >= len(v.Elems) {
			return fmt.Errorf("apply: shard %d: EXEC reply has %d elements", p.stage, len(v.Elems))
		}
		if err := vals.set(k, v.Elems[at[i]], v.Elems[at[i]+1], abs, now); err != nil {
			return err
		}
		i++
	}
	return nil
}

// restoreOrDel writes k's value (payload, expire) to name.
func restoreOrDel(b *batch, name string, k *xkey) {
	if k.payload == nil {
		b.commandString("DEL", name)
		return
	}
	b.begin(6)
	b.str("RESTORE")
	b.str(name)
	b.int(k.expire)
	b.bulk(k.payload)
	b.str("REPLACE")
	b.str("ABSTTL")
}

// ttlCommand is how a shard reads a key's expiry: PEXPIRETIME (7.0+,
// absolute) or PTTL (relative).
func ttlCommand(si destination.ShardInfo) (name string, abs bool) {
	if si.Streams7 {
		return "PEXPIRETIME", true
	}
	return "PTTL", false
}

// xsValues keeps the values read for one job within its memory bound.
type xsValues struct {
	a     *Applier
	p     *xplan
	total int
}

// set stores k's value from the replies to DUMP and to the expiry
// command (abs: PEXPIRETIME; now: when PTTL was read).
func (v *xsValues) set(k *xkey, dv, tv resp.Value, abs bool, now int64) error {
	if tv.Type != resp.TypeInteger || (!dv.Null && dv.Type != resp.TypeBulk) {
		return fmt.Errorf("apply: cross-shard %s: unexpected DUMP/expiry replies for %q", v.p.name, k.name)
	}
	k.payload, k.expire = nil, 0
	if dv.Null || tv.Int == -2 {
		return nil // missing (or expired between the two reads)
	}
	v.total += len(dv.Str)
	if lim := v.a.opts.MaxCrossShardBytes; v.total > lim {
		return fmt.Errorf("%w: cross-shard %s at offset %d: values over %d bytes",
			ErrTooLarge, v.p.name, v.p.offset, lim)
	}
	k.payload = dv.Str
	switch {
	case tv.Int < 0:
	case abs:
		k.expire = tv.Int
	default:
		k.expire = now + max(tv.Int, 1)
	}
	return nil
}

// xsRead reads every key's value: from its home shard (gather), or, with
// staged, every written key's result from its internal name on S. The
// (shard, db) groups are read concurrently; with gather, the record on S
// is read alongside and returned.
func (a *Applier) xsRead(ctx context.Context, p *xplan, infos []destination.ShardInfo, staged bool) ([]byte, error) {
	type group struct{ shard, db int }
	groups := map[group][]*xkey{}
	var order []group
	for _, k := range p.keys {
		g := group{k.home, k.db}
		if staged {
			if !k.write {
				continue
			}
			g.shard = p.stage
		}
		if groups[g] == nil {
			order = append(order, g)
		}
		groups[g] = append(groups[g], k)
	}
	var rec []byte
	errs := make([]error, len(order)+1)
	calls := make([][]*pool.Call, len(order))
	nows := make([]int64, len(order))
	var wg sync.WaitGroup
	for i, g := range order {
		ttlCmd, _ := ttlCommand(infos[a.group(g.shard)])
		for _, k := range groups[g] {
			name := k.name
			if staged {
				name = []byte(k.tmp)
			}
			calls[i] = append(calls[i],
				&pool.Call{Req: resp.AppendCommand(nil, []byte("DUMP"), name)},
				&pool.Call{Req: resp.AppendCommand(nil, []byte(ttlCmd), name)})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			nows[i] = time.Now().UnixMilli()
			errs[i] = a.readPipeline(ctx, g.shard, g.db, calls[i])
		}()
	}
	if !staged {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reply, err := a.d.Do(ctx, a.group(p.stage), 0, "GET", a.xs.recName(p.stage))
			if err != nil {
				errs[len(order)] = err
				return
			}
			if v, _, err := resp.ParseValue(reply, resp.Limits{MaxBulk: 1 << 10}); err == nil && v.Type == resp.TypeBulk && !v.Null {
				rec = v.Str
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	vals := &xsValues{a: a, p: p}
	for i, g := range order {
		_, abs := ttlCommand(infos[a.group(g.shard)])
		for j, k := range groups[g] {
			dump, ttl := calls[i][2*j], calls[i][2*j+1]
			for _, c := range []*pool.Call{dump, ttl} {
				if c.Err != nil {
					return nil, fmt.Errorf("apply: shard %d (%s) db %d: %w", a.group(g.shard), a.d.Addr(a.group(g.shard)), g.db, c.Err)
				}
				if e := resp.ReplyError(c.Reply); e != nil {
					return nil, a.d.Refused(a.group(g.shard), g.db, c.Req, e.Error())
				}
			}
			dv, _, err1 := resp.ParseValue(dump.Reply, resp.Limits{})
			tv, _, err2 := resp.ParseValue(ttl.Reply, resp.Limits{})
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("apply: shard %d: reading %q: %w", g.shard, k.name, err)
			}
			if err := vals.set(k, dv, tv, abs, nows[i]); err != nil {
				return nil, err
			}
		}
	}
	return rec, nil
}

// xsWriteBack sends shard's write-back transaction: its written keys, its
// PUBLISHes and its checkpoint at offset; final adds the drop of every
// internal name and of the record (shard is then S).
func (a *Applier) xsWriteBack(ctx context.Context, p *xplan, shard int, offset int64, final bool) error {
	b := a.txBatch(shard)
	b.commandString("MULTI")
	for _, k := range p.keys {
		if k.write && k.home == shard {
			b.use(k.db)
			restoreOrDel(b, string(k.name), k)
		}
	}
	for _, pb := range p.pubs {
		if pb.shard == shard {
			b.command(pb.args)
		}
	}
	if final {
		byDB := map[int][]string{}
		var dbs []int
		for _, k := range p.keys {
			if byDB[k.db] == nil {
				dbs = append(dbs, k.db)
			}
			byDB[k.db] = append(byDB[k.db], k.tmp)
		}
		for _, db := range dbs {
			b.use(db)
			b.commandString(append([]string{"DEL"}, byDB[db]...)...)
		}
		b.use(0)
		b.commandString("DEL", a.xs.recName(shard))
	}
	b.use(0)
	c := &a.ckpt
	switch {
	case c.on && a.cluster:
		b.begin(3)
		b.str("SET")
		b.bulk(slotKey(nil, c.key, shard))
		b.bulk(c.value(offset))
	case c.on:
		b.commandString("SET", c.key, string(c.value(offset)))
	}
	b.commandString("EXEC")
	b.markExec(1)
	if err := a.xsSend(ctx, b); err != nil {
		return err
	}
	if c.on {
		c.held[shard], c.wrote[shard] = offset, time.Now()
	}
	return nil
}

func (a *Applier) xsSend(ctx context.Context, b *batch) error {
	a.bytesSent.Add(int64(b.Size()))
	if err := b.send(ctx, a.d); err != nil {
		return err
	}
	a.applied(b)
	return nil
}

// emulates reports whether err (from routing one command) is a cross-slot
// command the Applier emulates rather than stops on.
func (s *streamState) emulates(err error) bool {
	var ce *CrossSlotError
	return s.a.opts.CrossShard == CrossShardEmulate && errors.As(err, &ce)
}

// runJob sends what was routed before the pending job (a barrier: the
// job reads the shards), then carries the job out.
func (s *streamState) runJob(ctx context.Context, offset int64) error {
	j := s.job
	s.job = nil
	if s.plan.flat {
		s.seal(offset)
	}
	err := s.execute(ctx, offset)
	s.plan.reset()
	if err != nil {
		return err
	}
	return s.a.emulate(ctx, j)
}

// txBatch is a fresh transaction batch for unit (a shard, or on a
// cluster a slot).
func (a *Applier) txBatch(unit int) *batch {
	b := &batch{}
	b.reset(a.group(unit), 0)
	if a.cluster {
		b.slot, b.ctr = unit, &a.redir
	}
	return b
}

// readPipeline sends read-only calls to unit's (shard, db); on a cluster
// a redirected call is sent again where the redirect points (reads are
// safe to resend). Transport errors stay in the calls.
func (a *Applier) readPipeline(ctx context.Context, unit, db int, calls []*pool.Call) error {
	if !a.cluster {
		a.d.Backend(unit, db).Pipeline(ctx, calls)
		return nil
	}
	g := a.group(unit)
	a.d.Backend(g, 0).Pipeline(ctx, calls)
	for _, c := range calls {
		if c.Err != nil {
			continue
		}
		if kind, _ := classifyRedirect(c.Reply); kind != notRedirect {
			reply, err := doOne(ctx, a.d, g, c.Req, &a.redir)
			if err != nil {
				return err
			}
			c.Reply = reply
		}
	}
	return nil
}
