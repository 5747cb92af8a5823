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
)

func (c *client) ping(args [][]byte) {
	switch {
	case len(args) > 2:
		c.wrongArgs("ping")
	case c.sub.active():
		// In subscribed mode PING answers a push-shaped pair (RESP2).
		lo := len(c.local)
		c.local = resp.AppendArray(c.local, 2)
		c.local = resp.AppendBulkString(c.local, "pong")
		if len(args) == 2 {
			c.local = resp.AppendBulk(c.local, args[1])
		} else {
			c.local = resp.AppendBulkString(c.local, "")
		}
		c.localOp(lo)
	case len(args) == 2:
		c.replyBulk(args[1])
	default:
		c.replyRaw([]byte("+PONG\r\n"))
	}
}

// checkPassword compares in constant time.
func (c *client) checkPassword(user, pw []byte) bool {
	okUser := user == nil || string(user) == "default"
	okPw := subtle.ConstantTimeCompare(pw, []byte(c.s.cfg.Password)) == 1
	return okUser && okPw
}

func (c *client) auth(args [][]byte) {
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
func (c *client) hello(args [][]byte) {
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
	c.local = resp.AppendArray(c.local, 14)
	for _, kv := range [][2]string{
		{"server", "redis"}, {"version", router.BuiltinVersion},
	} {
		c.local = resp.AppendBulkString(c.local, kv[0])
		c.local = resp.AppendBulkString(c.local, kv[1])
	}
	c.local = resp.AppendBulkString(c.local, "proto")
	c.local = resp.AppendInt(c.local, 2)
	c.local = resp.AppendBulkString(c.local, "id")
	c.local = resp.AppendInt(c.local, c.id)
	c.local = resp.AppendBulkString(c.local, "mode")
	c.local = resp.AppendBulkString(c.local, "standalone")
	c.local = resp.AppendBulkString(c.local, "role")
	c.local = resp.AppendBulkString(c.local, role)
	c.local = resp.AppendBulkString(c.local, "modules")
	c.local = resp.AppendArray(c.local, 0)
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

func (c *client) selectDB(args [][]byte) {
	if len(args) != 2 {
		c.wrongArgs("select")
		return
	}
	db, err := strconv.Atoi(string(args[1]))
	if err != nil {
		c.replyErr("ERR value is not an integer or out of range")
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

func (c *client) clientSetName(args [][]byte) {
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

func (c *client) clientGetName(args [][]byte) {
	if c.name == "" {
		c.replyRaw([]byte("$-1\r\n"))
		return
	}
	c.replyBulk([]byte(c.name))
}

func (c *client) clientSetInfo(args [][]byte) {
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

func (c *client) clientID(args [][]byte) {
	lo := len(c.local)
	c.local = resp.AppendInt(c.local, c.id)
	c.localOp(lo)
}

// clientNoEvict answers +OK: the proxy never evicts clients.
func (c *client) clientNoEvict(args [][]byte) {
	if len(args) != 3 || !onOff(args[2]) {
		c.replyErr("ERR syntax error")
		return
	}
	c.replyOK()
}

func (c *client) infoLine() string {
	return fmt.Sprintf("id=%d addr=%s laddr=%s name=%s db=%d sub=%d psub=%d multi=%d lib-name=%s lib-ver=%s\n",
		c.id, c.nc.RemoteAddr(), c.nc.LocalAddr(), c.name, c.db,
		c.sub.nChannels(), c.sub.nPatterns(), c.tx.queued(), c.libName, c.libVer)
}

// commandCmd forwards COMMAND (the table's detail) to shard 0, whose
// table it is; COMMAND COUNT is the proxy's own table.
func (c *client) commandCmd(args [][]byte) {
	if len(args) == 1 {
		c.forward(0, args)
		return
	}
	c.subcommand("command", args)
}

func (c *client) commandCount(args [][]byte) {
	lo := len(c.local)
	c.local = resp.AppendInt(c.local, int64(c.s.cfg.Table.Len()))
	c.localOp(lo)
}

// infoCmd answers INFO: the admin user's INFO replication, else merged.
func (c *client) infoCmd(args [][]byte) {
	if !c.replInfo(args) {
		c.info(args)
	}
}

// info answers INFO [section…] as one server would (see info.go): the
// server, memory, persistence, stats and cpu sections merged from the
// shards with the proxy's own, clients, replication, proxy and keyspace
// the proxy's.
func (c *client) info(args [][]byte) {
	want := map[string]bool{}
	for _, a := range args[1:] {
		want[strings.ToLower(string(a))] = true
	}
	all := len(want) == 0 || want["all"] || want["default"] || want["everything"]
	var shards [][]infoSection
	if all || want["server"] || want["memory"] || want["persistence"] || want["stats"] || want["cpu"] {
		c.run() // keep command order
		calls := c.s.each(c.bk, resp.AppendCommandString(nil, "INFO", "server", "memory", "persistence", "stats", "cpu"))
		for i, cl := range calls {
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
	var b strings.Builder
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
		sec.write(&b, "Server")
	}
	if all || want["clients"] {
		fmt.Fprintf(&b, "# Clients\r\nconnected_clients:%d\r\nmaxclients:%d\r\nblocked_clients:%d\r\n\r\n",
			c.s.clientCount(), c.s.cfg.MaxClients, c.s.blocked.Load())
	}
	if all || want["memory"] {
		mergeSection(shards, "memory").write(&b, "Memory")
	}
	if all || want["persistence"] {
		mergeSection(shards, "persistence").write(&b, "Persistence")
	}
	if all || want["stats"] {
		sec := mergeSection(shards, "stats")
		sec.setField("total_connections_received", strconv.FormatInt(c.s.accepted.Load(), 10))
		sec.setField("total_commands_processed", strconv.FormatInt(c.s.commands.Load(), 10))
		sec.setField("rejected_connections", strconv.FormatInt(c.s.rejected.Load(), 10))
		sec.write(&b, "Stats")
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
		sec.write(&b, "CPU")
	}
	if all || want["proxy"] {
		fmt.Fprintf(&b, "# Proxy\r\nshards:%d\r\nallow_writes:%d\r\ntotal_connections_received:%d\r\nrejected_connections:%d\r\ntotal_commands_processed:%d\r\n",
			c.s.shards().Len(), b2i(c.s.cfg.AllowWrites), c.s.accepted.Load(), c.s.rejected.Load(), c.s.commands.Load())
		m := c.s.shards()
		for i := range m.Len() {
			fmt.Fprintf(&b, "shard%d:addr=%s,slots=%s\r\n", i, c.s.cfg.Destination.Addr(i), router.FormatSlotRanges(m.Ranges(i)))
		}
		b.WriteString("\r\n")
	}
	if all || want["keyspace"] {
		c.run() // keep command order: earlier writes count
		b.WriteString("# Keyspace\r\n")
		ks, err := c.s.keyspace()
		if err != nil {
			c.replyErr(err.Error())
			return
		}
		b.WriteString(ks)
		b.WriteString("\r\n")
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

// dbsize sums, over the shards, DBSIZE less the hidden keys that exist at
// that moment. The hidden keys' names are cached (hiddenTTL); whether
// they exist is checked with the count, so DBSIZE is exact right after
// a flush. Only a hidden key created in the last hiddenTTL can be counted
// (a new source's checkpoint, once).
func (c *client) dbsize(args [][]byte) {
	if len(args) != 1 {
		c.wrongArgs("dbsize")
		return
	}
	c.run()
	names, err := c.s.hiddenNames(c.db)
	if err != nil {
		c.replyErr(err.Error())
		return
	}
	reqs := make([][]byte, len(c.bk))
	for i := range c.bk {
		if len(names[i]) == 0 {
			reqs[i] = resp.AppendCommandString(nil, "DBSIZE")
			continue
		}
		a := append([]string{"EVAL", dbsizeScript, strconv.Itoa(len(names[i]))}, names[i]...)
		reqs[i] = resp.AppendCommandString(nil, a...)
	}
	calls := c.s.eachReq(c.bk, reqs)
	var sum int64
	for i, cl := range calls {
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
	c.local = resp.AppendInt(c.local, max(sum, 0))
	c.localOp(lo)
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
func (c *client) randomKey(args [][]byte) {
	if len(args) != 1 {
		c.wrongArgs("randomkey")
		return
	}
	c.run()
	calls := c.s.each(c.bk, resp.AppendCommandString(nil, "EVAL", randomKeyScript, "0"))
	var found [][]byte
	for i, cl := range calls {
		if cl.Err != nil {
			c.replyErr(shardErr(i, cl.Err))
			return
		}
		switch {
		case len(cl.Reply) > 0 && cl.Reply[0] == resp.TypeError:
			c.replyRaw(cl.Reply)
			return
		case resp.BulkBody(cl.Reply) != nil:
			found = append(found, cl.Reply)
		}
	}
	if len(found) == 0 {
		c.replyRaw([]byte("$-1\r\n"))
		return
	}
	c.replyRaw(found[rand.IntN(len(found))])
}

// each sends one request to every backend in parallel.
func (s *Server) each(bk []*pool.Backend, req []byte) []pool.Call {
	reqs := make([][]byte, len(bk))
	for i := range reqs {
		reqs[i] = req
	}
	return s.eachReq(bk, reqs)
}

// eachReq sends reqs[i] to bk[i], all in parallel.
func (s *Server) eachReq(bk []*pool.Backend, reqs [][]byte) []pool.Call {
	calls := make([]pool.Call, len(bk))
	ptrs := make([]*pool.Call, len(bk))
	var bt pool.Batch
	for i := range bk {
		calls[i].Req = reqs[i]
		ptrs[i] = &calls[i]
		bt.Add(s.ctx, bk[i], ptrs[i:i+1])
	}
	bt.Wait()
	return calls
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

// hiddenKeys counts the hidden keys of database db over all shards, as
// of the last listing.
func (s *Server) hiddenKeys(db int) (int64, error) {
	names, err := s.hiddenNames(db)
	var n int64
	for _, ns := range names {
		n += int64(len(ns))
	}
	return n, err
}

// hiddenNames lists the hidden keys of database db on each shard.
func (s *Server) hiddenNames(db int) ([][]string, error) {
	s.hidden.mu.Lock()
	defer s.hidden.mu.Unlock()
	if e, ok := s.hidden.m[db]; ok && time.Since(e.at) < hiddenTTL {
		return e.names, nil
	}
	bk := s.pools.db(db)
	names := make([][]string, len(bk))
	errs := make([]error, len(bk))
	var wg sync.WaitGroup
	for i := range bk {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			names[i], errs[i] = s.listHidden(bk[i])
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s", shardErr(i, errs[i]))
			}
		}(i)
	}
	wg.Wait()
	for i := range bk {
		if errs[i] != nil {
			return nil, errs[i]
		}
	}
	if s.hidden.m == nil {
		s.hidden.m = make(map[int]hiddenEntry)
	}
	s.hidden.m[db] = hiddenEntry{names: names, at: time.Now()}
	return names, nil
}

func (s *Server) listHidden(b *pool.Backend) ([]string, error) {
	cursor := "0"
	var names []string
	seen := map[string]bool{}
	var reply []byte
	for {
		var err error
		reply, err = b.Do(s.ctx, resp.AppendCommandString(nil, "SCAN", cursor, "MATCH", destination.KeyPrefix+"*", "COUNT", "1000"), reply)
		if err != nil {
			return nil, err
		}
		v, _, err := resp.ParseValue(reply, s.cfg.Limits)
		if err != nil {
			return nil, err
		}
		if e := v.Err(); e != nil {
			return nil, e
		}
		if v.Type != resp.TypeArray || len(v.Elems) != 2 {
			return nil, fmt.Errorf("unexpected SCAN reply")
		}
		for _, k := range v.Elems[1].Elems {
			if seen[string(k.Str)] { // SCAN may return a key twice
				continue
			}
			seen[string(k.Str)] = true
			if len(names) >= maxHiddenNames {
				return nil, fmt.Errorf("more than %d keys named %s*", maxHiddenNames, destination.KeyPrefix)
			}
			names = append(names, string(k.Str))
		}
		cursor = string(v.Elems[0].Str)
		if cursor == "0" {
			return names, nil
		}
	}
}

// keyspace sums every shard's INFO keyspace, less hidden keys.
func (s *Server) keyspace() (string, error) {
	calls := s.each(s.pools.db(0), resp.AppendCommandString(nil, "INFO", "keyspace"))
	type sums struct{ keys, expires int64 }
	dbs := map[int]*sums{}
	for i, cl := range calls {
		if cl.Err != nil {
			return "", fmt.Errorf("%s", shardErr(i, cl.Err))
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
	for _, db := range order {
		d := dbs[db]
		hidden, err := s.hiddenKeys(db)
		if err != nil {
			return "", err
		}
		keys := d.keys - hidden
		if keys <= 0 {
			continue
		}
		fmt.Fprintf(&b, "db%d:keys=%d,expires=%d,avg_ttl=0\r\n", db, keys, min(d.expires, keys))
	}
	return b.String(), nil
}
