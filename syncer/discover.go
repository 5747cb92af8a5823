package syncer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/config"
	clustertopo "github.com/replicaof/replicaof/internal/topology"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
	"github.com/replicaof/replicaof/syncer/replica"
)

// Discovery: what a source is, asked at the start of every sync run.
//
//   - A replicaof proxy answers INFO replication with replicaof_shards:<n>:
//     one link per destination shard, each sending REPLCONF rof-shard <i>
//     (and REPLCONF rof-compress gzip <level> when the source asks for
//     compression) before PSYNC.
//   - A Redis Cluster node answers INFO cluster with cluster_enabled:1:
//     CLUSTER SHARDS (CLUSTER SLOTS before 7.0) names the masters, one
//     link per master, identified by its slot ranges. Before each
//     reconnect a link asks the cluster again
//     which node serves its ranges (a failover moves it; the promoted
//     replica keeps the old master's replication id, so the link resumes
//     by partial resync there), and a watcher compares the slot map with
//     the one the run started with: slots that moved between masters
//     (resharding) mean the links no longer partition the keyspace the
//     way the destination's data was loaded, and end the run with a full
//     resync of everything.
//   - Anything else is one server, one link. A source whose ACL user may
//     not run INFO (a user for replication only) is taken for one too.
//
// Plain Redis sources are never sent the replicaof handshake commands.

// discoverTimeout bounds one discovery round trip.
const discoverTimeout = 5 * time.Second

// topology is a Redis Cluster's masters: for each, its slot ranges (as a
// string like "0-5460,10923-12000") and address, sorted by first slot.
type topology []clusterMaster

type clusterMaster struct {
	ranges string
	addr   string
}

func (t topology) sameRanges(o topology) bool {
	return slices.EqualFunc(t, o, func(a, b clusterMaster) bool { return a.ranges == b.ranges })
}

// sourceClient is a one-connection client of the source at addr() (read
// at each dial: a cluster master can move), for discovery and lag
// sampling; timeout bounds each dial and round trip.
func sourceClient(src config.Source, addr func() string, dial dialFunc, timeout time.Duration,
	onConnect func(context.Context, *redis.Conn) error) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: addr(), Username: src.User, Password: string(src.Password),
		Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dial(ctx, network, addr())
		},
		OnConnect: onConnect, Protocol: 2, DialTimeout: timeout,
		ReadTimeout: timeout, WriteTimeout: timeout,
		MaxRetries: -1, PoolSize: 1, DisableIdentity: true,
	})
}

// adminClient is a short-lived client of the source at addr.
func adminClient(src config.Source, addr string, dial dialFunc) *redis.Client {
	return sourceClient(src, func() string { return addr }, dial, discoverTimeout, nil)
}

// Link is one replication link of a discovered source.
type Link struct {
	Addr  string             // what it dials
	Slots []router.SlotRange // a cluster master's slot ranges; nil otherwise
}

// Discover tells what the source is (KindRedis, KindCluster or
// KindReplicaof) and its replication links: a cluster's masters in slot
// order, else the source's own address (once per shard of a replicaof
// proxy). replicaof verify uses it to read every master of a cluster
// source.
func Discover(ctx context.Context, src config.Source) (kind string, links []Link, err error) {
	dial, err := dialer(src)
	if err != nil {
		return "", nil, err
	}
	kind, parts, err := discover(ctx, src, dial)
	if err != nil {
		return "", nil, err
	}
	for _, p := range parts {
		l := Link{Addr: p.getAddr()}
		if p.ranges != "" {
			if l.Slots, err = router.ParseSlotRanges(p.ranges); err != nil {
				return "", nil, err
			}
		}
		links = append(links, l)
	}
	return kind, links, nil
}

// discover finds what src is and returns its kind and parts (new ones;
// source.setParts carries state over from the previous run's).
func discover(ctx context.Context, cfg config.Source, dial dialFunc) (string, []*part, error) {
	c := adminClient(cfg, cfg.Addr(), dial)
	defer c.Close()
	info, err := c.Info(ctx, "replication").Result()
	switch {
	case isNoPerm(err):
		return KindRedis, []*part{newPart("", cfg.Addr())}, nil
	case err != nil:
		return "", nil, discoveryErr(err)
	}
	if n, ok := infoField(info, "replicaof_shards"); ok {
		if n <= 0 || n > 1<<14 {
			return "", nil, fmt.Errorf("replicaof source reports %d shards", n)
		}
		parts := make([]*part, n)
		for i := range parts {
			p := newPart("shard:"+strconv.Itoa(i), cfg.Addr())
			p.shard = i
			p.handshake = [][]string{{"REPLCONF", "rof-shard", strconv.Itoa(i)}}
			if lvl := cfg.Compression; lvl > 0 {
				p.handshake = append(p.handshake, []string{"REPLCONF", "rof-compress", "gzip", strconv.Itoa(lvl)})
				p.gzip = true
			}
			parts[i] = p
		}
		return KindReplicaof, parts, nil
	}
	info, err = c.Info(ctx, "cluster").Result()
	switch {
	case isNoPerm(err):
		return KindRedis, []*part{newPart("", cfg.Addr())}, nil
	case err != nil:
		return "", nil, discoveryErr(err)
	}
	if on, _ := infoField(info, "cluster_enabled"); on != 1 {
		return KindRedis, []*part{newPart("", cfg.Addr())}, nil
	}
	topo, err := clusterTopology(ctx, c, cfg.Host)
	if err != nil {
		return "", nil, discoveryErr(err)
	}
	parts := make([]*part, len(topo))
	for i, m := range topo {
		parts[i] = newPart("slots:"+m.ranges, m.addr)
		parts[i].ranges = m.ranges
	}
	return KindCluster, parts, nil
}

