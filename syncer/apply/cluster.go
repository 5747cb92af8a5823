package apply

// Cluster mode: the destination is a Redis Cluster (destination.Open
// found cluster_enabled:1; shard i is then group i, a master and its
// replicas, and its master may change). Redis refuses a MULTI … EXEC
// whose keys span slots, even on one node, so on a cluster the unit of a
// stream transaction and of a checkpoint is the hash slot, not the shard:
//
//   - The stream is planned by slot (a SlotMap with one "shard" per slot,
//     slotUnits): split commands are split by slot, a MULTI block whose
//     keys span slots is applied one block per slot (or stops with a
//     *CrossSlotError under CrossShardStop), cross-slot commands are
//     emulated through a staging slot (xshard.go, internal names tagged
//     with router.SlotTag of that slot).
//   - Each Apply sends, per touched slot, one MULTI … EXEC holding the
//     slot's commands and the slot's checkpoint
//     "<ckpt key>{<SlotTag(slot)>}"; the transactions of one group go out
//     as one pipeline. The held offset is per slot. Untouched slots whose
//     checkpoint is older than Checkpoint.Every get a checkpoint-only SET
//     (plain pipelined SETs per group: one key, nothing to make atomic),
//     so the resume point (the minimum over the 16384 slots) keeps up.
//     A snapshot ends with a SET on every slot.
//   - Cost: a stream batch of n commands touching k slots sends k
//     transactions (k ≤ n) instead of one per shard, each with its own
//     MULTI, checkpoint SET and EXEC; the checkpoint keys are 16384 per
//     source (about 60 bytes each on the destination); a reload reads
//     16384 keys (pipelined per group).
//   - Redirects. MOVED: Destination.Moved, then the command (or the slot's
//     whole transaction) is sent again to the new owner. ASK on a single
//     command outside a transaction (the snapshot's writes): ASKING plus
//     the command to the importing node. A transaction that meets ASK,
//     TRYAGAIN or CLUSTERDOWN was refused whole (EXECABORT: nothing
//     applied) and is sent again, with backoff, to the slot's owner until
//     the migration ends and the old owner answers MOVED; it is never
//     sent with ASKING (keys still on the old node would be created anew
//     on the new one). A connection error is never resent: it goes up
//     (pool.ErrShardDown, retryable), the link restarts and Continue
//     re-reads the checkpoints.
//   - Markers: a replicated FLUSHALL or FLUSHDB would delete every slot's
//     checkpoint of every source on a group, and rewriting 16384 of them
//     cannot be atomic with it. So on a cluster such a command is not
//     applied: it ends the run with ErrClusterFlush (FullResync: the
//     supervisor flushes and fully resyncs every source, whose snapshots
//     come after the FLUSHALL). The cost is a full resync per replicated
//     flush; the gain is that a slot's checkpoint can only go missing or
//     back when the slot lost data: no marker key is needed to tell
//     another source's FLUSHALL from a loss.
//   - Lost writes: a master killed with kill -9 can lose acknowledged
//     writes when its replica takes over. A slot's checkpoint and data go
//     back together (same slot, same node, replicated in order). Every
//     Apply compares each group's master with the one the checkpoints
//     were read from; after a failover it fails with a retryable error,
//     the link restarts and Continue re-reads every slot's checkpoint. A
//     slot that went back lowers its held offset (instead of
//     ErrCheckpointLost, which stays for a slot with no checkpoint at
//     all), and when the link resumed above it, Continue fails with a
//     *RewindError: the syncer reconnects with PSYNC from that offset (a
//     partial resync when the source's backlog still holds it, else a
//     full resync), and every slot skips what it holds.
//   - Databases: a cluster has only db 0. Options.DBMap maps a source
//     database to 0 or drops it; any other database stops sync with a
//     *DBError naming it.
//   - Fence: the lease's fence key is per slot too ("__replicaof:fence{tag}"),
//     raised on every slot by RaiseFence; each slot transaction is guarded
//     by its own slot's key.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

