package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/tidwall/redcon"
)

// The proxy as a replication source (chaining replicaof deployments).
//
// A client that authenticated as the internal admin user (AUTH admin <pw>,
// Config.AdminPassword) may replicate one destination shard through the
// proxy:
//
//	AUTH admin <pw>
//	REPLCONF rof-shard <i>             which shard (INFO replication tells how many)
//	REPLCONF rof-compress gzip <1-9>   optional: gzip everything after PSYNC
//	PSYNC <replid> <offset> | SYNC
//
// From PSYNC on the proxy is a relay: it opens a replication connection of
// its own to shard i (AUTH from the shard's Init, REPLCONF capa eof capa
// psync2, the client's PSYNC) and copies bytes both ways, the shard's
// +FULLRESYNC/+CONTINUE reply, snapshot and command stream to the client
// (through gzip when asked, flushed after every read from the shard so a
// quiet stream is not held back), the client's REPLCONF ACKs to the shard.
// Replication ids and offsets are the shard's own, so partial resyncs work
// across reconnects as with Redis itself. Other REPLCONF options
// (listening-port, capa…) are acknowledged and not passed on.
//
// While bound to a shard by rof-shard, INFO replication is the shard's own
// (the syncer samples master_repl_offset from it to measure lag);
// unbound, it says replicaof_shards:<n>, which is how the syncer tells a
// replicaof proxy from a Redis server.
//
// DropAdmin closes every admin connection, relays included, after the
// admin password changed: the replicas then fail to authenticate with the
// old one.

// AdminUser is the user name of the internal admin password.
const AdminUser = "admin"

// Gzip levels a replica may ask for.
const (
	MinGzipLevel = 1
	MaxGzipLevel = 9
)

// relayBufSize is what one read from the shard fills before it goes to
// the client (and, compressed, before a gzip flush).
const relayBufSize = 256 << 10

// relayIdle is how long a relay waits for a byte from either side: the
// shard PINGs its replicas every 10s (newlines every second before the
// snapshot), a replicaof replica ACKs every second.
const relayIdle = 60 * time.Second

// replRequest is a PSYNC or SYNC to relay once the batch is answered.
type replRequest struct {
	shard int
	level int // gzip level, 0 for none
	args  [][]byte
}

// tlsHandshakeRecord is the first byte of a TLS ClientHello record.
const tlsHandshakeRecord = 0x16

// errAdminNeedsTLS refuses the admin user on a plain connection when TLS
// is for replication only.
const errAdminNeedsTLS = "WRONGPASS the admin user needs TLS on this proxy (proxy.tls.mode: replication): use rediss://"

// adminAllowed reports whether c's connection may log in as the admin.
func (c *session) adminAllowed() bool {
	if c.s.cfg.TLS == nil {
		return true
	}
	return c.drv.onTLS()
}

// checkAdmin compares pw with the admin password in constant time.
func (c *session) checkAdmin(pw []byte) bool {
	if c.s.cfg.AdminPassword == nil {
		return false
	}
	want := c.s.cfg.AdminPassword()
	return want != "" && subtle.ConstantTimeCompare(pw, []byte(want)) == 1
}

// becomeAdmin marks c as the admin user's, so DropAdmin closes it.
func (c *session) becomeAdmin() {
	c.authed, c.admin = true, true
	c.s.mu.Lock()
	c.s.admins[c] = struct{}{}
	c.s.mu.Unlock()
}

// DropAdmin closes every connection authenticated as the admin user,
// replication relays included, and returns how many. Call it after the
// admin password changed.
func (s *Server) DropAdmin() int {
	s.mu.Lock()
	drvs := make([]driver, 0, len(s.admins))
	for c := range s.admins {
		drvs = append(drvs, c.drv)
	}
	s.mu.Unlock()
	for _, d := range drvs {
		d.kill() // its driver notices and cleans up
	}
	return len(drvs)
}

