package rdb

import (
	"encoding/binary"
	"math"
	"strconv"
)

// Chunk is one bounded batch of a decoded value, handed to the function
// given to Key.Decode. Which fields are set depends on the value's Kind:
//
//   - KindString: Data is the piece of the value starting at Offset; Size is
//     the total length. A string always yields at least one chunk (an empty
//     string yields one empty chunk).
//   - KindList: Elems are elements, in order.
//   - KindSet: Elems are members.
//   - KindZSet: Elems are members, Scores[i] the score of Elems[i].
//   - KindHash: Elems are field, value, field, value, ... If the type
//     carries field TTLs (types 22-25), FieldExpireAtMs[i] is the absolute
//     expiry in unix ms of the pair Elems[2i], Elems[2i+1], 0 if none;
//     otherwise FieldExpireAtMs is nil.
//   - KindStream: see StreamPart; chunks come in the order entries, meta,
//     then per group: group, PEL, per consumer: consumer, consumer PEL.
//   - KindModule: one chunk, ModuleID and Data, the module's opaque opcode
//     stream (bounded by Options.MaxRawPayload).
//
// Collections yield no chunk when empty. Chunks hold at most
// Options.ChunkElems items (elements, members, pairs, stream entries or PEL
// entries) and roughly Options.ChunkBytes bytes.
type Chunk struct {
	Kind Kind

	Data   []byte
	Offset int64
	Size   int64

	Elems           [][]byte
	Scores          []float64
	FieldExpireAtMs []int64

	ModuleID uint64

	StreamPart      StreamPart
	Entries         []StreamEntry
	Meta            *StreamMeta
	Group           *StreamGroup    // StreamGroupPart, StreamPEL, StreamConsumerPart, StreamConsumerPEL
	Pending         []StreamPending // StreamPEL
	Consumer        *StreamConsumer // StreamConsumerPart, StreamConsumerPEL
	ConsumerPending []StreamID      // StreamConsumerPEL
}

// callbackError marks errors returned by the caller's function so that they
// pass through the decoder untouched.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }
func (e *callbackError) Unwrap() error { return e.err }

type span struct{ start, end int }

// decoder turns one value into chunks. Elements are copied into arena and
// referenced by spans until the chunk is handed over.
type decoder struct {
	p      *Parser
	fn     func(*Chunk) error
	c      Chunk
	arena  []byte
	spans  []span
	items  int // items in the current chunk
	elems  [][]byte
	scores []float64
	ttls   []int64
	blob   []byte
	win    []byte

	masterFields []elem
	entries      []StreamEntry
	entryIdx     []int // span index where each entry's fields start
	pending      []StreamPending
	cpending     []StreamID
	meta         StreamMeta
	group        StreamGroup
	consumer     StreamConsumer
	name         []byte
	cname        []byte
}

func (d *decoder) reset(fn func(*Chunk) error, k Kind) {
	d.fn = fn
	d.c = Chunk{Kind: k}
	d.arena, d.spans, d.items = d.arena[:0], d.spans[:0], 0
	d.scores, d.ttls = d.scores[:0], d.ttls[:0]
	// Do not keep huge arenas around after one big element.
	if cap(d.arena) > 4*d.p.opts.ChunkBytes {
		d.arena = nil
	}
}

// add copies one element into the current chunk.
func (d *decoder) add(e elem) {
	start := len(d.arena)
	d.arena = e.appendTo(d.arena)
	d.spans = append(d.spans, span{start, len(d.arena)})
}

// readElem reads one RDB string into the current chunk.
func (d *decoder) readElem() error {
	start := len(d.arena)
	var err error
	d.arena, err = d.p.readString(d.arena)
	if err != nil {
		return err
	}
	d.spans = append(d.spans, span{start, len(d.arena)})
	return nil
}

// readItem reads an item of k strings (an element, a field and its value)
// and closes it.
func (d *decoder) readItem(k int) error {
	for ; k > 0; k-- {
		if err := d.readElem(); err != nil {
			return err
		}
	}
	return d.item()
}

