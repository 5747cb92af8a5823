package router

import (
	"strings"
	"testing"
)

func TestKeyRefs(t *testing.T) {
	for _, tc := range []struct {
		cmd   string
		want  []int  // positions
		write string // per position: w (written) or r (read only)
	}{
		{"RENAME a b", []int{1, 2}, "ww"},
		{"SUNIONSTORE d s1 s2", []int{1, 2, 3}, "wrr"},
		{"LMOVE a b LEFT RIGHT", []int{1, 2}, "ww"},
		{"BITOP OR d a b", []int{2, 3, 4}, "wrr"},
		{"ZUNIONSTORE d 2 a b WEIGHTS 1 2", []int{1, 3, 4}, "wrr"},
		{"COPY a b", []int{1, 2}, "rw"},
		{"PFMERGE d a b", []int{1, 2, 3}, "wrr"},
		{"GET a", []int{1}, "r"},
		{"SET a 1", []int{1}, "w"},
		{"PING", nil, ""},
	} {
		args := split(tc.cmd)
		c := Builtin.Lookup(args)
		refs, err := c.KeyRefs(args)
		if err != nil {
			t.Fatalf("%s: %v", tc.cmd, err)
		}
		var got []int
		var w strings.Builder
		for _, r := range refs {
			got = append(got, r.Pos)
			if r.Writes() {
				w.WriteByte('w')
			} else {
				w.WriteByte('r')
			}
		}
		if len(got) != len(tc.want) || w.String() != tc.write {
			t.Errorf("%s: refs %v (%s), want %v (%s)", tc.cmd, got, w.String(), tc.want, tc.write)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: refs %v, want %v", tc.cmd, got, tc.want)
			}
		}
	}
	args := split("SORT a BY w_* STORE d")
	refs, err := Builtin.Lookup(args).KeyRefs(args)
	if err != nil || len(refs) != 2 || refs[0].Flags&KeyIncomplete == 0 {
		t.Errorf("SORT: %v %v, want two keys marked incomplete", refs, err)
	}
}

func split(s string) [][]byte {
	var out [][]byte
	for _, f := range strings.Fields(s) {
		out = append(out, []byte(f))
	}
	return out
}
