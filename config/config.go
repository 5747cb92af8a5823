package config

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults for fields left empty or zero.
const (
	DefaultProxyListen = "127.0.0.1:6380"
	DefaultAdminListen = "127.0.0.1:8380"
	DefaultMaxBulk     = 512 << 20 // bytes in one bulk string, as Redis proto-max-bulk-len
	DefaultMaxArgs     = 1 << 20   // arguments in one command
	DefaultMaxInline   = 64 << 10  // bytes in one inline command
	DefaultMaxBlocking = 1024      // shard connections held by blocked or watching clients
	DefaultMaxPending  = 64 << 20  // bytes of replies pending for one client
	MinMaxPending      = 64 << 10  // smallest proxy.max_pending
	MaxLoops           = 1024      // most proxy.loops
	DefaultStateDir    = "./replicaof-state"
	DefaultLogLevel    = "info"
	DefaultLogFormat   = "text"
	DefaultCrossShard  = CrossShardEmulate
)

// replica_of.cross_shard values: what a replicated command whose keys
// span destination shards (and that cannot be split) becomes.
const (
	CrossShardEmulate = "emulate" // carried out through a staging shard
	CrossShardStop    = "stop"    // sync stops with a cross-slot error
	// DefaultTTLGrace is replica_of.ttl_grace when not set: long enough to
	// cover a stalled link, reconnect backoff and a partial resync of a
	// default 1 MiB backlog (a longer outage ends in a full resync, which
	// reloads every TTL); short enough that a key whose DEL never comes
	// (see README, Semantics) does not linger for long.
	DefaultTTLGrace = 5 * time.Minute
	// DefaultLease is replica_of.lease when not set.
	DefaultLease = 10 * time.Second
	// MinLease and MaxLease bound replica_of.lease.
	MinLease, MaxLease = time.Second, 10 * time.Minute
	// MaxTTLGrace bounds replica_of.ttl_grace.
	MaxTTLGrace = 365 * 24 * time.Hour
)

// replica_of.unsupported_keys values.
const (
	UnsupportedStop = "stop" // sync stops naming the key and its type (default)
	UnsupportedSkip = "skip" // the key is left out and counted
)

// Config is the whole replicaof configuration. The zero value of every
// field means its default; Parse and Load return a Config with defaults
// filled in and validated.
type Config struct {
	Proxy       Proxy
	Admin       Admin
	Destination Destination
	ReplicaOf   ReplicaOf
	// StateDir holds the internal admin password (admin-password) and
	// the replication spool (spool/); DefaultStateDir when empty.
	// Checkpoints live on the destination shards, and source edits are
	// written back to the config file.
	StateDir string
	Log      Log

	// pos maps field paths to their YAML position; nil unless parsed.
	pos map[string]position
}

// Proxy configures the client-facing RESP listener.
type Proxy struct {
	Listen      string // host:port; DefaultProxyListen when empty
	Password    Secret // clients must AUTH with it; "" = no AUTH
	AllowWrites bool   // false: writes get -READONLY
	MaxBulk     int64  // bytes per bulk string; DefaultMaxBulk when 0
	MaxArgs     int    // arguments per command; DefaultMaxArgs when 0
	MaxInline   int    // bytes per inline command; DefaultMaxInline when 0
	// MaxBlocking bounds the shard connections clients hold for blocking
	// commands (BLPOP, XREAD BLOCK…) and WATCH; DefaultMaxBlocking when 0.
	MaxBlocking int
	// Timeout closes client connections idle this long; 0 = never.
	// YAML takes a duration ("5m") or a number of seconds.
	Timeout time.Duration
	// TLS, when set with a certificate, makes the client listener TLS
	// only; nil (or no certificate) means plain TCP.
	TLS *ProxyTLS
	// ReadFrom says which nodes of each destination shard serve reads:
	// ReadFromNames lists the values; "" means "primary". Writes always go
	// to the primaries.
	ReadFrom string
	// MaxReplicaLag: a replica further behind its primary than this gets
	// no reads; DefaultMaxReplicaLag when 0. YAML takes a duration.
	MaxReplicaLag time.Duration
	// Loops is how many event loops serve plain-TCP clients: 0 serves
	// every client on a goroutine of its own; nil ("auto" in YAML) means
	// one per GOMAXPROCS. At most MaxLoops.
	Loops *int
	// MaxPending is how many bytes of replies may wait for one client
	// before the proxy stops reading its commands; past 4 times that the
	// client is closed. DefaultMaxPending when 0, at least MinMaxPending.
	MaxPending int64
}

