package router

import (
	"fmt"
	"math"
)

// ShardMap places slots on N standalone shards, each owning one contiguous
// slot range, split evenly the way `redis-cli --cluster create` splits a
// fresh cluster of N masters (3 shards: 0-5460, 5461-10922, 10923-16383). The zero value is not usable;
// build one with NewShardMap. A ShardMap is immutable and safe for
// concurrent use.
type ShardMap struct {
	n     int
	first []uint16 // first slot of each shard, ascending
	owner [SlotCount]uint16
}

// MaxShards bounds the destination size; one shard per slot is the limit.
const MaxShards = SlotCount

// NewShardMap splits the slots evenly over n shards.
func NewShardMap(n int) (*ShardMap, error) {
	if n < 1 || n > MaxShards {
		return nil, fmt.Errorf("router: shard count %d out of range 1..%d", n, MaxShards)
	}
	m := &ShardMap{n: n, first: make([]uint16, n)}
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
		m.first[i] = uint16(lo)
		for s := lo; s < hi; s++ {
			m.owner[s] = uint16(i)
		}
		lo = hi
		cursor += per
	}
	return m, nil
}

// Len is the number of shards.
func (m *ShardMap) Len() int { return m.n }

// ShardOfSlot returns the shard that owns slot.
func (m *ShardMap) ShardOfSlot(slot uint16) int { return int(m.owner[slot&(SlotCount-1)]) }

// ShardOf returns the shard that owns key: the one placement function the
// proxy and the syncer share.
func (m *ShardMap) ShardOf(key []byte) int { return int(m.owner[Slot(key)]) }

// Range returns the slots shard i owns, [lo, hi).
func (m *ShardMap) Range(i int) (lo, hi int) {
	lo = int(m.first[i])
	if i+1 < m.n {
		return lo, int(m.first[i+1])
	}
	return lo, SlotCount
}
