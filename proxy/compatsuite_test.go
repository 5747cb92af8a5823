package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/resp"
)

// The compatibility pass: the same command sequences run on one
// redis-server directly and through the proxy over three shards, and the
// raw replies are compared byte for byte (after the normalizations a
// sharded server cannot avoid: orders of unordered replies, cursors,
// clocks). The pass rate is reported in README.md.

type compatCase struct {
	name string
	cmds [][]string
	// norm, when set, normalizes every reply of the case before comparing.
	norm func(cmd []string, reply []byte) []byte
}

func c1(args ...string) []string { return args }

func seq(name string, cmds ...[]string) compatCase { return compatCase{name: name, cmds: cmds} }

// knownDifferences are cases where the proxy answers differently from one
// server, on purpose; the reason is the documented handling.
var knownDifferences = map[string]string{
	"server/client-list":  "CLIENT LIST is refused: the proxy's clients are not the shards'",
	"server/config-get":   "CONFIG is refused: an admin command, the shards are configured directly",
	"server/lastsave":     "LASTSAVE is refused: no keys, no shard to ask",
	"server/swapdb":       "SWAPDB is refused: it would swap databases under the syncer",
	"server/wait":         "WAIT is refused: the shards' replicas are not the client's",
	"server/debug":        "DEBUG is refused: an admin command",
	"strings/msetnx-span": "MSETNX over keys of several shards answers -CROSSSLOT: it cannot be atomic across shards",
	"keys/rename-span":    "RENAME between shards answers -CROSSSLOT",
	"sets/sunion-span":    "multi-key set commands over several shards answer -CROSSSLOT",
}

// sortedArray sorts the elements of a flat array reply.
func sortedArray(reply []byte) []byte {
	es, ok := elems(reply)
	if !ok {
		return reply
	}
	ss := make([]string, len(es))
	for i, e := range es {
		ss[i] = string(e)
	}
	sort.Strings(ss)
	out := resp.AppendArray(nil, len(ss))
	for _, s := range ss {
		out = append(out, s...)
	}
	return out
}

