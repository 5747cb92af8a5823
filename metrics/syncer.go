package metrics

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/replicaof/replicaof/syncer"
)

// Status codes of replicaof_syncer_status and replicaof_destination_status.
const (
	CodeInSync    = 0
	CodeSyncing   = 1
	CodeOutOfSync = 2
)

// StatusCode maps a sync state (syncer.StateSynced, …) to its code:
// anything neither synced nor syncing is out of sync.
func StatusCode(syncState string) int64 {
	switch syncState {
	case syncer.StateSynced:
		return CodeInSync
	case syncer.StateSyncing:
		return CodeSyncing
	}
	return CodeOutOfSync
}

// syncerInstruments are the observable instruments the one callback feeds.
type syncerInstruments struct {
	status, snapSize, snapDone, keys, srcOff, applOff, info, destStatus, links metric.Int64ObservableGauge
	unsupported, dropped                                                       metric.Int64ObservableGauge
	lag, progress, lastUpdate, lastError                                       metric.Float64ObservableGauge
	fullSyncs, partialSyncs, retries, errors, flushes, received, wire          metric.Int64ObservableCounter
	crossShard                                                                 metric.Int64ObservableCounter
}

func (p *Provider) registerSyncer(m metric.Meter) error {
	var in syncerInstruments
	var err error
	ig := func(dst *metric.Int64ObservableGauge, name, unit, desc string) {
		if err == nil {
			*dst, err = m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		}
	}
	fg := func(dst *metric.Float64ObservableGauge, name, unit, desc string) {
		if err == nil {
			*dst, err = m.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		}
	}
	ic := func(dst *metric.Int64ObservableCounter, name, desc string, unit ...string) {
		if err == nil {
			opts := []metric.Int64ObservableCounterOption{metric.WithDescription(desc)}
			if len(unit) > 0 {
				opts = append(opts, metric.WithUnit(unit[0]))
			}
			*dst, err = m.Int64ObservableCounter(name, opts...)
		}
	}
	ig(&in.status, "replicaof.syncer.status", "", "Sync status of the source: 0 in sync, 1 syncing, 2 out of sync or stopped.")
	fg(&in.lag, "replicaof.syncer.lag", "s", "Time from a write reaching the source to its being applied on the destination.")
	ig(&in.snapSize, "replicaof.syncer.snapshot.size", "By", "Size of the source's snapshot (RDB); absent while unknown (diskless transfer).")
	ig(&in.snapDone, "replicaof.syncer.snapshot.transferred", "By", "Snapshot bytes received from the source in the current full sync.")
	fg(&in.progress, "replicaof.syncer.snapshot.progress", "1", "Fraction of the snapshot loaded, 0 to 1.")
	ig(&in.keys, "replicaof.syncer.keys_loaded", "", "Keys loaded from the source's snapshot in the current full sync.")
	ig(&in.srcOff, "replicaof.syncer.source_offset", "By", "The source's replication offset, as last sampled.")
	ig(&in.applOff, "replicaof.syncer.applied_offset", "By", "Replication offset of the source applied on the destination.")
	ic(&in.fullSyncs, "replicaof.syncer.full_syncs", "Full synchronizations of the source.")
	ic(&in.partialSyncs, "replicaof.syncer.partial_syncs", "Partial resynchronizations of the source.")
	ic(&in.retries, "replicaof.syncer.retries", "Reconnects to the source after errors.")
	ic(&in.received, "replicaof.syncer.received", "Bytes received from the source by its links (snapshot and stream), after decompression.", "By")
	ic(&in.wire, "replicaof.syncer.wire", "Bytes read from the source's connections, before decompression: below received when the link is gzip-compressed.", "By")
	ic(&in.crossShard, "replicaof.syncer.cross_shard_emulated", "Commands (a MULTI/EXEC block counts once) whose keys spanned destination shards, emulated through a staging shard.")
	ig(&in.links, "replicaof.syncer.links", "", "Replication links of the source: 1, or one per master of a Redis Cluster or per shard of a replicaof proxy.")
	ig(&in.unsupported, "replicaof.syncer.unsupported_keys", "", "Keys of the source left out since its last full sync because the destination cannot take them (replica_of.unsupported_keys: skip), per type.")
	ig(&in.dropped, "replicaof.syncer.dropped_commands", "", "Stream commands of the source dropped since its last full sync: on keys left out, or unknown to the destination (replica_of.unsupported_keys: skip).")
	ic(&in.errors, "replicaof.syncer.errors", "Distinct errors of the source seen at collection time.")
	fg(&in.lastUpdate, "replicaof.syncer.last_update.timestamp", "s", "Unix time a command from the source was last applied.")
	fg(&in.lastError, "replicaof.syncer.last_error.timestamp", "s", "Unix time of the source's last error.")
	ig(&in.info, "replicaof.syncer.source_info", "", "Always 1; labels the source with its redacted URL.")
	ig(&in.destStatus, "replicaof.destination.status", "", "Aggregate status of the destination: 0 in sync, 1 syncing, 2 out of sync or stopped.")
	ic(&in.flushes, "replicaof.destination.flushes", "Flushes of every destination shard (at start and each restart).")
	if err != nil {
		return err
	}
	p.cb, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		p.observe(o, &in)
		return nil
	}, in.status, in.lag, in.snapSize, in.snapDone, in.progress, in.keys, in.srcOff, in.applOff,
		in.fullSyncs, in.partialSyncs, in.retries, in.errors, in.lastUpdate, in.lastError, in.info,
		in.destStatus, in.flushes, in.received, in.wire, in.links, in.crossShard, in.unsupported, in.dropped)
	return err
}

