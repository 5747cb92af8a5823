package router

import (
	"fmt"
	"testing"
)

func TestCRC16(t *testing.T) {
	if got := CRC16([]byte("123456789")); got != 0x31C3 {
		t.Fatalf("CRC16(123456789) = %#x, want 0x31c3", got)
	}
}

func TestSlot(t *testing.T) {
	cases := []struct {
		key  string
		hash string // what must be hashed
	}{
		{"foo", "foo"},
		{"{user1000}.following", "user1000"},
		{"{user1000}.followers", "user1000"},
		{"foo{}{bar}", "foo{}{bar}"},
		{"foo{{bar}}zap", "{bar"},
		{"foo{bar}{zap}", "bar"},
		{"{}", "{}"},
		{"{", "{"},
		{"}{", "}{"},
		{"a{b", "a{b"},
		{"a{b}", "b"},
		{"", ""},
		{"{a}{b}", "a"},
		{"x}{y}", "y"},
	}
	for _, c := range cases {
		t.Run(c.key, func(t *testing.T) {
			if got := string(HashTag([]byte(c.key))); got != c.hash {
				t.Fatalf("HashTag(%q) = %q, want %q", c.key, got, c.hash)
			}
			if Slot([]byte(c.key)) != CRC16([]byte(c.hash))%SlotCount {
				t.Fatalf("Slot(%q) does not hash %q", c.key, c.hash)
			}
		})
	}
	if s := Slot([]byte("foo")); s != 12182 {
		t.Fatalf("Slot(foo) = %d, want 12182", s)
	}
	if Slot([]byte("{user1000}.following")) != Slot([]byte("{user1000}.followers")) {
		t.Fatal("hash-tagged keys do not share a slot")
	}
	// Known slots from redis-cli CLUSTER KEYSLOT.
	for key, want := range map[string]uint16{"bar": 5061, "hello": 866, "{bar}x": 5061, "somekey": 11058} {
		if got := Slot([]byte(key)); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestShardMap(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 7, 16, 16384} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			m, err := NewShardMap(n)
			if err != nil {
				t.Fatal(err)
			}
			prev := 0
			for i := 0; i < n; i++ {
				lo, hi := m.Range(i)
				if lo != prev || hi <= lo {
					t.Fatalf("shard %d range [%d,%d) after %d", i, lo, hi, prev)
				}
				if size := hi - lo; size < SlotCount/n || size > SlotCount/n+1 {
					t.Fatalf("shard %d owns %d slots: uneven", i, size)
				}
				for s := lo; s < hi; s++ {
					if m.ShardOfSlot(uint16(s)) != i {
						t.Fatalf("slot %d owner %d, want %d", s, m.ShardOfSlot(uint16(s)), i)
					}
				}
				prev = hi
			}
			if prev != SlotCount {
				t.Fatalf("ranges end at %d", prev)
			}
		})
	}
	// A 3-shard map splits like redis-cli --cluster create: 0-5460, 5461-10922, 10923-16383.
	m, _ := NewShardMap(3)
	for i, want := range [][2]int{{0, 5461}, {5461, 10923}, {10923, 16384}} {
		if lo, hi := m.Range(i); lo != want[0] || hi != want[1] {
			t.Errorf("shard %d: [%d,%d), want %v", i, lo, hi, want)
		}
	}
	if _, err := NewShardMap(0); err == nil {
		t.Fatal("NewShardMap(0) succeeded")
	}
}

func BenchmarkSlot(b *testing.B) {
	key := []byte("user:1000:profile:settings")
	b.SetBytes(int64(len(key)))
	b.ReportAllocs()
	var s uint16
	for i := 0; i < b.N; i++ {
		s ^= Slot(key)
	}
	_ = s
}

func BenchmarkShardOf(b *testing.B) {
	m, _ := NewShardMap(3)
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("key:%d", i))
	}
	b.ReportAllocs()
	var s int
	for i := 0; i < b.N; i++ {
		s ^= m.ShardOf(keys[i&1023])
	}
	_ = s
}
