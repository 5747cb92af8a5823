package rdb

import (
	"encoding/binary"
	"io"
	"math"
	"strconv"
)

// Opcodes (src/rdb.h RDB_OPCODE_*).
const (
	opSlotInfo      = 0xF4 // 7.4+ cluster mode: slot, keys, expires
	opFunction2     = 0xF5 // function library source
	opFunctionPreGA = 0xF6 // 7.0 release candidates
	opModuleAux     = 0xF7
	opIdle          = 0xF8
	opFreq          = 0xF9
	opAux           = 0xFA
	opResizeDB      = 0xFB
	opExpireTimeMs  = 0xFC
	opExpireTime    = 0xFD
	opSelectDB      = 0xFE
	opEOF           = 0xFF
)

// Value types (src/rdb.h RDB_TYPE_*).
const (
	TypeString              = 0
	TypeList                = 1
	TypeSet                 = 2
	TypeZSet                = 3
	TypeHash                = 4
	TypeZSet2               = 5
	TypeModulePreGA         = 6
	TypeModule2             = 7
	TypeHashZipmap          = 9
	TypeListZiplist         = 10
	TypeSetIntset           = 11
	TypeZSetZiplist         = 12
	TypeHashZiplist         = 13
	TypeListQuicklist       = 14
	TypeStreamListpacks     = 15
	TypeHashListpack        = 16
	TypeZSetListpack        = 17
	TypeListQuicklist2      = 18
	TypeStreamListpacks2    = 19
	TypeSetListpack         = 20
	TypeStreamListpacks3    = 21
	TypeHashMetadataPreGA   = 22
	TypeHashListpackExPreGA = 23
	TypeHashMetadata        = 24
	TypeHashListpackEx      = 25
)

// Length encoding (src/rdb.h): top two bits of the first byte.
const (
	len6       = 0
	len14      = 1
	len32      = 0x80 // followed by a big-endian u32
	len64      = 0x81 // followed by a big-endian u64
	lenEncVal  = 3    // special string encoding in the low 6 bits
	encInt8    = 0
	encInt16   = 1
	encInt32   = 2
	encLZF     = 3
	maxVersion = 12 // src/rdb.h RDB_VERSION in redis 7.4 / 8.0
)

// Module value opcodes (src/rdb.h RDB_MODULE_OPCODE_*).
const (
	modEOF    = 0
	modSInt   = 1
	modUInt   = 2
	modFloat  = 3
	modDouble = 4
	modString = 5
)

// Options bound the parser's memory use. The zero value selects defaults.
type Options struct {
	// MaxRawPayload is the largest serialized value Key.Raw returns
	// (default 64 MiB; negative: Raw always declines). Larger values give
	// ErrRawTooLarge and must be decoded. Key.Raw may hold up to this much
	// memory (plus one read buffer), as may module values and MODULE_AUX.
	MaxRawPayload int
	// MaxBulk is the largest single string, key, packed blob (listpack,
	// ziplist, intset) or collection element the parser holds in memory
	// (default 512 MiB, Redis's proto-max-bulk-len). Top-level strings are
	// decoded in pieces and are not bounded by it.
	MaxBulk int
	// ChunkElems is the most elements a decoded Chunk carries (default 1024).
	ChunkElems int
	// ChunkBytes is the byte budget of a decoded Chunk (default 1 MiB); a
	// chunk is handed over once it reaches this size, so a chunk may exceed
	// it by one element.
	ChunkBytes int
	// IgnoreChecksum disables the CRC64 trailer check.
	IgnoreChecksum bool
}

func (o Options) withDefaults() Options {
	if o.MaxRawPayload == 0 {
		o.MaxRawPayload = 64 << 20
	}
	if o.MaxBulk <= 0 {
		o.MaxBulk = 512 << 20
	}
	if o.ChunkElems <= 0 {
		o.ChunkElems = 1024
	}
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = 1 << 20
	}
	return o
}

// Entry is one item of an RDB file: *Aux, *SelectDB, *ResizeDB, *SlotInfo,
// *Function, *ModuleAux, *Key or *End. Entries and the byte slices in them
// are owned by the Parser and valid only until the next call to Next.
type Entry interface{ isEntry() }

// Aux is an AUX field (redis-ver, ctime, repl-id, lua, ...).
type Aux struct{ Key, Value []byte }

// SelectDB switches the database of the following keys.
type SelectDB struct{ DB uint64 }

