package router

import (
	"bytes"
	"errors"
)

// ErrCrossShard means a command's keys live on more than one destination
// shard and the command cannot be split. Its text is the error Redis
// Cluster answers for the same case.
var ErrCrossShard = errors.New("CROSSSLOT Keys in request don't hash to the same slot")

// Route returns the one shard that holds every key at the given positions,
// -1 when there are none, or ErrCrossShard.
func (m *SlotMap) Route(args [][]byte, keys []int) (int, error) {
	shard := -1
	for _, k := range keys {
		s := m.ShardOf(args[k])
		if shard >= 0 && s != shard {
			return -1, ErrCrossShard
		}
		shard = s
	}
	return shard, nil
}

// Merge says how the replies of a split command's parts combine into the
// reply the whole command would have had.
type Merge uint8

// Merge kinds.
const (
	// MergeNone: the command is not splittable.
	MergeNone Merge = iota
	// MergeArray: each part answers an array with one element per key;
	// the whole reply lists them in the original key order (MGET).
	MergeArray
	// MergeSum: each part answers an integer; the whole reply is their sum
	// (DEL, UNLINK, EXISTS, TOUCH).
	MergeSum
	// MergeOK: each part answers +OK; so does the whole (MSET).
	MergeOK
)

// splitSpec describes a command that is safe to split by key: its keys run
// from argument 1 to the end with a fixed stride, and its effect on each key
// is independent of the others.
type splitSpec struct {
	stride int // arguments per key (2 for MSET's key value pairs)
	merge  Merge
}

var splittable = map[string]splitSpec{
	"mget":   {1, MergeArray},
	"exists": {1, MergeSum},
	"touch":  {1, MergeSum},
	"del":    {1, MergeSum},
	"unlink": {1, MergeSum},
	"mset":   {2, MergeOK},
}

// Part is the share of a split command that goes to one shard.
type Part struct {
	Shard int
	// Args is the command for this shard: the original name followed by
	// this shard's keys (and values), in their original order. The slices
	// alias the original arguments.
	Args [][]byte
	// Keys holds, for each key in Args, its ordinal among the original
	// command's keys (0 for the first key): where MergeArray puts its reply.
	Keys []int
}

// Splittable reports how the command named by args[0] merges when split, or
// MergeNone. With replicated set, MSETNX counts as MSET: a master only
// propagates an MSETNX that set every key, so replaying it as MSET is exact,
// while splitting a client's MSETNX would lose its all-or-nothing check.
func Splittable(args [][]byte, replicated bool) Merge {
	if len(args) == 0 || len(args[0]) > maxNameLen {
		return MergeNone
	}
	var buf [maxNameLen]byte
	name := lower(buf[:0], args[0])
	if replicated && bytes.Equal(name, []byte("msetnx")) {
		return MergeOK
	}
	return splittable[string(name)].merge
}

// Split groups a splittable command's keys by shard. It returns parts in
// shard order, one per shard that holds a key; a command whose keys all
// live on one shard yields one part equal to the original. It returns
// MergeNone and no parts for a command that cannot be split, or whose
// arguments do not come in whole key groups (the server reports that error).
func (m *SlotMap) Split(args [][]byte, replicated bool) (Merge, []Part) {
	merge := Splittable(args, replicated)
	if merge == MergeNone {
		return MergeNone, nil
	}
	stride := 1
	if merge == MergeOK {
		stride = 2
	}
	if len(args) < 1+stride || (len(args)-1)%stride != 0 {
		return MergeNone, nil
	}
	name := args[0]
	if replicated && merge == MergeOK {
		name = []byte("MSET")
	}
	byShard := make(map[int]int, 4) // shard → index in parts
	var parts []Part
	for i, ord := 1, 0; i < len(args); i, ord = i+stride, ord+1 {
		s := m.ShardOf(args[i])
		pi, ok := byShard[s]
		if !ok {
			pi = len(parts)
			byShard[s] = pi
			parts = append(parts, Part{Shard: s, Args: [][]byte{name}})
		}
		parts[pi].Args = append(parts[pi].Args, args[i:i+stride]...)
		parts[pi].Keys = append(parts[pi].Keys, ord)
	}
	// Shard order makes the result deterministic.
	for i := 1; i < len(parts); i++ {
		for j := i; j > 0 && parts[j].Shard < parts[j-1].Shard; j-- {
			parts[j], parts[j-1] = parts[j-1], parts[j]
		}
	}
	return merge, parts
}
