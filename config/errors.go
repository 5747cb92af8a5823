package config

import (
	"errors"
	"fmt"
)

// Error is one problem found in a configuration. Parse and Validate return
// every problem they find, joined with errors.Join; use errors.As to get the
// first *Error.
type Error struct {
	// Line and Column locate the offending YAML value (1-based). Both are
	// zero when the Config was built in Go rather than parsed.
	Line, Column int
	// Path names the field, e.g. "replica_of.sources[2].uri".
	Path string
	// Err is the reason. It never contains a password.
	Err error
}

func (e *Error) Error() string {
	msg := "config: "
	if e.Line > 0 {
		msg += fmt.Sprintf("line %d, column %d: ", e.Line, e.Column)
	}
	if e.Path != "" {
		msg += e.Path + ": "
	}
	return msg + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrTooManySources is returned (wrapped in an *Error) when more than
// MaxSources sources are configured.
var ErrTooManySources = errors.New("config: too many sources")

// MaxSources is the largest number of sources one replicaof process syncs.
const MaxSources = 32
