package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/syncer/rdb"
)

// LoadSnapshot reads one RDB stream to its end and writes every key,
// function library and (pre-7.0) Lua script to the destination. Keys are
// RESTOREd when the key's shard accepts the file's RDB version, and
// rebuilt with ordinary commands otherwise (or with Options.ForceDecode, or
// when a value exceeds RDB.MaxRawPayload). Keys already expired are
// skipped. It returns when every write was answered; the first failure
// stops the load.
func (a *Applier) LoadSnapshot(ctx context.Context, r io.Reader) (Stats, error) {
	parent := ctx
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	l := &loader{a: a, d: a.d, ctx: ctx, cancel: cancel, now: time.Now().UnixMilli(), grace: a.opts.graceMs()}
	l.queues = make([]*queue, a.d.Len())
	for i := range l.queues {
		l.queues[i] = &queue{shard: i, sem: make(chan struct{}, a.opts.Inflight)}
	}
	err := l.run(rdb.NewParser(r, a.opts.RDB))
	if err == nil {
		err = l.flush()
	}
	for _, q := range l.queues {
		q.wg.Wait()
	}
	// A failed write canceled ctx with its error: that is the cause of
	// whatever the parsing side saw afterwards.
	if parent.Err() == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	return a.Stats(), err
}

// loader is one LoadSnapshot: the parsing goroutine fills a batch per
// shard and hands full ones to queue senders.
type loader struct {
	a      *Applier
	d      *destination.Destination
	ctx    context.Context
	cancel context.CancelCauseFunc
	now    int64 // unix ms when the load started, for expired keys
	grace  int64 // Options.TTLGrace in ms

	version int
	info    []destination.ShardInfo
	restore []bool // per shard: RESTORE accepts this file's version
	queues  []*queue
	seq     uint64

	// The key being written: its commands must reach the shard in order
	// even when they fill several batches.
	keySeq uint64
	vw     valueWriter
	str    []byte // a decoded small string on its way into an MSET
}

// queue is one shard's snapshot pipeline: the open batch and the senders
// in flight.
type queue struct {
	shard int
	cur   *batch
	sem   chan struct{} // a token per pipeline in flight
	wg    sync.WaitGroup
	mu    sync.Mutex
	free  []*batch

	// Small strings without TTL waiting to go out as one MSET: their
	// key and value bulks, how many pairs, and their database. Owned by
	// the loader goroutine.
	mset   []byte
	msetN  int
	msetDB int
}

// A RESTORE costs the shard about as much as an MSET of 100 small
// strings costs per key plus the per-command work: reading, parsing and
// answering a command dominate a small key's load. So small strings
// without TTL, the bulk of most datasets, go out batched: at most
// msetPairs keys or msetBytes bytes per MSET. msetMaxRaw and
// msetMaxValue bound the encoded and the decoded value taken this way.
const (
	msetPairs    = 128
	msetBytes    = 64 << 10
	msetMaxRaw   = 1024
	msetMaxValue = 16 << 10
)

func (l *loader) fail(err error) { l.cancel(err) }

func (l *loader) run(p *rdb.Parser) error {
	defer func() { l.a.rdbBytes.Store(p.Offset()) }()
	for n := 0; ; n++ {
		if n&255 == 0 {
			l.a.rdbBytes.Store(p.Offset())
			if err := context.Cause(l.ctx); err != nil {
				return err
			}
		}
		e, err := p.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if l.version == 0 {
			if err := l.start(p.Version()); err != nil {
				return err
			}
		}
		switch e := e.(type) {
		case *rdb.Key:
			if err := l.key(e); err != nil {
				return err
			}
		case *rdb.SelectDB:
			// Keys come grouped by db: do not keep a batch per db open.
			if err := l.flush(); err != nil {
				return err
			}
		case *rdb.Function:
			if err := l.function(e); err != nil {
				return err
			}
		case *rdb.Aux:
			if string(e.Key) == "lua" {
				if err := l.script(e.Value); err != nil {
					return err
				}
			}
		case *rdb.ModuleAux:
			l.a.opts.Logger.Warn("module aux data skipped", "source", l.a.opts.Source, "module", fmt.Sprint(rdb.ModuleName(e.ModuleID)))
		}
	}
}

// start learns what each shard can take once the file's version is known.
func (l *loader) start(version int) error {
	l.version = version
	infos, err := l.d.Info(l.ctx)
	if err != nil {
		return err
	}
	l.info = infos
	l.restore = make([]bool, len(infos))
	if l.a.opts.ForceDecode {
		return nil
	}
	for i, si := range infos {
		switch {
		case si.MaxRDB > 0:
			l.restore[i] = version <= si.MaxRDB
		default:
			ok, err := probeRestore(l.ctx, l.d, i, version)
			if err != nil {
				return err
			}
			l.restore[i] = ok
		}
	}
	return nil
}