// ResizeDB is a sizing hint for the current database.
type ResizeDB struct{ DBSize, ExpiresSize uint64 }

// SlotInfo is a per-slot sizing hint (7.4+, cluster mode).
type SlotInfo struct{ Slot, Size, ExpiresSize uint64 }

// Function is a function library. Code is the library source (FUNCTION2,
// "#!lua name=..."). For the 7.0 release-candidate format (PreGA) Name,
// Engine and Description are set too and Code is the body only.
type Function struct {
	Code         []byte
	PreGA        bool
	Name, Engine []byte
	Description  []byte
}

// ModuleAux is module auxiliary data. Payload is the module opcode stream
// including its EOF opcode, or nil when longer than Options.MaxRawPayload.
type ModuleAux struct {
	ModuleID uint64
	When     uint64
	Payload  []byte
}

// End is the EOF opcode. Checksum is the trailer (0: not computed by the
// server, or RDB version < 5); it was verified unless IgnoreChecksum.
type End struct{ Checksum uint64 }

func (*Aux) isEntry()       {}
func (*SelectDB) isEntry()  {}
func (*ResizeDB) isEntry()  {}
func (*SlotInfo) isEntry()  {}
func (*Function) isEntry()  {}
func (*ModuleAux) isEntry() {}
func (*Key) isEntry()       {}
func (*End) isEntry()       {}

// Parser reads an RDB stream one entry at a time. It is not safe for
// concurrent use.
type Parser struct {
	in      *input
	opts    Options
	version int
	db      uint64
	err     error // sticky

	key      Key
	keyBuf   []byte
	valStart int64 // stream offset of the current key's value

	aux    Aux
	sel    SelectDB
	resize ResizeDB
	slot   SlotInfo
	fn     Function
	modAux ModuleAux
	end    End
	bufA   []byte // scratch buffers reused across entries
	bufB   []byte
	bufC   []byte
	lzfBuf []byte // compressed input of LZF strings
	raw    []byte // captured value after a successful Key.Raw
	modID  uint64 // module id of the current key, once its value was read
	state  valState
	dec    *decoder
}

// NewParser returns a parser reading from r. It buffers r itself.
func NewParser(r io.Reader, opts Options) *Parser {
	p := &Parser{in: newInput(r), opts: opts.withDefaults()}
	p.key.p = p
	return p
}

// Reset discards the parser's state and starts over on r, with the same
// options, reusing its buffers.
func (p *Parser) Reset(r io.Reader) {
	p.in.reset(r)
	p.version, p.db, p.err, p.state = 0, 0, nil, valNone
}

// Version is the RDB version from the header; 0 before the first Next.
func (p *Parser) Version() int { return p.version }

// Offset is the number of bytes consumed so far.
func (p *Parser) Offset() int64 { return p.in.offset() }

// Next returns the next entry. After End it returns io.EOF. If the previous
// entry was a Key whose value was neither read with Raw nor Decode, Next
// skips the value first, without buffering it. Errors are sticky.
func (p *Parser) Next() (Entry, error) {
	if p.err != nil {
		return nil, p.err
	}
	e, err := p.next()
	if err != nil {
		p.fail(err)
		return nil, p.err
	}
	return e, nil
}

func (p *Parser) fail(err error) {
	if err == io.EOF {
		err = p.in.errAt(ErrTruncated, "")
	}
	if p.err == nil {
		p.err = err
	}
}

