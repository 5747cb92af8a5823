package rdb

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors about malformed input are wrapped in a *ParseError
// carrying the byte offset; test for the cause with errors.Is.
var (
	// ErrHeader means the input does not start with "REDIS" and four digits.
	ErrHeader = errors.New("rdb: bad header")
	// ErrVersion means the RDB version is outside the supported range.
	ErrVersion = errors.New("rdb: unsupported RDB version")
	// ErrChecksum means the CRC64 trailer does not match the content.
	ErrChecksum = errors.New("rdb: checksum mismatch")
	// ErrTruncated means the input ended in the middle of the file.
	ErrTruncated = errors.New("rdb: unexpected end of input")
	// ErrTooLarge means a length exceeds Options.MaxBulk.
	ErrTooLarge = errors.New("rdb: length exceeds limit")
	// ErrUnknownType means an opcode or value type byte is not known.
	ErrUnknownType = errors.New("rdb: unknown type or opcode")
	// ErrCorrupt means a structure inside a value is malformed.
	ErrCorrupt = errors.New("rdb: corrupt value")
	// ErrRawTooLarge is returned by Key.Raw when the serialized value exceeds
	// Options.MaxRawPayload. The value is still available through Key.Decode.
	ErrRawTooLarge = errors.New("rdb: value larger than MaxRawPayload")
	// ErrConsumed is returned by Key.Raw and Key.Decode when the value was
	// already decoded, or when the Key is stale (Next was called again).
	ErrConsumed = errors.New("rdb: value already consumed")
)

// ParseError reports malformed input: what went wrong (Err, one of the
// sentinels above), where (Offset, the byte position in the RDB stream of the
// item being read) and a short quote of the bytes there.
type ParseError struct {
	Offset  int64
	Snippet []byte
	Err     error
	Detail  string
}

func (e *ParseError) Error() string {
	msg := e.Err.Error()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if len(e.Snippet) > 0 {
		return fmt.Sprintf("%s at offset %d near %q", msg, e.Offset, e.Snippet)
	}
	return fmt.Sprintf("%s at offset %d", msg, e.Offset)
}

func (e *ParseError) Unwrap() error { return e.Err }

// snippetLen bounds the quote kept in a ParseError.
const snippetLen = 16

func quote(b []byte) []byte {
	if len(b) > snippetLen {
		b = b[:snippetLen]
	}
	return append([]byte(nil), b...)
}
