// Command compressbench measures what gzip buys when one replicaof
// deployment replicates another (chaining, issue #7; make bench-compress).
// Everything runs in this process or as redis-server children on
// 127.0.0.1, and is stopped at the end:
//
//	source redis-server ──PSYNC──▶ deployment A (syncer → A's shards, A's proxy)
//	A's proxy ──PSYNC per A shard, gzip level N──▶ [throttle] ──▶ deployment B (syncer → B's shards)
//
// The steps:
//
//  1. load SIZE bytes of JSON-like records (repeated field names, words
//     from a small vocabulary, numbers) into the source, pipelined;
//  2. sync A from it and start A's proxy with an admin password;
//  3. for every link rate (-limit; 0 is plain loopback, otherwise a token
//     bucket relay of this program's own on the A→B direction) and every
//     gzip level (-levels; 0 is off), run a fresh supervisor for B with
//     A's proxy as its one source and time its full sync (start → status
//     synced); record the bytes on the wire and received
//     (syncer.SourceStatus.WireBytes, BytesReceived), the process CPU time
//     and peak RSS of the run, and check that B holds exactly the source's
//     keys (B's own __replicaof: keys aside);
//  4. print a table with every time as a ratio of level 0 on the same link.
//
// Usage:
//
//	go run ./bench/compress -size 1GiB -levels 0,1,6 -limit 0,200mbit [-tls]
package main
