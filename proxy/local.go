package proxy

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
	"github.com/tidwall/redcon"
)

func (c *session) ping(args [][]byte) {
	switch {
	case len(args) > 2:
		c.wrongArgs("ping")
	case c.sub.active():
		// In subscribed mode PING answers a push-shaped pair (RESP2).
		lo := len(c.local)
		c.local = redcon.AppendArray(c.local, 2)
		c.local = redcon.AppendBulkString(c.local, "pong")
		if len(args) == 2 {
			c.local = redcon.AppendBulk(c.local, args[1])
		} else {
			c.local = redcon.AppendBulkString(c.local, "")
		}
		c.localOp(lo)
	case len(args) == 2:
		c.replyBulk(args[1])
	default:
		c.replySimple("PONG")
	}
}

// checkPassword compares in constant time.
func (c *session) checkPassword(user, pw []byte) bool {
	okUser := user == nil || string(user) == "default"
	okPw := subtle.ConstantTimeCompare(pw, []byte(c.s.cfg.Password)) == 1
	return okUser && okPw
}

func (c *session) auth(args [][]byte) {
	if len(args) < 2 || len(args) > 3 {
		c.wrongArgs("auth")
		return
	}
	if len(args) == 3 && string(args[1]) == AdminUser {
		if !c.adminAllowed() {
			c.replyErr(errAdminNeedsTLS)
			return
		}
		if !c.checkAdmin(args[2]) {
			c.replyErr(errWrongPass)
			return
		}
		c.becomeAdmin()
		c.replyOK()
		return
	}
	if c.s.cfg.Password == "" {
		c.replyErr("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		return
	}
	var user []byte
	pw := args[1]
	if len(args) == 3 {
		user, pw = args[1], args[2]
	}
	if !c.checkPassword(user, pw) {
		c.replyErr(errWrongPass)
		return
	}
	c.authed = true
	c.replyOK()
}

// hello implements HELLO [2 [AUTH user pass] [SETNAME name]]. RESP3 is
// refused with Redis' own NOPROTO error, on which clients fall back to
// RESP2.
func (c *session) hello(args [][]byte) {
	if len(args) >= 2 {
		v, err := strconv.Atoi(string(args[1]))
		if err != nil {
			c.replyErr("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 {
			c.replyErr("NOPROTO sorry, this protocol version is not supported.")
			return
		}
	}
	authed, admin := c.authed, false
	var name []byte
	setName := false
	for i := 2; i < len(args); i++ {
		switch {
		case equalFold(args[i], "auth") && i+2 < len(args) && string(args[i+1]) == AdminUser:
			if !c.adminAllowed() {
				c.replyErr(errAdminNeedsTLS)
				return
			}
			if !c.checkAdmin(args[i+2]) {
				c.replyErr(errWrongPass)
				return
			}
			admin, authed = true, true
			i += 2
		case equalFold(args[i], "auth") && i+2 < len(args):
			if c.s.cfg.Password == "" || !c.checkPassword(args[i+1], args[i+2]) {
				c.replyErr(errWrongPass)
				return
			}
			authed = true
			i += 2
		case equalFold(args[i], "setname") && i+1 < len(args):
			name, setName = args[i+1], true
			i++
		default:
			c.replyErr("ERR Syntax error in HELLO option '" + printable(args[i]) + "'")
			return
		}
	}
	if !authed {
		c.replyErr("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	if setName && !validName(name) {
		c.replyErr("ERR Client names cannot contain spaces, newlines or special characters.")
		return
	}
	c.authed = true
	if admin {
		c.becomeAdmin()
	}
	if setName {
		c.name = string(name)
	}
	role := "master"
	if !c.s.cfg.AllowWrites {
		role = "replica"
	}
	lo := len(c.local)
	c.local = redcon.AppendArray(c.local, 14)
	for _, kv := range [][2]string{
		{"server", "redis"}, {"version", router.BuiltinVersion},
	} {
		c.local = redcon.AppendBulkString(c.local, kv[0])
		c.local = redcon.AppendBulkString(c.local, kv[1])
	}
	c.local = redcon.AppendBulkString(c.local, "proto")
	c.local = redcon.AppendInt(c.local, 2)
	c.local = redcon.AppendBulkString(c.local, "id")
	c.local = redcon.AppendInt(c.local, c.id)
	c.local = redcon.AppendBulkString(c.local, "mode")
	c.local = redcon.AppendBulkString(c.local, "standalone")
	c.local = redcon.AppendBulkString(c.local, "role")
	c.local = redcon.AppendBulkString(c.local, role)
	c.local = redcon.AppendBulkString(c.local, "modules")
	c.local = redcon.AppendArray(c.local, 0)
	c.localOp(lo)
}

func validName(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

func (c *session) selectDB(args [][]byte) {
	if len(args) != 2 {
		c.wrongArgs("select")
		return
	}
	db, err := strconv.Atoi(string(args[1]))
	if err != nil {
		c.replyErr("ERR value is not an integer or out of range")
		return
	}
	if db != 0 && c.s.cfg.Destination.Cluster() {
		c.replyErr("ERR SELECT is not allowed in cluster mode") // Redis Cluster's words
		return
	}
	if db < 0 || db >= c.s.cfg.Databases {
		c.replyErr("ERR DB index is out of range")
		return
	}
	c.db = db
	c.bk = c.s.pools.db(db)
	c.replyOK()
}

func (c *session) clientSetName(args [][]byte) {
	if len(args) != 3 {
		c.wrongArgs("client|setname")
		return
	}
	if !validName(args[2]) {
		c.replyErr("ERR Client names cannot contain spaces, newlines or special characters.")
		return
	}
	c.name = string(args[2])
	c.replyOK()
}

func (c *session) clientGetName(args [][]byte) {
	if c.name == "" {
		c.replyNull()
		return
	}
	c.replyBulk([]byte(c.name))
}

func (c *session) clientSetInfo(args [][]byte) {
	if len(args) != 4 {
		c.wrongArgs("client|setinfo")
		return
	}
	if !validName(args[3]) {
		c.replyErr("ERR " + printable(args[2]) + " cannot contain spaces, newlines or special characters.")
		return
	}
	switch {
	case equalFold(args[2], "lib-name"):
		c.libName = string(args[3])
	case equalFold(args[2], "lib-ver"):
		c.libVer = string(args[3])
	default:
		c.replyErr("ERR Unrecognized option '" + printable(args[2]) + "'")
		return
	}
	c.replyOK()
}

func (c *session) clientID(args [][]byte) {
	lo := len(c.local)
	c.local = redcon.AppendInt(c.local, c.id)
	c.localOp(lo)
}

// clientNoEvict answers +OK: the proxy never evicts clients.
func (c *session) clientNoEvict(args [][]byte) {
	if len(args) != 3 || !onOff(args[2]) {
		c.replyErr("ERR syntax error")
		return
	}
	c.replyOK()
}

func (c *session) infoLine() string {
	remote, local := c.drv.addrs()
	return fmt.Sprintf("id=%d addr=%s laddr=%s name=%s db=%d sub=%d psub=%d multi=%d lib-name=%s lib-ver=%s\n",
		c.id, remote, local, c.name, c.db,
		c.sub.nChannels(), c.sub.nPatterns(), c.tx.queued(), c.libName, c.libVer)
}

// commandCmd forwards COMMAND (the table's detail) to shard 0, whose
// table it is; COMMAND COUNT is the proxy's own table.
func (c *session) commandCmd(args [][]byte) {
	if len(args) == 1 {
		c.forward(0, args)
		return
	}
	c.subcommand("command", args)
}

func (c *session) commandCount(args [][]byte) {
	lo := len(c.local)
	c.local = redcon.AppendInt(c.local, int64(c.s.cfg.Table.Len()))
	c.localOp(lo)
}

// infoCmd answers INFO: the admin user's INFO replication, else merged.
func (c *session) infoCmd(args [][]byte) {
	if !c.replInfo(args) {
		c.info(args)
	}
}

// info answers INFO [section…] as one server would (see info.go): the
// server, memory, persistence, stats and cpu sections merged from the
// shards with the proxy's own, clients, replication, proxy and keyspace
// the proxy's.
func (c *session) info(args [][]byte) {
	want := map[string]bool{}
	for _, a := range args[1:] {
		want[strings.ToLower(string(a))] = true
	}
	all := len(want) == 0 || want["all"] || want["default"] || want["everything"]
	k := &cont{}
	fromShards := all || want["server"] || want["memory"] || want["persistence"] || want["stats"] || want["cpu"]
	if fromShards {
		k.each(c.bk, resp.AppendCommandString(nil, "INFO", "server", "memory", "persistence", "stats", "cpu"))
	}
	k.next = func(k *cont) { c.infoReply(k, want, all, fromShards) }
	c.then(k) // after the commands planned before: keep command order
}

// infoReply answers info once the shards' sections are in k's calls.
func (c *session) infoReply(k *cont, want map[string]bool, all, fromShards bool) {
	var shards [][]infoSection
	if fromShards {
		for i := range k.calls {
			cl := &k.calls[i]
			if cl.Err != nil {
				c.replyErr(shardErr(i, cl.Err))
				return
			}
			if len(cl.Reply) > 0 && cl.Reply[0] == resp.TypeError {
				c.replyRaw(cl.Reply)
				return
			}
			shards = append(shards, parseInfo(resp.BulkBody(cl.Reply)))
		}
	}
	b := new(strings.Builder)
	if all || want["server"] {
		port := 0
		if _, p, err := splitHostPort(c.s.Addr().String()); err == nil {
			port = p
		}
		up := time.Since(c.s.start)
		sec := mergeSection(shards[:1], "server")
		sec.setField("redis_mode", "standalone")
		sec.setField("replicaof_proxy", "1")
		sec.setField("os", runtime.GOOS+" "+runtime.GOARCH)
		sec.setField("arch_bits", "64")
		sec.setField("go_version", runtime.Version())
		sec.setField("process_id", strconv.Itoa(os.Getpid()))
		sec.setField("tcp_port", strconv.Itoa(port))
		sec.setField("uptime_in_seconds", strconv.FormatInt(int64(up/time.Second), 10))
		sec.setField("uptime_in_days", strconv.FormatInt(int64(up/(24*time.Hour)), 10))
		sec.setField("executable", "")
		sec.setField("config_file", "")
		if _, ok := sec.get("redis_version"); !ok {
			sec.setField("redis_version", router.BuiltinVersion)
		}
		sec.write(b, "Server")
	}
	if all || want["clients"] {
		fmt.Fprintf(b, "# Clients\r\nconnected_clients:%d\r\nmaxclients:%d\r\nblocked_clients:%d\r\n\r\n",
			c.s.clientCount(), c.s.cfg.MaxClients, c.s.blocked.Load())
	}
	if all || want["memory"] {
		mergeSection(shards, "memory").write(b, "Memory")
	}
	if all || want["persistence"] {
		mergeSection(shards, "persistence").write(b, "Persistence")
	}
	if all || want["stats"] {
		sec := mergeSection(shards, "stats")
		sec.setField("total_connections_received", strconv.FormatInt(c.s.accepted.Load(), 10))
		sec.setField("total_commands_processed", strconv.FormatInt(c.s.commands.Load(), 10))
		sec.setField("rejected_connections", strconv.FormatInt(c.s.rejected.Load(), 10))
		sec.setField("client_output_buffer_limit_disconnections", strconv.FormatInt(c.s.overPending.Load(), 10))
		sec.write(b, "Stats")
	}
	if all || want["replication"] {
		b.WriteString(c.replSection())
	}
	if all || want["cpu"] {
		sec := mergeSection(shards, "cpu")
		if sys, user, ok := processCPU(); ok {
			add := func(key string, v float64) {
				cur, _ := sec.get(key)
				f, _ := strconv.ParseFloat(cur, 64)
				sec.setField(key, strconv.FormatFloat(f+v, 'f', 6, 64))
			}
			add("used_cpu_sys", sys)
			add("used_cpu_user", user)
		}
		sec.write(b, "CPU")
	}
	if all || want["proxy"] {
		kind := "shards"
		if c.s.cfg.Destination.Cluster() {
			kind = "cluster" // shardN is a group, at its current master
		}
		fmt.Fprintf(b, "# Proxy\r\nshards:%d\r\ndestination_kind:%s\r\nallow_writes:%d\r\ntotal_connections_received:%d\r\nrejected_connections:%d\r\ntotal_commands_processed:%d\r\n",
			c.s.shards().Len(), kind, b2i(c.s.cfg.AllowWrites), c.s.accepted.Load(), c.s.rejected.Load(), c.s.commands.Load())
		m := c.s.shards()
		for i := range m.Len() {
			fmt.Fprintf(b, "shard%d:addr=%s,slots=%s\r\n", i, c.s.cfg.Destination.Addr(i), router.FormatSlotRanges(m.Ranges(i)))
		}
		b.WriteString("\r\n")
	}
	if all || want["cluster"] {
		// The CLUSTER commands answer as a one-node cluster (cluster.go).
		b.WriteString("# Cluster\r\ncluster_enabled:1\r\n\r\n")
	}
	if all || want["keyspace"] {
		c.keyspace(k, func(ks string) {
			b.WriteString("# Keyspace\r\n")
			b.WriteString(ks)
			b.WriteString("\r\n")
			c.replyBulk([]byte(b.String()))
		})
		return
	}
	c.replyBulk([]byte(b.String()))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func splitHostPort(a string) (string, int, error) {
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		return a, 0, fmt.Errorf("no port")
	}
	p, err := strconv.Atoi(a[i+1:])
	return a[:i], p, err
}

// dbsizeScript counts a shard's keys less the hidden ones named in KEYS,
// in one step: a flush between the two counts cannot skew it.
const dbsizeScript = "local n = redis.call('DBSIZE') for _, k in ipairs(KEYS) do n = n - redis.call('EXISTS', k) end return n"

// dbsizeClusterScript is dbsizeScript for a Redis Cluster node, which
// refuses a script whose KEYS span slots: the hidden keys come as ARGV,
// and the script may read keys of several slots of the node
// (allow-cross-slot-keys, Redis 7.0+). A key whose slot left the node
// (resharding) cannot be read there, and is not in its DBSIZE either.
const dbsizeClusterScript = "#!lua flags=no-writes,allow-cross-slot-keys\n" +
	"local n = redis.call('DBSIZE') for _, k in ipairs(ARGV) do local r = redis.pcall('EXISTS', k) " +
	"if type(r) == 'number' then n = n - r end end return n"

// dbsize sums, over the shards, DBSIZE less the hidden keys that exist at
// that moment. The hidden keys' names are cached (hiddenTTL); whether
// they exist is checked with the count, so DBSIZE is exact right after
// a flush. Only a hidden key created in the last hiddenTTL can be counted
// (a new source's checkpoint, once).
func (c *session) dbsize(args [][]byte) {
	if len(args) != 1 {
		c.wrongArgs("dbsize")
		return
	}
	db, bk := c.db, c.bk
	k := &cont{}
	k.next = func(k *cont) { // after the commands planned before: they count
		c.withHidden(k, db, func(k *cont, names [][]string) {
			k.round(func(k *cont) {
				var sum int64
				for i := range k.calls {
					cl := &k.calls[i]
					if cl.Err != nil {
						c.replyErr(shardErr(i, cl.Err))
						return
					}
					n, ok := intReply(cl.Reply)
					if !ok {
						c.replyRaw(cl.Reply)
						return
					}
					sum += n
				}
				lo := len(c.local)
				c.local = redcon.AppendInt(c.local, max(sum, 0))
				c.localOp(lo)
			})
			for i := range bk {
				if len(names[i]) == 0 {
					k.add(bk[i], resp.AppendCommandString(nil, "DBSIZE"))
					continue
				}
				a := append([]string{"EVAL", dbsizeScript, strconv.Itoa(len(names[i]))}, names[i]...)
				if c.s.cfg.Destination.Cluster() {
					// Keys of many slots: not KEYS (CROSSSLOT), but ARGV.
					a = append([]string{"EVAL", dbsizeClusterScript, "0"}, names[i]...)
				}
				k.add(bk[i], resp.AppendCommandString(nil, a...))
			}
		})
	}
	c.then(k)
}

// randomKeyScript answers a random key of the shard that is not one of
// replicaof's own, or nil when there is none: RANDOMKEY a few times,
// then the first such key a SCAN finds, so a shard holding mostly
// hidden keys never makes RANDOMKEY answer nil by bad luck.
const randomKeyScript = `
local p = '` + destination.KeyPrefix + `'
for i = 1, 16 do
  local k = redis.call('RANDOMKEY')
  if not k then return false end
  if string.sub(k, 1, #p) ~= p then return k end
end
local cur = '0'
repeat
  local r = redis.call('SCAN', cur, 'COUNT', 100)
  cur = r[1]
  for _, k in ipairs(r[2]) do
    if string.sub(k, 1, #p) ~= p then return k end
  end
until cur == '0'
return false
`

// randomKey asks every shard for a random key that is not a hidden one
// and picks one of the answers.
func (c *session) randomKey(args [][]byte) {
	if len(args) != 1 {
		c.wrongArgs("randomkey")
		return
	}
	c.fanOut(resp.AppendCommandString(nil, "EVAL", randomKeyScript, "0"), func(replies [][]byte) {
		var found [][]byte
		for _, r := range replies {
			switch {
			case len(r) > 0 && r[0] == resp.TypeError:
				c.replyRaw(r)
				return
			case resp.BulkBody(r) != nil:
				found = append(found, r)
			}
		}
		if len(found) == 0 {
			c.replyNull()
			return
		}
		c.replyRaw(found[rand.IntN(len(found))])
	})
}

// hiddenCache remembers, per database, the names of the hidden keys on
// each shard, for hiddenTTL: listing them takes a SCAN of every shard.
type hiddenCache struct {
	mu sync.Mutex
	m  map[int]hiddenEntry
}

type hiddenEntry struct {
	names [][]string // by shard
	at    time.Time
}

const hiddenTTL = time.Second

// maxHiddenNames bounds the names kept per shard: replicaof keeps a few
// (a checkpoint per source, a marker).
const maxHiddenNames = 4096

// maxClusterHiddenNames bounds them on a Redis Cluster destination, where
// the syncer keeps a checkpoint per slot and source (16384 per source,
// spread over the groups): 32 sources' worth, and room for the rest.
const maxClusterHiddenNames = 32*16384 + 4096

// maxHidden is the bound of hidden names per shard (group).
func (s *Server) maxHidden() int {
	if s.cfg.Destination.Cluster() {
		return maxClusterHiddenNames
	}
	return maxHiddenNames
}

// withHidden calls done with the names of the hidden keys of database db
// on each shard: the cached ones, or, when they are older than
// hiddenTTL, listed first in rounds of k (a SCAN MATCH of every shard at
// once, each shard on until its cursor is back to 0). A failure is
// answered instead.
func (c *session) withHidden(k *cont, db int, done func(k *cont, names [][]string)) {
	s := c.s
	s.hidden.mu.Lock()
	e, ok := s.hidden.m[db]
	s.hidden.mu.Unlock()
	if ok && time.Since(e.at) < hiddenTTL {
		done(k, e.names)
		return
	}
	bk := s.pools.db(db)
	names := make([][]string, len(bk))
	seen := make([]map[string]bool, len(bk))
	var shards []int // the shard of each call of the round
	var scan func(k *cont)
	send := func(k *cont, cursors []string) {
		k.round(scan)
		shards = shards[:0]
		for i, cur := range cursors {
			if cur == "" {
				continue
			}
			shards = append(shards, i)
			k.add(bk[i], resp.AppendCommandString(nil, "SCAN", cur, "MATCH", destination.KeyPrefix+"*", "COUNT", "1000"))
		}
	}
	scan = func(k *cont) {
		cursors := make([]string, len(bk)) // "": the shard is done
		more := false
		for j := range k.calls {
			i := shards[j]
			cur, err := s.hiddenPage(&k.calls[j], &names[i], &seen[i])
			if err != nil {
				c.replyErr(shardErr(i, err))
				return
			}
			if cur != "0" {
				cursors[i], more = cur, true
			}
		}
		if more {
			send(k, cursors)
			return
		}
		s.hidden.mu.Lock()
		if s.hidden.m == nil {
			s.hidden.m = make(map[int]hiddenEntry)
		}
		s.hidden.m[db] = hiddenEntry{names: names, at: time.Now()}
		s.hidden.mu.Unlock()
		done(k, names)
	}
	first := make([]string, len(bk))
	for i := range first {
		first[i] = "0"
	}
	send(k, first)
}

// hiddenPage takes one SCAN reply of the hidden-key listing into names
// and returns the next cursor.
func (s *Server) hiddenPage(cl *pool.Call, names *[]string, seen *map[string]bool) (string, error) {
	if cl.Err != nil {
		return "", cl.Err
	}
	v, _, err := resp.ParseValue(cl.Reply, s.cfg.Limits)
	if err != nil {
		return "", err
	}
	if e := v.Err(); e != nil {
		return "", e
	}
	if v.Type != resp.TypeArray || len(v.Elems) != 2 {
		return "", fmt.Errorf("unexpected SCAN reply")
	}
	if *seen == nil {
		*seen = map[string]bool{}
	}
	for _, k := range v.Elems[1].Elems {
		if (*seen)[string(k.Str)] { // SCAN may return a key twice
			continue
		}
		(*seen)[string(k.Str)] = true
		if len(*names) >= s.maxHidden() {
			return "", fmt.Errorf("more than %d keys named %s*", s.maxHidden(), destination.KeyPrefix)
		}
		*names = append(*names, string(k.Str))
	}
	return string(v.Elems[0].Str), nil
}

// keyspace sums every shard's INFO keyspace, less hidden keys, in rounds
// of k, and calls done with the section's lines. A failure is answered
// instead.
func (c *session) keyspace(k *cont, done func(ks string)) {
	s := c.s
	k.round(func(k *cont) {
		type sums struct{ keys, expires int64 }
		dbs := map[int]*sums{}
		for i := range k.calls {
			cl := &k.calls[i]
			if cl.Err != nil {
				c.replyErr(shardErr(i, cl.Err))
				return
			}
			for _, line := range bytes.Split(resp.BulkBody(cl.Reply), []byte("\n")) {
				line = bytes.TrimSpace(line)
				rest, ok := bytes.CutPrefix(line, []byte("db"))
				if !ok {
					continue
				}
				num, fields, ok := bytes.Cut(rest, []byte(":"))
				if !ok {
					continue
				}
				db, err := strconv.Atoi(string(num))
				if err != nil || db < 0 || db >= s.cfg.Databases {
					continue
				}
				d := dbs[db]
				if d == nil {
					d = &sums{}
					dbs[db] = d
				}
				for _, f := range bytes.Split(fields, []byte(",")) {
					k, v, _ := bytes.Cut(f, []byte("="))
					n, _ := strconv.ParseInt(string(v), 10, 64)
					switch string(k) {
					case "keys":
						d.keys += n
					case "expires":
						d.expires += n
					}
				}
			}
		}
		order := make([]int, 0, len(dbs))
		for db := range dbs {
			order = append(order, db)
		}
		sort.Ints(order)
		var b strings.Builder
		// One database after another: each may need its hidden keys listed.
		var next func(k *cont, at int)
		next = func(k *cont, at int) {
			if at == len(order) {
				done(b.String())
				return
			}
			db := order[at]
			c.withHidden(k, db, func(k *cont, names [][]string) {
				var hidden int64
				for _, ns := range names {
					hidden += int64(len(ns))
				}
				d := dbs[db]
				if keys := d.keys - hidden; keys > 0 {
					fmt.Fprintf(&b, "db%d:keys=%d,expires=%d,avg_ttl=0\r\n", db, keys, min(d.expires, keys))
				}
				next(k, at+1)
			})
		}
		next(k, 0)
	})
	k.each(s.pools.db(0), resp.AppendCommandString(nil, "INFO", "keyspace"))
}
