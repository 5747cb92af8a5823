package router

import (
	"strconv"
	"sync"
)

// SlotTag returns a short string whose slot (Slot, and so the slot of any
// key holding "{" + tag + "}") is slot: keys of replicaof's own that must
// live in a given slot of a Redis Cluster (a per-slot checkpoint, a
// staging key) carry it as their hash tag. The tags are the first
// decimal numbers, in increasing order, to land on each slot; the table
// is built once, on first use (about 0.2 ms), and shared.
func SlotTag(slot uint16) string {
	return slotTags()[slot&(SlotCount-1)]
}

var slotTags = sync.OnceValue(func() *[SlotCount]string {
	var t [SlotCount]string
	var buf [20]byte
	for n, found := 0, 0; found < SlotCount; n++ {
		b := strconv.AppendInt(buf[:0], int64(n), 10)
		if s := Slot(b); t[s] == "" {
			t[s] = string(b)
			found++
		}
	}
	return &t
})
