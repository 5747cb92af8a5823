package router

import (
	"fmt"
	"strings"

	"github.com/replicaof/replicaof/resp"
)

// ParseCommandInfo builds a table from a server's reply to COMMAND (or
// COMMAND INFO name…): per command, [name, arity, flags, first, last, step,
// acl categories, tips, key specs, subcommands] in Redis 7 (tips, key specs
// and subcommands are absent before 7.0; commands then carry only the
// legacy first/last/step, which become an index+range key spec).
func ParseCommandInfo(v resp.Value) (*Table, error) {
	if err := v.Err(); err != nil {
		return nil, fmt.Errorf("router: COMMAND: %w", err)
	}
	if v.Type != resp.TypeArray {
		return nil, fmt.Errorf("router: COMMAND reply is not an array (%q)", v.Type)
	}
	var cmds []*Command
	for i, e := range v.Elems {
		if e.Null {
			continue // COMMAND INFO of an unknown name
		}
		c, err := parseCommandEntry(e)
		if err != nil {
			return nil, fmt.Errorf("router: COMMAND entry %d: %w", i, err)
		}
		cmds = append(cmds, c)
	}
	return NewTable(cmds), nil
}

func parseCommandEntry(e resp.Value) (*Command, error) {
	if e.Type != resp.TypeArray || len(e.Elems) < 6 {
		return nil, fmt.Errorf("want an array of at least 6 fields")
	}
	f := e.Elems
	c := &Command{
		Name:     strings.ToLower(string(f[0].Str)),
		Arity:    int(f[1].Int),
		FirstKey: int(f[3].Int),
		LastKey:  int(f[4].Int),
		Step:     int(f[5].Int),
	}
	if c.Name == "" {
		return nil, fmt.Errorf("empty command name")
	}
	for _, fl := range f[2].Elems {
		name := string(fl.Str)
		for _, fn := range flagNames {
			if fn.name == name {
				c.Flags |= fn.flag
			}
		}
	}
	if len(f) >= 9 {
		for j, ks := range f[8].Elems {
			spec, err := parseKeySpec(ks)
			if err != nil {
				return nil, fmt.Errorf("%s: key spec %d: %w", c.Name, j, err)
			}
			c.KeySpecs = append(c.KeySpecs, spec)
		}
	} else if c.FirstKey > 0 {
		// Before 7.0: the legacy triple is the whole truth.
		c.KeySpecs = legacySpec(c.FirstKey, c.LastKey, c.Step)
	}
	if len(f) >= 10 && len(f[9].Elems) > 0 {
		c.Subcommands = make(map[string]*Command, len(f[9].Elems))
		for _, se := range f[9].Elems {
			sub, err := parseCommandEntry(se)
			if err != nil {
				return nil, fmt.Errorf("%s: subcommand: %w", c.Name, err)
			}
			_, short, _ := strings.Cut(sub.Name, "|")
			c.Subcommands[short] = sub
		}
	}
	return c, nil
}

func legacySpec(first, last, step int) []KeySpec {
	if last < 0 {
		return []KeySpec{{Flags: KeyRW, Search: SearchIndex, Index: first, Find: FindRange, LastKey: last, KeyStep: step}}
	}
	return []KeySpec{{Flags: KeyRW, Search: SearchIndex, Index: first, Find: FindRange, LastKey: last - first, KeyStep: step}}
}

// fields reads a flat [name, value, name, value, …] array.
func fields(v resp.Value) map[string]resp.Value {
	m := make(map[string]resp.Value, len(v.Elems)/2)
	for i := 0; i+1 < len(v.Elems); i += 2 {
		m[string(v.Elems[i].Str)] = v.Elems[i+1]
	}
	return m
}

func parseKeySpec(v resp.Value) (KeySpec, error) {
	var s KeySpec
	m := fields(v)
	for _, fl := range m["flags"].Elems {
		for _, fn := range keyFlagNames {
			if fn.name == string(fl.Str) {
				s.Flags |= fn.flag
			}
		}
	}
	bs := fields(m["begin_search"])
	spec := fields(bs["spec"])
	switch string(bs["type"].Str) {
	case "index":
		s.Search = SearchIndex
		s.Index = int(spec["index"].Int)
	case "keyword":
		s.Search = SearchKeyword
		s.Keyword = string(spec["keyword"].Str)
		s.StartFrom = int(spec["startfrom"].Int)
	case "unknown":
		s.Search = SearchUnknown
	default:
		return s, fmt.Errorf("begin_search type %q", bs["type"].Str)
	}
	fk := fields(m["find_keys"])
	spec = fields(fk["spec"])
	switch string(fk["type"].Str) {
	case "range":
		s.Find = FindRange
		s.LastKey = int(spec["lastkey"].Int)
		s.KeyStep = int(spec["keystep"].Int)
		s.Limit = int(spec["limit"].Int)
	case "keynum":
		s.Find = FindKeynum
		s.KeyNumIdx = int(spec["keynumidx"].Int)
		s.FirstKey = int(spec["firstkey"].Int)
		s.KeyStep = int(spec["keystep"].Int)
	case "unknown":
		s.Find = FindUnknown
	default:
		return s, fmt.Errorf("find_keys type %q", fk["type"].Str)
	}
	return s, nil
}
