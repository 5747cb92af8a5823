package router

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Flag is a command flag as COMMAND INFO reports it.
type Flag uint32

// Command flags (the names COMMAND INFO uses, src/commands.def).
const (
	FlagWrite Flag = 1 << iota
	FlagReadonly
	FlagDenyOOM
	FlagModule
	FlagAdmin
	FlagPubSub
	FlagNoScript
	FlagBlocking
	FlagLoading
	FlagStale
	FlagSkipMonitor
	FlagSkipSlowlog
	FlagAsking
	FlagFast
	FlagNoAuth
	FlagMayReplicate
	FlagNoMandatoryKeys
	FlagNoMulti
	FlagMovableKeys
	FlagAllowBusy
)

var flagNames = []struct {
	name string
	flag Flag
}{
	{"write", FlagWrite}, {"readonly", FlagReadonly}, {"denyoom", FlagDenyOOM},
	{"module", FlagModule}, {"admin", FlagAdmin}, {"pubsub", FlagPubSub},
	{"noscript", FlagNoScript}, {"blocking", FlagBlocking}, {"loading", FlagLoading},
	{"stale", FlagStale}, {"skip_monitor", FlagSkipMonitor}, {"skip_slowlog", FlagSkipSlowlog},
	{"asking", FlagAsking}, {"fast", FlagFast}, {"no_auth", FlagNoAuth},
	{"may_replicate", FlagMayReplicate}, {"no_mandatory_keys", FlagNoMandatoryKeys},
	{"no_multi", FlagNoMulti}, {"movablekeys", FlagMovableKeys}, {"allow_busy", FlagAllowBusy},
}

// String lists the flags by their COMMAND INFO names.
func (f Flag) String() string {
	var names []string
	for _, fn := range flagNames {
		if f&fn.flag != 0 {
			names = append(names, fn.name)
		}
	}
	return strings.Join(names, "|")
}

// KeyFlag describes how a command uses the keys one key spec finds.
type KeyFlag uint16

// Key spec flags (COMMAND DOCS "key specifications").
const (
	KeyRO KeyFlag = 1 << iota
	KeyRW
	KeyOW
	KeyRM
	KeyAccess
	KeyUpdate
	KeyInsert
	KeyDelete
	KeyNotKey
	KeyIncomplete
	KeyVariableFlags
)

var keyFlagNames = []struct {
	name string
	flag KeyFlag
}{
	{"RO", KeyRO}, {"RW", KeyRW}, {"OW", KeyOW}, {"RM", KeyRM},
	{"access", KeyAccess}, {"update", KeyUpdate}, {"insert", KeyInsert}, {"delete", KeyDelete},
	{"not_key", KeyNotKey}, {"incomplete", KeyIncomplete}, {"variable_flags", KeyVariableFlags},
}

// SearchKind is how a key spec finds the first key.
type SearchKind uint8

// Begin-search kinds.
const (
	SearchUnknown SearchKind = iota // keys cannot be found from the spec alone
	SearchIndex                     // the first key is at a fixed argument index
	SearchKeyword                   // the first key follows a keyword
)

// FindKind is how a key spec finds the keys after the first.
type FindKind uint8

// Find-keys kinds.
const (
	FindUnknown FindKind = iota
	FindRange            // keys run to LastKey, every KeyStep, optionally cut by Limit
	FindKeynum           // an argument holds the key count
)

// KeySpec is one Redis 7 key specification.
type KeySpec struct {
	Flags KeyFlag

	Search SearchKind
	// Index is the first key's position for SearchIndex.
	Index int
	// Keyword and StartFrom locate the keyword for SearchKeyword: a
	// negative StartFrom searches backwards from the end.
	Keyword   string
	StartFrom int

	Find FindKind
	// LastKey, KeyStep and Limit are FindRange's: LastKey is relative to
	// the first key, or counts from the end when negative; Limit > 1 then
	// takes only 1/Limit of the remaining arguments.
	LastKey, KeyStep, Limit int
	// KeyNumIdx and FirstKey are FindKeynum's, both relative to the first
	// key position; KeyStep applies too.
	KeyNumIdx, FirstKey int
}

// Command is one entry of the command table. A container command (CONFIG,
// XGROUP, …) has Subcommands keyed by lower-case subcommand name.
type Command struct {
	Name  string // lower case; "parent|sub" for a subcommand
	Arity int    // exact argument count, or the negated minimum
	Flags Flag
	// FirstKey, LastKey and Step are the legacy key positions.
	FirstKey, LastKey, Step int
	KeySpecs                []KeySpec
	Subcommands             map[string]*Command
}

