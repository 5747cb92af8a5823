package router

import "testing"

func TestSlotTagEverySlot(t *testing.T) {
	longest := 0
	for s := 0; s < SlotCount; s++ {
		tag := SlotTag(uint16(s))
		if tag == "" {
			t.Fatalf("slot %d: empty tag", s)
		}
		if got := Slot([]byte(tag)); got != uint16(s) {
			t.Fatalf("SlotTag(%d) = %q, whose slot is %d", s, tag, got)
		}
		if got := Slot([]byte("__replicaof:ckpt:abc{" + tag + "}")); got != uint16(s) {
			t.Fatalf("key tagged {%s} lands on slot %d, want %d", tag, got, s)
		}
		longest = max(longest, len(tag))
	}
	if longest > 6 {
		t.Errorf("longest tag has %d bytes, want short tags", longest)
	}
}

func BenchmarkSlotTag(b *testing.B) {
	for i := 0; i < b.N; i++ {
		_ = SlotTag(uint16(i))
	}
}
