package rdb

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// AppendString appends to dst the value of a string object whose RDB
// encoding is raw (what Key.Raw returns for a TypeString key): a
// length-prefixed string, an integer (int8/16/32 encoding, written back in
// decimal) or an LZF-compressed string (src/rdb.c rdbGenericLoadStringObject).
// raw must hold exactly one such object. A value longer than maxLen bytes
// fails with ErrTooLarge before anything is allocated for it.
//
// It decodes a value that is already in memory, without the Parser's
// replay that Key.Decode after Key.Raw costs.
func AppendString(dst, raw []byte, maxLen int) ([]byte, error) {
	v, enc, n, err := lenEnc(raw)
	if err != nil {
		return dst, err
	}
	rest := raw[n:]
	if !enc {
		if v > uint64(maxLen) {
			return dst, ErrTooLarge
		}
		if uint64(len(rest)) != v {
			return dst, errStrLen
		}
		return append(dst, rest...), nil
	}
	switch v {
	case encInt8, encInt16, encInt32:
		if len(rest) != 1<<v {
			return dst, errStrLen
		}
		return strconv.AppendInt(dst, leInt(rest), 10), nil
	case encLZF:
		clen, enc1, n1, err := lenEnc(rest)
		if err != nil || enc1 {
			return dst, errStrLZF
		}
		rest = rest[n1:]
		ulen, enc2, n2, err := lenEnc(rest)
		if err != nil || enc2 {
			return dst, errStrLZF
		}
		rest = rest[n2:]
		if ulen > uint64(maxLen) {
			return dst, ErrTooLarge
		}
		if uint64(len(rest)) != clen {
			return dst, errStrLen
		}
		out, err := lzfDecompress(dst, rest, int(ulen))
		if err != nil {
			return dst, errors.Join(ErrCorrupt, err)
		}
		return out, nil
	}
	return dst, errStrEnc
}

var (
	errStrLen = errors.Join(ErrCorrupt, errors.New("string object length does not match its encoding"))
	errStrLZF = errors.Join(ErrCorrupt, errors.New("bad LZF string lengths"))
	errStrEnc = errors.Join(ErrCorrupt, errors.New("unknown string encoding"))
)

// lenEnc decodes a length (or special encoding) at the start of b, as
// Parser.readLenEnc does from the input, and returns how many bytes it took.
func lenEnc(b []byte) (v uint64, enc bool, n int, err error) {
	if len(b) == 0 {
		return 0, false, 0, errStrLen
	}
	c := b[0]
	switch c >> 6 {
	case len6:
		return uint64(c & 0x3F), false, 1, nil
	case len14:
		if len(b) < 2 {
			return 0, false, 0, errStrLen
		}
		return uint64(c&0x3F)<<8 | uint64(b[1]), false, 2, nil
	case lenEncVal:
		return uint64(c & 0x3F), true, 1, nil
	}
	switch c {
	case len32:
		if len(b) < 5 {
			return 0, false, 0, errStrLen
		}
		return uint64(binary.BigEndian.Uint32(b[1:])), false, 5, nil
	case len64:
		if len(b) < 9 {
			return 0, false, 0, errStrLen
		}
		return binary.BigEndian.Uint64(b[1:]), false, 9, nil
	}
	return 0, false, 0, errStrLen
}
