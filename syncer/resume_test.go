package syncer

import (
	"testing"

	"github.com/replicaof/replicaof/syncer/apply"
	"github.com/replicaof/replicaof/syncer/replica"
)

func TestWantResume(t *testing.T) {
	cases := []struct {
		may   bool
		found []bool
		want  bool
	}{
		{true, []bool{true, true}, true},
		{true, nil, true}, // no sources: nothing stands in the way
		{true, []bool{true, false}, false},
		{false, []bool{true, true}, false},
		{false, []bool{false}, false},
	}
	for _, c := range cases {
		if got := wantResume(c.may, c.found); got != c.want {
			t.Errorf("wantResume(%v, %v) = %v, want %v", c.may, c.found, got, c.want)
		}
	}
}

func TestResumeFrom(t *testing.T) {
	cp := func(fp, id string, off int64) *apply.Checkpoint {
		return &apply.Checkpoint{Fingerprint: fp, ReplID: id, Offset: off}
	}
	cases := []struct {
		name        string
		cps         []*apply.Checkpoint
		wantPos     replica.Position
		wantNewest  int64
		wantMissing int
	}{
		{"one shard", []*apply.Checkpoint{cp("fp", "r1", 100)}, replica.Position{ReplID: "r1", Offset: 100}, 100, -1},
		{"lowest offset, newest replid",
			[]*apply.Checkpoint{cp("fp", "old", 50), cp("fp", "new", 300), cp("fp", "old", 70)},
			replica.Position{ReplID: "new", Offset: 50}, 300, -1},
		{"ties keep the first shard's replid",
			[]*apply.Checkpoint{cp("fp", "a", 10), cp("fp", "b", 10)},
			replica.Position{ReplID: "a", Offset: 10}, 10, -1},
		{"a shard without a checkpoint", []*apply.Checkpoint{cp("fp", "r", 1), nil, cp("fp", "r", 2)}, replica.Position{}, 0, 1},
		{"another source list's checkpoint", []*apply.Checkpoint{cp("fp", "r", 1), cp("other", "r", 2)}, replica.Position{}, 0, 1},
		{"the first missing shard is named", []*apply.Checkpoint{nil, cp("other", "r", 2)}, replica.Position{}, 0, 0},
		{"no shards", nil, replica.Position{}, 0, 0},
	}
	for _, c := range cases {
		pos, newest, missing := resumeFrom(c.cps, "fp")
		if pos != c.wantPos || newest != c.wantNewest || missing != c.wantMissing {
			t.Errorf("%s: resumeFrom = (%+v, %d, %d), want (%+v, %d, %d)",
				c.name, pos, newest, missing, c.wantPos, c.wantNewest, c.wantMissing)
		}
	}
}
