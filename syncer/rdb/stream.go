package rdb

import (
	"encoding/binary"
	"strconv"
)

// StreamID is a stream entry id.
type StreamID struct{ Ms, Seq uint64 }

func (id StreamID) String() string {
	return strconv.FormatUint(id.Ms, 10) + "-" + strconv.FormatUint(id.Seq, 10)
}

// StreamPart says what a stream Chunk carries.
type StreamPart uint8

// Stream chunk parts, in the order they are delivered.
const (
	StreamEntries      StreamPart = iota + 1 // Entries
	StreamMetaPart                           // Meta (exactly once)
	StreamGroupPart                          // Group header
	StreamPEL                                // Group, Pending: a batch of the group's PEL
	StreamConsumerPart                       // Group, Consumer header
	StreamConsumerPEL                        // Group, Consumer, ConsumerPending: a batch of its PEL ids
)

// StreamEntry is one live stream entry. Fields holds field, value, ...
type StreamEntry struct {
	ID     StreamID
	Fields [][]byte
}

// StreamMeta is the stream's bookkeeping. FirstID, MaxDeletedID and
// EntriesAdded exist from RDB type 19 (Redis 7.0) on; HasV2 says so.
type StreamMeta struct {
	Length       uint64
	LastID       StreamID
	HasV2        bool
	FirstID      StreamID
	MaxDeletedID StreamID
	EntriesAdded uint64
}

// StreamGroup is a consumer group. EntriesRead is -1 when unknown or not
// recorded (before RDB type 19).
type StreamGroup struct {
	Name        []byte
	LastID      StreamID
	EntriesRead int64
}

// StreamPending is one entry of a group's pending entries list.
type StreamPending struct {
	ID             StreamID
	DeliveryTimeMs int64
	DeliveryCount  uint64
}

// StreamConsumer is a consumer of a group. ActiveTimeMs is -1 before RDB
// type 21 (Redis 7.2).
type StreamConsumer struct {
	Name         []byte
	SeenTimeMs   int64
	ActiveTimeMs int64
}

// Stream listpack entry flags (src/t_stream.c STREAM_ITEM_FLAG_*).
const (
	streamFlagDeleted    = 1
	streamFlagSameFields = 2
)

// decodeStream walks a stream value (src/rdb.c stream branch of
// rdbSaveObject): with d == nil it only skips, otherwise it emits chunks.
func (p *Parser) decodeStream(t byte, d *decoder) error {
	nodes, err := p.readLen()
	if err != nil {
		return err
	}
	for ; nodes > 0; nodes-- {
		if d == nil {
			if err := p.skipString(); err != nil {
				return err
			}
			if err := p.skipString(); err != nil {
				return err
			}
			continue
		}
		at := p.in.offset()
		if d.name, err = p.readString(d.name[:0]); err != nil {
			return err
		}
		if len(d.name) != 16 { // 128-bit big-endian master id
			return &ParseError{Offset: at, Snippet: quote(d.name), Err: ErrCorrupt, Detail: "stream node key"}
		}
		master := StreamID{binary.BigEndian.Uint64(d.name), binary.BigEndian.Uint64(d.name[8:])}
		if at, err = d.readBlob(); err != nil {
			return err
		}
		if err := d.blobErr(at, d.streamNode(master)); err != nil {
			return err
		}
	}
	if d != nil {
		if err := d.flushEntries(); err != nil {
			return err
		}
	}
	readID := func() (StreamID, error) {
		ms, err := p.readLen()
		if err != nil {
			return StreamID{}, err
		}
		seq, err := p.readLen()
		return StreamID{ms, seq}, err
	}
	var m StreamMeta
	if m.Length, err = p.readLen(); err != nil {
		return err
	}
	if m.LastID, err = readID(); err != nil {
		return err
	}
	if t >= TypeStreamListpacks2 {
		m.HasV2 = true
		if m.FirstID, err = readID(); err != nil {
			return err
		}
		if m.MaxDeletedID, err = readID(); err != nil {
			return err
		}
		if m.EntriesAdded, err = p.readLen(); err != nil {
			return err
		}
	}
	if d != nil {
		d.meta = m
		d.c.StreamPart, d.c.Meta = StreamMetaPart, &d.meta
		if err := d.emit(); err != nil {
			return err
		}
		d.c.Meta = nil
	}
	groups, err := p.readLen()
	if err != nil {
		return err
	}
	for ; groups > 0; groups-- {
		if err := p.streamGroup(t, d, readID); err != nil {
			return err
		}
	}
	return nil
}

