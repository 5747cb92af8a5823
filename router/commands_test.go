package router

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/replicaof/replicaof/resp"
)

func argv(s string) [][]byte {
	var out [][]byte
	for _, f := range strings.Fields(s) {
		if f == `""` {
			f = ""
		}
		out = append(out, []byte(f))
	}
	return out
}

func TestKeys(t *testing.T) {
	cases := []struct {
		cmd   string
		keys  []int
		write bool
	}{
		// index + range
		{"GET k", []int{1}, false},
		{"set k v EX 10", []int{1}, true},
		{"MGET a b c", []int{1, 2, 3}, false},
		{"MSET a 1 b 2", []int{1, 3}, true},
		{"MSETNX a 1 b 2 c 3", []int{1, 3, 5}, true},
		{"DEL a b", []int{1, 2}, true},
		{"EXISTS a b a", []int{1, 2, 3}, false},
		{"LMOVE src dst LEFT RIGHT", []int{1, 2}, true},
		{"RENAME a b", []int{1, 2}, true},
		{"BITOP AND dest k1 k2", []int{2, 3, 4}, true},
		{"BLPOP a b 0", []int{1, 2}, true},
		{"PING", nil, false},
		{"PUBLISH ch msg", nil, false},
		// keynum
		{"EVAL script 2 k1 k2 arg", []int{3, 4}, false},
		{"EVALSHA sha 0 arg", nil, false},
		{"FCALL fn 1 k arg", []int{3}, false},
		{"ZUNIONSTORE dst 2 a b WEIGHTS 1 2", []int{1, 3, 4}, true},
		{"ZUNION 2 a b", []int{2, 3}, false},
		{"LMPOP 2 a b LEFT", []int{2, 3}, true},
		{"BLMPOP 0 2 a b LEFT", []int{3, 4}, true},
		{"ZINTERCARD 2 a b LIMIT 1", []int{2, 3}, false},
		// keyword
		{"XREAD COUNT 2 STREAMS s1 s2 0 0", []int{4, 5}, false},
		{"XREADGROUP GROUP g c STREAMS s1 >", []int{5}, true},
		{"GEORADIUS src 0 0 1 km STORE dst", []int{1, 7}, true},
		{"GEORADIUS src 0 0 1 km", []int{1}, true},
		// overrides
		{"SORT k", []int{1}, true},
		{"SORT k BY w_* LIMIT 0 10 GET o_* STORE dst", []int{1, 10}, true},
		{"SORT k STORE a STORE b", []int{1, 5}, true},
		{"SORT_RO k BY x", []int{1}, false},
		{"MIGRATE h 6379 k 0 1000", []int{3}, true},
		{`MIGRATE h 6379 "" 0 1000 COPY AUTH pw KEYS a b`, []int{10, 11}, true},
		{`MIGRATE h 6379 "" 0 1000 AUTH2 keys pw KEYS a`, []int{10}, true},
		// subcommands
		{"OBJECT ENCODING k", []int{2}, false},
		{"MEMORY USAGE k", []int{2}, false},
		{"XGROUP CREATE s g $", []int{2}, true},
		{"XINFO STREAM s", []int{2}, false},
		{"CONFIG GET maxmemory", nil, false},
		// too few arguments: no keys, the server reports arity
		{"GET", nil, false},
		{"EVAL s", nil, false},
	}
	for _, c := range cases {
		t.Run(c.cmd, func(t *testing.T) {
			args := argv(c.cmd)
			cmd := Builtin.Lookup(args)
			if cmd == nil {
				t.Fatalf("unknown command")
			}
			got, err := cmd.Keys(args, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.keys) && !(len(got) == 0 && len(c.keys) == 0) {
				t.Fatalf("keys at %v, want %v", got, c.keys)
			}
			if cmd.Write() != c.write {
				t.Fatalf("write = %v, want %v (flags %v)", cmd.Write(), c.write, cmd.Flags)
			}
		})
	}
}

func TestKeysErrors(t *testing.T) {
	for _, c := range []string{"EVAL s x k", "EVAL s 5 k", "EVAL s -1 k", "ZUNIONSTORE d 3 a b", `MIGRATE h 1 k 0 10 KEYS a`} {
		t.Run(c, func(t *testing.T) {
			args := argv(c)
			if _, err := Builtin.Lookup(args).Keys(args, nil); !errors.Is(err, ErrBadKeyCount) {
				t.Fatalf("got %v, want ErrBadKeyCount", err)
			}
		})
	}
	unknown := &Command{Name: "mod.cmd", Flags: FlagMovableKeys, KeySpecs: []KeySpec{{Search: SearchUnknown}}}
	if _, err := unknown.Keys(argv("MOD.CMD a"), nil); !errors.Is(err, ErrUnknownKeys) {
		t.Fatalf("unknown spec: %v", err)
	}
}

