package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

// Config describes a proxy. Zero fields take the documented defaults.
type Config struct {
	// Listen is "host:port" for TCP or "unix:/path/to.sock" for a unix
	// socket (default "127.0.0.1:6380").
	Listen string
	// Password, when set, is required by AUTH (`AUTH pw` or
	// `AUTH default pw`, or HELLO 2 AUTH default pw) before any other
	// command; until then commands answer -NOAUTH.
	Password string
	// AdminPassword, when set, returns the internal admin password: a
	// client that sends AUTH admin <it> may replicate destination shards
	// through the proxy (PSYNC; see replsource.go). nil or "" disables
	// the admin user. Server.DropAdmin closes admin connections after it
	// changes.
	AdminPassword func() string
	// AllowWrites lets write commands through; false answers them
	// -READONLY like a replica does.
	AllowWrites bool
	// Limits bound what one client may send. Zero fields take
	// resp.DefaultLimits (512 MB bulks, 1,048,576 arguments, 64 KB inline
	// lines).
	Limits resp.Limits
	// Timeout bounds each shard round trip and dial; a shard that does not
	// answer in time fails its own commands only (default 5s). It is the
	// default for every shard's DialTimeout, ReadTimeout and WriteTimeout,
	// and for writes to clients.
	Timeout time.Duration
	// Destination is the sharded destination (package destination): its
	// shards, their AUTH and TLS, its slot map (read per command, so a
	// swapped map takes effect at once) and the configured replicas.
	// Required.
	Destination *destination.Destination
	// Backend is the template of every shard and replica backend the
	// proxy opens (destination.Shard.PoolConfig fills in address, dialer,
	// AUTH and SELECT): timeouts, retry backoff, reply limits, Observer.
	// Zero timeouts take Timeout; Conns defaults to 1 here (one pipelined
	// connection per shard and database).
	Backend pool.Config
	// IdleTimeout closes a client that sent nothing for this long, like
	// Redis' timeout setting; 0 never closes idle clients. Subscribed
	// clients are not closed.
	IdleTimeout time.Duration
	// Databases is how many databases SELECT accepts (default 16).
	Databases int
	// MaxClients bounds connected clients; one more is told
	// "-ERR max number of clients reached" and closed (default 20000).
	MaxClients int
	// MaxBlocking bounds the shard connections clients hold for
	// themselves: one per blocking command running (BLPOP, XREAD BLOCK,
	// …) and one per client between WATCH and EXEC. One more is answered
	// "-ERR max number of blocked or watching clients reached"
	// (default 1024).
	MaxBlocking int
	// Table routes commands; nil means router.Builtin.
	Table *router.Table
	// Logger receives connection-level events; nil discards them.
	Logger *slog.Logger
	// TLS, when set, makes every client connection TLS (tlsutil.ServerConfig
	// builds it; with ClientAuth set, clients need a certificate); nil
	// means plain TCP. Each handshake runs on the client's own goroutine
	// and must finish within Timeout. A client refused for MaxClients is
	// closed without a handshake (and without the error reply).
	TLS *tls.Config
	// TLSReplicationOnly, with TLS, accepts plain-TCP clients too (the
	// first byte tells a TLS handshake from a command), but only clients
	// on TLS may authenticate as the admin user, so replication through
	// the proxy is always encrypted: "TLS for replication only".
	TLSReplicationOnly bool
	// TTLGrace is the grace the syncer adds to every TTL it writes
	// (apply.Options.TTLGrace): TTL, PTTL, EXPIRETIME, PEXPIRETIME and
	// their hash-field forms answer without it (ttl.go). 0 passes the
	// shards' replies unchanged.
	TTLGrace time.Duration
	// Observer, when set, is told about client connections and commands
	// (metrics.ProxyObserver fits); nil reports nothing and costs nothing.
	// Shards' own Observer (Backend.Observer) is separate.
	Observer Observer

	// ReadFrom says which nodes serve reads (replicas.go): ReadPrimary
	// (the default) sends every read to the shard's primary, as without
	// replicas; the others also read from the shard's replicas, found in
	// the primary's INFO replication and in Replicas. Writes, MULTI/EXEC,
	// WATCH, blocking commands, scripts other than EVAL_RO and FCALL_RO,
	// and Pub/Sub always go to the primary.
	ReadFrom ReadFrom
	// A replica the primary reports is reached like its shard (the
	// shard's AUTH and TLS, with its address replaced); the replicas the
	// destination lists (destination.Config.Replicas, for replicas the
	// primary reports under an address the proxy cannot reach: NAT,
	// containers) with their own.
	// MaxReplicaLag: a replica whose offset trails its primary's by more
	// than this (measured as time) gets no reads until it catches up
	// (default 1s).
	MaxReplicaLag time.Duration
	// ReplicaRefresh is how often the proxy asks every primary and
	// replica for INFO replication (default 2s); each round is bounded
	// by Timeout and by the period.
	ReplicaRefresh time.Duration

	// Loops is how many event loops serve plain-TCP clients, each owning
	// its clients' sockets and its own connection to every shard; 0
	// serves every client on a goroutine of its own (the goroutine
	// driver), LoopsAuto one loop per two GOMAXPROCS (at least one: see
	// loops). TLS clients, and
	// clients that subscribe, WATCH, block or relay replication, are
	// served on goroutines whatever this is. At most MaxLoops.
	Loops int
	// MaxPending bounds the bytes of replies waiting to be written to
	// one client: past it the proxy reads no more commands from that
	// client until they are written (default 64 MB). The goroutine
	// driver writes a batch's replies before it reads on, and cuts a
	// pipelined batch where its replies are expected to reach
	// MaxPending (pending.go).
	MaxPending int64
	// MaxPendingHard is the hard limit: a client that is not taking its
	// replies and has more than this waiting is closed, with a log line,
	// and counted in INFO stats client_output_buffer_limit_disconnections
	// (default 4 × MaxPending; not below MaxPending). A single reply
	// larger than it is still delivered.
	MaxPendingHard int64

	// idleAfter is how long a client waits for its next command holding
	// its read buffer before it gives the buffer back (defaultIdleAfter
	// when 0); tests shorten it.
	idleAfter time.Duration
}

