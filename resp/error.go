package resp

import (
	"bytes"
	"strings"
)

// Error is an error reply from a server (`-ERR …`), as opposed to an I/O or
// protocol error: the reply without its leading '-' and CRLF (for a RESP3
// blob error, its body). It is the one model of a server's error reply in
// the tree: code that reports one wraps an Error (with %w) in its context,
// so errors.As finds it and its Code.
type Error string

func (e Error) Error() string { return string(e) }

// Code returns the error code, the reply's first word: "ERR", "READONLY",
// "MOVED", "NOAUTH"...
func (e Error) Code() string {
	code, _, _ := strings.Cut(string(e), " ")
	return code
}

// The replies that refuse a client's credentials or permissions, listed
// once for every package that must tell them apart: the codes of servers
// with ACLs (Redis 6 and later), and the whole-reply prefixes older servers
// answer with (a wrong AUTH password, AUTH without a configured password,
// a command before AUTH).
var (
	authCodes    = [...]string{"NOAUTH", "WRONGPASS", "NOPERM"}
	authPrefixes = [...]string{"ERR invalid password", "ERR AUTH", "ERR operation not permitted"}
)

// Auth reports whether e refuses the client's credentials or permissions
// (NOAUTH, WRONGPASS, NOPERM and older servers' words for them): retrying
// with the same credentials cannot help.
func (e Error) Auth() bool {
	code := e.Code()
	for _, c := range authCodes {
		if code == c {
			return true
		}
	}
	for _, p := range authPrefixes {
		if strings.HasPrefix(string(e), p) {
			return true
		}
	}
	return false
}

// ReplyError returns the error a raw reply carries, as an Error: a simple
// error, or a blob error (an unreadable one as "ERR <why>"). Any other
// reply, or none, gives nil.
func ReplyError(reply []byte) error {
	if len(reply) == 0 {
		return nil
	}
	switch reply[0] {
	case TypeError:
		return Error(bytes.TrimRight(reply[1:], "\r\n"))
	case TypeBlobError:
		v, _, err := ParseValue(reply, Limits{})
		if err != nil {
			return Error("ERR " + err.Error())
		}
		return Error(v.Str)
	}
	return nil
}
