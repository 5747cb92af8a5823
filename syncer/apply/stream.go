package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/router"
	"github.com/replicaof/replicaof/syncer/replica"
)

// Apply writes a batch of stream commands and returns once every shard
// answered all of them (the link acknowledges the offset only then).
// Commands are grouped per shard, keeping their order there, and the
// shards are written concurrently.
//
//   - SELECT switches the database (a backend per (shard, db)); PING and
//     REPLCONF are consumed.
//   - MULTI … EXEC blocks stay atomic per shard: a block whose keyed
//     commands live on one shard is sent there as MULTI … EXEC (keyless
//     commands in it go to every shard in blocks of their own); keys on
//     two shards are split per shard or emulated (below), or, with
//     CrossShardStop, a *CrossSlotError. A block may span Apply calls.
//   - MSET, MSETNX (as MSET), DEL, UNLINK and TOUCH are split by shard.
//   - Keyless commands (FLUSHALL, FLUSHDB, FUNCTION …, SCRIPT …, SWAPDB …)
//     go to every shard; PUBLISH and SPUBLISH to the channel's shard.
//   - Any other command with keys on two shards, and a block holding one,
//     is emulated (Options.CrossShard, xshard.go): the commands before it
//     are sent first, then it runs through a staging shard. With
//     CrossShardStop, or when it cannot be emulated, it is a
//     *CrossSlotError (*EmulateError): the commands before it are
//     applied, nothing after it. Blocks whose commands each stay on one
//     shard are applied one block per shard in emulate mode.
//
// An error reply is a *WriteError (ErrRejected, ErrOOM). Fatal errors
// are sticky: later calls return them too. After a retryable error (one
// wrapping pool.ErrShardDown, or a context error) some of the batch may
// have been written; the Applier's own state (selected db, open block) is
// rolled back so the same commands can be delivered again.
func (a *Applier) Apply(ctx context.Context, cmds []replica.Command) error {
	s := &a.stream
	if s.sticky != nil {
		return s.sticky
	}
	saved := s.save()
	a.skips.begin()
	defer a.skips.commit() // a no-op after undo
	s.plan.reset()
	s.plan.flat = a.ckpt.on || a.cluster
	var routeErr, jobErr error
	routed, offset := 0, int64(-1)
	for i := range cmds {
		if err := s.route(&cmds[i]); err != nil {
			routeErr = err
			break
		}
		if s.job != nil {
			// A cross-shard command to emulate (xshard.go).
			if jobErr = s.runJob(ctx, offset); jobErr != nil {
				break
			}
		}
		routed++
		if s.block == nil {
			offset = cmds[i].Offset
		}
	}
	err := jobErr
	if err == nil {
		if s.plan.flat {
			s.seal(offset)
		}
		err = s.execute(ctx, offset)
	}
	if err != nil && a.ckpt.on && errclass.IsFatal(err) {
		// A shard that restarted empty under a reconnected backend
		// rejects writes (NOGROUP, WRONGTYPE…) that are not the
		// source's fault: name the real cause.
		if lost := a.verify(ctx, false); errors.Is(lost, ErrCheckpointLost) {
			err = fmt.Errorf("%w (after: %v)", lost, err)
		}
	}
	if err == nil {
		err = routeErr
	}
	if err != nil && !errclass.IsFatal(err) {
		s.restore(saved)
		a.skips.undo()
		return err
	}
	if err != nil {
		s.sticky = err
	}
	a.commands.Add(int64(routed))
	if offset >= 0 {
		a.offset.Store(offset)
	}
	return err
}

// streamState is Apply's state across calls.
type streamState struct {
	a     *Applier
	db    int
	block *txBlock // non-nil between MULTI and EXEC
	// sticky is the fatal error that stopped the stream.
	sticky error
	plan   plan
	keys   []int
	// involved is execBlock's scratch: per unit, whether the block
	// touches it (cleared after each block).
	involved []bool
	job      *xjob // a cross-shard command route left to emulate
	ttl      ttlRewriter
}

