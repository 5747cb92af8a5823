package verify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/router"
)

// ErrNoShards is returned by Run for a Config without a destination.
var ErrNoShards = errors.New("verify: no destination shards")

// Endpoint is one Redis server to read from.
type Endpoint struct {
	// Name labels the endpoint in mismatches; "" means Addr.
	Name string
	// Addr is host:port.
	Addr string
	// User and Password are sent with AUTH when Password is set ("" User
	// means the default user).
	User, Password string
	// Dial, when set, opens connections (TLS: tlsutil.Dialer.DialContext);
	// nil means plain TCP.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Slots, when set, are the hash slot ranges (inclusive) the endpoint
	// serves: a Redis Cluster master. Keys of other slots are not asked
	// of it (it would answer MOVED); they count as not held there.
	Slots []router.SlotRange
}

// serves reports whether e holds key's slot.
func (e Endpoint) serves(key string) bool {
	if e.Slots == nil {
		return true
	}
	return router.SlotsContain(e.Slots, router.Slot([]byte(key)))
}

func (e Endpoint) label() string {
	if e.Name != "" {
		return e.Name
	}
	return e.Addr
}

// DBDrop in Config.DBMap leaves a source database out: the syncer drops
// its writes (destination.db_map's drop).
const DBDrop = -1

// Config says what to compare and how. Zero fields take the defaults noted.
type Config struct {
	// Sources are compared, as one keyspace (their union), with the
	// destination. May be empty: then every destination key is extra.
	Sources []Endpoint
	// Destination is the destination (required): a key belongs to shard
	// Destination.Map().ShardOf(key); each shard is read with its own
	// AUTH and TLS (destination.Shard).
	Destination *destination.Destination
	// DBs limits the databases compared; nil means every database that
	// holds keys on any side (INFO keyspace).
	DBs []int
	// DBMap maps source databases onto destination ones, as the syncer's
	// destination.db_map does for a Redis Cluster destination (database
	// 0 only): source database s is compared with destination database
	// DBMap[s], or left out when that is DBDrop; unlisted databases map
	// to themselves. Destination keys are then looked for in every source
	// database mapped onto theirs (a key in two of them is a duplicate).
	DBMap map[int]int
	// Batch is the SCAN COUNT and the number of keys read per pipeline
	// (default 1000).
	Batch int
	// Chunk is the number of elements read per call from a long list, set,
	// hash, sorted set or stream (default 1000); strings are read in
	// chunks of 64 × Chunk bytes.
	Chunk int
	// Workers is the number of batches compared at once (default 4).
	Workers int
	// RecheckDelay is how long after a mismatch is found it is read again;
	// only mismatches that are still there are reported (default 1s;
	// negative means no delay).
	RecheckDelay time.Duration
	// MaxReported is how many mismatches Report.Mismatches keeps
	// (default 20; the counters count them all).
	MaxReported int
	// Timeout bounds every network call (default 30s).
	Timeout time.Duration
	// TTLGrace is the grace the syncer adds to every TTL it writes
	// (replica_of.ttl_grace): a destination TTL is compared with the
	// source's after taking it off. 0: compared as they are.
	TTLGrace time.Duration
	// TTLTolerance is how far apart, grace taken off, the two sides' TTLs
	// of a key may be (default 5s: both are read as a time to live, at
	// slightly different moments, and TTLs sent by Redis < 7.0 sources
	// as relative times start when applied).
	TTLTolerance time.Duration
	// Skip, when set, excludes more keys than destination.KeyPrefix ones.
	Skip func(key string) bool
	// Progress, when set, is called every ProgressInterval (default
	// 200ms) from a goroutine of Run, and once more at the end.
	Progress         func(Progress)
	ProgressInterval time.Duration

	// beforeRecheck, for tests, runs just before a batch of suspects is
	// read again.
	beforeRecheck func([]Mismatch)
}

// Progress is how far a run is.
type Progress struct {
	Done  int64 // keys scanned so far, sources and destination
	Total int64 // keys on all sides when the run started (INFO keyspace)
	Phase string
}

