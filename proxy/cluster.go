package proxy

import (
	"crypto/sha1"
	"encoding/hex"
	"net"
	"strconv"

	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/router"
	"github.com/tidwall/redcon"
)

// The proxy answers the CLUSTER commands cluster-mode clients start with
// as a one-node cluster that owns all 16384 slots, whatever the
// destination is (standalone shards or a Redis Cluster): the node is the
// proxy itself, at the address the client reached it on (the local address
// of the client's connection). A cluster client (go-redis ClusterClient,
// redis-cli -c, Jedis, Lettuce) therefore sends everything to the proxy,
// which routes it by the destination's live slot map and follows the
// destination's own redirects (redirect.go): clients never see MOVED or
// ASK. Standalone clients are served as before: HELLO and INFO server
// say redis_mode standalone; INFO cluster says cluster_enabled:1.
//
// Answered locally: CLUSTER SLOTS, SHARDS, NODES, INFO, MYID and KEYSLOT; ASKING, READONLY and READWRITE answer +OK. Every other CLUSTER
// subcommand is refused: the destination's cluster is managed directly.

const clusterNote = "the proxy answers as a one-node cluster that owns every slot, at the address the client connected to"

// clusterRefused is why the other CLUSTER subcommands are refused.
const clusterRefused = "the proxy is a one-node cluster to its clients (SLOTS, SHARDS, NODES, INFO, MYID, KEYSLOT); the destination's cluster is managed directly"

// clusterID is the proxy's node ID in CLUSTER replies: 40 hex digits,
// stable for the server's life (it derives from the listener's address and
// start time).
func (s *Server) clusterID() string {
	h := sha1.Sum([]byte(s.ln.Addr().String() + "|" + s.start.String()))
	return hex.EncodeToString(h[:])
}

// clusterEndpoint is the host and port the client reached the proxy on.
func (c *session) clusterEndpoint() (string, int, bool) {
	_, local := c.drv.addrs()
	a, ok := local.(*net.TCPAddr)
	if !ok {
		return "", 0, false
	}
	return a.IP.String(), a.Port, true
}

// clusterCmd serves CLUSTER <subcommand>.
func (c *session) clusterCmd(args [][]byte) {
	c.subcommand("cluster", args)
}

// clusterNode answers a subcommand that names the node: an error when the
// client's connection has no TCP address (a unix socket).
func (c *session) clusterNode(args [][]byte, n int, answer func(host string, port int, id string)) {
	if len(args) != n {
		c.wrongArgs("cluster|" + lowerArg(args[1]))
		return
	}
	host, port, ok := c.clusterEndpoint()
	if !ok {
		c.replyErr("ERR the proxy answers CLUSTER commands on TCP connections only")
		return
	}
	answer(host, port, c.s.clusterID())
}

func (c *session) clusterSlots(args [][]byte) {
	c.clusterNode(args, 2, func(host string, port int, id string) {
		lo := len(c.local)
		b := redcon.AppendArray(c.local, 1)
		b = redcon.AppendArray(b, 3)
		b = redcon.AppendInt(b, 0)
		b = redcon.AppendInt(b, router.SlotCount-1)
		b = redcon.AppendArray(b, 3)
		b = redcon.AppendBulkString(b, host)
		b = redcon.AppendInt(b, int64(port))
		b = redcon.AppendBulkString(b, id)
		c.local = b
		c.localOp(lo)
	})
}

func (c *session) clusterShards(args [][]byte) {
	c.clusterNode(args, 2, func(host string, port int, id string) {
		lo := len(c.local)
		b := redcon.AppendArray(c.local, 1)
		b = redcon.AppendArray(b, 4)
		b = redcon.AppendBulkString(b, "slots")
		b = redcon.AppendArray(b, 2)
		b = redcon.AppendInt(b, 0)
		b = redcon.AppendInt(b, router.SlotCount-1)
		b = redcon.AppendBulkString(b, "nodes")
		b = redcon.AppendArray(b, 1)
		b = redcon.AppendArray(b, 14)
		b = redcon.AppendBulkString(b, "id")
		b = redcon.AppendBulkString(b, id)
		b = redcon.AppendBulkString(b, "port")
		b = redcon.AppendInt(b, int64(port))
		b = redcon.AppendBulkString(b, "ip")
		b = redcon.AppendBulkString(b, host)
		b = redcon.AppendBulkString(b, "endpoint")
		b = redcon.AppendBulkString(b, host)
		b = redcon.AppendBulkString(b, "role")
		b = redcon.AppendBulkString(b, "master")
		b = redcon.AppendBulkString(b, "replication-offset")
		b = redcon.AppendInt(b, 0)
		b = redcon.AppendBulkString(b, "health")
		b = redcon.AppendBulkString(b, "online")
		c.local = b
		c.localOp(lo)
	})
}

