package syncer

import (
	"errors"
	"testing"

	"github.com/replicaof/replicaof/destination"
)

func TestClusterRestarted(t *testing.T) {
	st := func(id string, marked bool) destination.ShardState {
		return destination.ShardState{RunID: id, Marked: marked}
	}
	cases := []struct {
		name      string
		now       []string // the groups' masters now
		probe     []destination.ShardState
		restart   bool
		wantBase  string // group 1's watched run id after the check
		wantAddrs string // group 1's watched address after the check
	}{
		{"nothing changed", []string{"a", "b"}, []destination.ShardState{st("ra", true), st("rb", true)}, false, "rb", "b"},
		{"a failover: the new master is watched", []string{"a", "b2"}, []destination.ShardState{st("ra", true), st("rb2", true)}, false, "rb2", "b2"},
		{"a master restarted in place", []string{"a", "b"}, []destination.ShardState{st("ra", true), st("rb-new", true)}, true, "", ""},
		{"the marker is gone", []string{"a", "b"}, []destination.ShardState{st("ra", true), st("rb", false)}, true, "", ""},
		{"a group more", []string{"a", "b", "c"}, []destination.ShardState{st("ra", true), st("rb", true), st("rc", true)}, true, "", ""},
	}
	for _, c := range cases {
		base := []destination.ShardState{st("ra", true), st("rb", true)}
		addrs := []string{"a", "b"}
		err := clusterRestarted(func(i int) string { return c.now[i] }, base, c.probe, addrs)
		if c.restart {
			if !errors.Is(err, ErrNeedFullResync) {
				t.Errorf("%s: err = %v, want ErrNeedFullResync", c.name, err)
			}
			continue
		}
		if err != nil || base[1].RunID != c.wantBase || addrs[1] != c.wantAddrs {
			t.Errorf("%s: err %v, watching %s at %s; want %s at %s", c.name, err, base[1].RunID, addrs[1], c.wantBase, c.wantAddrs)
		}
	}
}