func (c Config) withDefaults() Config {
	if c.Batch <= 0 {
		c.Batch = 1000
	}
	if c.Chunk <= 0 {
		c.Chunk = 1000
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.TTLTolerance <= 0 {
		c.TTLTolerance = 5 * time.Second
	}
	if c.RecheckDelay == 0 {
		c.RecheckDelay = time.Second
	}
	if c.MaxReported <= 0 {
		c.MaxReported = 20
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 200 * time.Millisecond
	}
	return c
}

// pendingLimit bounds the suspects waiting for their re-check: when it is
// reached they are re-checked before scanning goes on.
const pendingLimit = 10000

// firstChunk is the number of elements (×64 bytes for strings) of each
// value read in a batch's pipeline; longer values are read on in Chunk
// steps.
const firstChunk = 128

// verifier is one run.
type verifier struct {
	cfg     Config
	shards  *router.SlotMap
	dst     []Endpoint // the destination's shards
	rd      reader
	srcSeen []int // the source databases with keys (DBMap)

	cmu     sync.Mutex
	clients map[clientKey]*redis.Client

	done  atomic.Int64
	total atomic.Int64
	phase atomic.Value // string

	mu      sync.Mutex
	pending []suspect
	rep     Report
}

type clientKey struct {
	shard bool
	idx   int
	db    int
}

type suspect struct {
	m     Mismatch
	found time.Time
}

// Run compares the sources with the destination and returns the report.
// The error is for failures to read (a server down, a timeout, ctx); the
// report then holds what was counted so far.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if cfg.Destination == nil {
		return nil, ErrNoShards
	}
	var dst []Endpoint
	for i := range cfg.Destination.Len() {
		s := cfg.Destination.Shard(i)
		dst = append(dst, Endpoint{Addr: s.Addr, User: s.User, Password: s.Password, Dial: s.Dial})
	}
	v := &verifier{
		cfg:     cfg,
		shards:  cfg.Destination.Map(),
		dst:     dst,
		clients: map[clientKey]*redis.Client{},
		rd:      reader{first: min(firstChunk, cfg.Chunk), chunk: cfg.Chunk, strFirst: 64 * int64(min(firstChunk, cfg.Chunk)), strChunk: 64 * int64(cfg.Chunk)},
	}
	v.phase.Store("keyspace")
	defer v.close()
	start := time.Now()
	v.rep.Sources, v.rep.Shards = len(cfg.Sources), len(dst)

	stop := v.startProgress()
	err := v.run(ctx)
	stop()
	v.rep.Elapsed = time.Since(start)
	return &v.rep, err
}

func (v *verifier) run(ctx context.Context) error {
	srcDBs, dstDBs, err := v.keyspaces(ctx)
	if err != nil {
		return err
	}
	v.srcSeen = srcDBs
	if v.cfg.Destination.Cluster() {
		for _, db := range srcDBs {
			if to, _ := v.destDB(db); to != 0 {
				return fmt.Errorf("verify: the destination is a Redis Cluster, with database 0 only: source database %d needs mapping to 0 or dropping (destination.db_map)", db)
			}
		}
	}
	dbs := slices.Clone(srcDBs)
	for _, db := range dstDBs {
		if !slices.Contains(dbs, db) {
			dbs = append(dbs, db)
		}
	}
	slices.Sort(dbs)
	v.rep.DBs = dbs
	for _, db := range dbs {
		if _, ok := v.destDB(db); ok && slices.Contains(srcDBs, db) {
			for i := range v.cfg.Sources {
				v.phase.Store(fmt.Sprintf("db %d: source %s", db, v.cfg.Sources[i].label()))
				if err := v.scan(ctx, v.client(false, i, db), func(ctx context.Context, keys []string) error {
					return v.compareSource(ctx, db, i, keys)
				}); err != nil {
					return err
				}
			}
		}
		if !slices.Contains(dstDBs, db) {
			continue
		}
		for j := range v.dst {
			v.phase.Store(fmt.Sprintf("db %d: shard %d", db, j))
			if err := v.scan(ctx, v.client(true, j, db), func(ctx context.Context, keys []string) error {
				return v.checkShard(ctx, db, j, keys)
			}); err != nil {
				return err
			}
		}
	}
	v.phase.Store("re-check")
	v.mu.Lock()
	batch := v.pending
	v.pending = nil
	v.mu.Unlock()
	return v.recheck(ctx, batch)
}

