package destination

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

// Do sends one command to (shard, db) through Backend, after checking the
// fence (FenceEpoch), and turns an error reply into a *WriteError.
func (d *Destination) Do(ctx context.Context, shard, db int, args ...string) ([]byte, error) {
	if _, err := d.FenceEpoch(); err != nil {
		return nil, err
	}
	return d.DoUnfenced(ctx, shard, db, args...)
}

// DoUnfenced is Do without the fence check: for the lease itself.
func (d *Destination) DoUnfenced(ctx context.Context, shard, db int, args ...string) ([]byte, error) {
	req := resp.AppendCommandString(nil, args...)
	reply, err := d.Backend(shard, db).Do(ctx, req, nil)
	if err != nil {
		return nil, fmt.Errorf("apply: shard %d (%s): %w", shard, d.Addr(shard), err)
	}
	if err := resp.ReplyError(reply); err != nil {
		return reply, d.Refused(shard, db, req, err.Error())
	}
	return reply, nil
}

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
	err := d.Each(func(shard int) error {
		info, err := d.infoServer(ctx, shard)
		if err != nil {
			return err
		}
		infos[shard] = parseInfo(info)
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

// ShardState is what Probe learned about one shard.
type ShardState struct {
	RunID  string // INFO server run_id: changes when the server restarts
	Marked bool   // the marker key Mark set is there
}

// Probe reads every shard's run_id and whether it still has the marker
// key Mark set. Cheap: one INFO server and one EXISTS per shard.
func (d *Destination) Probe(ctx context.Context) ([]ShardState, error) {
	out := make([]ShardState, d.Len())
	err := d.Each(func(shard int) error {
		info, err := d.infoServer(ctx, shard)
		if err != nil {
			return err
		}
		out[shard].RunID = runID(info)
		reply, err := d.Do(ctx, shard, 0, "EXISTS", MarkerKey)
		if err != nil {
			return err
		}
		out[shard].Marked = string(reply) == ":1\r\n"
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Mark sets the marker key on every shard (after a flush, or when sync
// resumes); appliers in checkpoint mode rewrite it with their checkpoint
// after any keyless command, which may have deleted it.
func (d *Destination) Mark(ctx context.Context, value string) error {
	d.mu.Lock()
	d.marker = value
	d.mu.Unlock()
	return d.Each(func(shard int) error {
		_, err := d.Do(ctx, shard, 0, "SET", MarkerKey, value)
		return err
	})
}

// Marker is the value Mark set ("1" before any Mark): appliers rewrite
// the marker key with it after keyless commands.
func (d *Destination) Marker() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.marker == "" {
		return "1"
	}
	return d.marker
}

// runID reads run_id from an INFO server section.
func runID(text []byte) string {
	for line := range bytes.SplitSeq(text, []byte("\n")) {
		if v, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("run_id:")); ok {
			return string(v)
		}
	}
	return ""
}

// Commands reads shard 0's command table (COMMAND) merged over
// router.Builtin, for Options.Table: commands newer than the built-in
// table (HPEXPIREAT on 7.4+, module commands) then route by their keys.
func (d *Destination) Commands(ctx context.Context) (*router.Table, error) {
	reply, err := d.Do(ctx, 0, 0, "COMMAND")
	if err != nil {
		return nil, err
	}
	v, _, err := resp.ParseValue(reply, resp.Limits{})
	if err != nil {
		return nil, fmt.Errorf("destination: COMMAND: %w", err)
	}
	t, err := router.ParseCommandInfo(v)
	if err != nil {
		return nil, err
	}
	return router.Builtin.Merge(t), nil
}

// infoServer returns shard's INFO server text.
func (d *Destination) infoServer(ctx context.Context, shard int) ([]byte, error) {
	reply, err := d.Do(ctx, shard, 0, "INFO", "server")
	if err != nil {
		return nil, err
	}
	v, _, err := resp.ParseValue(reply, resp.Limits{})
	if err != nil {
		return nil, fmt.Errorf("destination: shard %d: INFO: %w", shard, err)
	}
	return v.Str, nil
}