// item closes one item (element, pair, ...) and hands the chunk over when
// it is full.
func (d *decoder) item() error {
	d.items++
	if d.items >= d.p.opts.ChunkElems || len(d.arena) >= d.p.opts.ChunkBytes {
		return d.flush()
	}
	return nil
}

// flush hands the collected elements over, if any.
func (d *decoder) flush() error {
	if d.items == 0 {
		return nil
	}
	d.elems = d.elems[:0]
	for _, s := range d.spans {
		d.elems = append(d.elems, d.arena[s.start:s.end:s.end])
	}
	c := &d.c
	c.Elems = d.elems
	c.Scores, c.FieldExpireAtMs = nil, nil
	if c.Kind == KindZSet {
		c.Scores = d.scores
	}
	if d.ttls != nil && len(d.ttls) > 0 {
		c.FieldExpireAtMs = d.ttls
	}
	err := d.emit()
	d.arena, d.spans, d.items = d.arena[:0], d.spans[:0], 0
	d.scores, d.ttls = d.scores[:0], d.ttls[:0]
	return err
}

func (d *decoder) emit() error {
	if err := d.fn(&d.c); err != nil {
		return &callbackError{err}
	}
	return nil
}

// blobErr converts a packed-encoding error into a ParseError located at the
// blob's value.
func (d *decoder) blobErr(at int64, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*blobError); ok {
		return &ParseError{Offset: at, Snippet: quote(d.blob), Err: ErrCorrupt, Detail: err.Error()}
	}
	return err
}

// readBlob reads one packed blob (listpack, ziplist, intset, zipmap).
func (d *decoder) readBlob() (int64, error) {
	at := d.p.in.offset()
	var err error
	d.blob, err = d.p.readString(d.blob[:0])
	return at, err
}

func (d *decoder) value(t byte) error {
	p := d.p
	switch t {
	case TypeString:
		return d.str()
	case TypeList, TypeSet:
		n, err := p.readLen()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if err := d.readItem(1); err != nil {
				return err
			}
		}
	case TypeHash:
		n, err := p.readLen()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if err := d.readItem(2); err != nil {
				return err
			}
		}
	case TypeZSet, TypeZSet2:
		n, err := p.readLen()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if err := d.readElem(); err != nil {
				return err
			}
			var f float64
			if t == TypeZSet {
				f, err = p.readScoreV1()
			} else {
				var b []byte
				b, err = p.in.readN(8)
				if err == nil {
					f = math.Float64frombits(binary.LittleEndian.Uint64(b))
				}
			}
			if err != nil {
				return err
			}
			d.scores = append(d.scores, f)
			if err := d.item(); err != nil {
				return err
			}
		}
	case TypeHashMetadata, TypeHashMetadataPreGA:
		var minExp uint64
		if t == TypeHashMetadata {
			b, err := p.in.readN(8)
			if err != nil {
				return err
			}
			minExp = binary.LittleEndian.Uint64(b)
		}
		n, err := p.readLen()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			ttl, err := p.readLen()
			if err != nil {
				return err
			}
			// src/rdb.c: 0 = no TTL; type 24 stores expire-minExpire+1,
			// type 22 the absolute time.
			exp := ttl
			if t == TypeHashMetadata && ttl != 0 {
				exp = ttl + minExp - 1
			}
			d.ttls = append(d.ttls, int64(exp&math.MaxInt64))
			if err := d.readItem(2); err != nil {
				return err
			}
		}
	case TypeListQuicklist:
		n, err := p.readLen()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			at, err := d.readBlob()
			if err != nil {
				return err
			}
			if err := d.blobErr(at, zlEach(d.blob, d.listElem)); err != nil {
				return err
			}
		}
	case TypeListQuicklist2:
		n, err := p.readLen()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			// src/quicklist.h QUICKLIST_NODE_CONTAINER_PLAIN=1 / PACKED=2
			container, err := p.readLen()
			if err != nil {
				return err
			}
			switch container {
			case 1:
				if err := d.readItem(1); err != nil {
					return err
				}
			case 2:
				at, err := d.readBlob()
				if err != nil {
					return err
				}
				if err := d.blobErr(at, lpEach(d.blob, d.listElem)); err != nil {
					return err
				}
			default:
				return p.in.errAt(ErrCorrupt, "quicklist container "+strconv.FormatUint(container, 10))
			}
		}
	case TypeListZiplist:
		return d.packed(zlEach, d.listElem)
	case TypeSetIntset:
		return d.packed(intsetEach, d.listElem)
	case TypeSetListpack:
		return d.packed(lpEach, d.listElem)
	case TypeZSetZiplist:
		return d.packed(zlEach, d.zsetElem())
	case TypeZSetListpack:
		return d.packed(lpEach, d.zsetElem())
	case TypeHashZipmap:
		return d.packed(zipmapEach, d.pairElem())
	case TypeHashZiplist:
		return d.packed(zlEach, d.pairElem())
	case TypeHashListpack:
		return d.packed(lpEach, d.pairElem())
	case TypeHashListpackEx, TypeHashListpackExPreGA:
		if t == TypeHashListpackEx {
			if err := p.in.discard(8); err != nil { // min expire, a hint
				return err
			}
		}
		return d.packed(lpEach, d.tripletElem())
	case TypeModule2:
		return d.module()
	case TypeStreamListpacks, TypeStreamListpacks2, TypeStreamListpacks3:
		return p.decodeStream(t, d)
	default:
		return p.in.errAt(ErrUnknownType, "type "+strconv.Itoa(int(t)))
	}
	return d.flush()
}

