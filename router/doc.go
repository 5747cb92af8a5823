// Package router places keys on the destination's shards; the syncer, the
// proxy and verify all place keys with it, so reads and replicated writes
// agree.
//
// Placement: Slot is CRC16-XMODEM of the key (or of its {hash tag}) mod
// 16384, as Redis Cluster computes it. A SlotRange is a run of slots, lo
// to hi inclusive, written "lo-hi" as CLUSTER SLOTS does; it is the one
// way slot ranges are held anywhere in replicaof. A SlotMap is an
// immutable slot → shard table; EvenSlotMap gives each of N standalone
// shards one contiguous range, split the way `redis-cli --cluster create`
// splits N masters (3 shards: 0-5460, 5461-10922, 10923-16383), and
// NewSlotMap takes any ranges that cover every slot once. SlotTag(s) is
// a short hash tag whose slot is s (tags.go), for internal keys that must
// live in a given slot of a Redis Cluster destination.
//
// Commands: a Table says, per command, which arguments are keys, whether it
// writes, and its flags. Builtin is generated from a real server's COMMAND
// reply (internal/cmdgen, `make generate`); ParseCommandInfo and
// Table.Merge add a destination's own table at run time. Route finds the
// one shard of a command's keys (ErrCrossShard otherwise); Split groups
// MGET, MSET, DEL, UNLINK, EXISTS and TOUCH by shard and says how their
// replies merge.
//
// The package is pure placement: it opens no connection and imports no
// network package. Connections are package pool's; the live map of a
// running destination is package destination's.
//
//	m, err := router.EvenSlotMap(3)
//	if err != nil { ... }
//	shard := m.ShardOf([]byte("k")) // which shard's pool to ask
package router