// txBlock holds the commands of an open MULTI, copied: a block can span
// Apply calls while the link reuses its buffers.
type txBlock struct {
	cmds  [][][]byte
	bytes int
	db    int // the database its commands address so far (SkipUnsupported)
}

type savedState struct {
	db      int
	block   *txBlock
	blockN  int
	blockDB int
}

func (s *streamState) init(a *Applier) {
	s.a = a
	s.plan.d = a.d
	s.plan.runs = make([][]*batch, a.unitCount())
	s.plan.cluster = a.cluster
	s.plan.ctr = &a.redir
	s.ttl.grace = a.opts.graceMs()
}

// reset forgets the selected db and any open block (a full resync).
func (s *streamState) reset() {
	s.db, s.block, s.sticky, s.job = 0, nil, nil, nil
}

func (s *streamState) save() savedState {
	st := savedState{db: s.db, block: s.block}
	if s.block != nil {
		st.blockN, st.blockDB = len(s.block.cmds), s.block.db
	}
	return st
}

func (s *streamState) restore(st savedState) {
	s.db, s.block = st.db, st.block
	if s.block != nil {
		for _, c := range s.block.cmds[st.blockN:] {
			for _, a := range c {
				s.block.bytes -= len(a)
			}
		}
		s.block.cmds = s.block.cmds[:st.blockN]
		s.block.db = st.blockDB
	}
}

// route adds one command to the plan.
func (s *streamState) route(c *replica.Command) error {
	args := c.Args
	if len(args) == 0 {
		return nil
	}
	var nb [16]byte
	name := lowerName(nb[:0], args[0])
	if ownKeyCommand(args) {
		// Another replicaof's own keys (checkpoints, marker), replicated
		// through its proxy when it is the source: they describe that
		// deployment's destination, not data, and would clobber ours.
		return nil
	}
	if s.a.opts.SkipUnsupported {
		db := s.db
		if s.block != nil {
			if name == "select" {
				if n, err := parseDB(args); err == nil {
					s.block.db = n
				}
			}
			db = s.block.db
		}
		var ok bool
		if args, ok = s.streamSkip(name, args, db); !ok {
			return nil
		}
	}
	s.ttl.reset()
	args = s.ttl.rewrite(name, args)
	if s.block != nil {
		switch name {
		case "exec":
			blk := s.block
			s.block = nil
			return s.execBlock(blk, c.Offset)
		case "discard":
			s.block = nil
			return nil
		case "multi":
			return nil
		}
		return s.block.add(args, s.a.opts.MaxBlockBytes)
	}
	switch name {
	case "ping", "replconf", "exec", "discard":
		return nil
	case "multi":
		s.block = &txBlock{db: s.db}
		return nil
	case "select":
		db, err := parseDB(args)
		if err != nil {
			return err
		}
		s.db = db
		return nil
	}
	db := s.db
	if s.a.cluster {
		var keep bool
		var err error
		if db, keep, err = s.a.mapDB(s.db); err != nil || !keep {
			return err // a dropped database: nothing to write
		}
	}
	t, err := s.target(args, name, c.Offset)
	if err != nil {
		if s.emulates(err) {
			s.job = &xjob{offset: c.Offset, db: s.db, cmds: [][][]byte{args}}
			return nil
		}
		return err
	}
	switch {
	case t.own:
	case t.parts != nil:
		for _, p := range t.parts {
			s.add(p.Shard, db, c.Offset, p.Args)
		}
	case t.shard == everyShard && s.a.cluster:
		if clusterFlush(name) {
			return fmt.Errorf("%w (%s at offset %d)", ErrClusterFlush, args[0], c.Offset)
		}
		// Once per group, in the transaction of a slot it owns.
		for g := 0; g < s.a.d.Len(); g++ {
			if u := s.a.anchor(g); u >= 0 {
				s.add(u, db, c.Offset, args)
			}
		}
	case t.shard == everyShard:
		for i := range s.plan.runs {
			if b := s.add(i, db, c.Offset, args); b != nil {
				b.keyless = true
			}
		}
	default:
		s.add(t.shard, db, c.Offset, args)
	}
	return nil
}