var (
	// ErrClusterFlush ends a run when a source's FLUSHALL, FLUSHDB or
	// SWAPDB reaches a cluster destination (see above): the supervisor
	// flushes and fully resyncs every source.
	ErrClusterFlush = errclass.New(errclass.FullResync,
		"apply: a source's FLUSHALL/FLUSHDB/SWAPDB on a Redis Cluster destination needs a full resync")
	// errMasterChanged ends an Apply after a group's master changed
	// (a failover): the link restarts and Continue re-reads the
	// checkpoints, as the old master may have lost acknowledged writes.
	errMasterChanged = errclass.New(errclass.Retry, "apply: a destination group's master changed (failover): re-reading checkpoints")
	// errStillMoving is a transaction that met ASK, TRYAGAIN or
	// CLUSTERDOWN more times than maxRedirects.
	errStillMoving = errclass.New(errclass.Retry, "apply: destination slot still migrating or cluster down")
)

// DBError is a source write to a database a Redis Cluster destination
// does not have (only db 0), not mapped by Options.DBMap: sync stops.
type DBError struct{ DB int }

func (e *DBError) Error() string {
	return fmt.Sprintf("apply: the source writes to database %d, but a Redis Cluster destination has only db 0: "+
		"map it to 0 or drop it with destination.db_map", e.DB)
}

// Unwrap makes a DBError an ErrUnsupported (Fatal).
func (e *DBError) Unwrap() error { return ErrUnsupported }

// RewindError is Continue's answer when a slot of a cluster destination
// went back below the offset the link resumed from (a master lost
// acknowledged writes): the link must resume from Offset instead.
type RewindError struct {
	Offset int64 // the lowest offset a slot holds
	From   int64 // where the link had resumed
	Slot   int
}

func (e *RewindError) Error() string {
	return fmt.Sprintf("apply: destination slot %d went back to offset %d, below %d: rewinding the link",
		e.Slot, e.Offset, e.From)
}

// Class makes a RewindError retryable: the link reconnects from Offset.
func (e *RewindError) Class() errclass.Class { return errclass.Retry }

// slotUnits is the plan's map on a cluster: slot s is unit s.
var slotUnits = sync.OnceValue(func() *router.SlotMap {
	rs := make([][]router.SlotRange, router.SlotCount)
	for s := range rs {
		rs[s] = []router.SlotRange{{Lo: uint16(s), Hi: uint16(s)}}
	}
	m, err := router.NewSlotMap(rs)
	if err != nil {
		panic(err) // every slot once: cannot happen
	}
	return m
})

// units is the map the stream is planned by: the destination's (a unit
// is a shard) or, on a cluster, one unit per slot.
func (a *Applier) units() *router.SlotMap {
	if a.cluster {
		return slotUnits()
	}
	return a.d.Map()
}

// unitCount is the number of units (shards, or slots on a cluster).
func (a *Applier) unitCount() int {
	if a.cluster {
		return router.SlotCount
	}
	return a.d.Len()
}

// group is the destination shard (a cluster's group) holding unit now.
func (a *Applier) group(unit int) int {
	if a.cluster {
		return a.d.Map().ShardOfSlot(uint16(unit))
	}
	return unit
}

// mapDB applies Options.DBMap to a source database on a cluster: the
// destination database (0), false when it is dropped, or a *DBError.
// Standalone shards keep every database.
func (a *Applier) mapDB(db int) (int, bool, error) {
	if !a.cluster {
		return db, true, nil
	}
	if m := a.opts.DBMap; m != nil {
		if to, ok := m[db]; ok {
			if to < 0 {
				return 0, false, nil
			}
			if to != 0 {
				return 0, false, &DBError{DB: db}
			}
			return to, true, nil
		}
	}
	if db != 0 {
		return 0, false, &DBError{DB: db}
	}
	return db, true, nil
}

// slotKey appends key{SlotTag(slot)}: key's copy that lives in slot.
func slotKey(dst []byte, key string, slot int) []byte {
	dst = append(dst, key...)
	dst = append(dst, '{')
	dst = append(dst, router.SlotTag(uint16(slot))...)
	return append(dst, '}')
}

// clusterFlush reports the keyless commands that delete keys.
func clusterFlush(name string) bool {
	switch name {
	case "flushall", "flushdb", "swapdb":
		return true
	}
	return false
}

// redirects counts what a cluster sent again (Stats.Moved, Stats.Retried);
// nil counts nothing.
type redirects struct{ moved, retried atomic.Int64 }

