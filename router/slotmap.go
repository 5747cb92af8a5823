package router

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// SlotRange is a contiguous run of hash slots, Lo to Hi inclusive, as
// Redis Cluster writes them (CLUSTER SLOTS, CLUSTER SHARDS, "0-5460").
type SlotRange struct {
	Lo, Hi uint16
}

// Len is the number of slots in r.
func (r SlotRange) Len() int { return int(r.Hi) - int(r.Lo) + 1 }

// Contains reports whether slot is in r.
func (r SlotRange) Contains(slot uint16) bool { return r.Lo <= slot && slot <= r.Hi }

// String writes r as "lo-hi".
func (r SlotRange) String() string {
	return strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}

// ParseSlotRange reads "lo-hi" (or a single slot "n").
func ParseSlotRange(s string) (SlotRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		hi = lo
	}
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil || a < 0 || b < a || b >= SlotCount {
		return SlotRange{}, fmt.Errorf("router: bad slot range %q", s)
	}
	return SlotRange{Lo: uint16(a), Hi: uint16(b)}, nil
}

// FormatSlotRanges writes rs as "lo-hi,lo-hi".
func FormatSlotRanges(rs []SlotRange) string {
	var sb strings.Builder
	for i, r := range rs {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(r.String())
	}
	return sb.String()
}

// ParseSlotRanges reads what FormatSlotRanges writes.
func ParseSlotRanges(s string) ([]SlotRange, error) {
	var rs []SlotRange
	for f := range strings.SplitSeq(s, ",") {
		r, err := ParseSlotRange(f)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// SlotsContain reports whether slot is in one of rs.
func SlotsContain(rs []SlotRange, slot uint16) bool {
	for _, r := range rs {
		if r.Contains(slot) {
			return true
		}
	}
	return false
}

// MaxShards bounds the destination size; one shard per slot is the limit.
const MaxShards = SlotCount

// SlotMap places every hash slot on one of N shards (the destination's
// primaries, numbered 0..N-1). It is immutable and safe for concurrent use;
// a destination whose layout changes swaps in a new SlotMap. Build one
// with EvenSlotMap or NewSlotMap.
type SlotMap struct {
	ranges [][]SlotRange // by shard, ascending
	owner  [SlotCount]uint16
}

// NewSlotMap builds the map in which shard i owns ranges[i]. Every slot
// must be owned by exactly one shard.
func NewSlotMap(ranges [][]SlotRange) (*SlotMap, error) {
	n := len(ranges)
	if n < 1 || n > MaxShards {
		return nil, fmt.Errorf("router: shard count %d out of range 1..%d", n, MaxShards)
	}
	m := &SlotMap{ranges: make([][]SlotRange, n)}
	var seen [SlotCount]bool
	covered := 0
	for i, rs := range ranges {
		for _, r := range rs {
			if r.Hi < r.Lo || int(r.Hi) >= SlotCount {
				return nil, fmt.Errorf("router: shard %d: bad slot range %s", i, r)
			}
			for s := int(r.Lo); s <= int(r.Hi); s++ {
				if seen[s] {
					return nil, fmt.Errorf("router: slot %d owned twice", s)
				}
				seen[s] = true
				m.owner[s] = uint16(i)
			}
			covered += r.Len()
		}
		m.ranges[i] = append([]SlotRange(nil), rs...)
		slices.SortFunc(m.ranges[i], func(a, b SlotRange) int { return int(a.Lo) - int(b.Lo) })
	}
	if covered != SlotCount {
		return nil, errors.New("router: slot map covers " + strconv.Itoa(covered) + " of 16384 slots")
	}
	return m, nil
}

// EvenSlotMap splits the slots evenly over n shards, one contiguous range
// each, the way `redis-cli --cluster create` splits a fresh cluster of n
// masters (3 shards: 0-5460, 5461-10922, 10923-16383).
func EvenSlotMap(n int) (*SlotMap, error) {
	if n < 1 || n > MaxShards {
		return nil, fmt.Errorf("router: shard count %d out of range 1..%d", n, MaxShards)
	}
	ranges := make([][]SlotRange, n)
	// The split rounds a float32 cursor like clusterManagerCommandCreate in
	// src/redis-cli.c, so our ranges equal a real cluster's.
	per := float32(SlotCount) / float32(n)
	var cursor float32
	lo := 0
	for i := 0; i < n; i++ {
		hi := int(math.Round(float64(cursor+per-1))) + 1
		if i == n-1 || hi > SlotCount {
			hi = SlotCount
		}
		if hi <= lo {
			hi = lo + 1
		}
		ranges[i] = []SlotRange{{Lo: uint16(lo), Hi: uint16(hi - 1)}}
		lo = hi
		cursor += per
	}
	return NewSlotMap(ranges)
}

// Len is the number of shards.
func (m *SlotMap) Len() int { return len(m.ranges) }

// ShardOfSlot returns the shard that owns slot.
func (m *SlotMap) ShardOfSlot(slot uint16) int { return int(m.owner[slot&(SlotCount-1)]) }

// ShardOf returns the shard that owns key: the one placement function the
// proxy and the syncer share.
func (m *SlotMap) ShardOf(key []byte) int { return int(m.owner[Slot(key)]) }

// Ranges returns the slot ranges shard i owns, ascending. The slice is
// the map's own: do not modify it.
func (m *SlotMap) Ranges(i int) []SlotRange { return m.ranges[i] }
