package errclass

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/replicaof/replicaof/resp"
)

// Class says what an error means for sync.
type Class int

// Error classes, from the mildest: when an error's tree holds errors of
// several classes, the most severe decides.
const (
	// Retry: connection-level trouble; reconnect with backoff and resume
	// by partial resync when the source still has the backlog.
	Retry Class = iota
	// FullResync: sync can only go on by a full resync, which forces a
	// flush and a full resync of every source.
	FullResync
	// Fatal: stop sync for every source and keep the error on the source
	// that caused it (authentication, TLS, cross-slot, out of memory, a
	// rejected payload, an unknown failure).
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

// New returns a sentinel error with the given text that carries class c:
// Classify puts every error wrapping it in c, unless the tree also holds
// an error of a more severe class.
func New(c Class, text string) error { return &classified{text: text, class: c} }

type classified struct {
	text  string
	class Class
}

func (e *classified) Error() string { return e.text }
func (e *classified) Class() Class  { return e.class }

// NewBoundary returns a sentinel error with the given text that marks
// where errors from elsewhere enter (the errors a replication link's
// handler returns, e.g.): what it wraps is classified by the classes it
// carries alone, and is Fatal when it carries none. Network errors under
// it are not taken for the link's own.
func NewBoundary(text string) error { return &boundary{text: text} }

type boundary struct{ text string }

func (e *boundary) Error() string { return e.text }

// Of returns the most severe class carried by an error in err's tree (a
// New sentinel, or a typed error with a Class method); ok is false when
// none carries one.
func Of(err error) (c Class, ok bool) {
	walk(err, func(e error) {
		if ce, is := e.(interface{ Class() Class }); is {
			if k := ce.Class(); !ok || k > c {
				c, ok = k, true
			}
		}
	})
	return c, ok
}

// IsFatal reports whether err carries the Fatal class (Of), leaving out
// Classify's defaults for errors that carry none: what a package asks of
// the errors it produces itself (apply: a write that failed for good).
func IsFatal(err error) bool {
	c, ok := Of(err)
	return ok && c == Fatal
}

// walk calls fn for err and every error it wraps, depth first.
func walk(err error, fn func(error)) {
	if err == nil {
		return
	}
	fn(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		walk(u.Unwrap(), fn)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walk(e, fn)
		}
	}
}

// retryCodes are the error replies a source answers while it cannot serve
// a replica yet (loading, not connected to its own master, busy): retried.
var retryCodes = map[string]bool{"LOADING": true, "NOMASTERLINK": true, "MASTERDOWN": true, "BUSY": true, "TRYAGAIN": true}

// Classify maps an error from a replication link, its handler (the
// applier) or the supervisor to its class, trying in order:
//   - nil is Retry; a TLS handshake or certificate failure is Fatal;
//   - the classes the error carries (Of), the most severe first;
//   - a deadline is Retry;
//   - under a NewBoundary sentinel, anything else is Fatal;
//   - a server's error reply (resp.Error) is Retry for the codes that mean
//     "not yet" (LOADING, NOMASTERLINK, MASTERDOWN, BUSY, TRYAGAIN) and
//     Fatal otherwise;
//   - a lost or refused connection is Retry;
//   - anything unknown is Fatal.
func Classify(err error) Class {
	if err == nil {
		return Retry
	}
	if isTLSFailure(err) {
		return Fatal
	}
	if c, ok := Of(err); ok {
		return c
	}
	var (
		re resp.Error
		be *boundary
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return Retry
	case errors.As(err, &be):
		return Fatal
	case errors.As(err, &re):
		if retryCodes[re.Code()] {
			return Retry
		}
		return Fatal // OOM and anything else the server refuses with
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE):
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