// ReadFromNames are the values of proxy.read_from.
var ReadFromNames = []string{"primary", "prefer-primary", "replica", "prefer-replica", "any"}

// DefaultMaxReplicaLag is proxy.max_replica_lag's default.
const DefaultMaxReplicaLag = time.Second

// Admin configures the REST / metrics / dashboard listener.
type Admin struct {
	Listen string // host:port; DefaultAdminListen when empty
	Token  Secret // bearer token required by /v1; "" = none
}

// Destination is the sharded Redis set that receives the data.
type Destination struct {
	Shards []Endpoint // at least one
	// Replicas, when set, has one entry per shard (same order): replicas
	// of that shard the proxy reads from besides those its primary
	// reports (for addresses the primary reports wrongly: NAT,
	// containers). YAML: a shard given as {uri: …, replicas: [uri, …]}.
	Replicas [][]Endpoint
	// TLS applies to every rediss:// shard; nil means system roots.
	TLS *TLSFiles
	// Refresh is how often a Redis Cluster destination re-reads its
	// topology besides on MOVED and connection errors; 0 means
	// DefaultRefresh. YAML takes a duration or seconds.
	Refresh time.Duration
	// DBMap maps source databases onto a Redis Cluster destination,
	// which has database 0 only: each listed db goes to 0 or, with
	// DBDrop, is dropped. A write to an unlisted db other than 0 stops
	// sync naming the db. nil maps nothing. YAML: {1: 0, 2: drop}.
	DBMap map[int]int
}

// DefaultRefresh is destination.refresh's default.
const DefaultRefresh = 5 * time.Second

// MinRefresh is the shortest destination.refresh.
const MinRefresh = 100 * time.Millisecond

// DBDrop in Destination.DBMap drops a source database's writes.
const DBDrop = -1

// MaxDB bounds a database number in destination.db_map.
const MaxDB = 1 << 16

// ReplicaOf lists the sources. An empty list is valid: sources can be
// set later through the admin API.
type ReplicaOf struct {
	Sources []Source // at most MaxSources
	// CrossShard is CrossShardEmulate (the default) or CrossShardStop.
	CrossShard string
	// TTLGrace is added to every TTL written on the destination, so it
	// never drops a key before the source's DEL for it arrives; the proxy
	// reports TTLs without it. nil means DefaultTTLGrace; 0 writes the
	// source's TTLs unchanged. YAML takes a duration or seconds.
	TTLGrace *time.Duration
	// Lease is how long the destination's lease lasts without renewal
	// (docs/reliability.md, High availability): a standby takes over
	// about this long after the active instance died. 0 means
	// DefaultLease.
	Lease time.Duration
	// UnsupportedKeys says what happens to a key the destination cannot
	// take (a module type it lacks, a type newer than a shard):
	// UnsupportedStop (default when "") or UnsupportedSkip.
	UnsupportedKeys string
}

// Grace is TTLGrace with its default.
func (r ReplicaOf) Grace() time.Duration {
	if r.TTLGrace == nil {
		return DefaultTTLGrace
	}
	return *r.TTLGrace
}

// LeaseTime is Lease with its default.
func (r ReplicaOf) LeaseTime() time.Duration {
	if r.Lease == 0 {
		return DefaultLease
	}
	return r.Lease
}