func (p *Parser) streamGroup(t byte, d *decoder, readID func() (StreamID, error)) error {
	var err error
	g := StreamGroup{EntriesRead: -1}
	if g.Name, err = p.streamName(d, false); err != nil {
		return err
	}
	if g.LastID, err = readID(); err != nil {
		return err
	}
	if t >= TypeStreamListpacks2 {
		v, err := p.readLen()
		if err != nil {
			return err
		}
		g.EntriesRead = int64(v) // 2^64-1 ("unknown", SCG_INVALID_ENTRIES_READ) becomes -1
	}
	if d != nil {
		d.group = g
		d.c.StreamPart, d.c.Group = StreamGroupPart, &d.group
		if err := d.emit(); err != nil {
			return err
		}
	}
	// Group PEL: 16-byte big-endian id, 8-byte LE delivery time, length
	// delivery count (src/rdb.c rdbSaveStreamPEL with nacks).
	n, err := p.readLen()
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		b, err := p.in.readN(24)
		if err != nil {
			return err
		}
		pe := StreamPending{
			ID:             StreamID{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])},
			DeliveryTimeMs: int64(binary.LittleEndian.Uint64(b[16:])),
		}
		if pe.DeliveryCount, err = p.readLen(); err != nil {
			return err
		}
		if d != nil {
			d.pending = append(d.pending, pe)
			if len(d.pending) >= p.opts.ChunkElems {
				if err := d.flushPending(); err != nil {
					return err
				}
			}
		}
	}
	if d != nil {
		if err := d.flushPending(); err != nil {
			return err
		}
	}
	consumers, err := p.readLen()
	if err != nil {
		return err
	}
	for ; consumers > 0; consumers-- {
		c := StreamConsumer{ActiveTimeMs: -1}
		if c.Name, err = p.streamName(d, true); err != nil {
			return err
		}
		b, err := p.in.readN(8)
		if err != nil {
			return err
		}
		c.SeenTimeMs = int64(binary.LittleEndian.Uint64(b))
		if t >= TypeStreamListpacks3 {
			if b, err = p.in.readN(8); err != nil {
				return err
			}
			c.ActiveTimeMs = int64(binary.LittleEndian.Uint64(b))
		}
		if d != nil {
			d.consumer = c
			d.c.StreamPart, d.c.Consumer = StreamConsumerPart, &d.consumer
			if err := d.emit(); err != nil {
				return err
			}
		}
		n, err := p.readLen()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			b, err := p.in.readN(16)
			if err != nil {
				return err
			}
			if d != nil {
				d.cpending = append(d.cpending, StreamID{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])})
				if len(d.cpending) >= p.opts.ChunkElems {
					if err := d.flushConsumerPending(); err != nil {
						return err
					}
				}
			}
		}
		if d != nil {
			if err := d.flushConsumerPending(); err != nil {
				return err
			}
			d.c.Consumer = nil
		}
	}
	if d != nil {
		d.c.Group = nil
	}
	return nil
}

// streamName reads a group's name (or a consumer's) into the decoder's
// buffer for it, or skips it when only validating (d == nil).
func (p *Parser) streamName(d *decoder, consumer bool) ([]byte, error) {
	if d == nil {
		return nil, p.skipString()
	}
	buf := &d.name
	if consumer {
		buf = &d.cname
	}
	var err error
	*buf, err = p.readString((*buf)[:0])
	return *buf, err
}

func (d *decoder) flushPending() error {
	if len(d.pending) == 0 {
		return nil
	}
	d.c.StreamPart, d.c.Pending = StreamPEL, d.pending
	err := d.emit()
	d.c.Pending, d.pending = nil, d.pending[:0]
	return err
}