// Observer receives the proxy's client events. Methods are called
// concurrently from every client's goroutine and must not block.
type Observer interface {
	// ConnOpened reports an accepted client (not one refused for
	// MaxClients).
	ConnOpened()
	// ConnClosed reports that client's end, once per ConnOpened.
	ConnClosed()
	// Command reports one command after its reply was queued for the
	// client: name is the command table's lower-case name of its first
	// argument ("get", "client"), or "other" for a name the table does
	// not know; d runs from the command having been read to its reply
	// being ready to write (with the replies of its batch); failed says
	// whether the reply is an error.
	Command(name string, d time.Duration, failed bool)
}

// Defaults.
const (
	DefaultListen      = "127.0.0.1:6380"
	DefaultTimeout     = 5 * time.Second
	DefaultDatabases   = 16
	DefaultMaxClients  = 20000
	DefaultMaxBlocking = 1024
	DefaultMaxPending  = 64 << 20
	// LoopsAuto as Config.Loops means one event loop per two GOMAXPROCS,
	// at least one.
	LoopsAuto = -1
	// MaxLoops is the most event loops Config.Loops may ask for.
	MaxLoops = 1024
)

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Databases <= 0 {
		c.Databases = DefaultDatabases
	}
	if c.MaxClients <= 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.MaxBlocking <= 0 {
		c.MaxBlocking = DefaultMaxBlocking
	}
	if c.MaxReplicaLag <= 0 {
		c.MaxReplicaLag = DefaultMaxReplicaLag
	}
	if c.ReplicaRefresh <= 0 {
		c.ReplicaRefresh = DefaultReplicaRefresh
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxPendingHard <= 0 {
		c.MaxPendingHard = 4 * c.MaxPending
	}
	if c.idleAfter <= 0 {
		c.idleAfter = defaultIdleAfter
	}
	if c.Table == nil {
		c.Table = router.Builtin
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.Limits = c.Limits.WithDefaults()
	c.Backend = c.backendDefaults(c.Backend)
	return c
}

// backendDefaults fills the zero fields of the shard backend template.
func (c Config) backendDefaults(s pool.Config) pool.Config {
	if s.DialTimeout <= 0 {
		s.DialTimeout = c.Timeout
	}
	if s.ReadTimeout <= 0 {
		s.ReadTimeout = c.Timeout
	}
	if s.Conns <= 0 {
		// One connection per shard and database: Redis serves a
		// connection at a time anyway, and with every client's calls
		// on one connection more of them share each write.
		s.Conns = 1
	}
	if s.WriteTimeout <= 0 {
		s.WriteTimeout = c.Timeout
	}
	if s.Limits.MaxArray <= 0 {
		// Element counts cost nothing to frame; MaxReply bounds the
		// memory a reply takes. An LRANGE of millions relays.
		s.Limits.MaxArray = 1 << 31
	}
	return s
}

// ErrNoShards is returned by New for a Config without a destination.
var ErrNoShards = errors.New("proxy: no destination shards")

// Validate reports a configuration New would refuse.
func (c Config) Validate() error {
	if c.Destination == nil {
		return ErrNoShards
	}
	if c.ReadFrom > ReadAny {
		return fmt.Errorf("proxy: read_from %v unknown", c.ReadFrom)
	}
	if c.Loops < LoopsAuto || c.Loops > MaxLoops {
		return fmt.Errorf("proxy: loops %d out of range (want %d for auto, or 0 to %d)", c.Loops, LoopsAuto, MaxLoops)
	}
	if c.MaxPending < 0 || c.MaxPending > math.MaxInt64/4 {
		return fmt.Errorf("proxy: max pending %d out of range", c.MaxPending)
	}
	pending := c.MaxPending
	if pending == 0 {
		pending = DefaultMaxPending
	}
	if c.MaxPendingHard < 0 || c.MaxPendingHard > 0 && c.MaxPendingHard < pending {
		return fmt.Errorf("proxy: hard pending limit %d below max pending %d", c.MaxPendingHard, pending)
	}
	if c.Databases < 0 || c.Databases > 1<<16 {
		return fmt.Errorf("proxy: databases %d out of range", c.Databases)
	}
	return nil
}

// loops is how many event loops Loops asks for. LoopsAuto is half of
// GOMAXPROCS, at least one: a loop's CPU goes mostly to the kernel's
// loopback and TCP work on its read and write calls, which wants CPUs
// of its own; on 2 cores (shared with redis-benchmark and the shards),
// 2 loops spent 1.1–1.7× the CPU per request of 1 loop, with smaller
// batches per pass (README, "Performance").
func (c Config) loops() int {
	if c.Loops == LoopsAuto {
		return max(runtime.GOMAXPROCS(0)/2, 1)
	}
	return max(c.Loops, 0)
}
