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

func TestEvenSlotMap(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 7, 16, 16384} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			m, err := EvenSlotMap(n)
			if err != nil {
				t.Fatal(err)
			}
			prev := 0
			for i := 0; i < n; i++ {
				rs := m.Ranges(i)
				if len(rs) != 1 {
					t.Fatalf("shard %d has %d ranges", i, len(rs))
				}
				lo, hi := int(rs[0].Lo), int(rs[0].Hi)+1
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
	m, _ := EvenSlotMap(3)
	for i, want := range []string{"0-5460", "5461-10922", "10923-16383"} {
		if got := FormatSlotRanges(m.Ranges(i)); got != want {
			t.Errorf("shard %d: %s, want %s", i, got, want)
		}
	}
	if _, err := EvenSlotMap(0); err == nil {
		t.Fatal("EvenSlotMap(0) succeeded")
	}
}

func TestNewSlotMap(t *testing.T) {
	rs := func(s string) []SlotRange {
		r, err := ParseSlotRanges(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	m, err := NewSlotMap([][]SlotRange{rs("100-16383,0-9"), rs("10-99")})
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 2 || m.ShardOfSlot(5) != 0 || m.ShardOfSlot(10) != 1 || m.ShardOfSlot(99) != 1 || m.ShardOfSlot(100) != 0 {
		t.Fatalf("wrong owners: %d %d %d %d", m.ShardOfSlot(5), m.ShardOfSlot(10), m.ShardOfSlot(99), m.ShardOfSlot(100))
	}
	if got := FormatSlotRanges(m.Ranges(0)); got != "0-9,100-16383" {
		t.Fatalf("ranges of shard 0: %s", got)
	}
	for _, bad := range [][][]SlotRange{
		nil,
		{rs("0-16382")},                   // a slot unowned
		{rs("0-16383"), rs("5-5")},        // a slot owned twice
		{{{Lo: 5, Hi: 4}}, rs("0-16383")}, // backwards
	} {
		if _, err := NewSlotMap(bad); err == nil {
			t.Errorf("NewSlotMap(%v) succeeded", bad)
		}
	}
	for _, bad := range []string{"", "a-b", "5-4", "0-16384", "-1-3"} {
		if _, err := ParseSlotRange(bad); err == nil {
			t.Errorf("ParseSlotRange(%q) succeeded", bad)
		}
	}
	if r, err := ParseSlotRange("7"); err != nil || r != (SlotRange{7, 7}) || !r.Contains(7) || r.Contains(8) || r.Len() != 1 {
		t.Fatalf("ParseSlotRange(7) = %v, %v", r, err)
	}
	if !SlotsContain(rs("0-9,20-29"), 25) || SlotsContain(rs("0-9,20-29"), 15) {
		t.Fatal("SlotsContain")
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
	m, _ := EvenSlotMap(3)
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

// FuzzParseSlotRanges: what parses is in range, formats back to itself
// and round-trips.
func FuzzParseSlotRanges(f *testing.F) {
	for _, s := range []string{"0-5460", "5461-10922,10923-16383", "7", "0-16383", "5-4", "a-b", "", ",", "-1-3", "16384", "1-2-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseSlotRanges(s)
		if err != nil {
			return
		}
		for _, r := range rs {
			if r.Hi < r.Lo || int(r.Hi) >= SlotCount || !r.Contains(r.Lo) || !r.Contains(r.Hi) {
				t.Fatalf("%q: bad range %v", s, r)
			}
		}
		again, err := ParseSlotRanges(FormatSlotRanges(rs))
		if err != nil || FormatSlotRanges(again) != FormatSlotRanges(rs) {
			t.Fatalf("%q: %v does not round-trip (%v, %v)", s, rs, again, err)
		}
	})
}