func (p *Parser) next() (Entry, error) {
	if p.version == 0 {
		if err := p.readHeader(); err != nil {
			return nil, err
		}
	}
	if p.state == valPending || p.state == valTooLarge {
		p.state = valDone
		if err := p.walk(p.key.Type); err != nil {
			return nil, err
		}
	}
	p.state = valNone
	expire, idle, freq := int64(-1), int64(-1), -1
	for {
		start := p.in.offset()
		t, err := p.in.readByte()
		if err != nil {
			return nil, err
		}
		switch t {
		case opEOF:
			return p.readEnd()
		case opSelectDB:
			if p.sel.DB, err = p.readLen(); err != nil {
				return nil, err
			}
			p.db = p.sel.DB
			return &p.sel, nil
		case opResizeDB:
			if p.resize.DBSize, err = p.readLen(); err != nil {
				return nil, err
			}
			if p.resize.ExpiresSize, err = p.readLen(); err != nil {
				return nil, err
			}
			return &p.resize, nil
		case opSlotInfo:
			s := &p.slot
			if s.Slot, err = p.readLen(); err == nil {
				if s.Size, err = p.readLen(); err == nil {
					s.ExpiresSize, err = p.readLen()
				}
			}
			if err != nil {
				return nil, err
			}
			return s, nil
		case opAux:
			if p.bufA, err = p.readString(p.bufA[:0]); err != nil {
				return nil, err
			}
			if p.bufB, err = p.readString(p.bufB[:0]); err != nil {
				return nil, err
			}
			p.aux = Aux{Key: p.bufA, Value: p.bufB}
			return &p.aux, nil
		case opFunction2:
			if p.bufA, err = p.readString(p.bufA[:0]); err != nil {
				return nil, err
			}
			p.fn = Function{Code: p.bufA}
			return &p.fn, nil
		case opFunctionPreGA:
			return p.readFunctionPreGA()
		case opModuleAux:
			return p.readModuleAux()
		case opExpireTime:
			b, err := p.in.readN(4)
			if err != nil {
				return nil, err
			}
			expire = int64(binary.LittleEndian.Uint32(b)) * 1000
		case opExpireTimeMs:
			b, err := p.in.readN(8)
			if err != nil {
				return nil, err
			}
			expire = int64(binary.LittleEndian.Uint64(b))
		case opIdle:
			v, err := p.readLen()
			if err != nil {
				return nil, err
			}
			idle = int64(v & math.MaxInt64)
		case opFreq:
			b, err := p.in.readByte()
			if err != nil {
				return nil, err
			}
			freq = int(b)
		default:
			if !knownType(t) {
				p.in.r--
				return nil, p.in.errAt(ErrUnknownType, "opcode "+strconv.Itoa(int(t)))
			}
			if p.keyBuf, err = p.readString(p.keyBuf[:0]); err != nil {
				return nil, err
			}
			k := &p.key
			k.DB, k.Key, k.Type = p.db, p.keyBuf, t
			k.ExpireAtMs, k.Idle, k.Freq = expire, idle, freq
			k.Offset = start
			p.valStart = p.in.offset()
			p.state = valPending
			p.modID = 0
			return k, nil
		}
	}
}

func knownType(t byte) bool {
	switch t {
	case TypeModulePreGA, 8:
		return false
	}
	return t <= TypeHashListpackEx
}

func (p *Parser) readHeader() error {
	b, err := p.in.readN(9)
	if err != nil {
		return err
	}
	if string(b[:5]) != "REDIS" {
		return &ParseError{Offset: 0, Snippet: quote(b), Err: ErrHeader}
	}
	v := 0
	for _, c := range b[5:9] {
		if c < '0' || c > '9' {
			return &ParseError{Offset: 0, Snippet: quote(b), Err: ErrHeader}
		}
		v = v*10 + int(c-'0')
	}
	if v < 1 || v > maxVersion {
		return &ParseError{Offset: 5, Snippet: quote(b), Err: ErrVersion}
	}
	p.version = v
	return nil
}

func (p *Parser) readEnd() (Entry, error) {
	p.end = End{}
	if p.version >= 5 { // the CRC64 trailer exists since RDB 5
		p.in.fold()
		sum := p.in.crc
		b, err := p.in.readN(8)
		if err != nil {
			return nil, err
		}
		p.end.Checksum = binary.LittleEndian.Uint64(b)
		if !p.opts.IgnoreChecksum && p.end.Checksum != 0 && p.end.Checksum != sum {
			p.in.r -= 8
			return nil, p.in.errAt(ErrChecksum, "computed "+strconv.FormatUint(sum, 16))
		}
	}
	p.err = io.EOF
	return &p.end, nil
}

func (p *Parser) readFunctionPreGA() (Entry, error) {
	// 7.0-rc1/rc2 format (src/rdb.c at tag 7.0-rc1, rdbFunctionLoad): name,
	// engine, has-description length, [description], code.
	var err error
	f := Function{PreGA: true}
	if p.bufA, err = p.readString(p.bufA[:0]); err != nil {
		return nil, err
	}
	if p.bufB, err = p.readString(p.bufB[:0]); err != nil {
		return nil, err
	}
	hasDesc, err := p.readLen()
	if err != nil {
		return nil, err
	}
	p.bufC = p.bufC[:0]
	if hasDesc != 0 {
		if p.bufC, err = p.readString(p.bufC); err != nil {
			return nil, err
		}
	}
	// Keep name, engine and description in one buffer so that the code can
	// be read into bufA without moving the others.
	n, e := len(p.bufA), len(p.bufB)
	meta := append(append(p.bufC, p.bufA...), p.bufB...)
	p.bufC = meta
	f.Description = meta[:len(meta)-n-e]
	f.Name = meta[len(meta)-n-e : len(meta)-e]
	f.Engine = meta[len(meta)-e:]
	if p.bufA, err = p.readString(p.bufA[:0]); err != nil {
		return nil, err
	}
	f.Code = p.bufA
	p.fn = f
	return &p.fn, nil
}

