package router

import "sort"

// KeyRef is one key of a command and how the command uses it.
type KeyRef struct {
	Pos   int     // argument index of the key
	Flags KeyFlag // the union of the flags of every key spec that found it
}

// Writes reports whether the command may change or delete the key: any
// key spec flag but RO (read-only) says so.
func (r KeyRef) Writes() bool { return r.Flags&(KeyRW|KeyOW|KeyRM) != 0 }

// KeyRefs is Keys with each key's key spec flags, in argument order, each
// position once. The commands whose keys Keys finds by the server's own
// procedures instead of their key specs (SORT, MIGRATE) report their keys
// with KeyIncomplete: the specs do not say all they touch.
func (c *Command) KeyRefs(args [][]byte) ([]KeyRef, error) {
	if special := keyOverrides[c.Name]; special != nil {
		pos, err := special(args, nil)
		if err != nil {
			return nil, err
		}
		out := make([]KeyRef, len(pos))
		for i, p := range pos {
			out[i] = KeyRef{Pos: p, Flags: KeyIncomplete | KeyRW}
		}
		return out, nil
	}
	var out []KeyRef
	var pos []int
	for i := range c.KeySpecs {
		s := &c.KeySpecs[i]
		if s.Search == SearchUnknown || s.Find == FindUnknown {
			continue
		}
		var err error
		if pos, err = s.keys(args, pos[:0]); err != nil {
			return nil, err
		}
		for _, p := range pos {
			j := sort.Search(len(out), func(j int) bool { return out[j].Pos >= p })
			if j < len(out) && out[j].Pos == p {
				out[j].Flags |= s.Flags
				continue
			}
			out = append(out, KeyRef{})
			copy(out[j+1:], out[j:])
			out[j] = KeyRef{Pos: p, Flags: s.Flags}
		}
	}
	// A movable-keys command none of whose specs is usable: Keys fails the
	// same way.
	if _, err := c.Keys(args, nil); err != nil {
		return nil, err
	}
	return out, nil
}