// replconf answers REPLCONF for an admin client.
func (c *session) replconf(args [][]byte) {
	if !c.admin {
		c.replyErr(errNoPermRepl("replconf"))
		return
	}
	if len(args) < 3 || len(args)%2 == 0 && !equalFold(args[1], "rof-compress") {
		c.wrongArgs("replconf")
		return
	}
	switch {
	case equalFold(args[1], "rof-shard"):
		i, err := strconv.Atoi(string(args[2]))
		if err != nil || i < 0 || i >= c.s.shards().Len() {
			c.replyErr(fmt.Sprintf("ERR rof-shard %s: this replicaof proxy has %d shards (0-%d)",
				printable(args[2]), c.s.shards().Len(), c.s.shards().Len()-1))
			return
		}
		c.replShard = i
	case equalFold(args[1], "rof-compress"):
		if len(args) != 4 || !equalFold(args[2], "gzip") {
			c.replyErr("ERR REPLCONF rof-compress takes gzip <level 1-9>")
			return
		}
		l, err := strconv.Atoi(string(args[3]))
		if err != nil || l < MinGzipLevel || l > MaxGzipLevel {
			c.replyErr("ERR REPLCONF rof-compress: gzip level must be 1 to 9")
			return
		}
		c.replLevel = l
	default:
		// listening-port, ip-address, capa, ack…: the relay speaks for
		// itself to the shard; nothing to pass on before PSYNC.
		var nb [32]byte
		for i := 1; i < len(args); i += 2 {
			switch lowerName(nb[:0], args[i]) {
			case "listening-port", "ip-address", "capa", "ack", "getack", "rdb-only", "rdb-filter-only":
			default:
				c.replyErr("ERR Unrecognized REPLCONF option: " + printable(args[i]))
				return
			}
		}
	}
	c.replyOK()
}

func errNoPermRepl(cmd string) string {
	return "NOPERM User has no permissions to run the '" + cmd + "' command: replication needs the admin user"
}

// psync plans a PSYNC or SYNC: nothing is answered in the batch; the
// client goroutine relays once the batch is written.
func (c *session) psync(name string, args [][]byte) {
	if !c.admin {
		c.replyErr(errNoPermRepl(name))
		return
	}
	if name == "psync" && len(args) != 3 || name == "sync" && len(args) != 1 {
		c.wrongArgs(name)
		return
	}
	shard := c.replShard
	if shard < 0 {
		if c.s.shards().Len() != 1 {
			c.replyErr(fmt.Sprintf("ERR this replicaof proxy has %d shards: send REPLCONF rof-shard <0-%d> before %s",
				c.s.shards().Len(), c.s.shards().Len()-1, upper(name)))
			return
		}
		shard = 0
	}
	req := &replRequest{shard: shard, level: c.replLevel, args: make([][]byte, len(args))}
	for i, a := range args {
		req.args[i] = append([]byte(nil), a...)
	}
	c.repl = req
	c.closeNow = true // ends the batch loop; serve relays, then closes
}

// replInfo answers INFO replication for an admin client: the bound
// shard's own, or what the syncer needs to discover the proxy.
func (c *session) replInfo(args [][]byte) bool {
	if !c.admin || len(args) != 2 || !equalFold(args[1], "replication") {
		return false
	}
	if c.replShard >= 0 {
		c.forward(c.replShard, [][]byte{[]byte("INFO"), []byte("replication")})
		return true
	}
	c.replyBulk([]byte(c.replSection()))
	return true
}

// replSection is the proxy's own Replication section. The role is the
// one HELLO reports (replica unless writes are allowed).
func (c *session) replSection() string {
	role := "master"
	if !c.s.cfg.AllowWrites {
		role = "replica"
	}
	return fmt.Sprintf("# Replication\r\nrole:%s\r\nreplicaof_shards:%d\r\n\r\n", role, c.s.shards().Len())
}