// packed decodes a value stored as one blob.
func (d *decoder) packed(each func([]byte, func(elem) error) error, fn func(elem) error) error {
	at, err := d.readBlob()
	if err != nil {
		return err
	}
	if err := d.blobErr(at, each(d.blob, fn)); err != nil {
		return err
	}
	return d.flush()
}

func (d *decoder) listElem(e elem) error {
	d.add(e)
	return d.item()
}

func (d *decoder) zsetElem() func(elem) error {
	member := true
	return func(e elem) error {
		if member {
			member = false
			d.add(e)
			return nil
		}
		member = true
		f, ok := e.float()
		if !ok {
			return &blobError{"zset: bad score", 0}
		}
		d.scores = append(d.scores, f)
		return d.item()
	}
}

func (d *decoder) pairElem() func(elem) error {
	field := true
	return func(e elem) error {
		d.add(e)
		if field {
			field = false
			return nil
		}
		field = true
		return d.item()
	}
}

// tripletElem handles listpacks of field, value, expire-ms (0 = none),
// RDB types 23 and 25.
func (d *decoder) tripletElem() func(elem) error {
	i := 0
	return func(e elem) error {
		i++
		if i < 3 {
			d.add(e)
			return nil
		}
		i = 0
		n, ok := e.int()
		if !ok || n < 0 {
			return &blobError{"hash: bad field expire", 0}
		}
		d.ttls = append(d.ttls, n)
		return d.item()
	}
}

// str decodes a top-level string in pieces of at most ChunkBytes, so that a
// huge string is never held whole.
func (d *decoder) str() error {
	p := d.p
	c := &d.c
	v, enc, err := p.readLenEnc()
	if err != nil {
		return err
	}
	piece := p.opts.ChunkBytes
	switch {
	case !enc:
		c.Size = int64(v)
		for off := uint64(0); ; {
			n := min(v-off, uint64(piece))
			d.arena, err = p.in.readAppend(d.arena[:0], int(n))
			if err != nil {
				return err
			}
			c.Data, c.Offset = d.arena, int64(off)
			if err := d.emit(); err != nil {
				return err
			}
			off += n
			if off == v {
				return nil
			}
		}
	case v == encInt8 || v == encInt16 || v == encInt32:
		p.in.r-- // let readString decode it
		d.arena, err = p.readString(d.arena[:0])
		if err != nil {
			return err
		}
		c.Data, c.Offset, c.Size = d.arena, 0, int64(len(d.arena))
		return d.emit()
	case v == encLZF:
		clen, err := p.readLen()
		if err != nil {
			return err
		}
		ulen, err := p.readLen()
		if err != nil {
			return err
		}
		return d.lzfStream(clen, ulen)
	}
	p.in.r--
	return p.in.errAt(ErrCorrupt, "unknown string encoding")
}

