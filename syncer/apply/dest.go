package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
	"github.com/replicaof/replicaof/syncer/rdb"
)

// Shard is how to reach one destination shard.
type Shard struct {
	Addr     string // host:port
	User     string // ACL user; "" means the default user
	Password string // "" means no AUTH
	// Dial opens connections (the TLS hook); nil means plain TCP.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// DestinationConfig describes the destination. Zero fields take the
// documented defaults.
type DestinationConfig struct {
	Shards []Shard
	// Map places keys on Shards; nil means router.EvenSlotMap(len(Shards)).
	Map *router.SlotMap
	// Backend is the template for every (shard, db) backend: its Addr,
	// Dial, Init and Shard are filled in per shard (its Observer is
	// shared). Conns defaults to 4.
	Backend router.BackendConfig
}

// Destination is the set of destination shards shared by every source's
// Applier. It keeps one router.Backend per (shard, db), created on first
// use with AUTH and SELECT in its Init. All methods are safe for concurrent
// use.
type Destination struct {
	cfg DestinationConfig
	m   *router.SlotMap

	mu       sync.Mutex
	backends map[beKey]*router.Backend
	info     []ShardInfo // nil until Info succeeded
	marker   string      // the value Mark set
	closed   bool
	fence    Fence // nil: no lease (fence.go)
}

type beKey struct{ shard, db int }

// ShardInfo is what Info learned about one shard.
type ShardInfo struct {
	Server  string // "redis" or "valkey"
	Version string // redis_version (valkey_version for Valkey)
	// MaxRDB is the highest RDB version the shard's RESTORE accepts, 0
	// when the version is not one this package knows (then a probe
	// RESTORE decides).
	MaxRDB int
	// FieldTTL says whether the shard has hash field expiration
	// (HPEXPIREAT).
	FieldTTL bool
	// Streams7 says whether XSETID takes ENTRIESADDED/MAXDELETEDID and
	// XGROUP CREATE takes ENTRIESREAD (7.0+).
	Streams7 bool
	// Functions says whether the shard has FUNCTION (7.0+).
	Functions bool
}

// NewDestination checks cfg and returns a Destination. It opens no
// connection.
func NewDestination(cfg DestinationConfig) (*Destination, error) {
	if len(cfg.Shards) == 0 {
		return nil, errors.New("apply: destination has no shards")
	}
	m := cfg.Map
	if m == nil {
		var err error
		if m, err = router.EvenSlotMap(len(cfg.Shards)); err != nil {
			return nil, err
		}
	}
	if m.Len() != len(cfg.Shards) {
		return nil, fmt.Errorf("apply: shard map has %d shards, config %d", m.Len(), len(cfg.Shards))
	}
	if cfg.Backend.Conns <= 0 {
		cfg.Backend.Conns = 4
	}
	return &Destination{cfg: cfg, m: m, backends: map[beKey]*router.Backend{}}, nil
}

// Map is the placement of keys on shards.
func (d *Destination) Map() *router.SlotMap { return d.m }

// Len is the number of shards.
func (d *Destination) Len() int { return len(d.cfg.Shards) }

// Addr is shard's address.
func (d *Destination) Addr(shard int) string { return d.cfg.Shards[shard].Addr }

// Backend returns the backend of (shard, db), creating it on first use.
// After Close it returns a closed backend whose calls fail with
// router.ErrClosed.
func (d *Destination) Backend(shard, db int) *router.Backend {
	k := beKey{shard, db}
	d.mu.Lock()
	defer d.mu.Unlock()
	if b := d.backends[k]; b != nil {
		return b
	}
	s := d.cfg.Shards[shard]
	cfg := d.cfg.Backend
	cfg.Addr, cfg.Dial, cfg.Shard = s.Addr, s.Dial, shard
	var init []byte
	switch {
	case s.Password != "" && s.User != "":
		init = resp.AppendCommandString(init, "AUTH", s.User, s.Password)
	case s.Password != "":
		init = resp.AppendCommandString(init, "AUTH", s.Password)
	}
	if db != 0 {
		init = resp.AppendCommandString(init, "SELECT", strconv.Itoa(db))
	}
	cfg.Init = init
	b := router.NewBackend(cfg)
	if d.closed {
		_ = b.Close()
		return b
	}
	d.backends[k] = b
	return b
}

// Close closes every backend. Calls in flight fail with router.ErrClosed.
func (d *Destination) Close() error {
	d.mu.Lock()
	d.closed = true
	bs := d.backends
	d.backends = map[beKey]*router.Backend{}
	d.mu.Unlock()
	for _, b := range bs {
		_ = b.Close()
	}
	return nil
}

// each runs fn for every shard concurrently and returns the first error
// in shard order.
func (d *Destination) each(fn func(shard int) error) error {
	errs := make([]error, d.Len())
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// do sends one command to (shard, db) and turns error replies into a
// *WriteError.
func (d *Destination) do(ctx context.Context, shard, db int, args ...string) ([]byte, error) {
	if _, err := d.fenceEpoch(); err != nil {
		return nil, err
	}
	return d.doRaw(ctx, shard, db, args...)
}

// doRaw is do without the fence check.
func (d *Destination) doRaw(ctx context.Context, shard, db int, args ...string) ([]byte, error) {
	req := resp.AppendCommandString(nil, args...)
	reply, err := d.Backend(shard, db).Do(ctx, req, nil)
	if err != nil {
		return nil, fmt.Errorf("apply: shard %d (%s): %w", shard, d.Addr(shard), err)
	}
	if err := replyError(reply); err != nil {
		return reply, writeError(d, shard, db, req, err.Error())
	}
	return reply, nil
}

// FlushAll empties every shard: FLUSHALL, and FUNCTION FLUSH where the
// shard has functions. The supervisor calls it once before the sources'
// snapshots load.
func (d *Destination) FlushAll(ctx context.Context) error {
	infos, err := d.Info(ctx)
	if err != nil {
		return err
	}
	epoch, err := d.fenceEpoch()
	if err != nil {
		return err
	}
	return d.each(func(shard int) error {
		if epoch > 0 {
			// The fence key goes with the flush, in one transaction.
			b := &batch{}
			b.reset(shard, 0)
			b.commandString("MULTI")
			b.commandString("FLUSHALL")
			b.commandString("SET", FenceKey, strconv.FormatInt(epoch, 10))
			d.restoreCommands(b, shard)
			b.commandString("EXEC")
			b.markExec(1)
			if err := b.sendGuarded(ctx, d, b.seal(), epoch); err != nil {
				return err
			}
		} else if _, err := d.do(ctx, shard, 0, "FLUSHALL"); err != nil {
			return err
		}
		if infos[shard].Functions {
			if _, err := d.do(ctx, shard, 0, "FUNCTION", "FLUSH"); err != nil {
				return err
			}
		}
		return nil
	})
}

// Info asks every shard for its server version (INFO server) and derives
// what it can load. The answer is cached; a failed call is retried next
// time.
func (d *Destination) Info(ctx context.Context) ([]ShardInfo, error) {
	d.mu.Lock()
	cached := d.info
	d.mu.Unlock()
	if cached != nil {
		return cached, nil
	}
	infos := make([]ShardInfo, d.Len())
	err := d.each(func(shard int) error {
		reply, err := d.do(ctx, shard, 0, "INFO", "server")
		if err != nil {
			return err
		}
		v, _, err := resp.ParseValue(reply, resp.Limits{})
		if err != nil {
			return fmt.Errorf("apply: shard %d: INFO: %w", shard, err)
		}
		infos[shard] = parseInfo(v.Str)
		return nil
	})
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.info = infos
	d.mu.Unlock()
	return infos, nil
}

// parseInfo reads an INFO server section.
func parseInfo(text []byte) ShardInfo {
	var si ShardInfo
	si.Server = "redis"
	var redisVer, valkeyVer string
	for line := range bytes.SplitSeq(text, []byte("\n")) {
		k, v, ok := bytes.Cut(bytes.TrimSpace(line), []byte(":"))
		if !ok {
			continue
		}
		switch string(k) {
		case "redis_version":
			redisVer = string(v)
		case "valkey_version":
			valkeyVer = string(v)
		case "server_name":
			if string(v) == "valkey" {
				si.Server = "valkey"
			}
		}
	}
	if valkeyVer != "" {
		si.Server = "valkey"
		si.Version = valkeyVer
	} else {
		si.Version = redisVer
	}
	major, minor := splitVersion(si.Version)
	si.MaxRDB = maxRDB(si.Server, major, minor)
	if si.Server == "valkey" {
		si.FieldTTL = major >= 9
		si.Streams7, si.Functions = true, true
	} else {
		si.FieldTTL = major > 7 || (major == 7 && minor >= 4)
		si.Streams7, si.Functions = major >= 7, major >= 7
	}
	return si
}

func splitVersion(v string) (major, minor int) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) >= 2 {
		major, _ = strconv.Atoi(parts[0])
		minor, _ = strconv.Atoi(parts[1])
	}
	return major, minor
}