var compatCases = []compatCase{
	// Strings.
	seq("strings/set-get", c1("SET", "a", "1"), c1("GET", "a"), c1("GET", "missing"), c1("SET", "a", "2", "NX"), c1("SET", "a", "3", "XX", "GET"), c1("GET", "a")),
	seq("strings/incr", c1("INCR", "n"), c1("INCRBY", "n", "10"), c1("DECR", "n"), c1("DECRBY", "n", "3"), c1("INCRBYFLOAT", "f", "1.5"), c1("INCRBYFLOAT", "f", "0.25"), c1("SET", "s", "x"), c1("INCR", "s")),
	seq("strings/append-range", c1("APPEND", "s", "hello"), c1("APPEND", "s", " world"), c1("GETRANGE", "s", "0", "4"), c1("SETRANGE", "s", "6", "WORLD"), c1("STRLEN", "s"), c1("GET", "s"), c1("SUBSTR", "s", "1", "3")),
	seq("strings/getset-getdel-getex", c1("SET", "k", "v"), c1("GETSET", "k", "w"), c1("GETDEL", "k"), c1("GETDEL", "k"), c1("SET", "k", "v"), c1("GETEX", "k", "PERSIST"), c1("TTL", "k")),
	seq("strings/expire-variants", c1("SETEX", "k", "100", "v"), c1("TTL", "k"), c1("PSETEX", "p", "100000", "v"), c1("SETNX", "k", "x"), c1("SETNX", "new", "x")),
	seq("strings/mset-mget", c1("MSET", "a", "1", "b", "2", "c", "3", "d", "4"), c1("MGET", "a", "b", "c", "d", "e"), c1("EXISTS", "a", "b", "zz"), c1("DEL", "a", "b", "zz"), c1("MGET", "a", "b", "c")),
	seq("strings/msetnx-tagged", c1("MSETNX", "{t}a", "1", "{t}b", "2"), c1("MSETNX", "{t}a", "1", "{t}c", "2"), c1("MGET", "{t}a", "{t}b", "{t}c")),
	seq("strings/msetnx-span", c1("MSETNX", "a", "1", "b", "2", "c", "3")),
	seq("strings/lcs", c1("MSET", "{l}1", "ohmytext", "{l}2", "mynewtext"), c1("LCS", "{l}1", "{l}2"), c1("LCS", "{l}1", "{l}2", "LEN")),
	seq("strings/wrongtype", c1("LPUSH", "l", "x"), c1("GET", "l"), c1("INCR", "l")),
	seq("strings/errors", c1("GET"), c1("SET", "a"), c1("INCRBY", "n", "x"), c1("SET", "a", "b", "EX", "-1")),
	// Lists.
	seq("lists/push-range", c1("RPUSH", "l", "a", "b", "c"), c1("LPUSH", "l", "z"), c1("LRANGE", "l", "0", "-1"), c1("LLEN", "l"), c1("LINDEX", "l", "1"), c1("LPOS", "l", "c")),
	seq("lists/pop", c1("RPUSH", "l", "a", "b", "c", "d"), c1("LPOP", "l"), c1("RPOP", "l"), c1("LPOP", "l", "5"), c1("LPOP", "l")),
	seq("lists/edit", c1("RPUSH", "l", "a", "b", "a", "c"), c1("LSET", "l", "0", "x"), c1("LINSERT", "l", "BEFORE", "c", "y"), c1("LREM", "l", "0", "a"), c1("LTRIM", "l", "0", "1"), c1("LRANGE", "l", "0", "-1")),
	seq("lists/move", c1("RPUSH", "{m}s", "1", "2"), c1("LMOVE", "{m}s", "{m}d", "LEFT", "RIGHT"), c1("RPOPLPUSH", "{m}s", "{m}d"), c1("LRANGE", "{m}d", "0", "-1"), c1("LMPOP", "2", "{m}s", "{m}d", "LEFT", "COUNT", "5")),
	seq("lists/blocking-with-data", c1("RPUSH", "bl", "x"), c1("BLPOP", "bl", "1"), c1("BRPOP", "bl", "0.1"), c1("RPUSH", "{b}1", "y"), c1("BLMOVE", "{b}1", "{b}2", "LEFT", "LEFT", "1"), c1("BLMPOP", "0.1", "1", "{b}2", "LEFT")),
	// Hashes.
	seq("hashes/basic", c1("HSET", "h", "a", "1", "b", "2"), c1("HGET", "h", "a"), c1("HMGET", "h", "a", "x"), c1("HGETALL", "h"), c1("HLEN", "h"), c1("HEXISTS", "h", "b"), c1("HDEL", "h", "a", "x"), c1("HKEYS", "h"), c1("HVALS", "h")),
	seq("hashes/incr", c1("HINCRBY", "h", "n", "5"), c1("HINCRBYFLOAT", "h", "f", "2.5"), c1("HSETNX", "h", "n", "0"), c1("HSTRLEN", "h", "f"), c1("HMSET", "h", "x", "y")),
	// Sets.
	seq("sets/basic", c1("SADD", "s", "1", "2", "3"), c1("SMEMBERS", "s"), c1("SISMEMBER", "s", "2"), c1("SMISMEMBER", "s", "1", "9"), c1("SCARD", "s"), c1("SREM", "s", "1", "9")),
	seq("sets/algebra-tagged", c1("SADD", "{s}a", "1", "2", "3"), c1("SADD", "{s}b", "2", "3", "4"), c1("SINTER", "{s}a", "{s}b"), c1("SUNION", "{s}a", "{s}b"), c1("SDIFF", "{s}a", "{s}b"), c1("SINTERCARD", "2", "{s}a", "{s}b"), c1("SINTERSTORE", "{s}c", "{s}a", "{s}b"), c1("SMOVE", "{s}a", "{s}b", "1"), c1("SMEMBERS", "{s}b")),
	seq("sets/sunion-span", c1("SADD", "a", "1"), c1("SADD", "b", "2"), c1("SUNION", "a", "b")),
	// Sorted sets.
	seq("zsets/basic", c1("ZADD", "z", "1", "a", "2", "b", "3", "c"), c1("ZRANGE", "z", "0", "-1", "WITHSCORES"), c1("ZSCORE", "z", "b"), c1("ZINCRBY", "z", "5", "a"), c1("ZRANK", "z", "a"), c1("ZREVRANK", "z", "a"), c1("ZCARD", "z"), c1("ZCOUNT", "z", "1", "3"), c1("ZMSCORE", "z", "a", "x")),
	seq("zsets/ranges", c1("ZADD", "z", "0", "a", "0", "b", "0", "c", "0", "d"), c1("ZRANGEBYLEX", "z", "[b", "(d"), c1("ZLEXCOUNT", "z", "-", "+"), c1("ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "1", "2"), c1("ZREVRANGE", "z", "0", "1"), c1("ZRANGE", "z", "(a", "+", "BYLEX", "LIMIT", "0", "2")),
	seq("zsets/pop", c1("ZADD", "z", "1", "a", "2", "b", "3", "c"), c1("ZPOPMIN", "z"), c1("ZPOPMAX", "z", "2"), c1("ZADD", "{z}1", "1", "x"), c1("ZMPOP", "1", "{z}1", "MIN"), c1("ZADD", "{z}1", "1", "y"), c1("BZPOPMIN", "{z}1", "0.1"), c1("BZPOPMAX", "{z}1", "0.1")),
	seq("zsets/store", c1("ZADD", "{z}a", "1", "x", "2", "y"), c1("ZADD", "{z}b", "3", "y", "4", "w"), c1("ZUNIONSTORE", "{z}c", "2", "{z}a", "{z}b"), c1("ZINTER", "2", "{z}a", "{z}b", "WITHSCORES"), c1("ZDIFF", "2", "{z}a", "{z}b"), c1("ZRANGESTORE", "{z}d", "{z}c", "0", "1"), c1("ZRANGE", "{z}d", "0", "-1", "WITHSCORES")),
	// Keys.
	seq("keys/type-ttl", c1("SET", "a", "1"), c1("TYPE", "a"), c1("TYPE", "none"), c1("EXPIRE", "a", "100"), c1("TTL", "a"), c1("PERSIST", "a"), c1("PTTL", "a"), c1("EXPIREAT", "a", "4102444800"), c1("EXPIRETIME", "a"), c1("TTL", "none")),
	seq("keys/rename-copy", c1("SET", "{r}a", "1"), c1("RENAME", "{r}a", "{r}b"), c1("RENAMENX", "{r}b", "{r}c"), c1("COPY", "{r}c", "{r}d"), c1("MGET", "{r}a", "{r}b", "{r}c", "{r}d")),
	seq("keys/rename-span", c1("SET", "a", "1"), c1("RENAME", "a", "b")),
	seq("keys/object-dump", c1("SET", "a", "12345"), c1("OBJECT", "ENCODING", "a"), c1("RPUSH", "l", "x"), c1("OBJECT", "ENCODING", "l"), c1("DUMP", "a"), c1("DEL", "a"), c1("RESTORE", "a", "0", "\x00\xc1\x39\x30\n\x00\xb6\x8b\xd4\x9c\x8f\x1e\x0f\x18"), c1("GET", "a")),
	seq("keys/sort", c1("RPUSH", "l", "3", "1", "2"), c1("SORT", "l"), c1("SORT", "l", "DESC", "LIMIT", "0", "2"), c1("SORT_RO", "l", "ALPHA")),
	seq("keys/touch-unlink", c1("MSET", "a", "1", "b", "2", "c", "3"), c1("TOUCH", "a", "b", "x"), c1("UNLINK", "a", "b", "x"), c1("EXISTS", "a", "b", "c")),
	// Streams.
	seq("streams/basic", c1("XADD", "st", "1-1", "f", "v"), c1("XADD", "st", "2-1", "f", "w"), c1("XLEN", "st"), c1("XRANGE", "st", "-", "+"), c1("XREVRANGE", "st", "+", "-", "COUNT", "1"), c1("XREAD", "COUNT", "5", "STREAMS", "st", "0"), c1("XDEL", "st", "1-1"), c1("XTRIM", "st", "MAXLEN", "0"), c1("XLEN", "st")),
	seq("streams/groups", c1("XADD", "st", "1-1", "f", "v"), c1("XGROUP", "CREATE", "st", "g", "0"), c1("XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "st", ">"), c1("XACK", "st", "g", "1-1"), c1("XPENDING", "st", "g"), c1("XADD", "st", "2-1", "f", "w"), c1("XREADGROUP", "GROUP", "g", "c", "BLOCK", "100", "STREAMS", "st", ">"), c1("XAUTOCLAIM", "st", "g", "c2", "0", "0-0", "JUSTID"), c1("XGROUP", "DESTROY", "st", "g")),
	// Bits, HyperLogLog, geo.
	seq("bits", c1("SETBIT", "b", "7", "1"), c1("GETBIT", "b", "7"), c1("BITCOUNT", "b"), c1("BITPOS", "b", "1"), c1("SET", "{b}x", "ab"), c1("SET", "{b}y", "cd"), c1("BITOP", "AND", "{b}z", "{b}x", "{b}y"), c1("GET", "{b}z"), c1("BITFIELD", "b", "INCRBY", "u8", "0", "5"), c1("BITFIELD_RO", "b", "GET", "u8", "0")),
	seq("hll", c1("PFADD", "{h}1", "a", "b", "c"), c1("PFADD", "{h}2", "c", "d"), c1("PFCOUNT", "{h}1"), c1("PFMERGE", "{h}3", "{h}1", "{h}2"), c1("PFCOUNT", "{h}3")),
	seq("geo", c1("GEOADD", "g", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"), c1("GEODIST", "g", "Palermo", "Catania", "km"), c1("GEOHASH", "g", "Palermo"), c1("GEOPOS", "g", "Catania"), c1("GEOSEARCH", "g", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ASC")),
	// Scripts, functions, transactions.
	seq("scripts/eval", c1("EVAL", "return {1, 'two', {3}}", "0"), c1("EVAL", "return redis.call('SET', KEYS[1], ARGV[1])", "1", "k", "v"), c1("GET", "k"), c1("EVAL", "return redis.error_reply('custom')", "0"), c1("EVAL", "return 1.5", "0")),
	seq("scripts/load-evalsha", c1("SCRIPT", "LOAD", "return KEYS[1]"), c1("EVALSHA", "d0f0e2d2c0dd0c3ac5f2cf0b3b3e0f2df2d0e3b4", "0"), c1("EVALSHA", "8b0dfa1e5a3b40ba8ed1b0d2c4a5a1df3d6a2a8d", "1", "x"), c1("SCRIPT", "EXISTS", "8b0dfa1e5a3b40ba8ed1b0d2c4a5a1df3d6a2a8d")),
	seq("scripts/functions", c1("FUNCTION", "LOAD", "#!lua name=cl\nredis.register_function('cf', function(k, a) return redis.call('INCR', k[1]) end)"), c1("FCALL", "cf", "1", "n"), c1("FCALL", "cf", "1", "n"), c1("FUNCTION", "LIST", "LIBRARYNAME", "cl"), c1("FUNCTION", "DELETE", "cl"), c1("FCALL", "cf", "1", "n")),
	seq("tx/multi-exec", c1("MULTI"), c1("SET", "{x}a", "1"), c1("INCR", "{x}a"), c1("GET", "{x}a"), c1("EXEC"), c1("MULTI"), c1("SET", "a", "1"), c1("DISCARD"), c1("EXEC")),
	seq("tx/watch", c1("WATCH", "{w}a"), c1("MULTI"), c1("SET", "{w}a", "1"), c1("EXEC"), c1("WATCH", "{w}a"), c1("UNWATCH"), c1("MULTI"), c1("EXEC")),
	seq("tx/errors", c1("MULTI"), c1("SET", "a"), c1("EXEC"), c1("MULTI"), c1("LPUSH", "{e}s", "x"), c1("INCR", "{e}s"), c1("EXEC")),
	// Server and connection.
	seq("server/ping-echo", c1("PING"), c1("PING", "hi"), c1("ECHO", "x"), c1("SELECT", "1"), c1("SET", "a", "1"), c1("SELECT", "0"), c1("GET", "a")),
	seq("server/dbsize-flush", c1("MSET", "a", "1", "b", "2", "c", "3"), c1("DBSIZE"), c1("FLUSHDB"), c1("DBSIZE"), c1("SET", "a", "1"), c1("FLUSHALL", "SYNC"), c1("DBSIZE")),
	seq("server/keys-scan", c1("MSET", "k1", "1", "k2", "2", "k3", "3", "x", "4"), c1("KEYS", "k*"), c1("FLUSHDB"), c1("RANDOMKEY"), c1("SET", "only", "1"), c1("RANDOMKEY")),
	seq("server/client", c1("CLIENT", "SETNAME", "n1"), c1("CLIENT", "GETNAME"), c1("CLIENT", "REPLY", "ON"), c1("CLIENT", "NO-EVICT", "on")),
	seq("server/client-list", c1("CLIENT", "LIST", "TYPE", "pubsub")),
	seq("server/config-get", c1("CONFIG", "GET", "maxmemory")),
	seq("server/lastsave", c1("LASTSAVE")),
	seq("server/swapdb", c1("SWAPDB", "0", "1")),
	seq("server/wait", c1("WAIT", "0", "0")),
	seq("server/unknown", c1("NOSUCHCMD", "a", "b"), c1("OBJECT", "NOSUCH")),
	seq("random/single", c1("HSET", "h", "f", "v"), c1("HRANDFIELD", "h"), c1("ZADD", "z", "1", "m"), c1("ZRANDMEMBER", "z"), c1("SADD", "s", "x"), c1("SRANDMEMBER", "s"), c1("SPOP", "s"), c1("SPOP", "s")),
	seq("keys/object-memory", c1("SET", "a", "hello"), c1("OBJECT", "FREQ", "a"), c1("OBJECT", "REFCOUNT", "a"), c1("MEMORY", "USAGE", "a"), c1("TYPE", "a"), c1("XADD", "st", "1-1", "f", "v"), c1("TYPE", "st")),
	seq("streams/info-claim", c1("XADD", "st", "1-1", "f", "v"), c1("XGROUP", "CREATE", "st", "g", "0"), c1("XREADGROUP", "GROUP", "g", "c1", "STREAMS", "st", ">"), c1("XCLAIM", "st", "g", "c2", "0", "1-1", "JUSTID"), c1("XINFO", "GROUPS", "st"), c1("XGROUP", "CREATECONSUMER", "st", "g", "c3"), c1("XGROUP", "DELCONSUMER", "st", "g", "c3")),
	seq("server/command-count", c1("COMMAND", "COUNT"), c1("COMMAND", "GETKEYS", "SET", "a", "b")),
	seq("server/debug", c1("DEBUG", "SLEEP", "0")),
	seq("expire/options", c1("SET", "a", "1"), c1("EXPIRE", "a", "100", "NX"), c1("EXPIRE", "a", "50", "GT"), c1("EXPIRE", "a", "50", "LT"), c1("TTL", "a"), c1("PEXPIRE", "a", "0"), c1("EXISTS", "a")),
	seq("server/pubsub", c1("PUBLISH", "ch", "m"), c1("PUBSUB", "NUMSUB", "ch"), c1("PUBSUB", "NUMPAT"), c1("PUBSUB", "CHANNELS")),
}

func init() {
	for i := range compatCases {
		switch compatCases[i].name {
		case "sets/basic", "sets/algebra-tagged", "server/keys-scan":
			compatCases[i].norm = func(cmd []string, r []byte) []byte {
				if cmd[0] == "SMEMBERS" || cmd[0] == "SINTER" || cmd[0] == "SUNION" || cmd[0] == "SDIFF" || cmd[0] == "KEYS" {
					return sortedArray(r)
				}
				return r
			}
		}
	}
}

// compatRun runs a case's commands on a fresh connection to addr and
// returns the replies.
func compatRun(t *testing.T, addr string, cc compatCase) [][]byte {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(nc)
	var out [][]byte
	for _, cmd := range cc.cmds {
		if _, err := nc.Write(resp.AppendCommandString(nil, cmd...)); err != nil {
			t.Fatal(err)
		}
		r, err := resp.ReadReply(br, nil, resp.Limits{})
		if err != nil {
			t.Fatalf("%s %q: %v", cc.name, cmd, err)
		}
		if cc.norm != nil {
			r = cc.norm(cmd, r)
		}
		out = append(out, r)
	}
	return out
}

// TestCompatibility compares replies of Redis and of the proxy.
func TestCompatibility(t *testing.T) {
	ref := harness.StartRedis(t)
	c := newCluster(t, func(cfg *Config) { cfg.AllowWrites = true })
	flush := func(addr string) {
		for _, cmd := range []string{"FLUSHALL", "SCRIPT FLUSH", "FUNCTION FLUSH"} {
			compatRun(t, addr, seq("flush", strings.Fields(cmd)))
		}
	}
	same, cmdsSame, cmdsAll := 0, 0, 0
	for _, cc := range compatCases {
		flush(ref.Addr)
		flush(c.addr)
		want := compatRun(t, ref.Addr, cc)
		got := compatRun(t, c.addr, cc)
		var diffs []string
		for i := range want {
			cmdsAll++
			if bytes.Equal(want[i], got[i]) {
				cmdsSame++
				continue
			}
			diffs = append(diffs, fmt.Sprintf("%q: redis %q, proxy %q", cc.cmds[i], want[i], got[i]))
		}
		why, known := knownDifferences[cc.name]
		switch {
		case len(diffs) == 0 && known:
			t.Errorf("%s: listed as a known difference (%s) but answers the same", cc.name, why)
		case len(diffs) == 0:
			same++
		case !known:
			t.Errorf("%s differs:\n  %s", cc.name, strings.Join(diffs, "\n  "))
		}
	}
	t.Logf("compatibility: %d of %d cases identical (%.0f%%), %d of %d commands identical (%.0f%%); known differences: %d",
		same, len(compatCases), 100*float64(same)/float64(len(compatCases)),
		cmdsSame, cmdsAll, 100*float64(cmdsSame)/float64(cmdsAll), len(knownDifferences))
}