// add plans args for (shard, db) unless the shard already holds the
// command ending at offset; it returns the batch, nil when skipped.
func (s *streamState) add(shard, db int, offset int64, args [][]byte) *batch {
	if s.a.ckpt.skip(shard, offset) {
		s.a.skipped.Add(1)
		return nil
	}
	b := s.plan.batch(shard, db)
	b.command(args)
	return b
}

// everyShard marks a keyless command.
const everyShard = -1

// target is where one command goes: one shard, every shard, or split.
type target struct {
	shard   int
	parts   []router.Part // split by shard (more than one)
	publish bool
	own     bool // on replicaof's own keys (another deployment's staging): dropped
}

func (s *streamState) target(args [][]byte, name string, offset int64) (target, error) {
	m := s.a.units()
	switch name {
	case "publish", "spublish":
		if len(args) < 2 {
			return target{}, fmt.Errorf("%w: %s without a channel", ErrUnsupported, args[0])
		}
		return target{shard: m.ShardOf(args[1]), publish: true}, nil
	}
	if merge, parts := m.Split(args, true); merge != router.MergeNone && len(parts) > 0 {
		if len(parts) == 1 {
			return target{shard: parts[0].Shard}, nil
		}
		return target{parts: parts}, nil
	}
	cmd := s.a.opts.Table.Lookup(args)
	if cmd == nil {
		return target{}, fmt.Errorf("%w: unknown command %q", ErrUnsupported, args[0])
	}
	keys, err := cmd.Keys(args, s.keys[:0])
	s.keys = keys[:0]
	if err != nil {
		return target{}, fmt.Errorf("%w: %s: %v", ErrUnsupported, args[0], err)
	}
	if len(keys) == 0 {
		return target{shard: everyShard}, nil
	}
	if ownKey(args[keys[0]]) {
		// Another replicaof's emulation of a cross-shard command, run on
		// its internal names (BITOP OR __replicaof:x:…): not data.
		return target{own: true}, nil
	}
	shard, err := m.Route(args, keys)
	if errors.Is(err, router.ErrCrossShard) {
		e := &CrossSlotError{Command: string(args[0]), Offset: offset}
		for _, k := range keys {
			e.Keys = append(e.Keys, string(args[k]))
		}
		return target{}, e
	}
	if err != nil {
		return target{}, err
	}
	return target{shard: shard}, nil
}

func (blk *txBlock) add(args [][]byte, limit int) error {
	n := 0
	for _, a := range args {
		n += len(a)
	}
	if blk.bytes+n > limit {
		return fmt.Errorf("%w: MULTI block over %d bytes", ErrTooLarge, limit)
	}
	buf := make([]byte, 0, n)
	cp := make([][]byte, len(args))
	for i, a := range args {
		buf = append(buf, a...)
		cp[i] = buf[len(buf)-len(a) : len(buf) : len(buf)]
	}
	blk.cmds = append(blk.cmds, cp)
	blk.bytes += n
	return nil
}

