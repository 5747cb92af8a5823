// Package replica is one replication link: it connects to a source Redis as
// a replica (PING, AUTH, REPLCONF, PSYNC), receives its snapshot in either
// transfer form (`$<len>` or diskless `$EOF:<mark>`), then parses its
// command stream, counting the replication offset byte for byte, and sends
// REPLCONF ACK every second and in answer to REPLCONF GETACK.
//
// What the link receives goes to a Handler, from one goroutine, in order:
// FullSync with the RDB payload as an io.Reader, or Continue after a partial
// resynchronization, then Apply with batches of commands. The link never
// writes to the destination itself.
//
// A socket reader goroutine moves bytes into a queue bounded by
// Config.MaxQueueBytes, so a slow Handler does not stop the link from
// draining the source's output buffer until that much is pending. With
// Config.SpoolDir, bytes beyond that go on into a spool file (bounded by
// Config.SpoolMaxBytes, removed when Run returns) and are read back in
// order: a source whose client-output-buffer-limit for replicas is small
// does not drop a link whose destination loads the snapshot slowly. When a
// source does drop the link during a snapshot, Run's error wraps a
// *SnapshotDroppedError (ErrSnapshotDropped) that names the setting to
// change; a supervisor counts those to stop a full-resync loop. The
// protocol work is sans-I/O: a decoder consumes the bytes after PSYNC in
// any split (reply line, payload framing with the end-mark scanner, stream
// parser and offset accountant, whose framing is resp.CommandFramer's) and
// yields events.
//
// Run runs one connection and returns the Position reached; a supervisor
// retries with backoff and resumes from it. Run's errors carry their class
// (internal/errclass: ErrAuth and ErrSpool Fatal, ErrFullResync
// FullResync, ErrProtocol Retry; a source's error reply is a resp.Error
// wrapped with the command it answered; a Handler's error is wrapped in
// ErrHandler, a boundary that makes it Fatal unless it carries a class):
//
//	link := replica.New(replica.Config{Addr: "127.0.0.1:6379", Password: pw}, applier)
//	var pos replica.Position
//	for ctx.Err() == nil {
//		var err error
//		pos, err = link.Run(ctx, pos)
//		switch errclass.Classify(err) {
//		case errclass.Fatal:
//			return err
//		case errclass.FullResync:
//			flushDestination()
//			pos = replica.Position{}
//		}
//		backoff()
//	}
package replica
