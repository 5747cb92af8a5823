package proxy

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"

	"github.com/replicaof/replicaof/router"
)

// SCAN through the proxy walks the shards one after another (shard = a
// cluster destination's group), and its cursor says where it is:
//
//	cursor = shardCursor << (b+16) | tag << b | shard
//
// b is the bits a shard index needs, shardCursor the cursor the shard's
// own SCAN returned, and tag a 16-bit digest of the topology the cursor
// is valid in: the slot map, and, once the shard's own scan has started
// (shardCursor not 0), the address of the node answering for the shard
// (its primary; a cluster group's current master). A shard's cursor means
// nothing on another node (every server hashes with its own seed), and
// slots that move between a shard already scanned and one not yet scanned
// would be missed or seen twice; so a cursor whose tag no longer matches
// (resharding, a failover of the shard being scanned, any other change of
// the slot map) is answered with errStaleCursor instead of silently
// breaking SCAN's guarantee, and the client starts again from 0. A
// failover of a shard the scan has not reached yet, or has finished,
// does not touch the cursor. The tag is never 0, so the only cursor 0 is
// the start (and the end).

const scanTagBits = 16

// errStaleCursor answers a SCAN cursor from another topology.
const errStaleCursor = "ERR SCAN cursor is from before a change of the destination (resharding or a failover of the shard it was on): start again from cursor 0"

// mapDigest caches the digest of one slot map: maps are immutable and a
// new one replaces the old by pointer.
type mapDigest struct {
	m *router.SlotMap
	h uint64
}

var lastMapDigest atomic.Pointer[mapDigest]

// digestOf is a digest of m's placement (every shard's slot ranges).
func digestOf(m *router.SlotMap) uint64 {
	if d := lastMapDigest.Load(); d != nil && d.m == m {
		return d.h
	}
	var x xxhash.Digest
	x.Reset()
	var b [8]byte
	for i := range m.Len() {
		binary.LittleEndian.PutUint32(b[:4], uint32(i))
		x.Write(b[:4])
		for _, r := range m.Ranges(i) {
			binary.LittleEndian.PutUint16(b[:2], r.Lo)
			binary.LittleEndian.PutUint16(b[2:4], r.Hi)
			x.Write(b[:4])
		}
	}
	h := x.Sum64()
	lastMapDigest.Store(&mapDigest{m: m, h: h})
	return h
}

// scanTag is the tag of a cursor on shard: the map's digest h, and, when
// the shard's scan has started, its node's address.
func scanTag(h uint64, addr string, started bool) uint64 {
	if started {
		h = xxhash.Sum64String(fmt.Sprintf("%x|%s", h, addr))
	}
	t := h & (1<<scanTagBits - 1)
	if t == 0 {
		t = 1
	}
	return t
}

// scanBits is the bits of a shard index in a cursor over n shards.
func scanBits(n int) uint { return uint(bits.Len(uint(n - 1))) }

// scanStart reads a proxy SCAN cursor against the current topology: the
// shard to scan, the shard's own cursor, and the tags to encode the next
// cursor with (scanNext), taken now, with the address the call goes to. A
// malformed or stale cursor is answered with its error message.
func (s *Server) scanStart(cur uint64) (shard int, sc uint64, tags uint32, errMsg string) {
	m := s.shards()
	digest := digestOf(m)
	b := scanBits(m.Len())
	if cur != 0 {
		shard = int(cur & (1<<b - 1))
		tag := cur >> b & (1<<scanTagBits - 1)
		sc = cur >> (b + scanTagBits)
		if shard >= m.Len() || tag == 0 {
			return 0, 0, 0, "ERR invalid cursor"
		}
		if tag != scanTag(digest, s.cfg.Destination.Addr(shard), sc != 0) {
			return 0, 0, 0, errStaleCursor
		}
	}
	same := scanTag(digest, s.cfg.Destination.Addr(shard), true) // the shard goes on
	fresh := scanTag(digest, "", false)                          // the next shard starts
	return shard, sc, uint32(same<<scanTagBits | fresh), ""
}

// scanNext encodes the cursor to return after shard answered sc, with the
// tags scanStart returned; false when sc does not fit beside the shard
// and the tag.
func (s *Server) scanNext(tags uint32, shard int, sc uint64) (uint64, bool) {
	n := s.shards().Len()
	b := scanBits(n)
	tag := uint64(tags >> scanTagBits)
	if sc == 0 {
		if shard+1 >= n {
			return 0, true
		}
		shard++
		tag = uint64(tags & (1<<scanTagBits - 1))
	} else if sc>>(64-b-scanTagBits) != 0 {
		return 0, false
	}
	return sc<<(b+scanTagBits) | tag<<b | uint64(shard), true
}