func (c *session) clusterNodes(args [][]byte) {
	c.clusterNode(args, 2, func(host string, port int, id string) {
		line := id + " " + net.JoinHostPort(host, strconv.Itoa(port)) + "@0 myself,master - 0 0 1 connected 0-" +
			strconv.Itoa(router.SlotCount-1) + "\n"
		c.replyBulk([]byte(line))
	})
}

func (c *session) clusterMyID(args [][]byte) {
	if len(args) != 2 {
		c.wrongArgs("cluster|" + lowerArg(args[1]))
		return
	}
	c.replyBulk([]byte(c.s.clusterID()))
}

// clusterInfoText is CLUSTER INFO of a healthy one-node cluster.
const clusterInfoText = "cluster_state:ok\r\n" +
	"cluster_slots_assigned:16384\r\n" +
	"cluster_slots_ok:16384\r\n" +
	"cluster_slots_pfail:0\r\n" +
	"cluster_slots_fail:0\r\n" +
	"cluster_known_nodes:1\r\n" +
	"cluster_size:1\r\n" +
	"cluster_current_epoch:1\r\n" +
	"cluster_my_epoch:1\r\n" +
	"cluster_stats_messages_sent:0\r\n" +
	"cluster_stats_messages_received:0\r\n" +
	"total_cluster_links_buffer_limit_exceeded:0\r\n"

func (c *session) clusterInfo(args [][]byte) {
	if len(args) != 2 {
		c.wrongArgs("cluster|info")
		return
	}
	c.replyBulk([]byte(clusterInfoText))
}

func (c *session) clusterKeySlot(args [][]byte) {
	if len(args) != 3 {
		c.wrongArgs("cluster|keyslot")
		return
	}
	lo := len(c.local)
	c.local = redcon.AppendInt(c.local, int64(router.Slot(args[2])))
	c.localOp(lo)
}

// current reports whether bs are still the backends of every shard's
// node: a cluster group's master changes with a failover (the
// destination's Pools follow it; the proxy's cached sets are rebuilt).
func (p *shardPools) current(bs []*pool.Backend) bool {
	for i, b := range bs {
		if b.Addr() != p.d.Addr(i) {
			return false
		}
	}
	return true
}

// bySlot splits each part further so that every part's keys share one
// slot: a Redis Cluster refuses a multi-key command across slots
// (-CROSSSLOT), even when one node holds them all. stride is the
// arguments per key (2 for MSET). Parts already on one slot are kept as
// they are, in order; a part's pieces keep its shard and key order.
func bySlot(parts []router.Part, stride int) []router.Part {
	out := parts[:0:0]
	for _, p := range parts {
		one := true
		first := router.Slot(p.Args[1])
		for j := 1 + stride; j < len(p.Args); j += stride {
			if router.Slot(p.Args[j]) != first {
				one = false
				break
			}
		}
		if one {
			out = append(out, p)
			continue
		}
		at := map[uint16]int{} // slot → index in out
		for j, k := 1, 0; j < len(p.Args); j, k = j+stride, k+1 {
			sl := router.Slot(p.Args[j])
			i, ok := at[sl]
			if !ok {
				i = len(out)
				at[sl] = i
				out = append(out, router.Part{Shard: p.Shard, Args: [][]byte{p.Args[0]}})
			}
			out[i].Args = append(out[i].Args, p.Args[j:j+stride]...)
			out[i].Keys = append(out[i].Keys, p.Keys[k])
		}
	}
	return out
}
