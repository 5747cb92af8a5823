// Package resp frames and encodes the Redis serialization protocol (RESP2,
// plus the RESP3 reply types a server may send) without decoding more than
// it must.
//
// The hot paths work on raw bytes: ReadReply copies one complete reply, of
// any type and nesting, from a *bufio.Reader into a caller-owned buffer so a
// proxy can forward it untouched; ReadCommand reads one client or
// replication-stream command (a multi-bulk array, or an inline line) and
// reports how many bytes it took, which is what replication offsets count.
// AppendXxx encoders append to a []byte and never fail.
//
// The same framing works sans-I/O, on bytes already received: CommandLen
// and ReplyLen say where the command or reply a buffer starts with ends
// (or that it is incomplete), with the checks ReadCommand and ReadReply
// make; a CommandFramer frames a command stream fed in pieces of any
// size, resuming where it stopped, and hands out each command's arguments
// as views of the caller's bytes (the replication stream parser);
// AggregateHeader and BulkBody look into replies framed already. Fuzz
// targets hold each sans-I/O framer to its reader's answers.
//
// Every length read from the wire is checked against Limits before anything
// is allocated, so hostile input yields a *ProtocolError, never a panic or an
// unbounded allocation.
//
//	r := bufio.NewReader(conn)
//	buf, err := resp.ReadReply(r, buf[:0], resp.DefaultLimits)
//	if err != nil { ... }
//	client.Write(buf) // the reply exactly as the server sent it
package resp
