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

func TestResumeAt(t *testing.T) {
	pos := replica.Position{ReplID: "a", Offset: 5000}
	cases := []struct {
		name   string
		pos    replica.Position
		rewind *replica.Position
		want   replica.Position
	}{
		{"no rewind", pos, nil, pos},
		{"a slot went back below the link", pos, &replica.Position{ReplID: "b", Offset: 1200}, replica.Position{ReplID: "b", Offset: 1200}},
		{"rewind without replid keeps the link's", pos, &replica.Position{Offset: 1200}, replica.Position{ReplID: "a", Offset: 1200}},
		{"a slot back but not below the link", pos, &replica.Position{ReplID: "a", Offset: 5000}, pos},
		{"above the link", pos, &replica.Position{ReplID: "a", Offset: 6000}, pos},
		{"a full sync stays a full sync", replica.Position{}, &replica.Position{ReplID: "a", Offset: 10}, replica.Position{}},
	}
	for _, c := range cases {
		if got := resumeAt(c.pos, c.rewind); got != c.want {
			t.Errorf("%s: resumeAt(%v, %v) = %v, want %v", c.name, c.pos, c.rewind, got, c.want)
		}
	}
}

// A cluster destination has a checkpoint per slot: the run resumes from
// the lowest.
func TestResumeFromSlots(t *testing.T) {
	cps := make([]*apply.Checkpoint, 16384)
	for i := range cps {
		cps[i] = &apply.Checkpoint{Fingerprint: "fp", ReplID: "r", Offset: int64(10000 + i)}
	}
	cps[9000].Offset = 42
	pos, newest, missing := resumeFrom(cps, "fp")
	if missing != -1 || pos.Offset != 42 || newest != 10000+16383 {
		t.Fatalf("resumeFrom = %v %d %d, want offset 42, newest %d, none missing", pos, newest, missing, 10000+16383)
	}
	cps[16000] = nil
	if _, _, missing := resumeFrom(cps, "fp"); missing != 16000 {
		t.Fatalf("missing = %d, want 16000", missing)
	}
}