// execBlock plans a finished MULTI block: MULTI … EXEC on the shard of
// its keys; keyless commands in it on every shard; PUBLISH after it, on
// the channel's shard.
func (s *streamState) execBlock(blk *txBlock, offset int64) error {
	cmds := blk.cmds
	// SELECTs ahead of the first command just choose the block's db.
	for len(cmds) > 0 && isSelect(cmds[0]) {
		db, err := parseDB(cmds[0])
		if err != nil {
			return err
		}
		s.db = db
		cmds = cmds[1:]
	}
	startDB := s.db
	type item struct {
		args  [][]byte
		shard int // everyShard for keyless commands and SELECT
	}
	var (
		items       []item
		publishes   []item
		keyed       = -1
		keyedName   string
		keyedKeys   []string
		broadcast   bool
		inlineSel   bool
		nb          [16]byte
		selectedNow = startDB
		split       = s.a.opts.SplitBlocks || s.a.opts.CrossShard == CrossShardEmulate
		mapping     = s.a.cluster
		units       []int // involved units, in the order met
	)
	if len(s.involved) != len(s.plan.runs) {
		s.involved = make([]bool, len(s.plan.runs))
	}
	involved := s.involved
	defer func() {
		for _, u := range units {
			involved[u] = false
		}
	}()
	involve := func(u int) {
		if !involved[u] {
			involved[u] = true
			units = append(units, u)
		}
	}
	for _, args := range cmds {
		if len(args) == 0 {
			continue
		}
		name := lowerName(nb[:0], args[0])
		switch name {
		case "ping", "replconf", "multi":
			continue
		case "select":
			db, err := parseDB(args)
			if err != nil {
				return err
			}
			selectedNow = db
			if mapping {
				to, keep, err := s.a.mapDB(db)
				if err != nil {
					return err
				}
				if !keep || s.a.cluster {
					continue // nothing of it is written, or only db 0 is
				}
				args = [][]byte{args[0], []byte(strconv.Itoa(to))}
			}
			inlineSel = true
			items = append(items, item{args, everyShard})
			continue
		}
		if mapping {
			if _, keep, err := s.a.mapDB(selectedNow); err != nil || !keep {
				if err != nil {
					return err
				}
				continue
			}
		}
		t, err := s.target(args, name, offset)
		if err != nil && s.emulates(err) {
			// The whole block is emulated (xshard.go).
			s.job = &xjob{offset: offset, db: startDB, cmds: cmds, block: true}
			return nil
		}
		if err != nil {
			if ce, ok := err.(*CrossSlotError); ok {
				ce.Command = "MULTI/EXEC " + ce.Command
			}
			return err
		}
		switch {
		case t.own:
			continue
		case t.publish:
			publishes = append(publishes, item{args, t.shard})
			continue
		case t.parts != nil && split:
			for _, p := range t.parts {
				involve(p.Shard)
				items = append(items, item{p.Args, p.Shard})
			}
			continue
		case t.parts != nil:
			e := &CrossSlotError{Command: "MULTI/EXEC " + string(args[0]), Offset: offset}
			for _, p := range t.parts {
				e.Keys = append(e.Keys, string(p.Args[1]))
			}
			return e
		case t.shard == everyShard:
			if s.a.cluster && clusterFlush(name) {
				return fmt.Errorf("%w (MULTI/EXEC %s at offset %d)", ErrClusterFlush, args[0], offset)
			}
			broadcast = true
		case split:
			involve(t.shard)
		default:
			if keyed >= 0 && t.shard != keyed {
				e := &CrossSlotError{Command: "MULTI/EXEC " + keyedName + ", " + string(args[0]), Offset: offset}
				e.Keys = append(keyedKeys, s.keyNames(args)...)
				return e
			}
			if keyed < 0 {
				keyed, keyedName, keyedKeys = t.shard, string(args[0]), s.keyNames(args)
				involve(keyed)
			}
		}
		items = append(items, item{args, t.shard})
	}
	// The units that get the block: every shard for a keyless command; on
	// a cluster, keyless commands go once per group, with the group's
	// first involved slot, else its anchor slot.
	var carrier map[int]int // cluster: group → the slot carrying its keyless commands
	switch {
	case broadcast && s.a.cluster:
		carrier = make(map[int]int)
		m := s.a.d.Map()
		for _, u := range units {
			if g := m.ShardOfSlot(uint16(u)); carrier[g] == 0 {
				carrier[g] = u + 1
			}
		}
		for g := 0; g < s.a.d.Len(); g++ {
			if carrier[g] == 0 {
				if u := s.a.anchor(g); u >= 0 {
					carrier[g] = u + 1
					involve(u)
				}
			}
		}
	case broadcast:
		for u := range s.plan.runs {
			involve(u)
		}
	}
	slices.Sort(units)
	flat := s.plan.flat
	dbOut := startDB
	if mapping {
		if to, keep, _ := s.a.mapDB(startDB); keep {
			dbOut = to
		} else {
			dbOut = 0
		}
	}
	for _, shard := range units {
		if s.a.ckpt.skip(shard, offset) {
			s.a.skipped.Add(1)
			continue
		}
		b := s.plan.batch(shard, dbOut)
		b.keyless = b.keyless || (broadcast && !s.a.cluster)
		if !flat {
			// In checkpoint mode the batch is one transaction already:
			// the block is flattened into it.
			b.commandString("MULTI")
		}
		first := b.Len()
		keyless := carrier == nil || carrier[s.a.group(shard)] == shard+1
		for _, it := range items {
			if (it.shard == everyShard && keyless) || it.shard == shard {
				b.command(it.args)
			}
		}
		if inlineSel {
			// SELECT inside MULTI outlives EXEC: put the connection back.
			b.commandString("SELECT", strconv.Itoa(dbOut))
		}
		if !flat {
			b.commandString("EXEC")
			b.markExec(first)
		}
	}
	s.db = selectedNow
	db := s.db
	if mapping {
		db, _, _ = s.a.mapDB(s.db) // 0 for a dropped or unknown database
	}
	for _, p := range publishes {
		s.add(p.shard, db, offset, p.args)
	}
	return nil
}

