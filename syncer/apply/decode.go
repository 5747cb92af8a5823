package apply

import (
	"fmt"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/syncer/rdb"
)

// Names of the helpers the decoded path creates and removes again; the
// `__replicaof:` prefix is hidden from clients by the proxy.
const (
	mkstreamGroup = destination.KeyPrefix + "mkstream"
	pelConsumer   = destination.KeyPrefix + "pel"
)

// valueWriter rebuilds one key from its decoded chunks with ordinary
// commands: DEL first (RESTORE REPLACE semantics), then SET/APPEND, RPUSH,
// SADD, ZADD, HSET (+HPEXPIREAT for field TTLs), or XADD + XSETID +
// XGROUP CREATE/CREATECONSUMER + XCLAIM for streams, then PEXPIREAT.
type valueWriter struct {
	l         *loader
	k         *rdb.Key
	shard, db int
	info      destination.ShardInfo

	streamMade bool
	group      []byte
	inGroup    bool
	pending    map[rdb.StreamID]rdb.StreamPending
	overflow   bool
	byExpire   map[int64][]int
}

func (w *valueWriter) write(l *loader, k *rdb.Key, shard, db int) error {
	*w = valueWriter{l: l, k: k, shard: shard, db: db, info: l.info[shard], pending: w.pending, byExpire: w.byExpire, group: w.group[:0]}
	if k.Kind() == rdb.KindModule || k.Kind() == rdb.KindUnknown {
		return fmt.Errorf("%w: key %q has RDB type %d, which shard %d cannot RESTORE (RDB %d > %d)",
			ErrUnsupported, k.Key, k.Type, shard, l.version, w.info.MaxRDB)
	}
	b, err := l.batch(shard, db)
	if err != nil {
		return err
	}
	b.begin(2)
	b.str("DEL")
	b.bulk(k.Key)
	if err := k.Decode(w.chunk); err != nil {
		return err
	}
	if k.Kind() == rdb.KindStream {
		if err := w.endGroup(); err != nil {
			return err
		}
	}
	if k.ExpireAtMs >= 0 {
		b, err := l.batch(shard, db)
		if err != nil {
			return err
		}
		b.begin(3)
		b.str("PEXPIREAT")
		b.bulk(k.Key)
		b.int(k.ExpireAtMs)
	}
	return nil
}

func (w *valueWriter) batch() (*batch, error) { return w.l.batch(w.shard, w.db) }

// cmd starts a command "NAME key" with n more arguments.
func (w *valueWriter) cmd(name string, n int) (*batch, error) {
	b, err := w.batch()
	if err != nil {
		return nil, err
	}
	b.begin(2 + n)
	b.str(name)
	b.bulk(w.k.Key)
	return b, nil
}

func (w *valueWriter) chunk(c *rdb.Chunk) error {
	switch c.Kind {
	case rdb.KindString:
		name := "SET"
		if c.Offset > 0 {
			name = "APPEND"
		}
		b, err := w.cmd(name, 1)
		if err != nil {
			return err
		}
		b.bulk(c.Data)
	case rdb.KindList, rdb.KindSet:
		name := "RPUSH"
		if c.Kind == rdb.KindSet {
			name = "SADD"
		}
		if len(c.Elems) == 0 {
			return nil
		}
		b, err := w.cmd(name, len(c.Elems))
		if err != nil {
			return err
		}
		for _, e := range c.Elems {
			b.bulk(e)
		}
	case rdb.KindZSet:
		if len(c.Elems) == 0 {
			return nil
		}
		b, err := w.cmd("ZADD", 2*len(c.Elems))
		if err != nil {
			return err
		}
		for i, e := range c.Elems {
			b.float(c.Scores[i])
			b.bulk(e)
		}
	case rdb.KindHash:
		return w.hash(c)
	case rdb.KindStream:
		return w.stream(c)
	default:
		return fmt.Errorf("%w: key %q: cannot rebuild a %s value", ErrUnsupported, w.k.Key, c.Kind)
	}
	return nil
}

func (w *valueWriter) hash(c *rdb.Chunk) error {
	if len(c.Elems) < 2 {
		return nil
	}
	b, err := w.cmd("HSET", len(c.Elems))
	if err != nil {
		return err
	}
	for _, e := range c.Elems {
		b.bulk(e)
	}
	if c.FieldExpireAtMs == nil {
		return nil
	}
	if w.byExpire == nil {
		w.byExpire = map[int64][]int{}
	}
	clear(w.byExpire)
	var order []int64
	for i, ms := range c.FieldExpireAtMs {
		if ms <= 0 {
			continue
		}
		if !w.info.FieldTTL {
			w.l.a.skippedTTLs.Add(1)
			continue
		}
		ms = withGrace(ms, w.l.grace)
		if _, ok := w.byExpire[ms]; !ok {
			order = append(order, ms)
		}
		w.byExpire[ms] = append(w.byExpire[ms], i)
	}
	for _, ms := range order {
		pairs := w.byExpire[ms]
		b, err := w.cmd("HPEXPIREAT", 3+len(pairs))
		if err != nil {
			return err
		}
		b.int(ms)
		b.str("FIELDS")
		b.int(int64(len(pairs)))
		for _, i := range pairs {
			b.bulk(c.Elems[2*i])
		}
	}
	return nil
}