func (d *decoder) flushConsumerPending() error {
	if len(d.cpending) == 0 {
		return nil
	}
	d.c.StreamPart, d.c.ConsumerPending = StreamConsumerPEL, d.cpending
	err := d.emit()
	d.c.ConsumerPending, d.cpending = nil, d.cpending[:0]
	return err
}

// streamNode decodes one node listpack (src/t_stream.c): master entry
// "count, deleted, nfields, field..., 0", then entries "flags, ms-delta,
// seq-delta, [nfields, field, value...] | [value...] (SAMEFIELDS), lp-count".
func (d *decoder) streamNode(master StreamID) error {
	it, err := newLpIter(d.blob)
	if err != nil {
		return err
	}
	next := func() (elem, error) {
		e, ok, err := it.next()
		if err == nil && !ok {
			err = &blobError{"stream: node listpack ended early", it.p}
		}
		return e, err
	}
	nextInt := func() (int64, error) {
		e, err := next()
		if err != nil {
			return 0, err
		}
		v, ok := e.int()
		if !ok {
			return 0, &blobError{"stream: integer expected", it.p}
		}
		return v, nil
	}
	for range 2 { // count, deleted
		if _, err := nextInt(); err != nil {
			return err
		}
	}
	nf, err := nextInt()
	if err != nil {
		return err
	}
	if nf < 0 || nf > int64(len(d.blob)) {
		return &blobError{"stream: bad master field count", it.p}
	}
	fields := d.masterFields[:0]
	for range nf {
		e, err := next()
		if err != nil {
			return err
		}
		fields = append(fields, e)
	}
	d.masterFields = fields
	if _, err := nextInt(); err != nil { // master terminator
		return err
	}
	for {
		e, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		flags, ok := e.int()
		if !ok {
			return &blobError{"stream: bad entry flags", it.p}
		}
		msd, err := nextInt()
		if err != nil {
			return err
		}
		seqd, err := nextInt()
		if err != nil {
			return err
		}
		live := flags&streamFlagDeleted == 0
		first := len(d.spans)
		if flags&streamFlagSameFields != 0 {
			for _, f := range fields {
				v, err := next()
				if err != nil {
					return err
				}
				if live {
					d.add(f)
					d.add(v)
				}
			}
		} else {
			n, err := nextInt()
			if err != nil {
				return err
			}
			if n < 0 || n > int64(len(d.blob)) {
				return &blobError{"stream: bad field count", it.p}
			}
			for range 2 * n {
				v, err := next()
				if err != nil {
					return err
				}
				if live {
					d.add(v)
				}
			}
		}
		if _, err := nextInt(); err != nil { // lp-count
			return err
		}
		if !live {
			continue
		}
		id := StreamID{master.Ms + uint64(msd), master.Seq + uint64(seqd)}
		d.entries = append(d.entries, StreamEntry{ID: id})
		d.entryIdx = append(d.entryIdx, first)
		d.items++
		if d.items >= d.p.opts.ChunkElems || len(d.arena) >= d.p.opts.ChunkBytes {
			if err := d.flushEntries(); err != nil {
				return err
			}
		}
	}
}

func (d *decoder) flushEntries() error {
	if len(d.entries) == 0 {
		return nil
	}
	d.elems = d.elems[:0]
	for _, s := range d.spans {
		d.elems = append(d.elems, d.arena[s.start:s.end:s.end])
	}
	for i := range d.entries {
		end := len(d.elems)
		if i+1 < len(d.entries) {
			end = d.entryIdx[i+1]
		}
		d.entries[i].Fields = d.elems[d.entryIdx[i]:end:end]
	}
	d.c.StreamPart, d.c.Entries = StreamEntries, d.entries
	err := d.emit()
	d.c.Entries = nil
	d.entries, d.entryIdx = d.entries[:0], d.entryIdx[:0]
	d.arena, d.spans, d.items = d.arena[:0], d.spans[:0], 0
	return err
}