func (r *redirects) note(kind redirectKind) {
	if r == nil {
		return
	}
	if kind == redirMoved {
		r.moved.Add(1)
	} else {
		r.retried.Add(1)
	}
}

// clusterState is the Applier's cluster bookkeeping.
type clusterState struct {
	a *Applier
	// masters: per group, its master's address when the checkpoints were
	// last read or written; a change means a failover.
	masters []string
	// scanned: when seal last looked for slots due a checkpoint refresh.
	scanned time.Time
	key     []byte // scratch
}

func (c *clusterState) init(a *Applier) {
	c.a = a
	if a.cluster {
		c.noteMasters()
	}
}

// noteMasters remembers every group's current master.
func (c *clusterState) noteMasters() {
	d := c.a.d
	c.masters = c.masters[:0]
	for g := 0; g < d.Len(); g++ {
		c.masters = append(c.masters, d.Addr(g))
	}
}

// failedOver reports a group whose master is not the one noted.
func (c *clusterState) failedOver() (int, bool) {
	d := c.a.d
	if d.Len() != len(c.masters) {
		return 0, true
	}
	for g, addr := range c.masters {
		if d.Addr(g) != addr {
			return g, true
		}
	}
	return 0, false
}

// anchor is the slot carrying group g's keyless commands: its lowest.
func (a *Applier) anchor(g int) int {
	rs := a.d.Map().Ranges(g)
	if len(rs) == 0 {
		return -1
	}
	return int(rs[0].Lo)
}

// Redirect handling.

// maxRedirects bounds the attempts of one command or transaction that
// meets MOVED, ASK, TRYAGAIN or CLUSTERDOWN; with the backoff below, about
// a minute of migration or cluster-down time.
const maxRedirects = 400

// redirectWait is the backoff before attempt n (n ≥ 1) after ASK,
// TRYAGAIN or CLUSTERDOWN.
func redirectWait(n int) time.Duration {
	return min(time.Duration(n)*10*time.Millisecond, 200*time.Millisecond)
}

// redirectKind classifies an error reply.
type redirectKind uint8

const (
	notRedirect redirectKind = iota
	redirMoved
	redirAsk
	redirTryAgain
	redirDown
)