// startProgress runs the Progress callback until the returned stop is
// called; stop waits for it and makes the last call.
func (v *verifier) startProgress() (stop func()) {
	if v.cfg.Progress == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(v.cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				v.cfg.Progress(v.progress())
			}
		}
	}()
	return func() {
		close(quit)
		wg.Wait()
		p := v.progress()
		p.Phase = "done"
		v.cfg.Progress(p)
	}
}

func (v *verifier) progress() Progress {
	ph, _ := v.phase.Load().(string)
	return Progress{Done: v.done.Load(), Total: v.total.Load(), Phase: ph}
}

func (v *verifier) endpoint(shard bool, idx int) Endpoint {
	if shard {
		return v.dst[idx]
	}
	return v.cfg.Sources[idx]
}

// client returns the (cached) client of one endpoint's database.
func (v *verifier) client(shard bool, idx, db int) *redis.Client {
	k := clientKey{shard, idx, db}
	v.cmu.Lock()
	defer v.cmu.Unlock()
	if c := v.clients[k]; c != nil {
		return c
	}
	e := v.endpoint(shard, idx)
	c := redis.NewClient(&redis.Options{
		Addr: e.Addr, Username: e.User, Password: e.Password, DB: db, Dialer: e.Dial,
		Protocol: 2, DisableIdentity: true, MaxRetries: -1,
		DialTimeout: v.cfg.Timeout, ReadTimeout: v.cfg.Timeout, WriteTimeout: v.cfg.Timeout,
		PoolSize: 2*v.cfg.Workers + 2, PipelinePoolSize: 2*v.cfg.Workers + 2,
	})
	v.clients[k] = c
	return c
}

func (v *verifier) close() {
	v.cmu.Lock()
	defer v.cmu.Unlock()
	for _, c := range v.clients {
		c.Close()
	}
}

// keyspaces lists the databases to compare on the sources (those mapped
// to no destination database left out) and on the destination, and sets
// the progress total.
func (v *verifier) keyspaces(ctx context.Context) (srcDBs, dstDBs []int, err error) {
	var total int64
	for _, shard := range []bool{false, true} {
		seen := map[int]bool{}
		n := len(v.cfg.Sources)
		if shard {
			n = len(v.dst)
		}
		for i := 0; i < n; i++ {
			info, err := v.client(shard, i, 0).Info(ctx, "keyspace").Result()
			if err != nil {
				return nil, nil, fmt.Errorf("verify: INFO keyspace on %s: %w", v.endpoint(shard, i).label(), err)
			}
			for db, keys := range parseKeyspace(info) {
				if _, mapped := v.destDB(db); (!shard && !mapped) || (v.cfg.DBs != nil && !slices.Contains(v.cfg.DBs, db)) {
					continue
				}
				seen[db] = true
				total += keys
			}
		}
		dbs := make([]int, 0, len(seen))
		for db := range seen {
			dbs = append(dbs, db)
		}
		slices.Sort(dbs)
		if shard {
			dstDBs = dbs
		} else {
			srcDBs = dbs
		}
	}
	v.total.Store(total)
	return srcDBs, dstDBs, nil
}

// destDB is the destination database of source database db (DBMap);
// false when it is dropped.
func (v *verifier) destDB(db int) (int, bool) {
	to, ok := v.cfg.DBMap[db]
	switch {
	case !ok:
		return db, true
	case to == DBDrop:
		return 0, false
	}
	return to, true
}

// sourceDBs are the source databases whose keys destination database db
// holds: db itself unless it is mapped elsewhere, and every source
// database with keys mapped onto it.
func (v *verifier) sourceDBs(db int) []int {
	var out []int
	if to, ok := v.destDB(db); ok && to == db {
		out = append(out, db)
	}
	for _, s := range v.srcSeen {
		if to, ok := v.destDB(s); ok && to == db && s != db {
			out = append(out, s)
		}
	}
	return out
}

