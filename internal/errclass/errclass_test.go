package errclass_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/syncer"
	"github.com/replicaof/replicaof/syncer/apply"
	"github.com/replicaof/replicaof/syncer/replica"
)

// sourceReply is how a link reports the source's error reply.
func sourceReply(r string) error {
	return fmt.Errorf("replica: source answered PSYNC with -%w", resp.Error(r))
}

func handler(err error) error { return fmt.Errorf("%w: Apply: %w", replica.ErrHandler, err) }

func TestClassify(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want errclass.Class
	}{
		{"nil", nil, errclass.Retry},
		// TLS failures come first.
		{"tls alert", fmt.Errorf("replica: read: %w", &net.OpError{Op: "remote error", Err: errors.New("tls: unknown certificate authority")}), errclass.Fatal},
		{"tls version", fmt.Errorf("replica: dial x: %w", errors.New("tls: server selected unsupported protocol version 302")), errclass.Fatal},
		{"unknown CA", fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}), errclass.Fatal},
		// The classes errors carry.
		{"auth", fmt.Errorf("x: %w", replica.ErrAuth), errclass.Fatal},
		{"spool", fmt.Errorf("%w: write: %w", replica.ErrSpool, syscall.ENOSPC), errclass.Fatal},
		{"snapshot loop over a full resync", fmt.Errorf("%w (3 in a row): %w", syncer.ErrSnapshotLoop,
			fmt.Errorf("%w: cause", replica.ErrFullResync)), errclass.Fatal},
		{"cross-slot", handler(&apply.CrossSlotError{Command: "EVAL"}), errclass.Fatal},
		{"emulation refused", handler(&apply.EmulateError{Command: "RENAME"}), errclass.Fatal},
		{"destination OOM", handler(apply.ErrOOM), errclass.Fatal},
		{"write rejected", handler(&apply.WriteError{Reply: "LOADING x", Err: apply.ErrRejected}), errclass.Fatal},
		{"unsupported key", handler(&apply.UnsupportedKeyError{Key: "k", Type: "module X"}), errclass.Fatal},
		{"block too large", handler(apply.ErrTooLarge), errclass.Fatal},
		{"full resync", fmt.Errorf("%w: cause", replica.ErrFullResync), errclass.FullResync},
		{"need full resync", syncer.ErrNeedFullResync, errclass.FullResync},
		{"snapshot interrupted", fmt.Errorf("%w: snapshot interrupted: %w", syncer.ErrNeedFullResync, io.ErrUnexpectedEOF), errclass.FullResync},
		{"checkpoint lost", handler(apply.ErrCheckpointLost), errclass.FullResync},
		{"full resync over a dropped snapshot", fmt.Errorf("%w: %w", replica.ErrFullResync, &replica.SnapshotDroppedError{Err: io.EOF}), errclass.FullResync},
		{"destination down under the handler", handler(pool.ErrShardDown), errclass.Retry},
		{"protocol error", &replica.ParseError{Stage: "stream"}, errclass.Retry},
		// A deadline, then the boundary.
		{"deadline under the handler", handler(context.DeadlineExceeded), errclass.Retry},
		{"unknown handler error", handler(errors.New("boom")), errclass.Fatal},
		{"network error under the handler", handler(io.EOF), errclass.Fatal},
		{"reply under the handler", handler(resp.Error("LOADING x")), errclass.Fatal},
		// The source's replies.
		{"source loading", sourceReply("LOADING loading"), errclass.Retry},
		{"source not linked", sourceReply("NOMASTERLINK Can't SYNC"), errclass.Retry},
		{"source masterdown", sourceReply("MASTERDOWN link down"), errclass.Retry},
		{"source busy", sourceReply("BUSY script"), errclass.Retry},
		{"source tryagain", sourceReply("TRYAGAIN"), errclass.Retry},
		{"source OOM", sourceReply("OOM command not allowed"), errclass.Fatal},
		{"source ERR", sourceReply("ERR unknown"), errclass.Fatal},
		// Connections.
		{"eof", io.EOF, errclass.Retry},
		{"unexpected eof", io.ErrUnexpectedEOF, errclass.Retry},
		{"closed", fmt.Errorf("read: %w", net.ErrClosed), errclass.Retry},
		{"reset", syscall.ECONNRESET, errclass.Retry},
		{"refused", syscall.ECONNREFUSED, errclass.Retry},
		{"broken pipe", syscall.EPIPE, errclass.Retry},
		{"op error", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, errclass.Retry},
		{"dns", &net.DNSError{Err: "no such host", Name: "x"}, errclass.Retry},
		{"deadline", context.DeadlineExceeded, errclass.Retry},
		// The rest.
		{"unknown", errors.New("something unknown"), errclass.Fatal},
		{"canceled", context.Canceled, errclass.Fatal},
		{"fenced", apply.ErrFenced, errclass.Fatal},
	}
	for _, c := range cases {
		if got := errclass.Classify(c.err); got != c.want {
			t.Errorf("%s: Classify(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

func TestOfAndIsFatal(t *testing.T) {
	retry := errclass.New(errclass.Retry, "r")
	resync := errclass.New(errclass.FullResync, "f")
	fatal := errclass.New(errclass.Fatal, "x")
	cases := []struct {
		name  string
		err   error
		want  errclass.Class
		ok    bool
		fatal bool
	}{
		{"none", errors.New("plain"), errclass.Retry, false, false},
		{"nil", nil, errclass.Retry, false, false},
		{"one", fmt.Errorf("a: %w", resync), errclass.FullResync, true, false},
		{"most severe of a chain", fmt.Errorf("%w: %w", retry, fmt.Errorf("%w", fatal)), errclass.Fatal, true, true},
		{"most severe of a join", errors.Join(resync, retry), errclass.FullResync, true, false},
		{"a typed error's method", fmt.Errorf("x: %w", &apply.CrossSlotError{}), errclass.Fatal, true, true},
		{"a deadline carries none", context.DeadlineExceeded, errclass.Retry, false, false},
	}
	for _, c := range cases {
		got, ok := errclass.Of(c.err)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: Of = (%v, %v), want (%v, %v)", c.name, got, ok, c.want, c.ok)
		}
		if f := errclass.IsFatal(c.err); f != c.fatal {
			t.Errorf("%s: IsFatal = %v, want %v", c.name, f, c.fatal)
		}
	}
	if errclass.New(errclass.Fatal, "text").Error() != "text" || errclass.NewBoundary("b").Error() != "b" {
		t.Error("the sentinels' text")
	}
	for c, want := range map[errclass.Class]string{errclass.Retry: "retry", errclass.FullResync: "full-resync", errclass.Fatal: "fatal", 7: "Class(7)"} {
		if c.String() != want {
			t.Errorf("%d: %q, want %q", int(c), c.String(), want)
		}
	}
}
