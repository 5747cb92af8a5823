package verify

import (
	"strconv"
	"strings"
	"testing"
)

func TestNextStreamID(t *testing.T) {
	max := "18446744073709551615"
	for _, c := range []struct {
		in, want string
		ok       bool
		err      bool
	}{
		{"1-0", "1-1", true, false},
		{"1000-7", "1000-8", true, false},
		{"5-" + max, "6-0", true, false},
		{max + "-" + max, "", false, false},
		{"", "", false, true},
		{"1", "", false, true},
		{"-1", "", false, true},
		{"1-", "", false, true},
		{"a-1", "", false, true},
		{"1-1-1", "", false, true},
		{"18446744073709551616-0", "", false, true},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, ok, err := nextStreamID(c.in)
			if got != c.want || ok != c.ok || (err != nil) != c.err {
				t.Fatalf("nextStreamID(%q) = %q, %v, %v; want %q, %v, err %v", c.in, got, ok, err, c.want, c.ok, c.err)
			}
		})
	}
}

func TestParseKeyspace(t *testing.T) {
	info := "# Keyspace\r\ndb0:keys=12,expires=3,avg_ttl=0\r\ndb15:keys=1,expires=0,avg_ttl=0\r\n" +
		"db01:keys=5\r\ndbx:keys=1\r\ndb2:expires=1\r\ndb3:keys=-1\r\nused_memory:1\r\ndb4:keys=7"
	got := parseKeyspace(info)
	want := map[int]int64{0: 12, 15: 1, 4: 7}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for db, n := range want {
		if got[db] != n {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestDigests(t *testing.T) {
	t.Run("unordered ignores order", func(t *testing.T) {
		var a, b unordered
		for i := 0; i < 100; i++ {
			a.add("m"+strconv.Itoa(i), "v")
			b.add("m"+strconv.Itoa(99-i), "v")
		}
		if a.sum != b.sum || a.n != b.n {
			t.Fatal("order changed the digest")
		}
		var c unordered
		for i := 0; i < 100; i++ {
			c.add("m"+strconv.Itoa(i)+"v", "") // field/value boundary moved
		}
		if c.sum == a.sum {
			t.Fatal("field/value framing ignored")
		}
	})
	t.Run("ordered frames elements", func(t *testing.T) {
		var a, b, c ordered
		a.add("ab")
		b.add("a")
		b.add("b")
		c.add("b")
		c.add("a")
		if a.d.Sum64() == b.d.Sum64() || b.d.Sum64() == c.d.Sum64() {
			t.Fatal("framing or order ignored")
		}
	})
	t.Run("string chunks", func(t *testing.T) {
		s := strings.Repeat("0123456789", 100)
		var whole, parts ordered
		whole.raw(s)
		for i := 0; i < len(s); i += 7 {
			parts.raw(s[i:min(i+7, len(s))])
		}
		if whole.d.Sum64() != parts.d.Sum64() {
			t.Fatal("chunking changed a string digest")
		}
	})
	t.Run("type tag", func(t *testing.T) {
		if final("set", 1, 5) == final("hash", 1, 5) || final("set", 1, 5) == final("set", 2, 5) {
			t.Fatal("tag or count ignored")
		}
	})
}

func FuzzNextStreamID(f *testing.F) {
	for _, s := range []string{"0-0", "1-1", "1526919030474-55", "18446744073709551615-18446744073709551615", "5-18446744073709551615", "", "-", "1-", "x-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		next, ok, err := nextStreamID(id)
		if err != nil || !ok {
			return
		}
		// next is well formed and strictly greater.
		i, j := strings.IndexByte(id, '-'), strings.IndexByte(next, '-')
		ms, _ := strconv.ParseUint(id[:i], 10, 64)
		seq, _ := strconv.ParseUint(id[i+1:], 10, 64)
		nms, err1 := strconv.ParseUint(next[:j], 10, 64)
		nseq, err2 := strconv.ParseUint(next[j+1:], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("next %q of %q is malformed", next, id)
		}
		if !(nms > ms || (nms == ms && nseq == seq+1)) || (nms > ms && (nms != ms+1 || nseq != 0)) {
			t.Fatalf("next of %q is %q", id, next)
		}
	})
}

func FuzzParseKeyspace(f *testing.F) {
	f.Add("# Keyspace\r\ndb0:keys=12,expires=3,avg_ttl=0\r\ndb15:keys=1,expires=0,avg_ttl=0\r\n")
	f.Add("db0:keys=1")
	f.Add("db:keys=1\ndb-1:keys=2\ndb1:keys=x\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, info string) {
		for db, n := range parseKeyspace(info) {
			if db < 0 || n < 0 {
				t.Fatalf("db %d keys %d from %q", db, n, info)
			}
			if !strings.Contains(info, "db"+strconv.Itoa(db)+":") {
				t.Fatalf("db %d not in %q", db, info)
			}
		}
	})
}