func TestFlags(t *testing.T) {
	for name, want := range map[string]Flag{
		"flushall":       FlagWrite,
		"config|set":     FlagAdmin,
		"subscribe":      FlagPubSub,
		"blpop":          FlagBlocking,
		"multi":          FlagNoScript,
		"get":            FlagReadonly | FlagFast,
		"xread":          FlagMovableKeys,
		"client|setname": FlagNoScript,
	} {
		c := Builtin.LookupName(name)
		if c == nil || c.Flags&want != want {
			t.Errorf("%s: flags %v lack %v", name, c.Flags, want)
		}
	}
	if Builtin.Len() < 200 {
		t.Fatalf("builtin table has only %d commands", Builtin.Len())
	}
}

// A legacy (pre-7.0) COMMAND reply carries only first/last/step; a
// module command newer than the build arrives through Merge.
func TestParseCommandInfoAndMerge(t *testing.T) {
	raw := "*2\r\n" +
		"*6\r\n$9\r\nmod.mset2\r\n:-3\r\n*1\r\n+write\r\n:1\r\n:-1\r\n:2\r\n" +
		"*10\r\n$6\r\nmod.rd\r\n:2\r\n*1\r\n+readonly\r\n:1\r\n:1\r\n:1\r\n*0\r\n*0\r\n" +
		"*1\r\n*6\r\n$5\r\nflags\r\n*1\r\n$2\r\nRO\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n" +
		"$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n" +
		"*0\r\n"
	v, _, err := resp.ParseValue([]byte(raw), resp.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	tab, err := ParseCommandInfo(v)
	if err != nil {
		t.Fatal(err)
	}
	merged := Builtin.Merge(tab)
	for cmd, want := range map[string][]int{"MOD.MSET2 a 1 b 2": {1, 3}, "mod.rd k": {1}, "get k": {1}} {
		args := argv(cmd)
		c := merged.Lookup(args)
		if c == nil {
			t.Fatalf("%s: not found after merge", cmd)
		}
		got, err := c.Keys(args, nil)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: keys %v %v, want %v", cmd, got, err, want)
		}
	}
	if Builtin.LookupName("mod.rd") != nil {
		t.Fatal("Merge modified the receiver")
	}
}

func FuzzKeys(f *testing.F) {
	for _, s := range []string{"EVAL s 2 a b", "XREAD STREAMS a b 0 0", "SORT k STORE d", "MIGRATE h p \"\" 0 1 KEYS a", "ZUNIONSTORE d 2 a b", "OBJECT ENCODING k", "GEORADIUS k 0 0 1 km STORE x"} {
		f.Add([]byte(strings.ReplaceAll(s, " ", "\x00")))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var args [][]byte
		for _, a := range strings.Split(string(in), "\x00") {
			args = append(args, []byte(a))
		}
		if len(args) > 64 {
			args = args[:64]
		}
		c := Builtin.Lookup(args)
		if c == nil {
			return
		}
		keys, err := c.Keys(args, nil)
		refs, rerr := c.KeyRefs(args)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("%q: Keys error %v, KeyRefs error %v", args, err, rerr)
		}
		if err != nil {
			return
		}
		for i, k := range keys {
			if k <= 0 || k >= len(args) || (i > 0 && k <= keys[i-1]) {
				t.Fatalf("%q: bad key positions %v", args, keys)
			}
		}
		// KeyRefs finds the same keys, with their flags.
		if len(refs) != len(keys) {
			t.Fatalf("%q: KeyRefs %v, Keys %v", args, refs, keys)
		}
		for i, r := range refs {
			if r.Pos != keys[i] {
				t.Fatalf("%q: KeyRefs %v, Keys %v", args, refs, keys)
			}
		}
	})
}

func BenchmarkKeys(b *testing.B) {
	args := argv("MSET a 1 b 2 c 3 d 4")
	dst := make([]int, 0, 8)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c := Builtin.Lookup(args)
		dst, _ = c.Keys(args, dst[:0])
	}
}
