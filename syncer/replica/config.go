package replica

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/replicaof/replicaof/resp"
)

// Config describes one replication link. The zero value of every field but
// Addr means the default documented on it.
type Config struct {
	// Addr is the source's host:port.
	Addr string
	// Username and Password authenticate to the source: AUTH <password>
	// when Username is empty, AUTH <username> <password> (an ACL user)
	// otherwise. An empty Password sends no AUTH.
	Username, Password string
	// Dial opens the connection, e.g. a TLS dialer. nil means a net.Dialer.
	// Its context carries DialTimeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Handshake holds more commands sent after REPLCONF capa and before
	// PSYNC, each expecting a non-error reply; an error reply ends the Run
	// (wrapping the resp.Error, and ErrAuth when resp.Error.Auth). The supervisor
	// uses it with a replicaof proxy as the source: REPLCONF rof-shard to
	// pick the shard, REPLCONF rof-compress to ask for gzip.
	Handshake [][]string
	// Gzip means everything the source sends after PSYNC is one gzip
	// stream (asked for in Handshake).
	Gzip bool
	// ListeningPort is what REPLCONF listening-port tells the source (it
	// shows in the source's INFO replication; nothing listens there).
	// 0 means the local port of the link's connection.
	ListeningPort int
	// DialTimeout bounds dialing. Default 10s.
	DialTimeout time.Duration
	// ReadTimeout is how long the link waits for any byte from the source
	// before giving up (sources PING every 10s and send a newline every
	// second while preparing a snapshot). Default 60s.
	ReadTimeout time.Duration
	// WriteTimeout bounds each write to the source. Default 10s.
	WriteTimeout time.Duration
	// AckInterval is the period of REPLCONF ACK (and of newline keepalives
	// before the stream starts). Default 1s, what Redis replicas do.
	AckInterval time.Duration
	// MaxQueueBytes bounds the bytes read from the source but not yet
	// consumed by the Handler that are kept in memory. When the Handler
	// falls behind by that much, the link goes on into the spool (with
	// SpoolDir) or stops reading. Default 64 MiB.
	MaxQueueBytes int64
	// SpoolDir, when set, is where each Run keeps a spool file: once
	// MaxQueueBytes are pending in memory, further bytes from the source
	// (snapshot and stream alike) are appended to it instead of leaving
	// them in the source's output buffer, whose limit (the source's
	// client-output-buffer-limit replica) would make the source drop the
	// link; they are read back in order. The directory is created if
	// missing; the file is removed when Run returns (on Unix-like systems
	// it has no name from the start). Empty means no spool: the link stops
	// reading when the memory part is full.
	SpoolDir string
	// SpoolMaxBytes bounds the spool file; when it is full the link stops
	// reading until the Handler catches up. Default 8 GiB.
	SpoolMaxBytes int64
	// Limits bound the stream parser: MaxBulk (an argument), MaxArray
	// (arguments of a command), MaxInline (a header line), MaxReply (a
	// whole command, and so the copy of one that straddles reads). Zero
	// fields mean resp.DefaultLimits.
	Limits resp.Limits
	// Logger receives the link's events. nil discards them.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultDialTimeout   = 10 * time.Second
	DefaultReadTimeout   = 60 * time.Second
	DefaultWriteTimeout  = 10 * time.Second
	DefaultAckInterval   = time.Second
	DefaultMaxQueueBytes = 64 << 20
	DefaultSpoolMaxBytes = 8 << 30
)

// chunkSize is the unit the socket reader fills.
const chunkSize = 64 << 10

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.AckInterval <= 0 {
		c.AckInterval = DefaultAckInterval
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if c.SpoolMaxBytes <= 0 {
		c.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = d.DialContext
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Limits = c.Limits.WithDefaults()
	return c
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	if c.Addr == "" {
		return errors.New("replica: Config.Addr is empty")
	}
	if c.Username != "" && c.Password == "" {
		return errors.New("replica: Config.Username without Password")
	}
	if c.ListeningPort < 0 || c.ListeningPort > 65535 {
		return errors.New("replica: Config.ListeningPort out of range")
	}
	return nil
}
