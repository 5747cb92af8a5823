package syncer

import (
	"testing"
	"time"

	"github.com/replicaof/replicaof/config"
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