func (v *verifier) skip(key string) bool {
	return strings.HasPrefix(key, destination.KeyPrefix) || (v.cfg.Skip != nil && v.cfg.Skip(key))
}

// scan SCANs c in batches and hands them to Workers goroutines running fn.
// At most Workers+1 batches exist at once.
func (v *verifier) scan(ctx context.Context, c *redis.Client, fn func(context.Context, []string) error) error {
	g, gctx := errgroup.WithContext(ctx)
	batches := make(chan []string, 1)
	g.Go(func() error {
		defer close(batches)
		var cursor uint64
		for {
			keys, next, err := c.Scan(gctx, cursor, "", int64(v.cfg.Batch)).Result()
			if err != nil {
				return fmt.Errorf("verify: SCAN on %s: %w", c.Options().Addr, err)
			}
			v.done.Add(int64(len(keys)))
			kept := keys[:0]
			for _, k := range keys {
				if !v.skip(k) {
					kept = append(kept, k)
				}
			}
			if len(kept) > 0 {
				select {
				case batches <- kept:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	})
	for w := 0; w < v.cfg.Workers; w++ {
		g.Go(func() error {
			for keys := range batches {
				if err := fn(gctx, keys); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// describeBoth reads keys on source src and on their destination shards.
func (v *verifier) describeBoth(ctx context.Context, db, src int, keys []string) (s, d []state, shardOf []int, err error) {
	shardOf = make([]int, len(keys))
	byShard := make([][]int, len(v.dst))
	for i, k := range keys {
		shardOf[i] = v.shards.ShardOf([]byte(k))
		byShard[shardOf[i]] = append(byShard[shardOf[i]], i)
	}
	d = make([]state, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		s, err = v.rd.describe(gctx, v.client(false, src, db), keys)
		if err != nil {
			return fmt.Errorf("verify: reading source %s: %w", v.cfg.Sources[src].label(), err)
		}
		return nil
	})
	for j, idx := range byShard {
		if len(idx) == 0 {
			continue
		}
		g.Go(func() error {
			sub := make([]string, len(idx))
			for n, i := range idx {
				sub[n] = keys[i]
			}
			ddb, _ := v.destDB(db)
			st, err := v.rd.describe(gctx, v.client(true, j, ddb), sub)
			if err != nil {
				return fmt.Errorf("verify: reading shard %d (%s): %w", j, v.dst[j].Addr, err)
			}
			for n, i := range idx {
				d[i] = st[n]
			}
			return nil
		})
	}
	err = g.Wait()
	return s, d, shardOf, err
}

// classify compares a source key with its destination copy; "" is equal.
// The destination's TTL carries grace; the two TTLs may differ by tol.
func classify(s, d state, grace, tol time.Duration) (Reason, string) {
	switch {
	case d.typ == "none":
		return Missing, "not on the destination"
	case s.typ != d.typ:
		return Type, fmt.Sprintf("source has a %s, destination a %s", s.typ, d.typ)
	case s.bad != "":
		return Value, "source: " + s.bad
	case d.bad != "":
		return Value, "destination: " + d.bad
	case s.digest != d.digest:
		return Value, fmt.Sprintf("%s values differ", s.typ)
	case s.ttl && !d.ttl:
		return TTL, "source has a TTL, destination none"
	case !s.ttl && d.ttl:
		return TTL, "destination has a TTL, source none"
	case s.ttl && d.ttl:
		sd := time.Duration(s.pttl) * time.Millisecond
		dd := time.Duration(d.pttl)*time.Millisecond - grace
		if dd < 0 {
			dd = 0 // past the source's TTL, its DEL on the way (lagging data)
		}
		if diff := dd - sd; diff > tol || diff < -tol {
			return TTL, fmt.Sprintf("TTL %v on the source, %v on the destination (grace %v taken off)", sd, dd, grace)
		}
	}
	return "", ""
}

func (v *verifier) compareSource(ctx context.Context, db, src int, keys []string) error {
	s, d, shardOf, err := v.describeBoth(ctx, db, src, keys)
	if err != nil {
		return err
	}
	var sus []Mismatch
	var compared, equal, vanished int64
	for i, k := range keys {
		if s[i].typ == "none" {
			vanished++ // expired or deleted since SCAN
			continue
		}
		compared++
		r, detail := classify(s[i], d[i], v.cfg.TTLGrace, v.cfg.TTLTolerance)
		if r == "" {
			equal++
			continue
		}
		sus = append(sus, Mismatch{DB: db, Key: k, Reason: r, Source: v.cfg.Sources[src].label(), Shard: shardOf[i], Detail: detail, src: src})
	}
	v.mu.Lock()
	v.rep.Compared += compared
	v.rep.Equal += equal
	v.rep.Vanished += vanished
	v.mu.Unlock()
	return v.suspect(ctx, sus)
}

// holders counts, for each key of destination database db, the sources
// holding it (in any source database mapped onto db), and names them.
func (v *verifier) holders(ctx context.Context, db int, keys []string) ([][]int, error) {
	out := make([][]int, len(keys))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for _, sdb := range v.sourceDBs(db) {
		for i := range v.cfg.Sources {
			g.Go(func() error { return v.holdersOn(gctx, i, sdb, keys, out, &mu) })
		}
	}
	err := g.Wait()
	for _, h := range out {
		slices.Sort(h)
	}
	return out, err
}

// holdersOn adds source i to the holders of the keys its database db
// has.
func (v *verifier) holdersOn(ctx context.Context, i, db int, keys []string, out [][]int, mu *sync.Mutex) error {
	pipe := v.client(false, i, db).Pipeline()
	cmds := make([]*redis.IntCmd, len(keys))
	asked := 0
	for n, k := range keys {
		if v.cfg.Sources[i].serves(k) {
			cmds[n] = pipe.Exists(ctx, k)
			asked++
		}
	}
	if asked == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("verify: EXISTS on source %s (db %d): %w", v.cfg.Sources[i].label(), db, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for n, c := range cmds {
		if c != nil && c.Val() > 0 {
			out[n] = append(out[n], i)
		}
	}
	return nil
}

func (v *verifier) names(srcs []int) string {
	var b strings.Builder
	for n, i := range srcs {
		if n > 0 {
			b.WriteString(", ")
		}
		b.WriteString(v.cfg.Sources[i].label())
	}
	return b.String()
}

func (v *verifier) checkShard(ctx context.Context, db, shard int, keys []string) error {
	var sus []Mismatch
	var placed []string
	for _, k := range keys {
		if want := v.shards.ShardOf([]byte(k)); want != shard {
			sus = append(sus, Mismatch{DB: db, Key: k, Reason: Misplaced, Shard: shard,
				Detail: fmt.Sprintf("on shard %d, its slot belongs to shard %d", shard, want)})
			continue
		}
		placed = append(placed, k)
	}
	v.mu.Lock()
	v.rep.DestinationKeys += int64(len(keys))
	v.mu.Unlock()
	h, err := v.holders(ctx, db, placed)
	if err != nil {
		return err
	}
	for n, k := range placed {
		switch {
		case len(h[n]) == 0:
			sus = append(sus, Mismatch{DB: db, Key: k, Reason: Extra, Shard: shard, Detail: "on no source"})
		case len(h[n]) > 1:
			sus = append(sus, Mismatch{DB: db, Key: k, Reason: Duplicate, Shard: shard, Detail: "on sources " + v.names(h[n])})
		}
	}
	return v.suspect(ctx, sus)
}

// suspect queues mismatches for their re-check; when the queue is full the
// caller re-checks it, which holds the scan back and bounds the queue.
func (v *verifier) suspect(ctx context.Context, ms []Mismatch) error {
	if len(ms) == 0 {
		return nil
	}
	now := time.Now()
	v.mu.Lock()
	for _, m := range ms {
		v.pending = append(v.pending, suspect{m, now})
	}
	var batch []suspect
	if len(v.pending) >= pendingLimit {
		batch, v.pending = v.pending, nil
	}
	v.mu.Unlock()
	return v.recheck(ctx, batch)
}

// recheck reads suspects again once RecheckDelay has passed since the
// first was found, and records those still different.
func (v *verifier) recheck(ctx context.Context, batch []suspect) error {
	if len(batch) == 0 {
		return nil
	}
	if wait := time.Until(batch[0].found.Add(v.cfg.RecheckDelay)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if v.cfg.beforeRecheck != nil {
		ms := make([]Mismatch, len(batch))
		for i, s := range batch {
			ms[i] = s.m
		}
		v.cfg.beforeRecheck(ms)
	}
	v.mu.Lock()
	v.rep.Rechecked += int64(len(batch))
	v.mu.Unlock()
	// Group: source-side suspects by (db, source); destination-side by db.
	type group struct {
		db, src int
		dest    bool
	}
	groups := map[group][]Mismatch{}
	var order []group
	for _, s := range batch {
		g := group{db: s.m.DB, src: s.m.src, dest: s.m.Reason.destinationSide()}
		if g.dest {
			g.src = -1
		}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], s.m)
	}
	for _, g := range order {
		ms := groups[g]
		for len(ms) > 0 {
			part := ms[:min(len(ms), v.cfg.Batch)]
			ms = ms[len(part):]
			var err error
			if g.dest {
				err = v.recheckDest(ctx, g.db, part)
			} else {
				err = v.recheckSource(ctx, g.db, g.src, part)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (v *verifier) recheckSource(ctx context.Context, db, src int, ms []Mismatch) error {
	keys := make([]string, len(ms))
	for i, m := range ms {
		keys[i] = m.Key
	}
	s, d, _, err := v.describeBoth(ctx, db, src, keys)
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, m := range ms {
		if s[i].typ == "none" {
			v.rep.Compared--
			v.rep.Vanished++
			continue
		}
		r, detail := classify(s[i], d[i], v.cfg.TTLGrace, v.cfg.TTLTolerance)
		if r == "" {
			v.rep.Equal++
			continue
		}
		m.Reason, m.Detail = r, detail
		v.record(m)
	}
	return nil
}

func (v *verifier) recheckDest(ctx context.Context, db int, ms []Mismatch) error {
	// Still on the shard where it was seen?
	byShard := map[int][]int{}
	for i, m := range ms {
		byShard[m.Shard] = append(byShard[m.Shard], i)
	}
	there := make([]bool, len(ms))
	for j, idx := range byShard {
		pipe := v.client(true, j, db).Pipeline()
		cmds := make([]*redis.IntCmd, len(idx))
		for n, i := range idx {
			cmds[n] = pipe.Exists(ctx, ms[i].Key)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("verify: EXISTS on shard %d: %w", j, err)
		}
		for n, i := range idx {
			there[i] = cmds[n].Val() > 0
		}
	}
	keys := make([]string, len(ms))
	for i, m := range ms {
		keys[i] = m.Key
	}
	h, err := v.holders(ctx, db, keys)
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, m := range ms {
		if !there[i] {
			continue
		}
		switch m.Reason {
		case Misplaced:
			v.record(m)
		case Extra, Duplicate:
			switch {
			case len(h[i]) == 0:
				m.Reason, m.Detail = Extra, "on no source"
				v.record(m)
			case len(h[i]) > 1:
				m.Reason, m.Detail = Duplicate, "on sources "+v.names(h[i])
				v.record(m)
			}
		}
	}
	return nil
}

// record counts a confirmed mismatch; v.mu is held.
func (v *verifier) record(m Mismatch) {
	switch m.Reason {
	case Missing:
		v.rep.Missing++
	case Extra:
		v.rep.Extra++
	case Type:
		v.rep.Type++
	case Value:
		v.rep.Value++
	case TTL:
		v.rep.TTL++
	case Duplicate:
		v.rep.Duplicate++
	case Misplaced:
		v.rep.Misplaced++
	}
	if len(v.rep.Mismatches) < v.cfg.MaxReported {
		v.rep.Mismatches = append(v.rep.Mismatches, m)
	}
}