func (l *loader) function(f *rdb.Function) error {
	if f.PreGA {
		return fmt.Errorf("%w: pre-GA function library %q", ErrUnsupported, f.Name)
	}
	code := string(f.Code)
	err := l.d.Each(func(shard int) error {
		_, err := l.d.Do(l.ctx, shard, 0, "FUNCTION", "LOAD", "REPLACE", code)
		return err
	})
	if err == nil {
		l.a.functions.Add(1)
	}
	return err
}

// script loads a Lua script shipped as AUX "lua" (Redis < 7.0) so EVALSHA
// in a verbatim-scripts stream finds it.
func (l *loader) script(body []byte) error {
	code := string(body)
	return l.d.Each(func(shard int) error {
		_, err := l.d.Do(l.ctx, shard, 0, "SCRIPT", "LOAD", code)
		return err
	})
}

func (l *loader) key(k *rdb.Key) error {
	if bytes.HasPrefix(k.Key, []byte(destination.KeyPrefix)) {
		return nil // another replicaof's own key (see ownKeyCommand)
	}
	// With a grace the key is written with it (a RESTORE of an expire
	// time already past would not create it anyway): the source's DEL
	// removes it, as for a key that expires later.
	k.ExpireAtMs = withGrace(k.ExpireAtMs, l.grace)
	if k.ExpireAtMs >= 0 && k.ExpireAtMs <= l.now {
		l.a.keysExpired.Add(1)
		return nil
	}
	shard := l.d.Map().ShardOf(k.Key)
	db := int(k.DB)
	if l.a.cluster {
		to, keep, err := l.a.mapDB(db)
		if err != nil {
			return fmt.Errorf("key %q: %w", k.Key, err)
		}
		if !keep {
			return nil // a dropped database
		}
		db = to
	}
	l.keySeq = 0
	if k.Kind() == rdb.KindModule {
		switch err := l.moduleKey(k, shard); {
		case errors.Is(err, errSkipped):
			return nil
		case err != nil:
			return err
		}
	}
	if k.Type == rdb.TypeString && k.ExpireAtMs < 0 && k.Idle < 0 && k.Freq < 0 {
		ok, err := l.msetString(k, shard, db)
		if ok || err != nil {
			return err
		}
	}
	if l.restore[shard] && !(l.grace > 0 && fieldTTLs(k.Type)) {
		raw, err := k.Raw()
		switch {
		case err == nil:
			b, err := l.batch(shard, db)
			if err != nil {
				return err
			}
			l.restoreCmd(b, k, raw)
			l.a.keysRestored.Add(1)
			l.a.keysLoaded.Add(1)
			return nil
		case !errors.Is(err, rdb.ErrRawTooLarge):
			return err
		}
	}
	if err := l.vw.write(l, k, shard, db); err != nil {
		return err
	}
	l.a.keysDecoded.Add(1)
	l.a.keysLoaded.Add(1)
	return nil
}

// msetString adds a small string key without TTL (or LRU/LFU data, which
// only RESTORE carries) to its shard's pending MSET. It reports false,
// having written nothing, for a value too large to batch.
func (l *loader) msetString(k *rdb.Key, shard, db int) (bool, error) {
	raw, err := k.Raw()
	switch {
	case errors.Is(err, rdb.ErrRawTooLarge):
		return false, nil
	case err != nil:
		return false, err
	case len(raw) > msetMaxRaw:
		return false, nil
	}
	if l.a.cluster {
		// MSET would span slots: a plain SET per key.
		if l.str, err = rdb.AppendString(l.str[:0], raw, msetMaxValue); err != nil {
			return false, nil // RESTORE it
		}
		b, err := l.batch(shard, db)
		if err != nil {
			return false, err
		}
		b.begin(3)
		b.str("SET")
		b.bulk(k.Key)
		b.bulk(l.str)
		l.a.keysBatched.Add(1)
		l.a.keysLoaded.Add(1)
		return true, nil
	}
	q := l.queues[shard]
	if q.msetN > 0 && q.msetDB != db {
		if err := l.emitMSET(q); err != nil {
			return false, err
		}
	}
	l.str, err = rdb.AppendString(l.str[:0], raw, msetMaxValue)
	switch {
	case errors.Is(err, rdb.ErrTooLarge):
		return false, nil // an LZF string that expands a lot: RESTORE it
	case err != nil:
		return false, fmt.Errorf("key %q: %w", k.Key, err)
	}
	q.msetDB = db
	q.mset = resp.AppendBulk(q.mset, k.Key)
	q.mset = resp.AppendBulk(q.mset, l.str)
	q.msetN++
	l.a.keysBatched.Add(1)
	l.a.keysLoaded.Add(1)
	if q.msetN >= msetPairs || len(q.mset) >= msetBytes {
		return true, l.emitMSET(q)
	}
	return true, nil
}

