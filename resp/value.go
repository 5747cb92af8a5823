package resp

import (
	"bytes"
	"errors"
	"strconv"
)

// Value is a fully decoded reply, for the cold paths (admin commands,
// COMMAND INFO, tests). The hot path forwards raw bytes instead.
type Value struct {
	Type  byte    // one of the Type constants
	Str   []byte  // simple string, error, bulk, verbatim, double, big number text
	Int   int64   // integer; 1/0 for a RESP3 boolean
	Elems []Value // array, set, push; a map as key, value, key, value…
	Null  bool    // $-1, *-1 or _
}

// Err returns the reply as an Error when it is an error reply, else nil.
func (v Value) Err() error {
	if v.Type == TypeError || v.Type == TypeBlobError {
		return Error(v.Str)
	}
	return nil
}

// Text returns the string form of a scalar reply.
func (v Value) Text() string {
	if v.Type == TypeInteger {
		return strconv.FormatInt(v.Int, 10)
	}
	return string(v.Str)
}

// ErrIncomplete means the input ends before the reply (or command) does.
var ErrIncomplete = errors.New("resp: incomplete reply")

// ParseValue decodes the first reply in b and returns it with the bytes that
// follow it. Slices in the Value alias b.
func ParseValue(b []byte, lim Limits) (Value, []byte, error) {
	lim = lim.WithDefaults()
	return parseValue(b, lim, 0)
}

func parseValue(b []byte, lim Limits, depth int) (Value, []byte, error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		if len(b) > lim.MaxInline {
			return Value{}, nil, protoErr("line too long", b)
		}
		return Value{}, nil, ErrIncomplete
	}
	if i == 0 || b[i-1] != '\r' {
		return Value{}, nil, protoErr("line not terminated by CRLF", b[:i])
	}
	if i == 1 {
		return Value{}, nil, protoErr("empty reply line", nil)
	}
	line, rest := b[:i-1], b[i+1:]
	v := Value{Type: line[0]}
	switch v.Type {
	case TypeSimple, TypeError, TypeDouble, TypeBigNumber:
		v.Str = line[1:]
	case TypeInteger:
		n, ok := ParseInt(line[1:])
		if !ok {
			return v, nil, protoErr("invalid integer", line)
		}
		v.Int = n
	case TypeNull:
		v.Null = true
	case TypeBool:
		if len(line) != 2 || (line[1] != 't' && line[1] != 'f') {
			return v, nil, protoErr("invalid boolean", line)
		}
		if line[1] == 't' {
			v.Int = 1
		}
	case TypeBulk, TypeVerbatim, TypeBlobError:
		n, ok := ParseInt(line[1:])
		if !ok || n < -1 || n > lim.MaxBulk {
			return v, nil, protoErr("invalid bulk length", line)
		}
		if n == -1 {
			v.Null = true
			return v, rest, nil
		}
		if int64(len(rest)) < n+2 {
			return v, nil, ErrIncomplete
		}
		if rest[n] != '\r' || rest[n+1] != '\n' {
			return v, nil, protoErr("bulk not terminated by CRLF", line)
		}
		v.Str, rest = rest[:n], rest[n+2:]
		if v.Type == TypeVerbatim && len(v.Str) >= 4 && v.Str[3] == ':' {
			v.Str = v.Str[4:]
		}
		if v.Type == TypeVerbatim {
			v.Type = TypeBulk
		}
	case TypeArray, TypeMap, TypeSet, TypePush, TypeAttribute:
		n, ok := ParseInt(line[1:])
		if !ok || n < -1 || n > lim.MaxArray {
			return v, nil, protoErr("invalid aggregate length", line)
		}
		if n == -1 {
			v.Null = true
			return v, rest, nil
		}
		if depth >= lim.MaxDepth {
			return v, nil, protoErr("replies nested too deeply", line)
		}
		if v.Type == TypeMap || v.Type == TypeAttribute {
			n *= 2
		}
		// Each element takes at least 3 bytes: do not trust n further.
		if n > int64(len(rest)/3)+1 {
			if int64(len(rest)) < n*3 {
				return v, nil, ErrIncomplete
			}
		}
		v.Elems = make([]Value, 0, n)
		for j := int64(0); j < n; j++ {
			var e Value
			var err error
			e, rest, err = parseValue(rest, lim, depth+1)
			if err != nil {
				return v, nil, err
			}
			v.Elems = append(v.Elems, e)
		}
		if v.Type == TypeAttribute { // skip the attribute, keep what it annotates
			return parseValue(rest, lim, depth)
		}
	default:
		return v, nil, protoErr("unknown reply type", line)
	}
	return v, rest, nil
}
