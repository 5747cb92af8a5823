package router

import (
	"errors"
	"fmt"
	"testing"
)

func TestRoute(t *testing.T) {
	m, _ := EvenSlotMap(3)
	args := argv("MSET {a}1 x {a}2 y")
	if s, err := m.Route(args, []int{1, 3}); err != nil || s != m.ShardOf([]byte("a")) {
		t.Fatalf("hash-tagged keys: shard %d, %v", s, err)
	}
	if s, err := m.Route(args, nil); err != nil || s != -1 {
		t.Fatalf("no keys: %d %v", s, err)
	}
	// foo → 12182 (shard 2), bar → 5061 (shard 0)
	if _, err := m.Route(argv("DEL foo bar"), []int{1, 2}); !errors.Is(err, ErrCrossShard) {
		t.Fatalf("cross shard: %v", err)
	}
}

func TestSplit(t *testing.T) {
	m, _ := EvenSlotMap(3)
	// Find keys on known shards.
	keyOn := map[int][]string{}
	for i := 0; len(keyOn[0]) < 2 || len(keyOn[1]) < 2 || len(keyOn[2]) < 2; i++ {
		k := fmt.Sprint("k", i)
		s := m.ShardOf([]byte(k))
		keyOn[s] = append(keyOn[s], k)
	}
	a0, a1, b0, c0 := keyOn[0][0], keyOn[0][1], keyOn[1][0], keyOn[2][0]

	cases := []struct {
		cmd        string
		replicated bool
		merge      Merge
		parts      []string // per part: shard then args
	}{
		{"MGET " + c0 + " " + a0 + " " + b0 + " " + a1, false, MergeArray,
			[]string{"0 MGET " + a0 + " " + a1 + " [1 3]", "1 MGET " + b0 + " [2]", "2 MGET " + c0 + " [0]"}},
		{"DEL " + a0 + " " + a1, false, MergeSum, []string{"0 DEL " + a0 + " " + a1 + " [0 1]"}},
		{"MSET " + a0 + " 1 " + b0 + " 2", false, MergeOK, []string{"0 MSET " + a0 + " 1 [0]", "1 MSET " + b0 + " 2 [1]"}},
		{"MSETNX " + a0 + " 1 " + b0 + " 2", true, MergeOK, []string{"0 MSET " + a0 + " 1 [0]", "1 MSET " + b0 + " 2 [1]"}},
		{"MSETNX " + a0 + " 1 " + b0 + " 2", false, MergeNone, nil},
		{"MSET " + a0 + " 1 " + b0, false, MergeNone, nil},
		{"EXISTS " + b0 + " " + b0, false, MergeSum, []string{"1 EXISTS " + b0 + " " + b0 + " [0 1]"}},
		{"touch " + c0, false, MergeSum, []string{"2 touch " + c0 + " [0]"}},
		{"UNLINK " + c0 + " " + a0, false, MergeSum, []string{"0 UNLINK " + a0 + " [1]", "2 UNLINK " + c0 + " [0]"}},
		{"SUNIONSTORE d " + a0 + " " + b0, false, MergeNone, nil},
		{"MGET", false, MergeNone, nil},
	}
	for _, c := range cases {
		t.Run(c.cmd, func(t *testing.T) {
			merge, parts := m.Split(argv(c.cmd), c.replicated)
			if merge != c.merge || len(parts) != len(c.parts) {
				t.Fatalf("merge %v parts %d, want %v %d", merge, len(parts), c.merge, len(c.parts))
			}
			for i, p := range parts {
				got := fmt.Sprint(p.Shard)
				for _, a := range p.Args {
					got += " " + string(a)
				}
				got += fmt.Sprint(" ", p.Keys)
				if got != c.parts[i] {
					t.Errorf("part %d: %q, want %q", i, got, c.parts[i])
				}
			}
		})
	}
}
