// Package apply turns one source's replication data into writes on the
// sharded destination (package destination, shared with the proxy and
// verify), placed by its slot map: the RDB snapshot of a full
// resynchronization (LoadSnapshot) and then the command stream (Apply).
//
// FlushAll empties every shard before the sources load (with the lease's
// keys kept, fence.go); Checkpoints reads the checkpoints back;
// destination.Info tells each shard's version, hence the highest RDB
// version its RESTORE accepts (Redis < 7.0: 9, 7.0: 10, 7.2: 11, 7.4 and
// 8.0: 12, Valkey 7.2/8.0: 11; any other version is probed with a
// throwaway RESTORE).
//
// An Applier writes one source and implements replica.Handler:
//
//   - Snapshot: small strings without TTL (at most 1 KiB encoded) are
//     batched per shard into MSETs of up to 128 keys (a small key's cost
//     on the shard is mostly per command); any other key goes to the
//     shard of its slot as
//     RESTORE key ttl payload REPLACE ABSTTL when that shard accepts the
//     file's RDB version, else (or with Options.ForceDecode, or for values
//     over RDB.MaxRawPayload) it is rebuilt from decoded chunks with
//     ordinary commands: DEL, then SET/APPEND, RPUSH, SADD, ZADD, HSET
//     (+HPEXPIREAT per field TTL where the shard has them; otherwise the
//     TTLs are counted in Stats.SkippedFieldTTLs), XADD + XSETID +
//     XGROUP CREATE/CREATECONSUMER + XCLAIM for streams, then PEXPIREAT.
//     Keys are pipelined per shard, Options.Inflight pipelines of up to
//     BatchCalls commands / BatchBytes bytes in flight per shard; the
//     commands of one big value keep their order across pipelines, so a
//     512 MB list streams through in bounded chunks. Function libraries are
//     loaded on every shard (FUNCTION LOAD REPLACE).
//   - Stream: see Apply. SELECT is tracked; MULTI/EXEC blocks stay atomic
//     per shard; multi-key commands that split (MSET, DEL, ...) are split;
//     keyless commands go to every shard. Anything else spanning shards
//     (RENAME, SMOVE, LMOVE, SUNIONSTORE, a block holding one, ...) is
//     emulated through a staging shard (xshard.go: its keys copied there
//     under internal names, the command run there, each written key
//     written back to its home shard, exactly once across crashes), or,
//     with Options.CrossShard = CrossShardStop or when it cannot be
//     emulated (*EmulateError), a *CrossSlotError that stops the stream.
//   - Checkpoints (Options.Checkpoint, checkpoint.go): each Apply sends
//     one MULTI … EXEC per shard holding its commands (the stream's own
//     blocks flattened in, databases switched inline) and the source's
//     checkpoint "<fingerprint> <replid> <offset>" in db 0; a snapshot
//     writes it on every shard once loaded. Continue re-reads the
//     checkpoints and commands a shard already holds are not sent to it
//     again: exactly once across reconnects and crashes. Probe (run_id,
//     marker key) and ErrCheckpointLost tell a shard that lost its data.
//
// Redis Cluster destinations (cluster.go): when the Destination is a
// cluster (destination.Open, Destination.Cluster), shard i is group i (a
// master and its replicas; the master changes with failovers) and the
// unit of a stream transaction and of a checkpoint is the hash slot, as
// Redis refuses a MULTI … EXEC over keys of two slots even on one node:
// one MULTI … EXEC per touched slot carrying the slot's checkpoint
// "<key>{router.SlotTag(slot)}", the transactions of a group pipelined
// together; split commands split by slot; cross-slot commands emulated
// through a staging slot. MOVED is followed (Destination.Moved, then sent
// again), ASK gets ASKING only for single commands outside transactions,
// a transaction refused with ASK, TRYAGAIN or CLUSTERDOWN (nothing
// applied) is sent again with backoff to the slot's owner. Snapshot
// small strings go as SET (an MSET would span slots). Only db 0 exists:
// Options.DBMap maps other databases to 0 or drops them, otherwise a
// *DBError stops sync. A source's FLUSHALL/FLUSHDB ends the run with
// ErrClusterFlush (a full resync of every source). After a failover
// Continue re-reads every slot's checkpoint: a slot that went back (a
// master killed with kill -9 lost acknowledged writes) lowers its held
// offset, and a *RewindError makes the link resume from it.
// Stats.Moved and Stats.Retried count what was sent again.
//
// TTLs (ttl.go): with Options.TTLGrace every TTL written, snapshot and
// stream alike, is the source's plus the grace, so the destination never
// drops a key before the source's DEL for it arrives (a native replica
// never expires keys itself); the proxy takes the grace off TTL reads.
//
// Keys the destination cannot take (unsupported.go): a module value whose
// module a shard lacks stops sync with an *UnsupportedKeyError naming the
// key and its type, or, with Options.SkipUnsupported, is left out,
// counted per type (Stats.Unsupported) and remembered (bounded by
// MaxSkippedKeys) so that the stream's commands on it are dropped
// (Stats.DroppedCommands).
//
// Errors carry their class (internal/errclass): *CrossSlotError and
// *EmulateError (both wrap router.ErrCrossShard), *WriteError (ErrRejected,
// ErrOOM; it wraps the shard's reply as a resp.Error), ErrUnsupported
// (*UnsupportedKeyError among them) and ErrTooLarge are Fatal
// (errclass.IsFatal): sync must stop. Errors wrapping pool.ErrShardDown
// are retryable; ErrCheckpointLost (FullResync) needs a flush and full
// resync of every source. ErrFenced means this instance no longer holds
// the destination's lease (destination.Destination.SetFence; RaiseFence
// and the transaction guard are in fence.go): nothing was written.
//
// Usage:
//
//	dest, err := destination.New(destination.Config{
//		Shards: []destination.Shard{{Addr: "127.0.0.1:7001"}, {Addr: "127.0.0.1:7002"}},
//	})
//	if err != nil { ... }
//	defer dest.Close()
//	if err := apply.FlushAll(ctx, dest); err != nil { ... }
//	a := apply.New(dest, apply.Options{Source: "orders"})
//	// a is the link's replica.Handler: FullSync loads the snapshot,
//	// Apply writes the stream.
//	link := replica.New(replica.Config{...}, a)
package apply