func classifyRedirect(reply []byte) (redirectKind, destination.Redirect) {
	if len(reply) == 0 || reply[0] != '-' {
		return notRedirect, destination.Redirect{}
	}
	if r, ok := destination.ParseRedirect(reply); ok {
		if r.Ask {
			return redirAsk, r
		}
		return redirMoved, r
	}
	switch {
	case destination.IsTryAgain(reply):
		return redirTryAgain, destination.Redirect{}
	case destination.IsClusterDown(reply):
		return redirDown, destination.Redirect{}
	}
	return notRedirect, destination.Redirect{}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// movedBackend records a MOVED and returns the new owner's backend.
func movedBackend(ctx context.Context, d *destination.Destination, r destination.Redirect) (*pool.Backend, error) {
	be, err := d.Follow(ctx, r, 0)
	if errors.Is(err, destination.ErrUnknownNode) {
		// Still unknown after a refresh: the slot's owner by the map.
		return d.Backend(d.Map().ShardOfSlot(r.Slot), 0), nil
	}
	return be, err
}

// doOne sends one command outside a transaction to a cluster group,
// following MOVED and ASK and retrying TRYAGAIN and CLUSTERDOWN; a
// transport error is returned, never resent. It returns the reply.
func doOne(ctx context.Context, d *destination.Destination, group int, req []byte, ctr *redirects) ([]byte, error) {
	be := d.Backend(group, 0)
	for n := 1; ; n++ {
		reply, err := be.Do(ctx, req, nil)
		if err != nil {
			return nil, fmt.Errorf("apply: %s: %w", be.Addr(), err)
		}
		kind, r := classifyRedirect(reply)
		if kind == notRedirect {
			return reply, nil
		}
		ctr.note(kind)
		if n >= maxRedirects {
			return nil, fmt.Errorf("%w: %s", errStillMoving, firstLine(reply))
		}
		switch kind {
		case redirMoved:
			if be, err = movedBackend(ctx, d, r); err != nil {
				return nil, err
			}
			continue
		case redirAsk:
			target, err := d.NodeBackend(r.Addr, 0)
			if err != nil {
				return nil, err
			}
			calls := []*pool.Call{{Req: destination.Asking}, {Req: req}}
			target.Pipeline(ctx, calls)
			for _, c := range calls {
				if c.Err != nil {
					return nil, fmt.Errorf("apply: %s: %w", target.Addr(), c.Err)
				}
			}
			k2, _ := classifyRedirect(calls[1].Reply)
			if k2 == notRedirect {
				return calls[1].Reply, nil
			}
			// Migrated meanwhile (MOVED next time) or TRYAGAIN: retry.
		}
		if err := sleepCtx(ctx, redirectWait(n)); err != nil {
			return nil, err
		}
		be = d.Backend(group, 0)
		if kind == redirAsk {
			be = d.Backend(d.Map().ShardOfSlot(r.Slot), 0)
		}
	}
}

func firstLine(b []byte) string {
	for i, c := range b {
		if c == '\r' || c == '\n' {
			return string(b[:i])
		}
	}
	return string(b)
}

// sendPipeline sends a cluster batch that is not a transaction (the
// snapshot's writes, checkpoint-only refreshes) to its group: every
// command that met a redirect is sent again, in order, through doOne. A
// command refused with CLUSTERDOWN or TRYAGAIN while a later one of the
// same pipeline went through could be reordered after it: that fails the
// batch with a retryable error instead.
func (b *batch) sendPipeline(ctx context.Context, d *destination.Destination) error {
	calls := b.seal()
	if len(calls) == 0 {
		return nil
	}
	if _, err := d.FenceEpoch(); err != nil {
		return err
	}
	d.Backend(b.shard, 0).Pipeline(ctx, calls)
	var again []int
	refused := false
	for i, c := range calls {
		if c.Err != nil {
			return fmt.Errorf("apply: shard %d (%s): %w", b.shard, d.Addr(b.shard), c.Err)
		}
		kind, _ := classifyRedirect(c.Reply)
		switch kind {
		case notRedirect:
			if refused && resp.ReplyError(c.Reply) == nil {
				return fmt.Errorf("%w: shard %d (%s) refused a write (%s) and accepted a later one in the same pipeline",
					errStillMoving, b.shard, d.Addr(b.shard), firstLine(calls[again[0]].Reply))
			}
			if e := resp.ReplyError(c.Reply); e != nil {
				return d.Refused(b.shard, 0, c.Req, e.Error())
			}
			continue
		case redirTryAgain, redirDown:
			refused = true
		}
		again = append(again, i)
	}
	for _, i := range again {
		if _, err := d.FenceEpoch(); err != nil {
			return err
		}
		reply, err := doOne(ctx, d, b.shard, calls[i].Req, b.ctr)
		if err != nil {
			return err
		}
		if e := resp.ReplyError(reply); e != nil {
			return d.Refused(b.shard, 0, calls[i].Req, e.Error())
		}
	}
	return nil
}

// Slot transactions.

// txCalls returns the calls of a slot transaction, behind the slot's
// fence guard when the lease is on (epoch > 0).
func (b *batch) txCalls(epoch int64) []*pool.Call {
	calls := b.seal()
	if epoch <= 0 {
		b.pre = b.pre[:0]
		return calls
	}
	fence := string(slotKey(nil, FenceKey, b.slot))
	b.pre = append(b.pre[:0],
		&pool.Call{Req: resp.AppendCommandString(nil, "WATCH", fence)},
		&pool.Call{Req: resp.AppendCommandString(nil, "EVAL", guardScript, "1", fence, strconv.FormatInt(epoch, 10))})
	return append(append([]*pool.Call(nil), b.pre...), calls...)
}

// txVerdict reads a slot transaction's replies: nil when it applied; a
// redirect to follow (ok) when it was refused whole; or an error.
func (b *batch) txVerdict(d *destination.Destination) (kind redirectKind, r destination.Redirect, err error) {
	all := append(append([]*pool.Call(nil), b.pre...), b.calls...)
	for _, c := range all {
		if c.Err != nil {
			return 0, r, fmt.Errorf("apply: shard %d (%s): %w", b.shard, d.Addr(b.shard), c.Err)
		}
	}
	exec := b.calls[len(b.calls)-1].Reply
	if len(exec) > 0 && exec[0] == '-' {
		// Refused whole (EXECABORT, or a redirect on EXEC itself): find
		// the cause.
		for _, c := range all {
			if k, rr := classifyRedirect(c.Reply); k != notRedirect {
				return k, rr, nil
			}
		}
	}
	if len(b.pre) > 0 {
		guard := b.pre[1]
		if e := resp.ReplyError(guard.Reply); e != nil {
			if len(guard.Reply) > 7 && string(guard.Reply[:7]) == "-FENCED" {
				return 0, r, fmt.Errorf("%w: shard %d (%s): %v", ErrFenced, b.shard, d.Addr(b.shard), e)
			}
			return 0, r, d.Refused(b.shard, 0, guard.Req, e.Error())
		}
		if string(exec) == "*-1\r\n" {
			return 0, r, fmt.Errorf("%w: shard %d (%s): transaction aborted by a newer lease epoch", ErrFenced, b.shard, d.Addr(b.shard))
		}
	}
	return 0, r, b.check(d)
}

// sendTx sends one slot transaction, alone, until it applied: MOVED to
// the new owner at once, ASK/TRYAGAIN/CLUSTERDOWN to the slot's owner
// after a backoff. n, kind and r are the attempts already made and the
// verdict of the last one (sendGroup's pipeline), or 0 and notRedirect.
// Every attempt asks the lease again (Destination.FenceEpoch).
func (b *batch) sendTx(ctx context.Context, d *destination.Destination, n int, kind redirectKind, r destination.Redirect) error {
	var be *pool.Backend
	for ; ; n++ {
		switch kind {
		case notRedirect:
		case redirMoved:
			var err error
			if be, err = movedBackend(ctx, d, r); err != nil {
				return err
			}
		default:
			be = nil
			if err := sleepCtx(ctx, redirectWait(n)); err != nil {
				return err
			}
		}
		if n >= maxRedirects {
			return fmt.Errorf("%w: slot %d", errStillMoving, b.slot)
		}
		if kind != notRedirect {
			b.ctr.note(kind)
		}
		epoch, err := d.FenceEpoch()
		if err != nil {
			return err
		}
		b.shard = d.Map().ShardOfSlot(uint16(b.slot))
		target := be
		if target == nil {
			target = d.Backend(b.shard, 0)
		}
		target.Pipeline(ctx, b.txCalls(epoch))
		if kind, r, err = b.txVerdict(d); err != nil || kind == notRedirect {
			return err
		}
	}
}

// sendGroup sends the slot transactions of one group as one pipeline,
// then each refused one again on its own; it returns each batch's error.
func sendGroup(ctx context.Context, d *destination.Destination, g int, bs []*batch) []error {
	errs := make([]error, len(bs))
	epoch, err := d.FenceEpoch()
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	var all []*pool.Call
	for _, b := range bs {
		b.shard = g
		all = append(all, b.txCalls(epoch)...)
	}
	d.Backend(g, 0).Pipeline(ctx, all)
	for i, b := range bs {
		kind, r, err := b.txVerdict(d)
		if err == nil && kind != notRedirect {
			err = b.sendTx(ctx, d, 1, kind, r)
		}
		errs[i] = err
	}
	return errs
}

// sealCluster closes every touched slot's transaction with the slot's
// checkpoint at offset, and plans checkpoint-only refreshes (one plain
// pipeline per group) of the untouched slots whose checkpoint is over
// Checkpoint.Every old and behind offset. The slots are scanned at most
// once per Every, so a checkpoint is refreshed within 2×Every.
func (s *streamState) sealCluster(offset int64) {
	c := &s.a.ckpt
	cl := &s.a.cl
	for _, u := range s.plan.touched {
		b := s.plan.runs[u][0]
		if c.on {
			b.begin(3)
			b.str("SET")
			cl.key = slotKey(cl.key[:0], c.key, u)
			b.bulk(cl.key)
			b.bulk(c.value(offset))
		}
		b.commandString("EXEC")
		b.markExec(1)
	}
	every := s.a.opts.Checkpoint.Every
	now := time.Now()
	if !c.on || now.Sub(cl.scanned) < every {
		return
	}
	cl.scanned = now
	m := s.a.d.Map()
	if n := s.a.d.Len(); len(s.plan.refresh) != n {
		s.plan.refresh = make([]*batch, n)
		s.plan.refreshSlots = make([][]int, n)
	}
	for slot := range router.SlotCount {
		if len(s.plan.runs[slot]) > 0 || offset <= c.held[slot] || now.Sub(c.wrote[slot]) < every {
			continue
		}
		g := m.ShardOfSlot(uint16(slot))
		b := s.plan.refresh[g]
		if b == nil {
			b = s.plan.newBatch()
			b.reset(g, 0)
			b.pipe, b.ctr = true, s.plan.ctr
			s.plan.refresh[g] = b
		}
		b.begin(3)
		b.str("SET")
		cl.key = slotKey(cl.key[:0], c.key, slot)
		b.bulk(cl.key)
		b.bulk(c.value(offset))
		s.plan.refreshSlots[g] = append(s.plan.refreshSlots[g], slot)
	}
}

// executeCluster sends the slot transactions, one pipeline per group
// (groups concurrently), then the groups' checkpoint refreshes. Each
// slot whose transaction applied now holds offset. After a failover it
// sends nothing and fails with errMasterChanged.
func (s *streamState) executeCluster(ctx context.Context, offset int64) error {
	a := s.a
	d := a.d
	if g, moved := a.cl.failedOver(); moved {
		return fmt.Errorf("%w: group %d", errMasterChanged, g)
	}
	m := d.Map()
	n := d.Len()
	byGroup := make([][]*batch, n)
	units := make([][]int, n)
	for _, u := range s.plan.touched {
		g := m.ShardOfSlot(uint16(u))
		for _, b := range s.plan.runs[u] {
			byGroup[g] = append(byGroup[g], b)
			units[g] = append(units[g], u)
		}
	}
	var groups []int
	for g := 0; g < n; g++ {
		if len(byGroup[g]) > 0 || (g < len(s.plan.refresh) && s.plan.refresh[g] != nil) {
			groups = append(groups, g)
		}
	}
	errs := make([][]error, n) // per group, per batch
	refreshErr := make([]error, n)
	run := func(g int) {
		if bs := byGroup[g]; len(bs) > 0 {
			for _, b := range bs {
				a.bytesSent.Add(int64(b.Size()))
			}
			errs[g] = sendGroup(ctx, d, g, bs)
			for i, b := range bs {
				if errs[g][i] == nil {
					a.applied(b)
				}
			}
		}
		if g < len(s.plan.refresh) && s.plan.refresh[g] != nil {
			b := s.plan.refresh[g]
			a.bytesSent.Add(int64(b.Size()))
			if refreshErr[g] = b.sendPipeline(ctx, d); refreshErr[g] == nil {
				a.applied(b)
			}
		}
	}
	if len(groups) == 1 {
		run(groups[0])
	} else {
		var wg sync.WaitGroup
		for _, g := range groups {
			wg.Add(1)
			go func() {
				defer wg.Done()
				run(g)
			}()
		}
		wg.Wait()
	}
	now := time.Now()
	c := &a.ckpt
	var first error
	note := func(err error) {
		if err != nil && (first == nil || (errclass.IsFatal(err) && !errclass.IsFatal(first))) {
			first = err
		}
	}
	for _, g := range groups {
		for i, err := range errs[g] {
			if err == nil && offset >= 0 {
				u := units[g][i]
				c.held[u], c.wrote[u] = offset, now
			}
			note(err)
		}
		if g < len(s.plan.refresh) && s.plan.refresh[g] != nil {
			if refreshErr[g] == nil {
				for _, slot := range s.plan.refreshSlots[g] {
					c.held[slot], c.wrote[slot] = offset, now
				}
			}
			note(refreshErr[g])
		}
	}
	return first
}

// Checkpoints on a cluster.

// eachGroupSlots runs fn for every group with the slots it owns now,
// groups concurrently.
func eachGroupSlots(d *destination.Destination, fn func(g int, slots []int) error) error {
	m := d.Map()
	return d.Each(func(g int) error {
		var slots []int
		for _, r := range m.Ranges(g) {
			for s := int(r.Lo); s <= int(r.Hi); s++ {
				slots = append(slots, s)
			}
		}
		if len(slots) == 0 {
			return nil
		}
		return fn(g, slots)
	})
}

// slotPipeline sends one command per slot to group g (build appends it
// to dst) and hands each reply to got; redirected commands are sent
// again through doOne. For idempotent commands only (GET, SET of a
// checkpoint).
func slotPipeline(ctx context.Context, d *destination.Destination, g int, slots []int,
	build func(dst []byte, slot int) []byte, got func(slot int, reply []byte) error) error {
	calls := make([]*pool.Call, len(slots))
	store := make([]pool.Call, len(slots))
	var buf []byte
	starts := make([]int, len(slots)+1)
	for i, s := range slots {
		starts[i] = len(buf)
		buf = build(buf, s)
	}
	starts[len(slots)] = len(buf)
	for i := range slots {
		store[i].Req = buf[starts[i]:starts[i+1]:starts[i+1]]
		calls[i] = &store[i]
	}
	d.Backend(g, 0).Pipeline(ctx, calls)
	for i, c := range calls {
		if c.Err != nil {
			return fmt.Errorf("apply: shard %d (%s): %w", g, d.Addr(g), c.Err)
		}
		reply := c.Reply
		if kind, _ := classifyRedirect(reply); kind != notRedirect {
			var err error
			if reply, err = doOne(ctx, d, g, c.Req, nil); err != nil {
				return err
			}
		}
		if e := resp.ReplyError(reply); e != nil {
			return d.Refused(g, 0, c.Req, e.Error())
		}
		if err := got(slots[i], reply); err != nil {
			return err
		}
	}
	return nil
}

// slotCheckpoints reads key{SlotTag(slot)} of every slot: nil where it is
// missing or does not parse.
func slotCheckpoints(ctx context.Context, d *destination.Destination, key string) ([]*Checkpoint, error) {
	out := make([]*Checkpoint, router.SlotCount)
	err := eachGroupSlots(d, func(g int, slots []int) error {
		var k []byte
		return slotPipeline(ctx, d, g, slots, func(dst []byte, s int) []byte {
			k = slotKey(k[:0], key, s)
			return resp.AppendCommand(dst, []byte("GET"), k)
		}, func(s int, reply []byte) error {
			out[s] = checkpointReply(reply)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// writeSlotCheckpoints sets every slot's checkpoint at offset (the end
// of a snapshot), pipelined per group.
func (a *Applier) writeSlotCheckpoints(ctx context.Context, offset int64) error {
	c := &a.ckpt
	if g, moved := a.cl.failedOver(); moved {
		// The snapshot's writes to a master that failed over may be lost.
		return fmt.Errorf("%w: group %d, during the snapshot", errMasterChanged, g)
	}
	if _, err := a.d.FenceEpoch(); err != nil {
		return err
	}
	val := c.value(offset)
	err := eachGroupSlots(a.d, func(g int, slots []int) error {
		var k []byte
		return slotPipeline(ctx, a.d, g, slots, func(dst []byte, s int) []byte {
			k = slotKey(k[:0], c.key, s)
			return resp.AppendCommand(dst, []byte("SET"), k, val)
		}, func(int, []byte) error { return nil })
	})
	if err != nil {
		return err
	}
	now := time.Now()
	for i := range c.held {
		c.held[i], c.wrote[i] = offset, now
	}
	return nil
}

// verifySlots reads every slot's checkpoint. A slot without one of this
// source list is ErrCheckpointLost (on a cluster no replicated flush
// deletes checkpoints: ErrClusterFlush). With raise, held takes the
// checkpoints, lowered where a slot went back (a failover lost writes);
// the lowest such slot and offset are returned (slot -1: none).
func (a *Applier) verifySlots(ctx context.Context, raise bool) (wentBack, error) {
	c := &a.ckpt
	if raise {
		// Before reading: a failover during the read is caught next time.
		a.cl.noteMasters()
	}
	got, err := slotCheckpoints(ctx, a.d, c.key)
	if err != nil {
		return wentBack{Slot: -1}, err
	}
	return settleSlots(c.held, got, c.fp, raise, func(slot int) string {
		g := a.d.Map().ShardOfSlot(uint16(slot))
		return fmt.Sprintf("slot %d (shard %d, %s)", slot, g, a.d.Addr(g))
	}, c.key)
}

// wentBack is the lowest slot checkpoint that went back.
type wentBack struct {
	Slot   int // -1: none
	Offset int64
}

// settleSlots is verifySlots' decision (pure): held per slot, got the
// checkpoints read back.
func settleSlots(held []int64, got []*Checkpoint, fp string, raise bool, name func(int) string, key string) (wentBack, error) {
	back := wentBack{Slot: -1}
	for slot, cp := range got {
		if cp == nil || cp.Fingerprint != fp {
			return wentBack{Slot: -1}, fmt.Errorf("%w: %s has no checkpoint of %s", ErrCheckpointLost, name(slot), key)
		}
		if !raise {
			continue
		}
		if held[slot] >= 0 && cp.Offset < held[slot] && (back.Slot < 0 || cp.Offset < back.Offset) {
			back = wentBack{Slot: slot, Offset: cp.Offset}
		}
		held[slot] = cp.Offset
	}
	return back, nil
}

// continueSlots is Continue on a cluster: the checkpoints re-read, and a
// *RewindError when a slot went back below offset, where the link
// resumed.
func (a *Applier) continueSlots(ctx context.Context, offset int64) error {
	back, err := a.verifySlots(ctx, true)
	if err != nil {
		return err
	}
	if back.Slot >= 0 && back.Offset < offset {
		a.opts.Logger.Warn("destination slot went back (failover lost writes): rewinding",
			"source", a.opts.Source, "slot", back.Slot, "offset", back.Offset, "link_offset", offset)
		return &RewindError{Offset: back.Offset, From: offset, Slot: back.Slot}
	}
	return nil
}

// Flush and fence on a cluster.

// raiseSlotFences is RaiseFence on a cluster: every slot's fence key.
func raiseSlotFences(ctx context.Context, d *destination.Destination, epoch int64) error {
	ep := strconv.FormatInt(epoch, 10)
	return eachGroupSlots(d, func(g int, slots []int) error {
		var k []byte
		return slotPipeline(ctx, d, g, slots, func(dst []byte, s int) []byte {
			k = slotKey(k[:0], FenceKey, s)
			return resp.AppendCommandString(dst, "EVAL", raiseScript, "1", string(k), ep)
		}, func(s int, reply []byte) error {
			v, _, err := resp.ParseValue(reply, resp.Limits{})
			if err != nil || v.Type != resp.TypeInteger {
				return fmt.Errorf("apply: shard %d (%s): unexpected fence reply %q", g, d.Addr(g), reply)
			}
			if v.Int != 0 {
				return &StaleEpochError{Shard: g, Epoch: epoch, Newest: v.Int}
			}
			return nil
		})
	})
}

// flushCluster is FlushAll on a cluster: FLUSHALL (and FUNCTION FLUSH)
// on every group's master, then, with a lease, every slot's fence raised
// again and the lease's keys restored. Unlike on standalone shards the
// flush and the fence cannot be one transaction (the fence keys span
// slots): between them only the lease's clock guards the writes.
func flushCluster(ctx context.Context, d *destination.Destination, infos []destination.ShardInfo, epoch int64) error {
	err := d.Each(func(g int) error {
		if _, err := d.Do(ctx, g, 0, "FLUSHALL"); err != nil {
			return err
		}
		if infos[g].Functions {
			if _, err := d.Do(ctx, g, 0, "FUNCTION", "FLUSH"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || epoch <= 0 {
		return err
	}
	if err := raiseSlotFences(ctx, d, epoch); err != nil {
		return err
	}
	if f := d.Fence(); f != nil {
		for _, c := range f.Restore() {
			if _, err := d.Do(ctx, 0, 0, c...); err != nil {
				return err
			}
		}
	}
	return nil
}

// probeKey is the throwaway key probes write on shard: on a cluster,
// tagged with a slot the group owns.
func probeKey(d *destination.Destination, shard int) string {
	if !d.Cluster() {
		return destination.ProbeKey
	}
	if rs := d.Map().Ranges(shard); len(rs) > 0 {
		return string(slotKey(nil, destination.ProbeKey, int(rs[0].Lo)))
	}
	return destination.ProbeKey
}

// probeDo sends a probe to shard (following redirects on a cluster).
func probeDo(ctx context.Context, d *destination.Destination, shard int, req []byte) ([]byte, error) {
	if d.Cluster() {
		return doOne(ctx, d, shard, req, nil)
	}
	return d.Backend(shard, 0).Do(ctx, req, nil)
}
