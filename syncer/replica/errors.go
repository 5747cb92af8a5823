package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
)

var (
	// ErrAuth means the source refused our credentials (AUTH failed, or it
	// requires authentication we did not give). Fatal: retrying cannot help.
	ErrAuth = errors.New("replica: authentication failed")
	// ErrProtocol is wrapped by every *ParseError: the source sent bytes
	// that are not the replication protocol.
	ErrProtocol = errors.New("replica: protocol error")
	// ErrFullResync means the destination must be resynchronized from
	// scratch: the source refused a partial resynchronization (it answered
	// +FULLRESYNC to PSYNC <replid> <offset>), or the link broke while a
	// snapshot was being loaded. It wraps the cause when there is one.
	ErrFullResync = errors.New("replica: full resynchronization required")
	// ErrHandler marks an error returned by the Handler; Run wraps it as
	// fmt.Errorf("%w: %w", ErrHandler, err) so callers can tell it from a
	// source-side failure and classify the handler's error themselves.
	ErrHandler = errors.New("replica: handler")
	// ErrRunning is returned by Run when the Link is already running.
	ErrRunning = errors.New("replica: link already running")
)

// SourceError is an error reply from the source during the handshake or
// instead of a snapshot, e.g. "LOADING Redis is loading the dataset in
// memory" in answer to PSYNC.
type SourceError struct {
	Cmd string // the command it answered: PING, AUTH, REPLCONF, PSYNC
	Msg string // the reply without its leading '-'
}

func (e *SourceError) Error() string {
	return fmt.Sprintf("replica: source answered %s with -%s", e.Cmd, e.Msg)
}

// Code returns the error's first word ("ERR", "LOADING", "NOAUTH"...).
func (e *SourceError) Code() string {
	code, _, _ := strings.Cut(e.Msg, " ")
	return code
}

// Is makes errors.Is(err, ErrAuth) hold for authentication replies.
func (e *SourceError) Is(target error) bool {
	if target != ErrAuth {
		return false
	}
	switch e.Code() {
	case "NOAUTH", "WRONGPASS", "NOPERM":
		return true
	}
	return e.Cmd == "AUTH"
}

// ParseError reports bytes from the source that break the protocol. It
// wraps ErrProtocol.
type ParseError struct {
	Stage   string // "psync reply", "rdb header", "stream"
	Offset  int64  // stream offset (stage "stream") or byte index after PSYNC
	Msg     string
	Snippet string // up to 32 bytes of the offending input
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("replica: protocol error in %s at %d: %s near %q", e.Stage, e.Offset, e.Msg, e.Snippet)
}

func (e *ParseError) Unwrap() error { return ErrProtocol }

func parseErr(stage string, off int64, msg string, snippet []byte) *ParseError {
	if len(snippet) > 32 {
		snippet = snippet[:32]
	}
	return &ParseError{Stage: stage, Offset: off, Msg: msg, Snippet: string(snippet)}
}

// Class is what a supervisor should do after Run returned an error.
type Class int

const (
	// Retry: reconnect with backoff and resume from the returned Position
	// (a zero Position means PSYNC ? -1 and a fresh FullSync).
	Retry Class = iota
	// FullResync: flush the destination and sync from scratch.
	FullResync
	// Fatal: stop and report the error (bad credentials, the source out of
	// memory, an unknown failure).
	Fatal
)

func (c Class) String() string {
	switch c {
	case Retry:
		return "retry"
	case FullResync:
		return "full-resync"
	case Fatal:
		return "fatal"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Classify maps an error returned by Run to a Class. It knows this
// package's errors and network errors; errors of the Handler (wrapped with
// ErrHandler) and anything unknown are Fatal, so a supervisor should
// classify its own handler errors before calling Classify.
func Classify(err error) Class {
	var se *SourceError
	switch {
	case err == nil:
		return Retry
	case errors.Is(err, ErrAuth):
		return Fatal
	case errors.As(err, &se):
		switch se.Code() {
		case "LOADING", "NOMASTERLINK", "MASTERDOWN", "BUSY", "TRYAGAIN":
			return Retry
		}
		return Fatal // OOM and anything else the source refuses with
	case errors.Is(err, ErrHandler):
		return Fatal
	case errors.Is(err, ErrFullResync):
		return FullResync
	case errors.Is(err, ErrProtocol),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, context.DeadlineExceeded):
		return Retry
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return Retry
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return Retry
	}
	return Fatal
}
