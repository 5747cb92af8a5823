package rdb

import (
	"errors"
	"strconv"
)

// Key is a key/value pair. The value is read lazily: call Raw or Decode
// before the next Next, or Next skips it. The Key, its byte slices and the
// results of Raw are owned by the Parser and valid until the next Next.
type Key struct {
	DB   uint64
	Key  []byte
	Type byte // RDB value type (Type* constants)
	// ExpireAtMs is the absolute expiry in unix milliseconds, -1 if none.
	ExpireAtMs int64
	// Idle is the LRU idle time in seconds, -1 if not recorded.
	Idle int64
	// Freq is the LFU counter, -1 if not recorded.
	Freq int
	// Offset is the stream offset of the key's type byte.
	Offset int64

	p *Parser
}

// valState tracks what happened to the current key's value.
type valState uint8

const (
	valNone     valState = iota // no key
	valPending                  // unread, at the input position
	valTooLarge                 // unread (pushed back by Raw), known to exceed MaxRawPayload
	valRaw                      // captured by Raw, input is past it
	valDone                     // decoded or skipped
)

// Kind groups RDB types by the Redis data type they hold.
type Kind uint8

// Kinds of values.
const (
	KindUnknown Kind = iota
	KindString
	KindList
	KindSet
	KindZSet
	KindHash
	KindStream
	KindModule
)

var kindNames = [...]string{"unknown", "string", "list", "set", "zset", "hash", "stream", "module"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// KindOf maps an RDB type byte to its Kind.
func KindOf(rdbType byte) Kind {
	switch rdbType {
	case TypeString:
		return KindString
	case TypeList, TypeListZiplist, TypeListQuicklist, TypeListQuicklist2:
		return KindList
	case TypeSet, TypeSetIntset, TypeSetListpack:
		return KindSet
	case TypeZSet, TypeZSet2, TypeZSetZiplist, TypeZSetListpack:
		return KindZSet
	case TypeHash, TypeHashZipmap, TypeHashZiplist, TypeHashListpack,
		TypeHashMetadataPreGA, TypeHashListpackExPreGA, TypeHashMetadata, TypeHashListpackEx:
		return KindHash
	case TypeStreamListpacks, TypeStreamListpacks2, TypeStreamListpacks3:
		return KindStream
	case TypeModule2:
		return KindModule
	}
	return KindUnknown
}

// Kind is KindOf(k.Type).
func (k *Key) Kind() Kind { return KindOf(k.Type) }

// Raw returns the serialized value exactly as stored in the RDB (without
// the type byte), for RESTORE via AppendDumpPayload. If the value exceeds
// Options.MaxRawPayload it returns ErrRawTooLarge and the value can still be
// read with Decode. Calling Raw again returns the same bytes. Raw after
// Decode returns ErrConsumed.
func (k *Key) Raw() ([]byte, error) {
	p := k.p
	if p.err != nil {
		return nil, p.err
	}
	switch p.state {
	case valRaw:
		return p.raw[1:], nil
	case valTooLarge:
		return nil, ErrRawTooLarge
	case valPending:
	default:
		return nil, ErrConsumed
	}
	p.in.startCapture(k.Type, p.opts.MaxRawPayload)
	err := p.walk(k.Type)
	raw, cerr := p.in.endCapture()
	if err == errCaptureFull || (err == nil && cerr == errCaptureFull) {
		p.in.replay(p.valStart)
		p.state = valTooLarge
		return nil, ErrRawTooLarge
	}
	if err != nil {
		p.state = valDone
		p.fail(err)
		return nil, p.err
	}
	p.raw = raw
	p.state = valRaw
	return raw[1:], nil
}

// DumpPayload appends the DUMP/RESTORE payload of the value to dst, tagged
// with the file's RDB version. It calls Raw and shares its errors.
func (k *Key) DumpPayload(dst []byte) ([]byte, error) {
	raw, err := k.Raw()
	if err != nil {
		return dst, err
	}
	return AppendDumpPayload(dst, k.Type, raw, uint16(k.p.version)), nil
}

// Decode streams the value to fn in bounded chunks (see Chunk). The chunk
// and everything it points to are valid only during the call. An error from
// fn stops decoding, is returned by Decode and also stops the Parser (Next
// returns it too), as the value was only partly read. Decode may follow a
// successful Raw; it returns ErrConsumed when called twice.
func (k *Key) Decode(fn func(*Chunk) error) error {
	p := k.p
	if p.err != nil {
		return p.err
	}
	switch p.state {
	case valRaw:
		p.in.capture = append(p.in.capture[:0], p.raw...)
		p.in.replay(p.valStart)
	case valPending, valTooLarge:
	default:
		return ErrConsumed
	}
	p.state = valDone
	if p.dec == nil {
		p.dec = &decoder{p: p}
	}
	d := p.dec
	d.reset(fn, KindOf(k.Type))
	if err := d.value(k.Type); err != nil {
		var cbErr *callbackError
		if errors.As(err, &cbErr) {
			err = cbErr.err
		}
		p.fail(err)
		return err
	}
	return nil
}

// ModuleID returns the module type id of a module value (KindModule; see
// ModuleName) once Raw or Decode read it, even when Raw then failed with
// ErrRawTooLarge; false before, and for other kinds.
func (k *Key) ModuleID() (uint64, bool) {
	p := k.p
	if k.Kind() != KindModule || p.modID == 0 {
		return 0, false
	}
	return p.modID, true
}