// keyNames lists a command's keys, for error reports.
func (s *streamState) keyNames(args [][]byte) []string {
	cmd := s.a.opts.Table.Lookup(args)
	if cmd == nil {
		return nil
	}
	keys, _ := cmd.Keys(args, nil)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = string(args[k])
	}
	return out
}

// plan is the per-shard work of one Apply: runs of commands per db, sent
// in order. In checkpoint mode (flat) a shard has one batch, a
// transaction on its db-0 connection that switches databases inline.
type plan struct {
	d       *destination.Destination
	runs    [][]*batch // per unit: shard, or slot on a cluster
	touched []int      // units with runs, in the order first planned
	free    []*batch
	flat    bool
	cluster bool
	ctr     *redirects
	// On a cluster: per group, the checkpoint-only refresh pipeline and
	// its slots.
	refresh      []*batch
	refreshSlots [][]int
}

func (p *plan) reset() {
	for _, i := range p.touched {
		rs := p.runs[i]
		for _, b := range rs {
			p.recycle(b)
		}
		clear(rs)
		p.runs[i] = rs[:0]
	}
	p.touched = p.touched[:0]
	for g, b := range p.refresh {
		if b != nil {
			p.recycle(b)
			p.refresh[g] = nil
			p.refreshSlots[g] = p.refreshSlots[g][:0]
		}
	}
}

func (p *plan) recycle(b *batch) {
	if cap(b.buf) <= 4<<20 { // do not keep a huge batch's memory
		p.free = append(p.free, b)
	}
}

// batch returns the run that takes the next command for (shard, db).
func (p *plan) batch(shard, db int) *batch {
	rs := p.runs[shard]
	if p.flat {
		if len(rs) == 0 {
			b := p.get(shard, 0)
			b.commandString("MULTI")
			return b.use(db)
		}
		return rs[0].use(db)
	}
	if n := len(rs); n > 0 && rs[n-1].db == db {
		return rs[n-1]
	}
	return p.get(shard, db)
}

// newBatch takes a recycled batch, or a new one.
func (p *plan) newBatch() *batch {
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b
	}
	return &batch{}
}

// get appends a fresh batch for (shard, db) to the shard's runs.
func (p *plan) get(shard, db int) *batch {
	b := p.newBatch()
	b.reset(shard, db)
	if p.cluster {
		b.slot, b.ctr = shard, p.ctr
	}
	if len(p.runs[shard]) == 0 {
		p.touched = append(p.touched, shard)
	}
	p.runs[shard] = append(p.runs[shard], b)
	return b
}

