package metrics

import (
	"context"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Node is one destination node as the proxy sees it (proxy.NodeStatus):
// a shard's primary or one of its replicas.
type Node struct {
	Shard int
	Addr  string
	Role  string // "primary" or "replica"
	Up    bool
	Lag   time.Duration // replicas: replication lag at the last check
	// Reads sent to the node; Stale and LinkDown count the times a
	// replica left rotation for lag over proxy.max_replica_lag and for
	// its master link down; Errors counts failed checks and reads.
	Reads, Stale, LinkDown, Errors int64
	// Slots is the number of slots a primary owns in the current map.
	Slots int
	// Unread marks a Redis Cluster replica the proxy does not read from
	// (proxy.read_from primary): only its topology series are exported.
	Unread bool
}

type nodeInstruments struct {
	reads, outs metric.Int64ObservableCounter
	up          metric.Int64ObservableGauge
	lag         metric.Float64ObservableGauge
	node, slots metric.Int64ObservableGauge
}

func (p *Provider) registerNodes(m metric.Meter) error {
	var in nodeInstruments
	var err error
	if in.reads, err = m.Int64ObservableCounter("replicaof.proxy.node.reads",
		metric.WithDescription("Reads the proxy sent to a destination node, by shard, address and role (proxy.read_from not primary).")); err != nil {
		return err
	}
	if in.outs, err = m.Int64ObservableCounter("replicaof.proxy.replica.out_of_rotation",
		metric.WithDescription("Times a replica left read rotation, by reason: stale (lag over proxy.max_replica_lag), link_down (master_link_status down), error (a failed check or read).")); err != nil {
		return err
	}
	if in.up, err = m.Int64ObservableGauge("replicaof.proxy.node.up",
		metric.WithDescription("1 while a node serves reads: a primary that answered its last check, a replica in rotation.")); err != nil {
		return err
	}
	if in.lag, err = m.Float64ObservableGauge("replicaof.proxy.replica.lag", metric.WithUnit("s"),
		metric.WithDescription("A replica's replication lag as the proxy measures it (time since the oldest primary offset sample it has not reached).")); err != nil {
		return err
	}
	if in.node, err = m.Int64ObservableGauge("replicaof.destination.node",
		metric.WithDescription("1 for every destination node, by shard (a Redis Cluster's group), address and role (primary: the shard's, or the group's current master).")); err != nil {
		return err
	}
	if in.slots, err = m.Int64ObservableGauge("replicaof.destination.node.slots",
		metric.WithDescription("Hash slots a destination primary owns in the current slot map.")); err != nil {
		return err
	}
	p.nodeCB, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		f := p.nodes.Load()
		if f == nil {
			return nil
		}
		for _, n := range (*f)() {
			node := []attribute.KeyValue{attribute.String("shard", strconv.Itoa(n.Shard)), attribute.String("addr", labelValue(n.Addr)), attribute.String("role", n.Role)}
			o.ObserveInt64(in.node, 1, metric.WithAttributes(node...))
			if n.Role == "primary" {
				o.ObserveInt64(in.slots, int64(n.Slots), metric.WithAttributes(node[:2]...))
			}
			if n.Unread {
				continue
			}
			o.ObserveInt64(in.reads, n.Reads, metric.WithAttributes(node...))
			up := int64(0)
			if n.Up {
				up = 1
			}
			o.ObserveInt64(in.up, up, metric.WithAttributes(node...))
			if n.Role != "replica" {
				continue
			}
			o.ObserveFloat64(in.lag, n.Lag.Seconds(), metric.WithAttributes(node[:2]...))
			for _, r := range []struct {
				reason string
				n      int64
			}{{"stale", n.Stale}, {"link_down", n.LinkDown}, {"error", n.Errors}} {
				o.ObserveInt64(in.outs, r.n, metric.WithAttributes(node[0], node[1], attribute.String("reason", r.reason)))
			}
		}
		return nil
	}, in.reads, in.outs, in.up, in.lag, in.node, in.slots)
	return err
}

// SetNodes sets the function the node series are read from at each
// scrape (the proxy's Server.Nodes, converted); until it is set they are
// absent.
func (p *Provider) SetNodes(f func() []Node) { p.nodes.Store(&f) }
