package syncer

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/syncer/apply"
	"github.com/replicaof/replicaof/syncer/replica"
)

func TestAggregate(t *testing.T) {
	cases := []struct {
		states []string
		want   string
	}{
		{nil, StateSynced},
		{[]string{StateSynced, StateSynced}, StateSynced},
		{[]string{StateSynced, StateSyncing}, StateSyncing},
		{[]string{StateSyncing, StateStopped, StateSynced}, StateStopped},
	}
	for _, c := range cases {
		var srcs []SourceStatus
		for _, s := range c.states {
			srcs = append(srcs, SourceStatus{SyncState: s})
		}
		if got := aggregate(srcs); got != c.want {
			t.Errorf("%v: %s, want %s", c.states, got, c.want)
		}
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want Class
	}{
		{fmt.Errorf("x: %w", replica.ErrAuth), Fatal},
		{fmt.Errorf("%w: %w", replica.ErrHandler, &apply.CrossSlotError{Command: "EVAL"}), Fatal},
		{fmt.Errorf("%w: %w", replica.ErrHandler, apply.ErrOOM), Fatal},
		{fmt.Errorf("%w: %w", replica.ErrHandler, &apply.UnsupportedKeyError{Key: "k", Type: "module X"}), Fatal},
		{fmt.Errorf("%w: %w", replica.ErrHandler, pool.ErrShardDown), Retry},
		{io.ErrUnexpectedEOF, Retry},
		{fmt.Errorf("%w: cause", replica.ErrFullResync), FullResync},
		{ErrNeedFullResync, FullResync},
		{&replica.SourceError{Cmd: "PSYNC", Msg: "LOADING loading"}, Retry},
		{&replica.SourceError{Cmd: "PSYNC", Msg: "OOM command not allowed"}, Fatal},
		{errors.New("something unknown"), Fatal},
	}
	for _, c := range cases {
		if got := Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestClassifyTLS(t *testing.T) {
	remote := &net.OpError{Op: "remote error", Err: errors.New("tls: unknown certificate authority")}
	for _, err := range []error{
		fmt.Errorf("replica: read: %w", remote),
		fmt.Errorf("replica: dial x: %w", errors.New("tls: server selected unsupported protocol version 302")),
		fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}),
	} {
		if got := Classify(err); got != Fatal {
			t.Errorf("Classify(%v) = %v, want fatal", err, got)
		}
	}
	if got := Classify(&net.OpError{Op: "read", Err: errors.New("connection reset by peer")}); got != Retry {
		t.Errorf("a reset is %v, want retry", got)
	}
}

func TestLinkPhase(t *testing.T) {
	for st, want := range map[replica.State]string{
		replica.StateIdle:      PhaseConnecting, // between retries
		replica.StateHandshake: PhaseConnecting,
		replica.StatePSync:     PhaseWaiting, // a diskless delay: +FULLRESYNC comes when the snapshot starts
		replica.StateTransfer:  PhaseWaiting,
		replica.StateLoading:   PhaseLoading,
		replica.StateStreaming: PhaseStreaming,
	} {
		if got := linkPhase(st); got != want {
			t.Errorf("linkPhase(%v) = %q, want %q", st, got, want)
		}
	}
	// A source not discovered yet has no links: it is connecting.
	if st := newSource(1, config.Source{Name: "a"}).status(time.Now()); st.Phase != PhaseConnecting || st.SyncState != StateSyncing {
		t.Errorf("undiscovered source: phase %q state %q", st.Phase, st.SyncState)
	}
	s := newSource(1, config.Source{Name: "a"})
	s.setStopped()
	if st := s.status(time.Now()); st.Phase != PhaseStopped {
		t.Errorf("stopped source: phase %q", st.Phase)
	}
}