// relay serves req on the client's connection until either side ends.
func (c *client) relay(req *replRequest) {
	log := c.s.log.With("client", c.id, "remote", c.nc.RemoteAddr(), "shard", req.shard)
	up, upr, err := c.dialShard(req)
	if err != nil {
		log.Warn("proxy: replication relay", "err", err)
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.Timeout))
		_, _ = c.nc.Write(redcon.AppendError(nil, "ERR "+err.Error()))
		return
	}
	defer up.Close()
	log.Info("proxy: replication relay started", "command", string(req.args[0]), "gzip", req.level)
	c.s.relays.Add(1)
	defer c.s.relays.Add(-1)

	in := io.Reader(c.nc)
	if c.br != nil && c.br.Buffered() > 0 {
		// What the client sent after PSYNC (early ACKs) is in the buffer.
		b, _ := c.br.Peek(c.br.Buffered())
		in = io.MultiReader(bytes.NewReader(bytes.Clone(b)), c.nc)
	}
	var wg sync.WaitGroup
	var upErr error
	wg.Go(func() {
		// client → shard: REPLCONF ACKs.
		upErr = copyIdle(up, c.nc, in, nil, nil)
		up.Close()
		c.nc.Close()
	})
	// shard → client: the reply to PSYNC, the snapshot, the stream.
	// gzip hands its output on in pieces of a few hundred bytes: a
	// buffer under it makes one socket write (one TLS record) per flush.
	var (
		gz *gzip.Writer
		bw *bufio.Writer
	)
	if req.level > 0 {
		bw = bufio.NewWriterSize(c.nc, 64<<10)
		gz, _ = gzip.NewWriterLevel(bw, req.level) // level checked by REPLCONF
	}
	downErr := copyIdle(c.nc, up, upr, gz, bw)
	c.nc.Close()
	up.Close()
	wg.Wait()
	log.Info("proxy: replication relay ended", "shard_side", errString(downErr), "client_side", errString(upErr))
}

func errString(err error) string {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return "closed"
	}
	return err.Error()
}

// copyIdle copies src (reading from rd, which reads src's connection) to
// dst until either fails or rd is silent for relayIdle. With gz (writing
// to bw, which writes to dst), what it copies is compressed and flushed
// after every read.
func copyIdle(dst, src net.Conn, rd io.Reader, gz *gzip.Writer, bw *bufio.Writer) error {
	buf := make([]byte, relayBufSize)
	var w io.Writer = dst
	if gz != nil {
		w = gz
	}
	for {
		_ = src.SetReadDeadline(time.Now().Add(relayIdle))
		n, err := rd.Read(buf)
		if n > 0 {
			_ = dst.SetWriteDeadline(time.Now().Add(relayIdle))
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if gz != nil {
				if werr := gz.Flush(); werr != nil {
					return werr
				}
				if werr := bw.Flush(); werr != nil {
					return werr
				}
			}
		}
		if err != nil {
			return err
		}
	}
}

// dialShard opens a replication connection to the request's shard and
// sends the handshake and the client's PSYNC; the shard's reply to PSYNC
// is left unread in the returned reader.
func (c *client) dialShard(req *replRequest) (net.Conn, *bufio.Reader, error) {
	sh := c.s.shardConfig(req.shard, 0)
	// Init (AUTH…), then capa: one reply each, errors refuse the relay.
	sh.DialTimeout, sh.ReadTimeout = c.s.cfg.Timeout, c.s.cfg.Timeout
	sh.Init = resp.AppendCommandString(append([]byte(nil), sh.Init...), "REPLCONF", "capa", "eof", "capa", "psync2")
	sh.Limits = resp.Limits{}
	up, br, err := pool.Dial(c.s.ctx, sh, relayBufSize)
	if ie := (*pool.InitError)(nil); errors.As(err, &ie) {
		return nil, nil, fmt.Errorf("shard %d: %v", req.shard, ie.Reply)
	} else if err != nil {
		return nil, nil, fmt.Errorf("shard %d unavailable: %v", req.shard, err)
	}
	fail := func(err error) (net.Conn, *bufio.Reader, error) {
		up.Close()
		return nil, nil, fmt.Errorf("shard %d: %v", req.shard, err)
	}
	_ = up.SetWriteDeadline(time.Now().Add(c.s.cfg.Timeout))
	if _, err := up.Write(resp.AppendCommand(nil, req.args...)); err != nil {
		return fail(err)
	}
	_ = up.SetWriteDeadline(time.Time{})
	return up, br, nil
}