// Write reports whether the command may modify data.
func (c *Command) Write() bool { return c.Flags&FlagWrite != 0 }

// Table maps command names to their descriptions. It is immutable once
// built and safe for concurrent use.
type Table struct {
	cmds map[string]*Command
}

// NewTable builds a table from commands.
func NewTable(cmds []*Command) *Table {
	t := &Table{cmds: make(map[string]*Command, len(cmds))}
	for _, c := range cmds {
		t.cmds[c.Name] = c
	}
	return t
}

// Len is the number of top-level commands.
func (t *Table) Len() int { return len(t.cmds) }

// Commands returns the top-level commands sorted by name.
func (t *Table) Commands() []*Command {
	out := make([]*Command, 0, len(t.cmds))
	for _, c := range t.cmds {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Merge returns a table with every command of t, replaced or extended by
// those of newer. It is how a refresh from a destination's own COMMAND INFO
// adds commands this build does not know.
func (t *Table) Merge(newer *Table) *Table {
	m := &Table{cmds: make(map[string]*Command, len(t.cmds)+len(newer.cmds))}
	for k, v := range t.cmds {
		m.cmds[k] = v
	}
	for k, v := range newer.cmds {
		m.cmds[k] = v
	}
	return m
}

// maxNameLen bounds the command names Lookup lowers on the stack.
const maxNameLen = 64

// Lookup finds the command argv invokes, descending into a subcommand when
// the command has them (CONFIG GET → "config|get"). It returns nil for an
// unknown command.
func (t *Table) Lookup(args [][]byte) *Command {
	if len(args) == 0 || len(args[0]) > maxNameLen {
		return nil
	}
	var buf [maxNameLen]byte
	c := t.cmds[string(lower(buf[:0], args[0]))]
	if c == nil || c.Subcommands == nil || len(args) < 2 || len(args[1]) > maxNameLen {
		return c
	}
	if sub := c.Subcommands[string(lower(buf[:0], args[1]))]; sub != nil {
		return sub
	}
	return c
}

// LookupName finds a command by its name ("get", "config|get").
func (t *Table) LookupName(name string) *Command {
	name = strings.ToLower(name)
	parent, sub, ok := strings.Cut(name, "|")
	c := t.cmds[parent]
	if !ok || c == nil {
		return c
	}
	return c.Subcommands[sub]
}

// AppendLower appends b to dst with ASCII letters lower-cased: how command
// names are compared without allocating.
func AppendLower(dst, b []byte) []byte { return lower(dst, b) }

func lower(dst, b []byte) []byte {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// ErrUnknownKeys means a command's keys cannot be located from its key
// specs (a module command with an unknown key spec, say), so it cannot be
// routed by key.
var ErrUnknownKeys = errors.New("router: cannot locate the command's keys")

// ErrBadKeyCount means a numkeys argument is not a valid count.
var ErrBadKeyCount = errors.New("router: invalid number of keys")

// Keys appends to dst the positions in args of every key the command
// touches, in argument order, and returns it. A command with no keys
// returns dst unchanged. args[0] is the command name.
func (c *Command) Keys(args [][]byte, dst []int) ([]int, error) {
	if special := keyOverrides[c.Name]; special != nil {
		return special(args, dst)
	}
	start := len(dst)
	known := 0
	for i := range c.KeySpecs {
		if c.KeySpecs[i].Search == SearchUnknown || c.KeySpecs[i].Find == FindUnknown {
			// Like the server, skip what a spec cannot say (SORT's BY/GET
			// patterns); a command with nothing else to go by is unroutable.
			continue
		}
		known++
		var err error
		dst, err = c.KeySpecs[i].keys(args, dst)
		if err != nil {
			return dst[:start], fmt.Errorf("%s: %w", c.Name, err)
		}
	}
	if known == 0 && c.Flags&FlagMovableKeys != 0 {
		return dst, fmt.Errorf("%s: %w", c.Name, ErrUnknownKeys)
	}
	if known > 1 {
		ks := dst[start:]
		sort.Ints(ks)
		// Specs may overlap (a key found by two specs): keep each position once.
		w := 0
		for i, k := range ks {
			if i == 0 || k != ks[w-1] {
				ks[w] = k
				w++
			}
		}
		dst = dst[:start+w]
	}
	return dst, nil
}

func (s *KeySpec) keys(args [][]byte, dst []int) ([]int, error) {
	argc := len(args)
	var first int
	switch s.Search {
	case SearchIndex:
		first = s.Index
	case SearchKeyword:
		first = -1
		if s.StartFrom >= 0 {
			for i := s.StartFrom; i < argc; i++ {
				if bytes.EqualFold(args[i], []byte(s.Keyword)) {
					first = i + 1
					break
				}
			}
		} else {
			for i := argc + s.StartFrom; i > 0; i-- {
				if bytes.EqualFold(args[i], []byte(s.Keyword)) {
					first = i + 1
					break
				}
			}
		}
		if first < 0 {
			return dst, nil // the optional keyword is absent: no keys from this spec
		}
	default:
		return dst, ErrUnknownKeys
	}
	if first >= argc {
		return dst, nil // too few arguments: the server reports the arity error
	}
	var last, step int
	switch s.Find {
	case FindRange:
		step = max(s.KeyStep, 1)
		switch {
		case s.LastKey >= 0:
			last = first + s.LastKey
		case s.Limit <= 1:
			last = argc + s.LastKey
		default:
			last = first + (argc-first)/s.Limit + s.LastKey
		}
	case FindKeynum:
		step = max(s.KeyStep, 1)
		at := first + s.KeyNumIdx
		if at >= argc {
			return dst, nil
		}
		n, err := strconv.Atoi(string(args[at]))
		if err != nil || n < 0 {
			return dst, ErrBadKeyCount
		}
		first += s.FirstKey
		if n > (argc-first+step-1)/step || (n > 0 && first >= argc) {
			return dst, ErrBadKeyCount
		}
		last = first + (n-1)*step
	default:
		return dst, ErrUnknownKeys
	}
	if last >= argc {
		last = argc - 1
	}
	if s.Flags&KeyNotKey != 0 {
		return dst, nil
	}
	for i := first; i <= last; i += step {
		dst = append(dst, i)
	}
	return dst, nil
}

// keyOverrides locate keys for the few commands whose key specs are marked
// incomplete or unknown, following the server's own getkeys procedures
// (sortGetKeys and migrateGetKeys in src/db.c).
var keyOverrides = map[string]func(args [][]byte, dst []int) ([]int, error){
	"sort":    sortKeys,
	"migrate": migrateKeys,
}

// sortKeys: SORT key [BY pattern] [LIMIT offset count] [GET pattern ...]
// [ASC|DESC] [ALPHA] [STORE destination]. BY and GET patterns name keys
// only through the sorted data, so like the server we report the sorted key
// and the last STORE destination.
func sortKeys(args [][]byte, dst []int) ([]int, error) {
	if len(args) < 2 {
		return dst, nil
	}
	dst = append(dst, 1)
	store := -1
	for i := 2; i < len(args); i++ {
		switch {
		case bytes.EqualFold(args[i], []byte("limit")):
			i += 2
		case bytes.EqualFold(args[i], []byte("get")), bytes.EqualFold(args[i], []byte("by")):
			i++
		case bytes.EqualFold(args[i], []byte("store")):
			if i+1 < len(args) {
				store = i + 1
			}
			i++
		}
	}
	if store > 0 {
		dst = append(dst, store)
	}
	return dst, nil
}

// migrateKeys: MIGRATE host port key|"" db timeout [COPY] [REPLACE]
// [AUTH pw | AUTH2 user pw] [KEYS key ...]. With KEYS the key argument is
// the empty string and the keys follow the keyword.
func migrateKeys(args [][]byte, dst []int) ([]int, error) {
	if len(args) < 6 {
		return dst, nil
	}
	for i := 6; i < len(args); i++ {
		switch {
		case bytes.EqualFold(args[i], []byte("auth")):
			i++
		case bytes.EqualFold(args[i], []byte("auth2")):
			i += 2
		case bytes.EqualFold(args[i], []byte("keys")):
			if len(args[3]) != 0 {
				return dst, fmt.Errorf("migrate: %w: KEYS needs an empty key argument", ErrBadKeyCount)
			}
			for k := i + 1; k < len(args); k++ {
				dst = append(dst, k)
			}
			return dst, nil
		}
	}
	return append(dst, 3), nil
}