// discoveryErr makes authentication failures fatal like the link's own.
func discoveryErr(err error) error {
	if e, ok := serverReply(err); ok && e.Auth() {
		return fmt.Errorf("%w: %s", replica.ErrAuth, err.Error())
	}
	return err
}

// isNoPerm reports a NOPERM reply: the source's ACL does not let us run
// INFO, which a plain server's replication user need not.
func isNoPerm(err error) bool {
	e, ok := serverReply(err)
	return ok && e.Code() == "NOPERM"
}

// serverReply returns the error reply go-redis returned err for, as a
// resp.Error.
func serverReply(err error) (resp.Error, bool) {
	var re redis.Error
	if !errors.As(err, &re) {
		return "", false
	}
	return resp.Error(re.Error()), true
}

// clusterTopology reads the cluster's masters through c (CLUSTER SHARDS,
// or CLUSTER SLOTS before 7.0; package topology parses both). Nodes
// announcing no IP are at host (the address the source URL names).
func clusterTopology(ctx context.Context, c *redis.Client, host string) (topology, error) {
	t, err := clustertopo.Read(ctx, goRedisDo(c), host)
	if err != nil {
		return nil, err
	}
	if n := t.Covered(); n != router.SlotCount {
		return nil, fmt.Errorf("the cluster serves %d of 16384 slots: it is not ready", n)
	}
	var topo topology
	for _, s := range t {
		m, ok := s.Master()
		if len(s.Slots) == 0 {
			continue
		}
		if !ok {
			return nil, fmt.Errorf("slots %s have no master", router.FormatSlotRanges(s.Slots))
		}
		topo = append(topo, clusterMaster{ranges: router.FormatSlotRanges(s.Slots), addr: m.Addr(false)})
	}
	return topo, nil
}

// goRedisDo runs commands for package topology through a go-redis
// client (RESP2), turning its replies back into resp.Values.
func goRedisDo(c *redis.Client) clustertopo.Do {
	return func(ctx context.Context, args ...string) (resp.Value, error) {
		a := make([]any, len(args))
		for i, s := range args {
			a[i] = s
		}
		v, err := c.Do(ctx, a...).Result()
		if e, ok := serverReply(err); ok {
			return resp.Value{Type: resp.TypeError, Str: []byte(e)}, nil
		}
		if err != nil {
			return resp.Value{}, err
		}
		return fromGoRedis(v)
	}
}

// fromGoRedis converts a go-redis RESP2 reply (strings, integers,
// nested slices, nil) to a resp.Value.
func fromGoRedis(v any) (resp.Value, error) {
	switch v := v.(type) {
	case nil:
		return resp.Value{Type: resp.TypeBulk, Null: true}, nil
	case string:
		return resp.Value{Type: resp.TypeBulk, Str: []byte(v)}, nil
	case int64:
		return resp.Value{Type: resp.TypeInteger, Int: v}, nil
	case []any:
		out := resp.Value{Type: resp.TypeArray, Elems: make([]resp.Value, len(v))}
		for i, e := range v {
			var err error
			if out.Elems[i], err = fromGoRedis(e); err != nil {
				return resp.Value{}, err
			}
		}
		return out, nil
	}
	return resp.Value{}, fmt.Errorf("unexpected reply element %T", v)
}

// readTopology asks any reachable node of src (its parts' addresses
// first, then the URL's) for the current topology.
func readTopology(ctx context.Context, src *source, dial dialFunc) (topology, error) {
	var addrs []string
	for _, p := range src.getParts() {
		addrs = append(addrs, p.getAddr())
	}
	addrs = append(addrs, src.cfg.Addr())
	var errs []error
	for _, a := range addrs {
		c := adminClient(src.cfg, a, dial)
		t, err := clusterTopology(ctx, c, src.cfg.Host)
		c.Close()
		if err == nil {
			return t, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", a, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// errTopologyChanged means a cluster source's slots moved between masters.
var errTopologyChanged = errors.New("syncer: the cluster's slots moved between masters")

// resolve points a cluster part at the master serving its ranges now.
// It returns errTopologyChanged (wrapped in ErrNeedFullResync) when the
// ranges changed; an unreachable cluster leaves the address as it is.
func (s *Supervisor) resolve(ctx context.Context, src *source, p *part, dial dialFunc, start topology) error {
	cctx, cancel := context.WithTimeout(ctx, 2*discoverTimeout)
	defer cancel()
	t, err := readTopology(cctx, src, dial)
	if err != nil {
		return nil // the link's own dial reports it
	}
	if !t.sameRanges(start) {
		return fmt.Errorf("%w: source %s: %w", ErrNeedFullResync, src.cfg.Name, errTopologyChanged)
	}
	for _, m := range t {
		if m.ranges == p.ranges && m.addr != p.getAddr() {
			s.cfg.Logger.Info("cluster source: master moved", "source", src.cfg.Name,
				"slots", p.ranges, "from", p.getAddr(), "to", m.addr)
			p.setAddr(m.addr)
		}
	}
	return nil
}

// watchTopology ends the run when a cluster source's slot ranges change.
func (s *Supervisor) watchTopology(ctx context.Context, src *source, dial dialFunc, start topology) error {
	t := time.NewTicker(s.cfg.TopologyInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 2*discoverTimeout)
		now, err := readTopology(cctx, src, dial)
		cancel()
		if err != nil || now.sameRanges(start) {
			continue
		}
		return &SourceError{src.cfg.Name, fmt.Errorf("%w: %w", ErrNeedFullResync, errTopologyChanged)}
	}
}

func topologyOf(parts []*part) topology {
	t := make(topology, len(parts))
	for i, p := range parts {
		t[i] = clusterMaster{ranges: p.ranges, addr: p.getAddr()}
	}
	return t
}
