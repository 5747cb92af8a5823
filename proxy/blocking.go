package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
)

// A blocking command (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
// BZPOPMAX, BZMPOP, XREAD BLOCK, XREADGROUP BLOCK) would stall every
// client's calls on a shared shard connection, so it runs on a connection
// of its own: dialed to its keys' shard (and the client's database) for
// that command, held by the client while it blocks, and closed after.
// Config.MaxBlocking bounds how many run at once. While it blocks, a
// watcher goroutine owned by the command waits for the client's socket:
// a client that disconnects closes the shard connection, which frees it
// at once (Redis unblocks a client that goes away).

// errMaxBlocking is the reply past Config.MaxBlocking.
func errMaxBlocking(n int) string {
	return fmt.Sprintf("ERR max number of blocked or watching clients reached (proxy.max_blocking is %d)", n)
}

// dedicated is a shard connection one client holds for one purpose
// (a blocking command, a WATCH … EXEC).
type dedicated struct {
	shard int
	db    int
	nc    net.Conn
	br    *bufio.Reader
	lim   resp.Limits
}

// dialDedicated opens a connection to shard in database db, running the
// shard's Init commands and SELECT.
func (s *Server) dialDedicated(shard, db int) (*dedicated, error) {
	cfg := s.shardConfig(shard, db)
	nc, br, err := pool.Dial(s.ctx, cfg, dedicatedBufSize)
	if err != nil {
		return nil, err
	}
	return &dedicated{shard: shard, db: db, nc: nc, br: br, lim: cfg.Limits}, nil
}

// do sends one or more raw commands and reads as many replies, appended to
// dst; wait bounds the whole exchange (0: no bound beyond the shard
// closing, the client leaving or the server stopping).
func (d *dedicated) do(dst, req []byte, n int, write, wait time.Duration) ([]byte, error) {
	_ = d.nc.SetWriteDeadline(time.Now().Add(write))
	if _, err := d.nc.Write(req); err != nil {
		return dst, err
	}
	if wait > 0 {
		_ = d.nc.SetReadDeadline(time.Now().Add(wait))
	} else {
		_ = d.nc.SetReadDeadline(time.Time{})
	}
	for i := 0; i < n; i++ {
		var err error
		if dst, err = resp.ReadReply(d.br, dst, d.lim); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// last sends req, n commands, and returns the last of their replies,
// all within timeout.
func (d *dedicated) last(req []byte, n int, timeout time.Duration) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	_ = d.nc.SetDeadline(deadline)
	if _, err := d.nc.Write(req); err != nil {
		return nil, err
	}
	var reply []byte
	for i := 0; i < n; i++ {
		var err error
		if reply, err = resp.ReadReply(d.br, reply[:0], d.lim); err != nil {
			return nil, err
		}
	}
	return reply, nil
}

func (d *dedicated) close() { d.nc.Close() }

// blockTimeout returns how long a blocking command may block by its own
// timeout argument; ok is false for "forever" (0) and for an argument
// Redis will refuse at once.
func blockTimeout(name string, args [][]byte) (time.Duration, bool) {
	var arg []byte
	ms := false
	switch name {
	case "blmpop", "bzmpop":
		if len(args) > 1 {
			arg = args[1]
		}
	case "xread", "xreadgroup":
		for i := 1; i+1 < len(args); i++ {
			if equalFold(args[i], "streams") {
				break
			}
			if equalFold(args[i], "block") {
				arg, ms = args[i+1], true
				break
			}
		}
	default: // BLPOP, BRPOP, BZPOPMIN/MAX, BRPOPLPUSH, BLMOVE: the last argument
		arg = args[len(args)-1]
	}
	f, err := strconv.ParseFloat(string(arg), 64)
	if err != nil || f <= 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	if !ms {
		f *= 1000
	}
	if f > float64(math.MaxInt64/int64(time.Millisecond)) {
		return 0, false
	}
	return time.Duration(f * float64(time.Millisecond)), true
}

// blocking runs one blocking command on a dedicated connection to its
// keys' shard. Replies planned before it are written first, as Redis
// writes them before the client blocks.
func (c *client) blocking(name string, args [][]byte, keys []int) {
	shard, err := c.s.shards().Route(args, keys)
	if err != nil {
		c.replyErr(err.Error())
		return
	}
	shard = max(shard, 0)
	if len(c.ops) > 0 {
		cur := c.cur
		c.flush()
		c.cur, c.mark = cur, 0
	}
	select {
	case c.s.blockSem <- struct{}{}:
	default:
		c.replyErr(errMaxBlocking(c.s.cfg.MaxBlocking))
		return
	}
	defer func() { <-c.s.blockSem }()
	c.s.blocked.Add(1)
	defer c.s.blocked.Add(-1)
	d, err := c.s.dialDedicated(shard, c.db)
	if err != nil {
		c.replyErr(shardErr(shard, err))
		return
	}
	defer d.close()
	stopShutdown := context.AfterFunc(c.s.ctx, d.close)
	defer stopShutdown()
	stopWatch := c.watchGone(d.close)
	wait := time.Duration(0)
	if t, ok := blockTimeout(name, args); ok {
		wait = t + c.s.cfg.Timeout
	}
	reply, err := d.do(nil, resp.AppendCommand(nil, args...), 1, c.s.cfg.Timeout, wait)
	gone := stopWatch()
	switch {
	case gone:
		c.closeNow = true
	case err != nil && c.s.ctx.Err() != nil:
		c.replyErr(shardErr(shard, pool.ErrClosed))
	case err != nil:
		c.replyErr(shardErr(shard, err))
	default:
		reply, _ = c.s.dedicatedReply(reply)
		c.replyRaw(reply)
	}
}

// watchGone watches the client's socket while its goroutine waits on a
// shard, and calls onGone if the client disconnects. The returned stop
// ends the watch, waits for the watcher and reports whether the client
// went away. A client that has sent more commands already (pipelined
// behind the blocking one) is not watched: its data cannot be told from
// a hang-up without reading it.
func (c *client) watchGone(onGone func()) (stop func() bool) {
	if c.br != nil && c.br.Buffered() > 0 {
		return func() bool { return false }
	}
	raw := c.nc
	if tc, ok := raw.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if _, ok := raw.(syscall.Conn); !ok {
		return func() bool { return false } // not a socket: nothing to peek at
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		gone bool
		done bool
	)
	c.clearReadDeadline()
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := peekByte(raw)
		mu.Lock()
		defer mu.Unlock()
		if done {
			return // stopped: the deadline woke the peek
		}
		if err == nil {
			return // more commands: not a hang-up
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return
		}
		gone = true // EOF or a socket error
		onGone()
	}()
	return func() bool {
		mu.Lock()
		done = true
		mu.Unlock()
		_ = raw.SetReadDeadline(time.Unix(1, 0)) // wake the peek
		wg.Wait()
		c.clearReadDeadline()
		mu.Lock()
		defer mu.Unlock()
		return gone
	}
}
