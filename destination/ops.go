package destination

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/replicaof/replicaof/pool"

	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

// Do sends one command to (shard, db) through Backend, after checking the
// fence (FenceEpoch), and turns an error reply into a *WriteError.
//
// On a cluster it follows the cluster's answers: MOVED (Moved, then the
// named node), ASK (ASKING and the command on the named node),
// TRYAGAIN, CLUSTERDOWN, LOADING and READONLY (the group's master
// changed; Refresh first) are tried again with backoff, at most
// doAttempts times and within ctx: none of these replies means the
// command ran. A connection error or EOF is never sent again (the
// command may have run): it is returned, and a refresh is asked for.
func (d *Destination) Do(ctx context.Context, shard, db int, args ...string) ([]byte, error) {
	if _, err := d.FenceEpoch(); err != nil {
		return nil, err
	}
	return d.DoUnfenced(ctx, shard, db, args...)
}

// doAttempts bounds how often Do sends one command on a cluster.
const doAttempts = 16

// DoUnfenced is Do without the fence check: for the lease itself.
func (d *Destination) DoUnfenced(ctx context.Context, shard, db int, args ...string) ([]byte, error) {
	req := resp.AppendCommandString(nil, args...)
	if d.cl != nil {
		return d.doCluster(ctx, shard, db, req)
	}
	reply, err := d.Backend(shard, db).Do(ctx, req, nil)
	if err != nil {
		return nil, fmt.Errorf("apply: shard %d (%s): %w", shard, d.Addr(shard), err)
	}
	if err := resp.ReplyError(reply); err != nil {
		return reply, d.Refused(shard, db, req, err.Error())
	}
	return reply, nil
}

// doCluster is DoUnfenced on a cluster.
func (d *Destination) doCluster(ctx context.Context, shard, db int, req []byte) ([]byte, error) {
	if db != 0 {
		return nil, fmt.Errorf("apply: shard %d: %w (asked for database %d)", shard, ErrClusterDB, db)
	}
	b := d.Backend(shard, db)
	ask := false
	backoff := 10 * time.Millisecond
	var reply []byte
	for attempt := 1; ; attempt++ {
		var err error
		if ask {
			calls := []*pool.Call{{Req: Asking}, {Req: req}}
			b.Pipeline(ctx, calls)
			reply, err = calls[1].Reply, errors.Join(calls[0].Err, calls[1].Err)
		} else {
			reply, err = b.Do(ctx, req, reply)
		}
		if err != nil {
			d.cl.kick()
			return nil, fmt.Errorf("apply: shard %d (%s): %w", shard, b.Addr(), err)
		}
		ask = false
		if len(reply) == 0 || reply[0] != resp.TypeError {
			return reply, nil
		}
		if attempt >= doAttempts {
			break
		}
		if r, ok := ParseRedirect(reply); ok {
			r = r.From(b.Addr())
			nb, err := d.Follow(ctx, r, db)
			if err != nil {
				return nil, fmt.Errorf("apply: shard %d: redirected to %s: %w", shard, r.Addr, err)
			}
			b, ask = nb, r.Ask
			continue
		}
		code := resp.Error(bytes.TrimRight(reply[1:], "\r\n")).Code()
		switch code {
		case "TRYAGAIN", "CLUSTERDOWN", "LOADING", "READONLY", "MASTERDOWN":
		default:
			return reply, d.Refused(shard, db, req, string(bytes.TrimRight(reply[1:], "\r\n")))
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("apply: shard %d (%s): %s: %w", shard, b.Addr(), bytes.TrimSpace(reply), ctx.Err())
		}
		backoff = min(2*backoff, 500*time.Millisecond)
		if code != "TRYAGAIN" {
			if err := d.Refresh(ctx); errors.Is(err, ErrTopologyChanged) {
				return nil, err
			}
		}
		b = d.Backend(shard, db)
	}
	return reply, d.Refused(shard, db, req, string(bytes.TrimRight(reply[1:], "\r\n")))
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
	// RunID changes when the shard restarted (INFO server run_id). On a
	// cluster it is the group's: the run_id of the master first seen,
	// kept across failovers (a new master is not a data loss; writes a
	// killed master had not passed on are the checkpoints' business),
	// and replaced when the group's current master restarts (same node
	// ID, new run_id).
	RunID  string
	Marked bool // the marker key Mark set is there (MarkerKeyOf)
}

// groupRun is what Probe saw of a cluster group's master.
type groupRun struct {
	node  string // the master's node ID
	runID string // its run_id
	group string // the group's RunID
}