func (p *Parser) readModuleAux() (Entry, error) {
	m := &p.modAux
	var err error
	if m.ModuleID, err = p.readLen(); err != nil {
		return nil, err
	}
	whenOp, err := p.readLen()
	if err != nil {
		return nil, err
	}
	if whenOp != modUInt {
		return nil, p.in.errAt(ErrCorrupt, "module aux: bad when opcode")
	}
	if m.When, err = p.readLen(); err != nil {
		return nil, err
	}
	start := p.in.offset()
	p.in.startCapture(0, p.opts.MaxRawPayload)
	err = p.walkModule()
	raw, cerr := p.in.endCapture()
	m.Payload = nil
	if err == errCaptureFull || cerr == errCaptureFull {
		p.in.replay(start)
		err = p.walkModule()
	} else if err == nil {
		m.Payload = raw[1:]
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// readLen reads a length that must not be a special string encoding.
func (p *Parser) readLen() (uint64, error) {
	v, enc, err := p.readLenEnc()
	if err != nil {
		return 0, err
	}
	if enc {
		p.in.r--
		return 0, p.in.errAt(ErrCorrupt, "unexpected string encoding")
	}
	return v, nil
}

// readLenEnc reads a length (src/rdb.c rdbLoadLenByRef). enc reports the
// special string encodings (11xxxxxx); v is then the encoding kind.
func (p *Parser) readLenEnc() (v uint64, enc bool, err error) {
	b, err := p.in.readByte()
	if err != nil {
		return 0, false, err
	}
	switch b >> 6 {
	case len6:
		return uint64(b & 0x3F), false, nil
	case len14:
		c, err := p.in.readByte()
		if err != nil {
			return 0, false, err
		}
		return uint64(b&0x3F)<<8 | uint64(c), false, nil
	case lenEncVal:
		return uint64(b & 0x3F), true, nil
	}
	switch b {
	case len32:
		x, err := p.in.readN(4)
		if err != nil {
			return 0, false, err
		}
		return uint64(binary.BigEndian.Uint32(x)), false, nil
	case len64:
		x, err := p.in.readN(8)
		if err != nil {
			return 0, false, err
		}
		return binary.BigEndian.Uint64(x), false, nil
	}
	p.in.r--
	return 0, false, p.in.errAt(ErrCorrupt, "bad length byte")
}

// checkBulk rejects lengths above MaxBulk.
func (p *Parser) checkBulk(n uint64) error {
	if n > uint64(p.opts.MaxBulk) {
		return p.in.errAt(ErrTooLarge, strconv.FormatUint(n, 10)+" bytes")
	}
	return nil
}

// readString appends one RDB string (src/rdb.c rdbGenericLoadStringObject)
// to dst, decoding integer and LZF encodings.
func (p *Parser) readString(dst []byte) ([]byte, error) {
	v, enc, err := p.readLenEnc()
	if err != nil {
		return dst, err
	}
	if !enc {
		if err := p.checkBulk(v); err != nil {
			return dst, err
		}
		return p.in.readAppend(dst, int(v))
	}
	switch v {
	case encInt8, encInt16, encInt32:
		b, err := p.in.readN(1 << v)
		if err != nil {
			return dst, err
		}
		return strconv.AppendInt(dst, leInt(b), 10), nil
	case encLZF:
		clen, err := p.readLen()
		if err != nil {
			return dst, err
		}
		ulen, err := p.readLen()
		if err != nil {
			return dst, err
		}
		if err := p.checkBulk(clen); err != nil {
			return dst, err
		}
		if err := p.checkBulk(ulen); err != nil {
			return dst, err
		}
		at := p.in.offset()
		p.lzfBuf, err = p.in.readAppend(p.lzfBuf[:0], int(clen))
		if err != nil {
			return dst, err
		}
		out, err := lzfDecompress(dst, p.lzfBuf, int(ulen))
		if err != nil {
			return dst, &ParseError{Offset: at, Snippet: quote(p.lzfBuf), Err: ErrCorrupt, Detail: err.Error()}
		}
		return out, nil
	}
	p.in.r--
	return dst, p.in.errAt(ErrCorrupt, "unknown string encoding")
}

// skipString skips one RDB string without buffering it.
func (p *Parser) skipString() error {
	v, enc, err := p.readLenEnc()
	if err != nil {
		return err
	}
	if !enc {
		return p.in.discard(v)
	}
	switch v {
	case encInt8, encInt16, encInt32:
		return p.in.discard(1 << v)
	case encLZF:
		clen, err := p.readLen()
		if err != nil {
			return err
		}
		if _, err := p.readLen(); err != nil {
			return err
		}
		return p.in.discard(clen)
	}
	p.in.r--
	return p.in.errAt(ErrCorrupt, "unknown string encoding")
}

// walk skips one value of type t. Used to skip unread values and, with the
// input capturing, to collect raw payloads.
func (p *Parser) walk(t byte) error {
	switch t {
	case TypeString, TypeHashZipmap, TypeListZiplist, TypeSetIntset,
		TypeZSetZiplist, TypeHashZiplist, TypeHashListpack, TypeZSetListpack,
		TypeSetListpack, TypeHashListpackExPreGA:
		return p.skipString()
	case TypeHashListpackEx:
		if err := p.in.discard(8); err != nil { // min field expire
			return err
		}
		return p.skipString()
	case TypeList, TypeSet, TypeListQuicklist:
		return p.skipStrings(1, 0)
	case TypeHash:
		return p.skipStrings(2, 0)
	case TypeZSet:
		n, err := p.readLen()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if err := p.skipString(); err != nil {
				return err
			}
			if _, err := p.readScoreV1(); err != nil {
				return err
			}
		}
		return nil
	case TypeZSet2:
		return p.skipStrings(1, 8)
	case TypeListQuicklist2:
		n, err := p.readLen()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if _, err := p.readLen(); err != nil { // container
				return err
			}
			if err := p.skipString(); err != nil {
				return err
			}
		}
		return nil
	case TypeHashMetadata:
		if err := p.in.discard(8); err != nil {
			return err
		}
		fallthrough
	case TypeHashMetadataPreGA:
		n, err := p.readLen()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if _, err := p.readLen(); err != nil { // ttl
				return err
			}
			if err := p.skipString(); err != nil {
				return err
			}
			if err := p.skipString(); err != nil {
				return err
			}
		}
		return nil
	case TypeModule2:
		id, err := p.readLen()
		if err != nil {
			return err
		}
		p.modID = id
		return p.walkModule()
	case TypeStreamListpacks, TypeStreamListpacks2, TypeStreamListpacks3:
		return p.decodeStream(t, nil)
	}
	return p.in.errAt(ErrUnknownType, "type "+strconv.Itoa(int(t)))
}

