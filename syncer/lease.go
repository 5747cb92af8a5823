package syncer

// The lease: with Config.Lease set, several replicaof instances may run
// over one destination, and only the holder of the destination's lease
// syncs (docs/reliability.md, High availability). The lease is a key on
// shard 0, db 0:
//
//	__replicaof:lease = "<epoch> <instance id> <admin address>"  PX lease
//
// taken with SET NX semantics (a Lua script, which also picks the epoch)
// and renewed every third of the lease by a compare-and-set on the whole
// value. The epoch grows at every acquisition: max(previous + 1, shard 0's
// clock in ms). A new holder raises every shard's fence key to its epoch
// before its first write (apply/fence.go), and every write checks, by the
// monotonic clock, that the last renewal was sent less than
// lease - margin ago.
//
// On a Redis Cluster destination the lease's keys end with the hash tag
// {lease} (one slot, so its scripts may take two of them), and the fence
// is a key per slot (apply/cluster.go).

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/syncer/apply"
)

// Keys the lease uses on shard 0, db 0 (hidden by the proxy). On a Redis
// Cluster destination the scripts' keys must share a slot: each name then
// ends with clusterLeaseTag (leaseKeys).
const (
	LeaseKey   = destination.KeyPrefix + "lease"
	SourcesKey = destination.KeyPrefix + "sources"
	epochKey   = destination.KeyPrefix + "epoch"

	clusterLeaseTag = "{lease}"
)

// leaseKeys are the lease's key names on d.
type leaseKeys struct{ lease, sources, epoch string }

func leaseKeysOf(d *destination.Destination) leaseKeys {
	k := leaseKeys{LeaseKey, SourcesKey, epochKey}
	if d.Cluster() {
		k.lease += clusterLeaseTag
		k.sources += clusterLeaseTag
		k.epoch += clusterLeaseTag
	}
	return k
}

// Roles of an instance (GET /v1/status "role").
const (
	RoleActive  = "active"
	RoleStandby = "standby"
)

// LeaseConfig turns the lease on (Config.Lease).
type LeaseConfig struct {
	// ID identifies this instance; a restarted instance with the same ID
	// takes its own lease back at once instead of waiting for it to expire.
	ID string
	// Addr is this instance's admin address, shown by standbys.
	Addr string
	// Duration is the lease time (default 10s).
	Duration time.Duration
}

// leaseState is what an instance knows of its lease; the pure part the
// driver (leaseLoop) feeds.
type leaseState struct {
	held    bool
	value   string    // the lease value we hold
	epoch   int64     // its epoch
	renewed time.Time // when the last successful take or renewal was sent (monotonic)
	holder  string    // admin address of the holder seen last (standby)
}

// margin is how long before the lease ends on the destination a holder
// stops writing: clock rate differences and the time a write takes.
func margin(d time.Duration) time.Duration { return max(d/5, 200*time.Millisecond) }

// valid says whether the lease is certainly held at now.
func (l leaseState) valid(now time.Time, d time.Duration) bool {
	return l.held && now.Sub(l.renewed) < d-margin(d)
}

// role is active while the lease is certainly held; an instance whose
// lease lapsed (deposed) is a standby until it takes it again.
func (l leaseState) role(now time.Time, d time.Duration) string {
	if l.valid(now, d) {
		return RoleActive
	}
	return RoleStandby
}

// next is what the driver does now: renew a valid lease, else try to take
// it (a lapsed lease is never renewed: its epoch may have been fenced).
func (l leaseState) next(now time.Time, d time.Duration) (renew bool) {
	return l.valid(now, d)
}

// wake is how long the driver sleeps: a third of the lease, and never
// past the moment a held lease stops being valid.
func (l leaseState) wake(now time.Time, d time.Duration) time.Duration {
	w := d / 3
	if l.valid(now, d) {
		if left := l.renewed.Add(d - margin(d)).Sub(now); left < w {
			w = left
		}
	}
	return max(w, time.Millisecond)
}