// Probe reads every shard's run_id and whether it still has the marker
// key Mark set. Cheap: one INFO server and one EXISTS per shard (on a
// cluster, also CLUSTER MYID).
func (d *Destination) Probe(ctx context.Context) ([]ShardState, error) {
	if _, err := d.FenceEpoch(); err != nil {
		return nil, err
	}
	out := make([]ShardState, d.Len())
	err := d.Each(func(shard int) error {
		if d.cl != nil {
			id, err := d.groupRunID(ctx, shard)
			if err != nil {
				return err
			}
			out[shard].RunID = id
		} else {
			info, err := d.infoServer(ctx, shard)
			if err != nil {
				return err
			}
			out[shard].RunID = runID(info)
		}
		reply, err := d.Do(ctx, shard, 0, "EXISTS", d.MarkerKeyOf(shard))
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

var (
	myIDReq       = resp.AppendCommandString(nil, "CLUSTER", "MYID")
	infoServerReq = resp.AppendCommandString(nil, "INFO", "server")
)

// groupRunID asks group's master for its node ID and run_id (on one
// connection, so both are the same node's) and returns the group's
// RunID (see ShardState).
func (d *Destination) groupRunID(ctx context.Context, group int) (string, error) {
	b := d.Backend(group, 0)
	calls := []*pool.Call{{Req: myIDReq}, {Req: infoServerReq}}
	b.Pipeline(ctx, calls)
	var vals [2]resp.Value
	for i, c := range calls {
		if c.Err != nil {
			d.cl.kick()
			return "", fmt.Errorf("apply: shard %d (%s): %w", group, b.Addr(), c.Err)
		}
		v, _, err := resp.ParseValue(c.Reply, resp.Limits{})
		if err == nil {
			err = v.Err()
		}
		if err != nil {
			return "", fmt.Errorf("destination: shard %d (%s): %w", group, b.Addr(), err)
		}
		vals[i] = v
	}
	node, run := string(vals[0].Str), runID(vals[1].Str)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.runs == nil {
		d.runs = make([]groupRun, d.Len())
	}
	r := &d.runs[group]
	switch {
	case r.node == "":
		*r = groupRun{node: node, runID: run, group: run}
	case r.node == node && r.runID != run: // the master restarted
		r.runID, r.group = run, run
	case r.node != node: // a failover: the group goes on
		r.node, r.runID = node, run
	}
	return r.group, nil
}

// Mark sets the marker key on every shard (after a flush, or when sync
// resumes); appliers in checkpoint mode rewrite it with their checkpoint
// after any keyless command, which may have deleted it. On a cluster
// each group has its own (MarkerKeyOf).
func (d *Destination) Mark(ctx context.Context, value string) error {
	d.mu.Lock()
	d.marker = value
	d.mu.Unlock()
	return d.Each(func(shard int) error {
		if d.cl != nil {
			if n := len(d.Replicas(shard)); n > 0 {
				return d.markReplicated(ctx, shard, value, n)
			}
		}
		_, err := d.Do(ctx, shard, 0, "SET", d.MarkerKeyOf(shard), value)
		return err
	})
}

// markReplicated sets a cluster group's marker and waits (up to a
// second) for its replicas to have it: a master killed just after Mark
// must not take the marker with it, which would look like lost data
// (Probe) and cost a full sync. SET and WAIT go on one connection, so
// WAIT waits for that SET.
func (d *Destination) markReplicated(ctx context.Context, shard int, value string, replicas int) error {
	if _, err := d.FenceEpoch(); err != nil {
		return err
	}
	b := d.Backend(shard, 0)
	set := resp.AppendCommandString(nil, "SET", d.MarkerKeyOf(shard), value)
	calls := []*pool.Call{{Req: set}, {Req: resp.AppendCommandString(nil, "WAIT", strconv.Itoa(replicas), "1000")}}
	b.Pipeline(ctx, calls)
	if err := calls[0].Err; err != nil {
		d.cl.kick()
		return fmt.Errorf("apply: shard %d (%s): %w", shard, b.Addr(), err)
	}
	if string(calls[0].Reply) != "+OK\r\n" {
		// Redirected (the marker's slot moved) or refused: the admin
		// path follows redirects and reports the rest.
		_, err := d.Do(ctx, shard, 0, "SET", d.MarkerKeyOf(shard), value)
		return err
	}
	return calls[1].Err // WAIT's count is not checked: a replica may be down
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