// observe reads the supervisor once and records every syncer series.
func (p *Provider) observe(o metric.Observer, in *syncerInstruments) {
	st := p.cfg.Source.Status()
	o.ObserveInt64(in.destStatus, StatusCode(st.Status))
	if fc, ok := p.cfg.Source.(FlushCounter); ok {
		o.ObserveInt64(in.flushes, int64(fc.Flushes()))
	}
	errCounts := p.errs.update(st.Sources)
	for i, s := range st.Sources {
		name := labelValue(s.Name)
		attrs := metric.WithAttributeSet(attribute.NewSet(
			attribute.String("source", name), attribute.String("uid", strconv.Itoa(s.UID))))
		o.ObserveInt64(in.status, StatusCode(s.SyncState), attrs)
		o.ObserveFloat64(in.lag, float64(max(s.LagMS, 0))/1e3, attrs)
		if s.RDBSize >= 0 {
			o.ObserveInt64(in.snapSize, s.RDBSize, attrs)
		}
		o.ObserveInt64(in.snapDone, s.RDBTransferred, attrs)
		o.ObserveFloat64(in.progress, float64(min(max(s.Progress, 0), 100))/100, attrs)
		o.ObserveInt64(in.keys, s.KeysLoaded, attrs)
		o.ObserveInt64(in.srcOff, s.SourceOffset, attrs)
		o.ObserveInt64(in.applOff, s.AppliedOffset, attrs)
		o.ObserveInt64(in.fullSyncs, int64(s.FullSyncs), attrs)
		o.ObserveInt64(in.partialSyncs, int64(s.PartialSyncs), attrs)
		o.ObserveInt64(in.retries, int64(s.Retries), attrs)
		o.ObserveInt64(in.received, s.BytesReceived, attrs)
		o.ObserveInt64(in.wire, s.WireBytes, attrs)
		o.ObserveInt64(in.links, int64(s.Links), attrs)
		o.ObserveInt64(in.crossShard, s.CrossShardEmulated, attrs)
		o.ObserveInt64(in.errors, errCounts[i], attrs)
		o.ObserveInt64(in.dropped, s.DroppedCommands, attrs)
		for typ, n := range s.UnsupportedKeys {
			o.ObserveInt64(in.unsupported, n, metric.WithAttributeSet(attribute.NewSet(
				attribute.String("source", name), attribute.String("uid", strconv.Itoa(s.UID)), attribute.String("type", labelValue(typ)))))
		}
		if t, ok := unixSeconds(s.LastUpdate); ok {
			o.ObserveFloat64(in.lastUpdate, t, attrs)
		}
		if t, ok := unixSeconds(s.LastErrorTime); ok {
			o.ObserveFloat64(in.lastError, t, attrs)
		}
		o.ObserveInt64(in.info, 1, metric.WithAttributeSet(attribute.NewSet(
			attribute.String("source", name), attribute.String("uid", strconv.Itoa(s.UID)), attribute.String("uri", labelValue(s.URI)),
			attribute.String("kind", labelValue(s.Kind)))))
	}
}

// labelValue makes s a valid label value: Prometheus rejects a whole
// metric family over one label that is not UTF-8.
func labelValue(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func unixSeconds(rfc3339 string) (float64, bool) {
	if rfc3339 == "" {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339Nano, rfc3339)
	if err != nil {
		return 0, false
	}
	return float64(t.UnixNano()) / 1e9, true
}

// errorCounter turns each source's last error into a count: a new
// LastErrorTime seen at collection counts one error. Errors that replace
// each other between two scrapes count once, so the series is a lower
// bound until the syncer exports its own count (SourceStatus.Errors).
type errorCounter struct {
	mu   sync.Mutex
	seen map[errorKey]*errorSeen // bounded by the number of sources
}

type errorKey struct {
	uid  int
	name string
}

type errorSeen struct {
	last  string
	count int64
}

// update records sts and returns each source's count, index for index.
// Sources no longer listed are forgotten.
func (c *errorCounter) update(sts []syncer.SourceStatus) []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := make(map[errorKey]*errorSeen, len(sts))
	out := make([]int64, len(sts))
	for i, s := range sts {
		k := errorKey{s.UID, s.Name}
		e := c.seen[k]
		if e == nil {
			e = &errorSeen{}
		}
		if s.LastErrorTime != "" && s.LastErrorTime != e.last {
			e.count++
		}
		if s.LastErrorTime != "" {
			e.last = s.LastErrorTime
		}
		next[k] = e
		out[i] = e.count
	}
	c.seen = next
	return out
}
