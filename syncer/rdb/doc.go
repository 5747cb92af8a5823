// Package rdb is a streaming parser for Redis RDB files (RDB versions 1 to
// 12: Redis 2.x to 8.0 and Valkey 7.2/8.0), as written to disk or sent by a
// master during a full resynchronization.
//
// A Parser reads from an io.Reader and yields one Entry at a time: *Aux,
// *SelectDB, *ResizeDB, *SlotInfo, *Function, *ModuleAux, *Key and finally
// *End, after verifying the CRC64 trailer. Entries are owned by the Parser
// and valid until the next call to Next.
//
// A *Key's value is read lazily, in one of three ways, before calling Next
// again:
//
//   - Key.Raw returns the value's bytes exactly as serialized (for RESTORE;
//     see AppendDumpPayload and Key.DumpPayload), up to
//     Options.MaxRawPayload. A larger value yields ErrRawTooLarge and can
//     still be decoded.
//   - Key.Decode hands the decoded value to a callback in bounded Chunks:
//     list elements, set members, zset members with scores, hash fields and
//     values (with field TTLs), stream entries, metadata, groups, PELs and
//     consumers, or pieces of a string.
//   - Neither: Next skips the value without buffering it.
//
// The parser never holds a whole large value: collections are walked
// element by element or one packed node (listpack, ziplist) at a time, and
// top-level strings, including LZF-compressed ones, are decoded in pieces
// of Options.ChunkBytes. Every length is checked against Options.MaxBulk
// before memory is committed, and buffers only grow as bytes arrive, so
// hostile input fails with a *ParseError (offset and quoted bytes) wrapping
// one of the ErrX sentinels; it never panics.
//
// Usage:
//
//	p := rdb.NewParser(conn, rdb.Options{})
//	for {
//		e, err := p.Next()
//		if err == io.EOF {
//			break // after *rdb.End
//		}
//		if err != nil {
//			return err
//		}
//		if k, ok := e.(*rdb.Key); ok {
//			payload, err := k.DumpPayload(nil)
//			if errors.Is(err, rdb.ErrRawTooLarge) {
//				err = k.Decode(func(c *rdb.Chunk) error { return nil /* write c */ })
//			}
//			...
//		}
//	}
//
// Format facts come from the Redis sources (src/rdb.h, src/rdb.c,
// src/listpack.c, src/ziplist.c, src/intset.h, src/zipmap.c, src/lzf_d.c,
// src/t_stream.c, src/crc64.c, src/cluster.c); comments name the file.
package rdb