const acquireScript = `local v = redis.call('GET', KEYS[1])
if v then
  local e, id = string.match(v, '^(%d+) (%S+)')
  if id ~= ARGV[1] then return {0, v} end
end
local hi = tonumber(redis.call('GET', KEYS[2]) or '0')
if v then
  local e = tonumber(string.match(v, '^(%d+)'))
  if e > hi then hi = e end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = hi + 1
if now > n then n = now end
local floor = tonumber(ARGV[4]) + 1
if floor > n then n = floor end
local nv = string.format('%d', n) .. ' ' .. ARGV[1] .. ' ' .. ARGV[2]
redis.call('SET', KEYS[1], nv, 'PX', ARGV[3])
redis.call('SET', KEYS[2], string.format('%d', n))
return {1, nv}`

// renewScript extends the lease when it is ours; a missing key (deleted
// by a FLUSHALL while we held it) is recreated. It also rewrites the
// source list, which follows the lease.
const renewScript = `local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3]) end
return 1`

const releaseScript = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

// lease drives one instance's lease. Its methods are safe for
// concurrent use; loop runs in a goroutine Supervisor.Run owns.
type lease struct {
	cfg  LeaseConfig
	dest *destination.Destination
	keys leaseKeys
	// sources returns the current source list, encoded for SourcesKey.
	sources func() string
	changed chan struct{} // role may have changed; buffered 1

	mu sync.Mutex
	st leaseState
	// floor: the newest epoch a shard's fence refused ours for; the next
	// acquisition goes above it.
	floor int64
}

func newLease(cfg LeaseConfig, dest *destination.Destination, sources func() string) *lease {
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	return &lease{cfg: cfg, dest: dest, keys: leaseKeysOf(dest), sources: sources, changed: make(chan struct{}, 1)}
}

// Epoch implements apply.Fence.
func (l *lease) Epoch() (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.st.valid(time.Now(), l.cfg.Duration) {
		return 0, fmt.Errorf("%w (lease %v, last renewed %v ago)", apply.ErrFenced, l.cfg.Duration,
			time.Since(l.st.renewed).Round(time.Millisecond))
	}
	return l.st.epoch, nil
}

// Restore implements apply.Fence: the lease's keys as they are now.
func (l *lease) Restore() [][]string {
	srcs := l.sources()
	l.mu.Lock()
	st := l.st
	l.mu.Unlock()
	left := l.cfg.Duration - time.Since(st.renewed)
	if !st.held || left <= 0 {
		return nil
	}
	out := [][]string{
		{"SET", l.keys.lease, st.value, "PX", strconv.FormatInt(max(left.Milliseconds(), 1), 10)},
		{"SET", l.keys.epoch, strconv.FormatInt(st.epoch, 10)},
	}
	if srcs != "" {
		out = append(out, []string{"SET", l.keys.sources, srcs})
	}
	return out
}

// role returns this instance's role and the holder's admin address.
func (l *lease) role() (role, active string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.st.role(time.Now(), l.cfg.Duration)
	if r == RoleActive {
		return r, l.cfg.Addr
	}
	return r, l.st.holder
}

// lose drops the lease (the destination refused our epoch).
func (l *lease) lose() {
	l.mu.Lock()
	l.st.held = false
	l.mu.Unlock()
	l.notify()
}

func (l *lease) notify() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// loop renews or takes the lease (after the step Run made) until ctx
// ends, then releases it when still held, so a standby takes over at once.
func (l *lease) loop(ctx context.Context, log func(msg string, args ...any)) {
	for {
		l.mu.Lock()
		w := l.st.wake(time.Now(), l.cfg.Duration)
		l.mu.Unlock()
		t := time.NewTimer(w)
		select {
		case <-ctx.Done():
			t.Stop()
			l.release()
			return
		case <-t.C:
		}
		l.step(ctx, log)
	}
}

func (l *lease) timeout() time.Duration { return max(l.cfg.Duration/3, 500*time.Millisecond) }

