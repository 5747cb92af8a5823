package metrics

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ProxyObserver is the hook the proxy reports its clients to. Its methods
// are called concurrently from every connection's goroutine; they do not
// block and do not allocate once a command name has been seen. A nil
// ProxyObserver in the proxy's config means no reporting.
type ProxyObserver interface {
	// ConnOpened reports an accepted client connection.
	ConnOpened()
	// ConnClosed reports a closed one (once per ConnOpened).
	ConnClosed()
	// Command reports one client command: its name in any case, the time
	// from reading it to queueing its whole reply, and whether the reply
	// was an error.
	Command(name string, d time.Duration, failed bool)
}

// ShardObserver is the hook the destination's backends (pool.Backend)
// and the syncer's appliers report to. Methods are called concurrently;
// they do not block. shard is the index of the destination shard.
type ShardObserver interface {
	// Pipeline reports one batch written to a shard: the number of calls
	// in it, the time from the write to its last reply, and whether the
	// batch failed (connection error; error replies do not count).
	Pipeline(shard, calls int, d time.Duration, failed bool)
	// ShardUp reports a shard's health as the backend sees it.
	ShardUp(shard int, up bool)
	// Applied reports n commands of a source applied on a shard.
	Applied(source string, shard, n int)
}

// Latency buckets in seconds, from 50µs to 5s.
var latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// maxCommandNames bounds the distinct command labels; later names are
// reported as "other".
const maxCommandNames = 256

type proxyObserver struct {
	conns    metric.Int64UpDownCounter
	accepted metric.Int64Counter
	commands metric.Int64Counter
	duration metric.Float64Histogram

	mu    sync.RWMutex
	names map[string]*commandAttrs // raw name → its label sets; bounded
	other *commandAttrs
}

// commandAttrs holds ready option slices: passing a prebuilt slice keeps
// the variadic calls from allocating.
type commandAttrs struct {
	ok, failed []metric.AddOption
	any        []metric.RecordOption
}

func newCommandAttrs(name string) *commandAttrs {
	c := attribute.String("command", name)
	return &commandAttrs{
		ok:     []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(c, attribute.String("result", "ok")))},
		failed: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(c, attribute.String("result", "error")))},
		any:    []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(c))},
	}
}

func newProxyObserver(m metric.Meter) (*proxyObserver, error) {
	p := &proxyObserver{names: make(map[string]*commandAttrs), other: newCommandAttrs("other")}
	var err error
	if p.conns, err = m.Int64UpDownCounter("replicaof.proxy.connections", metric.WithDescription("Client connections open on the proxy.")); err != nil {
		return nil, err
	}
	if p.accepted, err = m.Int64Counter("replicaof.proxy.connections.accepted", metric.WithDescription("Client connections accepted by the proxy.")); err != nil {
		return nil, err
	}
	if p.commands, err = m.Int64Counter("replicaof.proxy.commands", metric.WithDescription("Client commands served by the proxy, by command and result.")); err != nil {
		return nil, err
	}
	p.duration, err = m.Float64Histogram("replicaof.proxy.command.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from reading a client command to queueing its reply."),
		metric.WithExplicitBucketBoundaries(latencyBuckets...))
	return p, err
}

func (p *proxyObserver) ConnOpened() {
	p.conns.Add(context.Background(), 1)
	p.accepted.Add(context.Background(), 1)
}

func (p *proxyObserver) ConnClosed() { p.conns.Add(context.Background(), -1) }

func (p *proxyObserver) Command(name string, d time.Duration, failed bool) {
	a := p.attrs(name)
	ctx := context.Background()
	if failed {
		p.commands.Add(ctx, 1, a.failed...)
	} else {
		p.commands.Add(ctx, 1, a.ok...)
	}
	p.duration.Record(ctx, d.Seconds(), a.any...)
}