// SkipUnsupported reports whether UnsupportedKeys is skip.
func (r ReplicaOf) SkipUnsupported() bool { return r.UnsupportedKeys == UnsupportedSkip }

// Log configures the process logger.
type Log struct {
	Level  string // debug, info, warn or error; DefaultLogLevel when empty
	Format string // text or json; DefaultLogFormat when empty
}

// SlogLevel is Level as a slog.Level (info when unknown).
func (l Log) SlogLevel() slog.Level {
	switch strings.ToLower(l.Level) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

type position struct{ line, column int }

// Load reads and parses the YAML file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data)
}

// Parse decodes YAML, fills defaults and validates. Unknown fields are
// errors. The error joins every problem found; each is an *Error naming
// the YAML line and column.
func Parse(data []byte) (*Config, error) {
	c, err := decode(data)
	if err != nil {
		return nil, err
	}
	c.withDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// withDefaults fills every zero field with its default.
func (c *Config) withDefaults() {
	if c.Proxy.Listen == "" {
		c.Proxy.Listen = DefaultProxyListen
	}
	if c.Proxy.MaxBulk == 0 {
		c.Proxy.MaxBulk = DefaultMaxBulk
	}
	if c.Proxy.MaxArgs == 0 {
		c.Proxy.MaxArgs = DefaultMaxArgs
	}
	if c.Proxy.MaxInline == 0 {
		c.Proxy.MaxInline = DefaultMaxInline
	}
	if c.Proxy.MaxBlocking == 0 {
		c.Proxy.MaxBlocking = DefaultMaxBlocking
	}
	if c.Proxy.MaxPending == 0 {
		c.Proxy.MaxPending = DefaultMaxPending
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = DefaultAdminListen
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.Log.Level == "" {
		c.Log.Level = DefaultLogLevel
	}
	if c.Log.Format == "" {
		c.Log.Format = DefaultLogFormat
	}
	if c.ReplicaOf.CrossShard == "" {
		c.ReplicaOf.CrossShard = DefaultCrossShard
	}
	if c.ReplicaOf.UnsupportedKeys == "" {
		c.ReplicaOf.UnsupportedKeys = UnsupportedStop
	}
	for i := range c.ReplicaOf.Sources {
		if s := &c.ReplicaOf.Sources[i]; s.Name == "" {
			s.Name = s.Addr()
		}
	}
}

// Validate checks c as it would be after defaults are filled in (zero
// fields are valid). It returns every problem, joined; each is an *Error.
func (c *Config) Validate() error {
	v := *c
	v.ReplicaOf.Sources = slices.Clone(c.ReplicaOf.Sources) // withDefaults writes names
	v.withDefaults()
	var errs []error
	add := func(path, msg string) {
		errs = append(errs, c.errAt(path, errors.New(msg)))
	}

	checkListen(add, "proxy.listen", v.Proxy.Listen)
	checkListen(add, "admin.listen", v.Admin.Listen)
	if v.Proxy.Listen == v.Admin.Listen && !strings.HasSuffix(v.Proxy.Listen, ":0") {
		add("admin.listen", fmt.Sprintf("same address as proxy.listen (%s)", v.Proxy.Listen))
	}
	if v.Proxy.MaxBulk < 0 {
		add("proxy.max_bulk", "must not be negative")
	}
	if v.Proxy.MaxArgs < 0 {
		add("proxy.max_args", "must not be negative")
	}
	if v.Proxy.MaxInline < 0 {
		add("proxy.max_inline", "must not be negative")
	}
	if v.Proxy.MaxBlocking < 0 {
		add("proxy.max_blocking", "must not be negative")
	}
	if v.Proxy.Timeout < 0 {
		add("proxy.timeout", "must not be negative")
	}
	if v.Proxy.ReadFrom != "" && !slices.Contains(ReadFromNames, v.Proxy.ReadFrom) {
		add("proxy.read_from", fmt.Sprintf("%q: want one of %s", v.Proxy.ReadFrom, strings.Join(ReadFromNames, ", ")))
	}
	if v.Proxy.MaxReplicaLag < 0 {
		add("proxy.max_replica_lag", "must not be negative")
	}
	if l := v.Proxy.Loops; l != nil && (*l < 0 || *l > MaxLoops) {
		add("proxy.loops", fmt.Sprintf("%d out of range (want auto, or 0 to %d)", *l, MaxLoops))
	}
	if m := v.Proxy.MaxPending; m < MinMaxPending || m > math.MaxInt64/4 {
		add("proxy.max_pending", fmt.Sprintf("%d out of range (want at least %d bytes)", m, MinMaxPending))
	}
	v.Proxy.TLS.validate(func(f, msg string) { add("proxy.tls."+f, msg) })

	shards := make(map[string]int)
	if len(v.Destination.Shards) == 0 {
		add("destination.shards", "at least one shard is required")
	}
	anyTLS := false
	// node checks the endpoint at p, of shard i: a host, and an address
	// no other shard or replica has.
	node := func(p string, e Endpoint, i int) {
		if e.Host == "" {
			add(p, "missing host")
			return
		}
		anyTLS = anyTLS || e.TLS
		if j, ok := shards[e.key()]; ok {
			add(p, fmt.Sprintf("%s: same address as destination.shards[%d]", e.Redacted(), j))
		}
		shards[e.key()] = i
	}
	for i, sh := range v.Destination.Shards {
		node(fmt.Sprintf("destination.shards[%d]", i), sh, i)
	}
	if len(v.Destination.Replicas) > len(v.Destination.Shards) {
		add("destination.shards", "more replica lists than shards")
	}
	for i, reps := range v.Destination.Replicas {
		for k, r := range reps {
			node(fmt.Sprintf("destination.shards[%d].replicas[%d]", i, k), r, i)
		}
	}
	if r := v.Destination.Refresh; r != 0 && r < MinRefresh {
		add("destination.refresh", fmt.Sprintf("%v: want at least %v (or 0 for %v)", r, MinRefresh, DefaultRefresh))
	}
	for _, db := range slices.Sorted(maps.Keys(v.Destination.DBMap)) {
		to := v.Destination.DBMap[db]
		switch {
		case db < 0 || db >= MaxDB:
			add("destination.db_map", fmt.Sprintf("database %d out of range 0..%d", db, MaxDB-1))
		case to != 0 && to != DBDrop:
			add(fmt.Sprintf("destination.db_map.%d", db), fmt.Sprintf("maps to %d: a Redis Cluster has database 0 only (want 0 or drop)", to))
		}
	}
	if v.Destination.TLS != nil {
		if !anyTLS {
			add("destination.tls", "tls is set but no shard uses rediss://")
		}
		v.Destination.TLS.validate(func(f, msg string) { add("destination.tls."+f, msg) })
	}

	if n := len(v.ReplicaOf.Sources); n > MaxSources {
		errs = append(errs, c.errAt("replica_of.sources", tooManySources(n)))
	}
	if g := v.ReplicaOf.Grace(); g < 0 || g > MaxTTLGrace {
		add("replica_of.ttl_grace", fmt.Sprintf("%v out of range (want 0 = off, up to %v)", g, MaxTTLGrace))
	} else if g%time.Millisecond != 0 {
		add("replica_of.ttl_grace", fmt.Sprintf("%v is not a whole number of milliseconds", g))
	}
	if l := v.ReplicaOf.LeaseTime(); l < MinLease || l > MaxLease {
		add("replica_of.lease", fmt.Sprintf("%v out of range (want %v to %v)", l, MinLease, MaxLease))
	} else if l%time.Millisecond != 0 {
		add("replica_of.lease", fmt.Sprintf("%v is not a whole number of milliseconds", l))
	}
	switch v.ReplicaOf.UnsupportedKeys {
	case UnsupportedStop, UnsupportedSkip:
	default:
		add("replica_of.unsupported_keys", fmt.Sprintf("unknown value %q (want stop or skip)", v.ReplicaOf.UnsupportedKeys))
	}
	names := make(map[string]int)
	addrs := make(map[string]int)
	for i, s := range v.ReplicaOf.Sources {
		p := fmt.Sprintf("replica_of.sources[%d]", i)
		if s.Host == "" {
			add(p, "missing host")
			continue
		}
		if err := checkName(s.Name); err != nil {
			add(p+".name", err.Error())
		} else if j, ok := names[s.Name]; ok {
			add(p+".name", fmt.Sprintf("duplicate source name %q (also replica_of.sources[%d])", s.Name, j))
		} else {
			names[s.Name] = i
		}
		if j, ok := addrs[s.key()]; ok {
			add(p, fmt.Sprintf("%s: same address as replica_of.sources[%d]", s.Redacted(), j))
		} else {
			addrs[s.key()] = i
		}
		if j, ok := shards[s.key()]; ok {
			add(p, fmt.Sprintf("%s: source is destination.shards[%d]", s.Redacted(), j))
		}
		if s.Compression < 0 || s.Compression > 9 {
			add(p+".compression", fmt.Sprintf("compression %d out of range (want 0 = off or a gzip level 1-9)", s.Compression))
		}
		if s.TLSFiles != nil {
			if !s.TLS {
				add(p+".tls", "tls is set but the URL is not rediss://")
			}
			s.TLSFiles.validate(func(f, msg string) { add(p+".tls."+f, msg) })
		}
	}

	switch v.ReplicaOf.CrossShard {
	case CrossShardEmulate, CrossShardStop:
	default:
		add("replica_of.cross_shard", fmt.Sprintf("unknown value %q (want emulate or stop)", v.ReplicaOf.CrossShard))
	}

	switch strings.ToLower(v.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", fmt.Sprintf("unknown level %q (want debug, info, warn or error)", v.Log.Level))
	}
	switch v.Log.Format {
	case "text", "json":
	default:
		add("log.format", fmt.Sprintf("unknown format %q (want text or json)", v.Log.Format))
	}
	return errors.Join(errs...)
}

// tooManySources is the count in an ErrTooManySources error.
type tooManySources int

func (n tooManySources) Error() string {
	return fmt.Sprintf("%d sources, at most %d allowed", int(n), MaxSources)
}

func (n tooManySources) Is(target error) bool { return target == ErrTooManySources }

func checkListen(add func(path, msg string), path, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		add(path, fmt.Sprintf("%q is not host:port", addr))
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		add(path, fmt.Sprintf("%q: invalid port", addr))
	}
}

// errAt wraps err in an *Error located at path, or at its nearest parent
// with a known position.
func (c *Config) errAt(path string, err error) *Error {
	e := &Error{Path: path, Err: err}
	for p := path; p != ""; {
		if pos, ok := c.pos[p]; ok {
			e.Line, e.Column = pos.line, pos.column
			break
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return e
}

// LogValue implements slog.LogValuer with a redacted summary.
func (c *Config) LogValue() slog.Value {
	shards := make([]string, len(c.Destination.Shards))
	for i, s := range c.Destination.Shards {
		shards[i] = s.Redacted()
	}
	srcs := make([]string, len(c.ReplicaOf.Sources))
	for i, s := range c.ReplicaOf.Sources {
		srcs[i] = s.String()
	}
	return slog.GroupValue(
		slog.String("proxy", c.Proxy.Listen),
		slog.String("admin", c.Admin.Listen),
		slog.Any("shards", shards),
		slog.Any("sources", srcs),
		slog.String("state_dir", c.StateDir),
	)
}