// step renews or takes the lease once.
func (l *lease) step(ctx context.Context, log func(msg string, args ...any)) {
	now := time.Now()
	l.mu.Lock()
	st := l.st
	before := st.role(now, l.cfg.Duration)
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, l.timeout())
	defer cancel()
	px := strconv.FormatInt(l.cfg.Duration.Milliseconds(), 10)
	if st.next(now, l.cfg.Duration) {
		reply, err := l.dest.DoUnfenced(ctx, 0, 0, "EVAL", renewScript, "2", l.keys.lease, l.keys.sources, st.value, px, l.sources())
		l.mu.Lock()
		switch {
		case err != nil:
			// Stays valid until its time runs out; the next step retries.
		case string(reply) == ":1\r\n":
			if l.st.value == st.value {
				l.st.renewed = now
			}
		default:
			log("lease lost to another instance")
			l.st.held = false
		}
		l.mu.Unlock()
	} else {
		l.mu.Lock()
		floor := strconv.FormatInt(l.floor, 10)
		l.mu.Unlock()
		reply, err := l.dest.DoUnfenced(ctx, 0, 0, "EVAL", acquireScript, "2", l.keys.lease, l.keys.epoch, l.cfg.ID, l.cfg.Addr, px, floor)
		if err == nil {
			var ok bool
			var val string
			if ok, val, err = parseAcquire(reply); err == nil {
				if ok {
					err = l.took(ctx, now, val)
				} else {
					l.mu.Lock()
					l.st.held = false
					l.st.holder = holderAddr(val)
					l.mu.Unlock()
				}
			}
		}
		if err != nil {
			log("taking the lease failed", "error", err)
		}
	}
	l.mu.Lock()
	after := l.st.role(time.Now(), l.cfg.Duration)
	l.mu.Unlock()
	if after != before {
		l.notify()
	}
}

// took records the lease taken at now (when the request was sent) after
// raising every shard's fence to its epoch.
func (l *lease) took(ctx context.Context, now time.Time, val string) error {
	epoch, err := strconv.ParseInt(strings.Fields(val)[0], 10, 64)
	if err != nil {
		return fmt.Errorf("lease value %q: %w", val, err)
	}
	if err := apply.RaiseFence(ctx, l.dest, epoch); err != nil {
		var se *apply.StaleEpochError
		if errors.As(err, &se) {
			l.mu.Lock()
			l.floor = max(l.floor, se.Newest)
			l.mu.Unlock()
		}
		return err
	}
	l.mu.Lock()
	l.st = leaseState{held: true, value: val, epoch: epoch, renewed: now, holder: l.cfg.Addr}
	l.mu.Unlock()
	return nil
}

func (l *lease) release() {
	l.mu.Lock()
	st := l.st
	l.st.held = false
	l.mu.Unlock()
	if !st.held {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout())
	defer cancel()
	_, _ = l.dest.DoUnfenced(ctx, 0, 0, "EVAL", releaseScript, "1", l.keys.lease, st.value)
}

// parseAcquire reads the acquire script's reply: [1, value] taken, [0,
// holder's value] not.
func parseAcquire(reply []byte) (bool, string, error) {
	v, _, err := resp.ParseValue(reply, resp.Limits{MaxBulk: 4096})
	if err != nil || v.Type != resp.TypeArray || len(v.Elems) != 2 || len(strings.Fields(string(v.Elems[1].Str))) < 2 {
		return false, "", fmt.Errorf("unexpected lease reply %q", reply)
	}
	return v.Elems[0].Int == 1, string(v.Elems[1].Str), nil
}

// holderAddr is the admin address in a lease value.
func holderAddr(val string) string {
	f := strings.Fields(val)
	if len(f) < 3 {
		return ""
	}
	return f[2]
}

// encodeSources is SourcesKey's value: the writer's instance id, a
// newline, and the source list as config YAML.
func encodeSources(id string, srcs []config.Source) string {
	b, err := config.MarshalSources(srcs)
	if err != nil {
		return ""
	}
	return id + "\n" + string(b)
}

// readSources reads SourcesKey: the list and the id of the instance that
// wrote it; ok false when there is none.
func readSources(ctx context.Context, d *destination.Destination) (writer string, srcs []config.Source, ok bool, err error) {
	key := leaseKeysOf(d).sources
	reply, err := d.DoUnfenced(ctx, 0, 0, "GET", key)
	if err != nil {
		return "", nil, false, err
	}
	v, _, err := resp.ParseValue(reply, resp.Limits{MaxBulk: 16 << 20})
	if err != nil || v.Null || v.Type != resp.TypeBulk {
		return "", nil, false, nil
	}
	id, body, found := strings.Cut(string(v.Str), "\n")
	if !found {
		return "", nil, false, fmt.Errorf("%s: malformed value", key)
	}
	srcs, err = config.ParseSources([]byte(body))
	if err != nil {
		return "", nil, false, fmt.Errorf("%s: %w", key, err)
	}
	return id, srcs, true, nil
}