// maxRDB maps a server version to its RDB_VERSION (src/rdb.h at each
// release; docs/facts.md §4.1). 0 means unknown: probe.
func maxRDB(server string, major, minor int) int {
	if server == "valkey" {
		if major == 7 && minor >= 2 || major == 8 {
			return 11
		}
		return 0
	}
	switch {
	case major == 0:
		return 0
	case major < 7:
		if major >= 5 || (major == 4) {
			return 9
		}
		return 0 // older than 4.0: let the probe decide
	case major == 7 && minor < 2:
		return 10
	case major == 7 && minor < 4:
		return 11
	case major == 7 || (major == 8 && minor == 0):
		return 12
	}
	return 0
}

// probeRestore asks shard whether its RESTORE accepts payloads of
// rdbVersion, with a throwaway string key under the reserved prefix.
func (d *Destination) probeRestore(ctx context.Context, shard, rdbVersion int) (bool, error) {
	payload := rdb.AppendDumpPayload(nil, rdb.TypeString, []byte{1, 'x'}, uint16(rdbVersion))
	key := probeKey
	req := resp.AppendCommand(nil, []byte("RESTORE"), []byte(key), []byte("0"), payload, []byte("REPLACE"))
	reply, err := d.Backend(shard, 0).Do(ctx, req, nil)
	if err != nil {
		return false, fmt.Errorf("apply: shard %d (%s): %w", shard, d.Addr(shard), err)
	}
	if e := replyError(reply); e != nil {
		if isVersionError(e.Error()) {
			return false, nil
		}
		return false, writeError(d, shard, 0, req, e.Error())
	}
	_, err = d.do(ctx, shard, 0, "DEL", key)
	return err == nil, err
}

// probeKey is the throwaway key of probeRestore; the proxy hides the
// prefix from clients.
const probeKey = "__replicaof:probe"

func isVersionError(reply string) bool {
	return strings.Contains(reply, "payload version or checksum are wrong")
}

// Commands reads shard 0's command table (COMMAND) merged over
// router.Builtin, for Options.Table: commands newer than the built-in
// table (HPEXPIREAT on 7.4+, module commands) then route by their keys.
func (d *Destination) Commands(ctx context.Context) (*router.Table, error) {
	reply, err := d.do(ctx, 0, 0, "COMMAND")
	if err != nil {
		return nil, err
	}
	v, _, err := resp.ParseValue(reply, resp.Limits{})
	if err != nil {
		return nil, fmt.Errorf("apply: COMMAND: %w", err)
	}
	t, err := router.ParseCommandInfo(v)
	if err != nil {
		return nil, err
	}
	return router.Builtin.Merge(t), nil
}