// emitMSET moves the shard's pending MSET into its open batch.
func (l *loader) emitMSET(q *queue) error {
	if q.msetN == 0 {
		return nil
	}
	b, err := l.batch(q.shard, q.msetDB)
	if err != nil {
		return err
	}
	b.begin(1 + 2*q.msetN)
	b.str("MSET")
	b.buf = append(b.buf, q.mset...)
	b.left -= 2 * q.msetN
	b.mustBeComplete()
	q.mset, q.msetN = q.mset[:0], 0
	l.keySeq = 0 // the MSET belongs to no key that continues
	return nil
}

// fieldTTLs reports a hash type that may carry field TTLs. With a TTL
// grace such a hash is rebuilt (HSET + HPEXPIREAT with the grace) rather
// than RESTOREd, as its payload holds the source's field expire times.
func fieldTTLs(t byte) bool {
	switch t {
	case rdb.TypeHashMetadata, rdb.TypeHashListpackEx, rdb.TypeHashMetadataPreGA, rdb.TypeHashListpackExPreGA:
		return true
	}
	return false
}

// restoreCmd encodes RESTORE key ttl payload REPLACE ABSTTL [IDLETIME|FREQ],
// building the payload in place.
func (l *loader) restoreCmd(b *batch, k *rdb.Key, raw []byte) {
	n := 6
	if k.Freq >= 0 || k.Idle >= 0 {
		n += 2
	}
	b.begin(n)
	b.str("RESTORE")
	b.bulk(k.Key)
	ttl := k.ExpireAtMs
	if ttl < 0 {
		ttl = 0
	}
	b.int(ttl)
	size := 1 + len(raw) + 2 + 8
	b.buf = append(b.buf, '$')
	b.buf = appendInt(b.buf, int64(size))
	b.buf = append(b.buf, '\r', '\n')
	b.buf = rdb.AppendDumpPayload(b.buf, k.Type, raw, uint16(l.version))
	b.buf = append(b.buf, '\r', '\n')
	b.left--
	b.str("REPLACE")
	b.str("ABSTTL")
	switch {
	case k.Freq >= 0:
		b.str("FREQ")
		b.int(int64(k.Freq))
	case k.Idle >= 0:
		b.str("IDLETIME")
		b.int(k.Idle)
	}
}

// batch returns the open batch of (shard, db) with room for another
// command, sending the current one first when it is full or for another
// db. Commands of the current key that land in a new batch mark it
// ordered: it waits for the shard's earlier batches.
func (l *loader) batch(shard, db int) (*batch, error) {
	q := l.queues[shard]
	b := q.cur
	if b != nil && (b.db != db || b.Len() >= l.a.opts.BatchCalls || b.Size() >= l.a.opts.BatchBytes) {
		if err := l.submit(q); err != nil {
			return nil, err
		}
		b = nil
	}
	if b == nil {
		b = q.get()
		l.seq++
		b.reset(shard, db)
		b.pipe = l.a.cluster
		b.ctr = &l.a.redir
		b.seq = l.seq
		q.cur = b
	}
	if l.keySeq != 0 && l.keySeq != b.seq {
		b.ordered = true
	}
	l.keySeq = b.seq
	return b, nil
}

// flush sends every open batch, pending MSETs included.
func (l *loader) flush() error {
	for _, q := range l.queues {
		if err := l.emitMSET(q); err != nil {
			return err
		}
		if q.cur != nil {
			if err := l.submit(q); err != nil {
				return err
			}
		}
	}
	return nil
}

// submit hands the shard's open batch to a sender goroutine, waiting for
// a free pipeline slot (and, for an ordered batch, for every earlier one).
func (l *loader) submit(q *queue) error {
	b := q.cur
	q.cur = nil
	if b.Len() == 0 {
		q.put(b)
		return nil
	}
	if b.ordered {
		q.wg.Wait()
	}
	select {
	case q.sem <- struct{}{}:
	case <-l.ctx.Done():
		q.put(b)
		return context.Cause(l.ctx)
	}
	l.a.bytesSent.Add(int64(b.Size()))
	if size := int64(b.Size()); size > l.a.maxBatch.Load() {
		l.a.maxBatch.Store(size) // only the loader goroutine writes it
	}
	q.wg.Add(1)
	go q.send(l, b)
	return nil
}

// send runs one pipeline; owned by the loader, which waits on q.wg.
func (q *queue) send(l *loader, b *batch) {
	defer q.wg.Done()
	if err := b.send(l.ctx, l.d); err != nil {
		l.fail(err)
	} else {
		l.a.applied(b)
	}
	<-q.sem
	q.put(b)
}

func (q *queue) get() *batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	if n := len(q.free); n > 0 {
		b := q.free[n-1]
		q.free = q.free[:n-1]
		return b
	}
	return &batch{}
}

func (q *queue) put(b *batch) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.free) <= cap(q.sem) && cap(b.buf) <= 4<<20 {
		q.free = append(q.free, b)
	}
}