func (w *valueWriter) stream(c *rdb.Chunk) error {
	switch c.StreamPart {
	case rdb.StreamEntries:
		for _, e := range c.Entries {
			b, err := w.cmd("XADD", 1+len(e.Fields))
			if err != nil {
				return err
			}
			b.str(e.ID.String())
			for _, f := range e.Fields {
				b.bulk(f)
			}
			w.streamMade = true
		}
	case rdb.StreamMetaPart:
		m := c.Meta
		if !w.streamMade {
			// An empty stream still exists: create it through a group.
			b, err := w.sub("XGROUP", "CREATE", 3)
			if err != nil {
				return err
			}
			b.str(mkstreamGroup)
			b.str("0")
			b.str("MKSTREAM")
			if b, err = w.sub("XGROUP", "DESTROY", 1); err != nil {
				return err
			}
			b.str(mkstreamGroup)
			w.streamMade = true
		}
		n := 1
		if m.HasV2 && w.info.Streams7 {
			n += 4
		}
		b, err := w.cmd("XSETID", n)
		if err != nil {
			return err
		}
		b.str(m.LastID.String())
		if n > 1 {
			b.str("ENTRIESADDED")
			b.uint(m.EntriesAdded)
			b.str("MAXDELETEDID")
			b.str(m.MaxDeletedID.String())
		}
	case rdb.StreamGroupPart:
		if err := w.endGroup(); err != nil {
			return err
		}
		g := c.Group
		n := 2
		if g.EntriesRead >= 0 && w.info.Streams7 {
			n += 2
		}
		b, err := w.sub("XGROUP", "CREATE", n)
		if err != nil {
			return err
		}
		b.bulk(g.Name)
		b.str(g.LastID.String())
		if n > 2 {
			b.str("ENTRIESREAD")
			b.int(g.EntriesRead)
		}
		w.group = append(w.group[:0], g.Name...)
		w.inGroup = true
	case rdb.StreamPEL:
		if w.pending == nil {
			w.pending = map[rdb.StreamID]rdb.StreamPending{}
		}
		for _, p := range c.Pending {
			if len(w.pending) < w.l.a.opts.MaxPending {
				w.pending[p.ID] = p
				continue
			}
			// Too many to hold: park the entry on a helper consumer with
			// its delivery time and count; the real owner claims it below.
			w.overflow = true
			if err := w.claim([]byte(pelConsumer), p.ID, &p); err != nil {
				return err
			}
		}
	case rdb.StreamConsumerPart:
		if !w.info.Streams7 {
			return nil
		}
		b, err := w.sub("XGROUP", "CREATECONSUMER", 2)
		if err != nil {
			return err
		}
		b.bulk(w.group)
		b.bulk(c.Consumer.Name)
	case rdb.StreamConsumerPEL:
		for _, id := range c.ConsumerPending {
			var pp *rdb.StreamPending
			if p, ok := w.pending[id]; ok {
				pp = &p
				delete(w.pending, id)
			}
			if err := w.claim(c.Consumer.Name, id, pp); err != nil {
				return err
			}
		}
	}
	return nil
}

// sub starts "NAME SUB key" with n more arguments (XGROUP's key is its
// third argument).
func (w *valueWriter) sub(name, sub string, n int) (*batch, error) {
	b, err := w.batch()
	if err != nil {
		return nil, err
	}
	b.begin(3 + n)
	b.str(name)
	b.str(sub)
	b.bulk(w.k.Key)
	return b, nil
}

// claim puts id in the current group's PEL, owned by consumer: XCLAIM
// key group consumer 0 id [TIME ms RETRYCOUNT n] FORCE JUSTID.
func (w *valueWriter) claim(consumer []byte, id rdb.StreamID, p *rdb.StreamPending) error {
	n := 6
	if p != nil {
		n += 4
	}
	b, err := w.cmd("XCLAIM", n)
	if err != nil {
		return err
	}
	b.bulk(w.group)
	b.bulk(consumer)
	b.str("0")
	b.str(id.String())
	if p != nil {
		b.str("TIME")
		b.int(p.DeliveryTimeMs)
		b.str("RETRYCOUNT")
		b.uint(p.DeliveryCount)
	}
	b.str("FORCE")
	b.str("JUSTID")
	return nil
}

// endGroup drops the helper consumer of the group just finished.
func (w *valueWriter) endGroup() error {
	if !w.inGroup {
		return nil
	}
	w.inGroup = false
	clear(w.pending)
	if !w.overflow {
		return nil
	}
	w.overflow = false
	b, err := w.sub("XGROUP", "DELCONSUMER", 2)
	if err != nil {
		return err
	}
	b.bulk(w.group)
	b.str(pelConsumer)
	return nil
}