// seal closes every shard's transaction with its checkpoint at offset
// (checkpoint mode), and opens a checkpoint-only one on shards this Apply
// did not touch whose checkpoint is due for a refresh.
func (s *streamState) seal(offset int64) {
	c := &s.a.ckpt
	if offset < 0 {
		// Nothing complete was routed (all inside an open block): no
		// batch was planned either.
		return
	}
	if s.a.cluster {
		s.sealCluster(offset)
		return
	}
	now := time.Now()
	for shard, rs := range s.plan.runs {
		if len(rs) == 0 {
			if offset <= c.held[shard] || now.Sub(c.wrote[shard]) < s.a.opts.Checkpoint.Every {
				continue
			}
			b := s.plan.get(shard, 0)
			b.commandString("MULTI")
			rs = s.plan.runs[shard]
		}
		b := rs[0].use(0)
		b.commandString("SET", c.key, string(c.value(offset)))
		if b.keyless {
			b.commandString("SET", destination.MarkerKey, s.a.d.Marker())
			if e, _ := s.a.d.FenceEpoch(); e > 0 {
				// The keyless command (FLUSHALL…) deleted the fence too.
				b.commandString("SET", FenceKey, strconv.FormatInt(e, 10))
				restoreCommands(s.a.d, b, shard)
			}
		}
		b.commandString("EXEC")
		b.markExec(1)
	}
}

// execute sends every shard's runs, shards concurrently, runs of one
// shard one after the other. A fatal error wins over a retryable one. In
// checkpoint mode each shard that answered without error now holds
// offset.
func (s *streamState) execute(ctx context.Context, offset int64) error {
	if s.a.cluster {
		return s.executeCluster(ctx, offset)
	}
	var active []int
	for i, rs := range s.plan.runs {
		if len(rs) > 0 {
			active = append(active, i)
		}
	}
	errs := make([]error, len(active))
	run := func(j int) {
		for _, b := range s.plan.runs[active[j]] {
			s.a.bytesSent.Add(int64(b.Size()))
			if err := b.send(ctx, s.a.d); err != nil {
				errs[j] = err
				return
			}
			s.a.applied(b)
		}
	}
	if len(active) == 1 {
		run(0)
	} else {
		var wg sync.WaitGroup
		for j := range active {
			wg.Add(1)
			go func() {
				defer wg.Done()
				run(j)
			}()
		}
		wg.Wait()
	}
	if s.plan.flat && offset >= 0 {
		now := time.Now()
		c := &s.a.ckpt
		for j, shard := range active {
			if errs[j] == nil {
				c.held[shard], c.wrote[shard] = offset, now
			}
		}
	}
	var first error
	for _, err := range errs {
		if err != nil && errclass.IsFatal(err) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

func isSelect(args [][]byte) bool {
	var nb [16]byte
	return len(args) > 0 && lowerName(nb[:0], args[0]) == "select"
}

func parseDB(args [][]byte) (int, error) {
	if len(args) != 2 {
		return 0, fmt.Errorf("%w: SELECT with %d arguments", ErrUnsupported, len(args)-1)
	}
	db, err := strconv.Atoi(string(args[1]))
	if err != nil || db < 0 {
		return 0, fmt.Errorf("%w: SELECT %q", ErrUnsupported, args[1])
	}
	return db, nil
}

// lowerName lower-cases a command name into dst; names longer than dst's
// capacity come back as "" (no command this package handles by name is).
func lowerName(dst []byte, name []byte) string {
	if len(name) > cap(dst) {
		return ""
	}
	return string(router.AppendLower(dst, name))
}

// ownKeyCommand reports a command whose first argument is a key replicaof
// keeps for itself (destination.KeyPrefix). Every such write replicaof makes (SET,
// DEL) has its key there.
func ownKeyCommand(args [][]byte) bool {
	return len(args) >= 2 && ownKey(args[1])
}

// ownKey reports a key under destination.KeyPrefix.
func ownKey(k []byte) bool {
	return len(k) >= len(destination.KeyPrefix) && string(k[:len(destination.KeyPrefix)]) == destination.KeyPrefix
}