// attrs returns the label sets of name, keeping at most maxCommandNames
// raw spellings.
func (p *proxyObserver) attrs(name string) *commandAttrs {
	p.mu.RLock()
	a := p.names[name]
	p.mu.RUnlock()
	if a != nil {
		return a
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if a = p.names[name]; a != nil {
		return a
	}
	if len(p.names) >= maxCommandNames || !plausibleCommand(name) {
		return p.other
	}
	a = newCommandAttrs(strings.ToLower(name))
	p.names[strings.Clone(name)] = a
	return a
}

// plausibleCommand keeps client-chosen garbage out of the labels.
func plausibleCommand(name string) bool {
	if name == "" || len(name) > 32 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i] | 0x20
		if (c < 'a' || c > 'z') && name[i] != '-' && name[i] != '_' && name[i] != '|' {
			return false
		}
	}
	return true
}

// maxShards bounds the shard label sets kept; higher indexes share "other".
const maxShards = 1024

type shardObserver struct {
	depth    metric.Int64Histogram
	duration metric.Float64Histogram
	failures metric.Int64Counter
	up       metric.Int64Gauge
	applied  metric.Int64Counter

	mu      sync.RWMutex
	shards  []labels              // index → {shard}
	other   labels                // shards out of range
	sources map[appliedKey]labels // bounded by sources × shards
}

// labels is one attribute set as ready option slices (no allocation per
// call).
type labels struct {
	add []metric.AddOption
	rec []metric.RecordOption
}

func newLabels(kv ...attribute.KeyValue) labels {
	o := metric.WithAttributeSet(attribute.NewSet(kv...))
	return labels{add: []metric.AddOption{o}, rec: []metric.RecordOption{o}}
}

type appliedKey struct {
	source string
	shard  int
}

func newShardObserver(m metric.Meter) (*shardObserver, error) {
	s := &shardObserver{sources: make(map[appliedKey]labels), other: newLabels(attribute.String("shard", "other"))}
	var err error
	if s.depth, err = m.Int64Histogram("replicaof.shard.pipeline.depth", metric.WithDescription("Calls per batch written to a destination shard."),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)); err != nil {
		return nil, err
	}
	if s.duration, err = m.Float64Histogram("replicaof.shard.pipeline.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from writing a batch to a destination shard to its last reply."),
		metric.WithExplicitBucketBoundaries(latencyBuckets...)); err != nil {
		return nil, err
	}
	if s.failures, err = m.Int64Counter("replicaof.shard.pipeline.failures", metric.WithDescription("Batches to a destination shard that failed on the connection.")); err != nil {
		return nil, err
	}
	if s.up, err = m.Int64Gauge("replicaof.shard.up", metric.WithDescription("1 while the destination shard answers, else 0.")); err != nil {
		return nil, err
	}
	s.applied, err = m.Int64Counter("replicaof.syncer.commands_applied", metric.WithDescription("Commands of a source applied on a destination shard."))
	return s, err
}

func (s *shardObserver) shardAttrs(shard int) labels {
	s.mu.RLock()
	if shard >= 0 && shard < len(s.shards) {
		a := s.shards[shard]
		s.mu.RUnlock()
		return a
	}
	s.mu.RUnlock()
	if shard < 0 || shard >= maxShards {
		return s.other
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.shards) <= shard {
		s.shards = append(s.shards, newLabels(attribute.String("shard", strconv.Itoa(len(s.shards)))))
	}
	return s.shards[shard]
}

func (s *shardObserver) Pipeline(shard, calls int, d time.Duration, failed bool) {
	a := s.shardAttrs(shard)
	ctx := context.Background()
	s.depth.Record(ctx, int64(calls), a.rec...)
	s.duration.Record(ctx, d.Seconds(), a.rec...)
	if failed {
		s.failures.Add(ctx, 1, a.add...)
	}
}

func (s *shardObserver) ShardUp(shard int, up bool) {
	v := int64(0)
	if up {
		v = 1
	}
	s.up.Record(context.Background(), v, s.shardAttrs(shard).rec...)
}

func (s *shardObserver) Applied(source string, shard, n int) {
	k := appliedKey{source, shard}
	s.mu.RLock()
	a, ok := s.sources[k]
	s.mu.RUnlock()
	if !ok {
		s.mu.Lock()
		if a, ok = s.sources[k]; !ok {
			a = newLabels(attribute.String("source", labelValue(source)), attribute.String("shard", strconv.Itoa(shard)))
			if len(s.sources) < 32*maxShards {
				s.sources[k] = a
			}
		}
		s.mu.Unlock()
	}
	s.applied.Add(context.Background(), int64(n), a.add...)
}