// lzfStream decompresses an LZF string from the input, handing out pieces
// of about ChunkBytes and keeping only the last lzfWindow bytes as history.
func (d *decoder) lzfStream(clen, ulen uint64) error {
	p := d.p
	c := &d.c
	c.Size = int64(ulen & math.MaxInt64)
	piece := p.opts.ChunkBytes
	win := d.win[:0]
	hist := 0           // win[:hist] was handed out already
	var out, off uint64 // bytes produced, offset of win[hist]
	at := p.in.offset()
	bad := func(what string) error {
		return &ParseError{Offset: at, Err: ErrCorrupt, Detail: "lzf: " + what}
	}
	for remain := clen; remain > 0; {
		ctrl, err := p.in.readByte()
		if err != nil {
			return err
		}
		remain--
		var n uint64
		if ctrl < 32 {
			n = uint64(ctrl) + 1
			if n > remain {
				return bad("literal past input end")
			}
			if out+n > ulen {
				return bad("output longer than declared")
			}
			b, err := p.in.readN(int(n))
			if err != nil {
				return err
			}
			remain -= n
			win = append(win, b...)
		} else {
			n = uint64(ctrl >> 5)
			need := uint64(1)
			if n == 7 {
				need = 2
			}
			if remain < need {
				return bad("truncated match")
			}
			b, err := p.in.readN(int(need))
			if err != nil {
				return err
			}
			remain -= need
			if n == 7 {
				n += uint64(b[0])
			}
			dist := int(ctrl&0x1f)<<8 + int(b[need-1]) + 1
			n += 2
			ref := len(win) - dist
			if ref < 0 {
				return bad("back-reference before output start")
			}
			if out+n > ulen {
				return bad("output longer than declared")
			}
			for i := 0; i < int(n); i++ {
				win = append(win, win[ref+i])
			}
		}
		out += n
		if len(win)-hist >= piece {
			c.Data, c.Offset = win[hist:], int64(off)
			if err := d.emit(); err != nil {
				return err
			}
			off += uint64(len(win) - hist)
			keep := min(len(win), lzfWindow)
			copy(win, win[len(win)-keep:])
			win = win[:keep]
			hist = keep
		}
	}
	d.win = win
	if out != ulen {
		return bad("output shorter than declared")
	}
	if len(win) > hist || out == 0 {
		c.Data, c.Offset = win[hist:], int64(off)
		return d.emit()
	}
	return nil
}

// module reads a module value: its id, then its opcode stream, captured as
// an opaque payload.
func (d *decoder) module() error {
	p := d.p
	id, err := p.readLen()
	if err != nil {
		return err
	}
	p.modID = id
	start := p.in.offset()
	p.in.startCapture(0, p.opts.MaxRawPayload)
	err = p.walkModule()
	raw, cerr := p.in.endCapture()
	if err == errCaptureFull || (err == nil && cerr == errCaptureFull) {
		return &ParseError{Offset: start, Err: ErrTooLarge, Detail: "module value over MaxRawPayload"}
	}
	if err != nil {
		return err
	}
	d.c.ModuleID = id
	d.c.Data, d.c.Size = raw[1:], int64(len(raw)-1)
	return d.emit()
}

// ModuleName returns the 9-character module type name and the encoding
// version packed in a module id (src/module.c moduleTypeNameByID).
func ModuleName(id uint64) (name string, encver int) {
	const cset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var b [9]byte
	encver = int(id & 1023)
	id >>= 10
	for j := 8; j >= 0; j-- {
		b[j] = cset[id&63]
		id >>= 6
	}
	return string(b[:]), encver
}