// skipStrings skips a length n then n groups of per strings followed by
// extra raw bytes.
func (p *Parser) skipStrings(per int, extra uint64) error {
	n, err := p.readLen()
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		for i := 0; i < per; i++ {
			if err := p.skipString(); err != nil {
				return err
			}
		}
		if extra > 0 {
			if err := p.in.discard(extra); err != nil {
				return err
			}
		}
	}
	return nil
}

// walkModule walks a module opcode stream up to and including its EOF
// (src/rdb.c rdbLoadCheckModuleValue).
func (p *Parser) walkModule() error {
	for {
		op, err := p.readLen()
		if err != nil {
			return err
		}
		switch op {
		case modEOF:
			return nil
		case modSInt, modUInt:
			_, err = p.readLen()
		case modFloat:
			err = p.in.discard(4)
		case modDouble:
			err = p.in.discard(8)
		case modString:
			err = p.skipString()
		default:
			return p.in.errAt(ErrCorrupt, "bad module opcode")
		}
		if err != nil {
			return err
		}
	}
}

// readScoreV1 reads a ZSET v1 score: 1-byte length then ASCII; 253 NaN,
// 254 +inf, 255 -inf (src/rdb.c rdbLoadDoubleValue).
func (p *Parser) readScoreV1() (float64, error) {
	n, err := p.in.readByte()
	if err != nil {
		return 0, err
	}
	switch n {
	case 253:
		return math.NaN(), nil
	case 254:
		return math.Inf(1), nil
	case 255:
		return math.Inf(-1), nil
	}
	b, err := p.in.readN(int(n))
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, p.in.errAt(ErrCorrupt, "bad score")
	}
	return f, nil
}
