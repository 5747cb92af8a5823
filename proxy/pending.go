package proxy

import (
	"errors"
	"net"
)

// Replies pending for a client on the goroutine driver.
//
// The goroutine driver writes a batch's replies before it reads the
// client's next commands, so what waits for a client is one batch's
// replies, held from the shards' answers until the write returns; a
// client that reads nothing is not read either. Three things bound them:
//
//   - A pipelined batch is cut where its replies are expected to reach
//     Config.MaxPending: the expected size of a reply is the client's
//     bytes per reply over its last batch (or half the estimate before,
//     when that is larger, so a client whose replies shrank is trusted
//     gradually). A client's first batch assumes MaxPending/slowStartOps
//     per reply, so it is at most slowStartOps commands. A batch has at
//     least one command.
//   - A batch of several commands whose replies, once the shards
//     answered, pass Config.MaxPendingHard (replies grew suddenly past
//     the estimate) is written if the client took every earlier reply;
//     if earlier replies still wait in its socket (SIOCOUTQ, Linux: it
//     is not reading), it is not written: the client is closed with a
//     log line and counted (INFO stats
//     client_output_buffer_limit_disconnections). A single command's
//     reply is always written, whatever its size (the shards' reply
//     limit, pool.Config.Limits.MaxReply, bounds it).
//   - Replies are written in chunks of writeChunk, each with the write
//     deadline moved on, so a client that reads slowly keeps its
//     connection while one that takes nothing for Config.Timeout is
//     closed (with a log line).

const (
	// slowStartOps bounds a client's first batch, whose reply sizes are
	// not known yet.
	slowStartOps = 64
	// writeChunk is the most written to a client per write call.
	writeChunk = 256 << 10
)

// batchFull reports whether the batch planned so far is expected to hold
// MaxPending bytes of replies: the batch ends there.
func (c *client) batchFull() bool {
	per := c.perReply
	if per == 0 {
		per = max(c.s.cfg.MaxPending/slowStartOps, 1)
	}
	return int64(len(c.ops))*per >= c.s.cfg.MaxPending
}

// learn updates the client's bytes-per-reply estimate from a batch that
// rendered out bytes for its ops.
func (c *client) learn(out, ops int) {
	if ops == 0 {
		return
	}
	c.perReply = max(int64(out/ops)+1, c.perReply/2)
}

// pendingBytes is what the batch's replies take now that the executor
// has run it: the shards' replies and the local ones.
func (c *client) pendingBytes() int64 {
	n := int64(len(c.local))
	for _, cl := range c.calls[:c.ncalls] {
		n += int64(len(cl.Reply))
	}
	return n
}

// overPending closes the client, with a log line, when the batch just
// run holds more than MaxPendingHard bytes of replies for more than one
// command while earlier replies still wait in its socket (it is not
// reading them), and reports whether it did. Call with wmu held.
func (c *client) overPending() bool {
	if len(c.ops) < 2 {
		return false
	}
	n := c.pendingBytes()
	if n <= c.s.cfg.MaxPendingHard {
		return false
	}
	unsent, ok := unsentBytes(c.nc)
	if !ok || unsent == 0 {
		return false // it took every earlier reply: it gets these too
	}
	c.s.closedOverPending(c.id, c.nc.RemoteAddr(), n+int64(unsent))
	c.closeNow = true
	c.nc.Close()
	return true
}

// closedOverPending logs and counts a client closed for holding more
// than MaxPendingHard bytes of replies (pending, when known; else 0).
func (s *Server) closedOverPending(id int64, remote net.Addr, pending int64) {
	s.overPending.Add(1)
	s.log.Warn("proxy: client closed: replies waiting for it over the hard limit",
		"client", id, "remote", remote, "pending_bytes", pending, "limit_bytes", s.cfg.MaxPendingHard)
}

// writeOut writes b to the client in chunks of writeChunk, moving the
// write deadline on as long as the client takes them. A failed write
// closes the client; one that timed out (the client took nothing for
// Timeout) is logged. Call with wmu held.
func (c *client) writeOut(b []byte) {
	for len(b) > 0 {
		n := min(len(b), writeChunk)
		c.armWrite()
		if _, err := c.nc.Write(b[:n]); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.s.log.Info("proxy: client closed: it took no reply within the timeout",
					"client", c.id, "remote", c.nc.RemoteAddr(), "timeout", c.s.cfg.Timeout)
			}
			c.closeNow = true
			c.nc.Close()
			return
		}
		b = b[n:]
	}
}
