package proxy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/replicaof/replicaof/router"
)

// How the proxy serves a command, as docs/proxy-commands.md lists it.
type handling uint8

const (
	hRouted    handling = iota // to the shard its keys live on
	hSplit                     // split by shard, the parts merged
	hFanout                    // every shard, the replies merged
	hLocal                     // answered by the proxy itself
	hShard0                    // shard 0 answers for all
	hDedicated                 // on a shard connection the client holds
	hRefused                   // an error reply, with the reason
)

var handlingNames = [...]string{
	hRouted: "routed", hSplit: "split", hFanout: "fanned out", hLocal: "local",
	hShard0: "shard 0", hDedicated: "dedicated connection", hRefused: "refused",
}

// special is a command the proxy does not serve by the default rule
// (route by keys, see check). run serves it; nil means the default path,
// the entry then only documents it.
type special struct {
	how  handling
	note string
	run  func(c *session, name string, args [][]byte)
}

const ttlNote = "the key's shard; the TTL grace (replica_of.ttl_grace) is taken off the reply, so it is the source's TTL"

func ttlRun(c *session, name string, args [][]byte) {
	if !c.ttlRead(name, args) {
		c.route(args, c.lookup(name, args))
	}
}

// specials is the one table of the proxy's own command handling: plan
// dispatches through it, and docs/proxy-commands.md is generated from it
// with the default rule for every other command (TestCommandDocs keeps
// the file in step). Keys are lower-case names, "parent|sub" for a
// subcommand of CLIENT, COMMAND, SCRIPT, FUNCTION or PUBSUB.
var specials map[string]special

func init() {
	sub := func(c *session, name string, args [][]byte) { c.subcommand(name, args) }
	specials = map[string]special{
		"ping": {hLocal, "", func(c *session, _ string, a [][]byte) { c.ping(a) }},
		// TTL reads answer the source's TTL: the grace the syncer adds
		// (replica_of.ttl_grace) is taken off the reply (ttl.go).
		"ttl":          {hRouted, ttlNote, ttlRun},
		"pttl":         {hRouted, ttlNote, ttlRun},
		"expiretime":   {hRouted, ttlNote, ttlRun},
		"pexpiretime":  {hRouted, ttlNote, ttlRun},
		"httl":         {hRouted, ttlNote, ttlRun},
		"hpttl":        {hRouted, ttlNote, ttlRun},
		"hexpiretime":  {hRouted, ttlNote, ttlRun},
		"hpexpiretime": {hRouted, ttlNote, ttlRun},
		"echo":         {hLocal, "", func(c *session, _ string, a [][]byte) { c.echo(a) }},
		"quit":         {hLocal, "", func(c *session, _ string, a [][]byte) { c.replyOK(); c.closeNow = true }},
		"hello":        {hLocal, "HELLO 2 only: HELLO 3 answers -NOPROTO, on which clients fall back to RESP2", func(c *session, _ string, a [][]byte) { c.hello(a) }},
		"auth":         {hLocal, "the proxy's password (proxy.password); the user admin for replication", func(c *session, _ string, a [][]byte) { c.auth(a) }},
		"select":       {hLocal, "the client's database; each database has its own shard connections", func(c *session, _ string, a [][]byte) { c.selectDB(a) }},
		"info":         {hFanout, "merged like one server's: memory, persistence and stats summed, CPU of the proxy and the shards, server fields from shard 0 and the proxy", func(c *session, _ string, a [][]byte) { c.infoCmd(a) }},
		"replconf":     {hLocal, "the admin user's replication through the proxy", func(c *session, _ string, a [][]byte) { c.replconf(a) }},
		"psync":        {hDedicated, "the admin user only: relays one shard's replication stream", func(c *session, n string, a [][]byte) { c.psync(n, a) }},
		"sync":         {hDedicated, "the admin user only: relays one shard's replication stream", func(c *session, n string, a [][]byte) { c.psync(n, a) }},
		"readonly":     {hLocal, "", func(c *session, _ string, a [][]byte) { c.replyOK() }},
		"readwrite":    {hLocal, "", func(c *session, _ string, a [][]byte) { c.replyOK() }},
		"dbsize":       {hFanout, "summed, less replicaof's own keys; exact right after a flush", func(c *session, _ string, a [][]byte) { c.dbsize(a) }},
		"keys":         {hFanout, "every shard's keys, less replicaof's own", func(c *session, _ string, a [][]byte) { c.keysCmd(a) }},
		"scan":         {hFanout, "the shards one after another; the cursor carries the shard and a tag of the topology: after resharding or a failover of the shard being scanned it is refused (start again from 0)", func(c *session, _ string, a [][]byte) { c.scan(a) }},
		"randomkey":    {hFanout, "one of the shards' answers, never one of replicaof's own keys", func(c *session, _ string, a [][]byte) { c.randomKey(a) }},
		"mget":         {hSplit, "", func(c *session, _ string, a [][]byte) { c.split(a) }},
		"exists":       {hSplit, "counts summed", func(c *session, _ string, a [][]byte) { c.split(a) }},
		"touch":        {hSplit, "counts summed", func(c *session, _ string, a [][]byte) { c.split(a) }},
		"del":          {hSplit, "counts summed; needs allow_writes", func(c *session, _ string, a [][]byte) { c.split(a) }},
		"unlink":       {hSplit, "counts summed; needs allow_writes", func(c *session, _ string, a [][]byte) { c.split(a) }},
		"mset":         {hSplit, "needs allow_writes; not atomic across shards", func(c *session, _ string, a [][]byte) { c.split(a) }},
		"subscribe":    {hDedicated, "on the channel's shard, where the syncer publishes", func(c *session, n string, a [][]byte) { c.drv.pubsub(n, a) }},
		"unsubscribe":  {hDedicated, "", func(c *session, n string, a [][]byte) { c.drv.pubsub(n, a) }},
		"psubscribe":   {hDedicated, "on every shard", func(c *session, n string, a [][]byte) { c.drv.pubsub(n, a) }},
		"punsubscribe": {hDedicated, "", func(c *session, n string, a [][]byte) { c.drv.pubsub(n, a) }},
		"publish":      {hRouted, "to the channel's shard", func(c *session, n string, a [][]byte) { c.publish(n, a) }},
		"spublish":     {hRouted, "to the channel's shard", func(c *session, n string, a [][]byte) { c.publish(n, a) }},
		"multi":        {hLocal, "queued by the proxy; EXEC sends the block to the keys' shard (keys on several shards: -CROSSSLOT)", func(c *session, _ string, a [][]byte) { c.multi(a) }},
		"exec":         {hRouted, "MULTI … EXEC as one block on the transaction's shard (on the WATCH connection after WATCH)", func(c *session, n string, a [][]byte) { c.replyErr("ERR EXEC without MULTI") }},
		"discard":      {hLocal, "", func(c *session, n string, a [][]byte) { c.replyErr("ERR DISCARD without MULTI") }},
		"watch":        {hDedicated, "pins the client to the keys' shard until EXEC, DISCARD or UNWATCH (keys on several shards: -CROSSSLOT)", func(c *session, _ string, a [][]byte) { c.drv.watch(a) }},
		"unwatch":      {hLocal, "closes the WATCH connection", func(c *session, _ string, a [][]byte) { c.unwatchCmd(a) }},
		"flushdb":      {hFanout, "needs allow_writes; keeps replicaof's own keys (one atomic script per shard)", func(c *session, n string, a [][]byte) { c.flushCmd(n, a) }},
		"flushall":     {hFanout, "needs allow_writes; keeps replicaof's own keys (one atomic script per shard)", func(c *session, n string, a [][]byte) { c.flushCmd(n, a) }},
		"time":         {hShard0, "one clock for every client", func(c *session, _ string, a [][]byte) { c.timeCmd(a) }},
		"eval":         {hRouted, "runs as EVAL_RO without allow_writes, which proxy.read_from may send to a replica", nil},
		"evalsha":      {hRouted, "runs as EVALSHA_RO without allow_writes", nil},
		"fcall":        {hRouted, "runs as FCALL_RO without allow_writes, which proxy.read_from may send to a replica", nil},

		"client":          {hLocal, "", sub},
		"client|setname":  {hLocal, "", func(c *session, _ string, a [][]byte) { c.clientSetName(a) }},
		"client|getname":  {hLocal, "", func(c *session, _ string, a [][]byte) { c.clientGetName(a) }},
		"client|setinfo":  {hLocal, "", func(c *session, _ string, a [][]byte) { c.clientSetInfo(a) }},
		"client|id":       {hLocal, "", func(c *session, _ string, a [][]byte) { c.clientID(a) }},
		"client|info":     {hLocal, "", func(c *session, _ string, a [][]byte) { c.replyBulk([]byte(c.infoLine())) }},
		"client|reply":    {hLocal, "ON, OFF and SKIP withhold replies as Redis does", func(c *session, _ string, a [][]byte) { c.clientReply(a) }},
		"client|no-evict": {hLocal, "+OK: the proxy never evicts clients", func(c *session, _ string, a [][]byte) { c.clientNoEvict(a) }},
		"client|no-touch": {hRefused, noTouchReason, func(c *session, _ string, a [][]byte) {
			c.replyErr("ERR CLIENT NO-TOUCH is not supported by the proxy: " + noTouchReason)
		}},

		"command":       {hShard0, "the command table of shard 0", func(c *session, n string, a [][]byte) { c.commandCmd(a) }},
		"command|count": {hLocal, "the proxy's routing table", func(c *session, n string, a [][]byte) { c.commandCount(a) }},

		"script":        {hFanout, "", sub},
		"script|load":   {hFanout, "every shard; answered when all agree; allowed read-only", func(c *session, _ string, a [][]byte) { c.agree(a) }},
		"script|flush":  {hFanout, "every shard; answered when all agree; allowed read-only", func(c *session, _ string, a [][]byte) { c.agree(a) }},
		"script|exists": {hFanout, "1 only for a script every shard has", func(c *session, _ string, a [][]byte) { c.scriptExists(a) }},
		"script|kill":   {hFanout, "every shard on connections of its own; +OK from the shard running one", func(c *session, _ string, a [][]byte) { c.drv.killScript(a) }},
		"script|help":   {hShard0, "", func(c *session, _ string, a [][]byte) { c.forward(0, a) }},

		"function":         {hFanout, "", sub},
		"function|load":    {hFanout, "every shard; answered when all agree; allowed read-only", func(c *session, _ string, a [][]byte) { c.agree(a) }},
		"function|delete":  {hFanout, "every shard; answered when all agree; allowed read-only", func(c *session, _ string, a [][]byte) { c.agree(a) }},
		"function|flush":   {hFanout, "every shard; answered when all agree; allowed read-only", func(c *session, _ string, a [][]byte) { c.agree(a) }},
		"function|restore": {hFanout, "every shard; answered when all agree; allowed read-only", func(c *session, _ string, a [][]byte) { c.agree(a) }},
		"function|dump":    {hFanout, "answered when every shard's dump is the same", func(c *session, _ string, a [][]byte) { c.agree(a) }},
		"function|list":    {hFanout, "each library once", func(c *session, _ string, a [][]byte) { c.functionList(a) }},
		"function|stats":   {hFanout, "the shard running a function, else shard 0", func(c *session, _ string, a [][]byte) { c.functionStats(a) }},
		"function|kill":    {hFanout, "every shard on connections of its own; +OK from the shard running one", func(c *session, _ string, a [][]byte) { c.drv.killScript(a) }},
		"function|help":    {hShard0, "", func(c *session, _ string, a [][]byte) { c.forward(0, a) }},

		"pubsub":               {hFanout, "", sub},
		"pubsub|channels":      {hFanout, "the shards' lists merged", func(c *session, _ string, a [][]byte) { c.pubsubChannels(a) }},
		"pubsub|shardchannels": {hFanout, "the shards' lists merged", func(c *session, _ string, a [][]byte) { c.pubsubChannels(a) }},
		"pubsub|numsub":        {hFanout, "summed (a channel lives on its slot's shard)", func(c *session, _ string, a [][]byte) { c.pubsubNumsub(a) }},
		"pubsub|shardnumsub":   {hFanout, "summed", func(c *session, _ string, a [][]byte) { c.pubsubNumsub(a) }},
		"pubsub|numpat":        {hFanout, "the largest shard's count: the proxy subscribes each pattern on every shard", func(c *session, _ string, a [][]byte) { c.pubsubNumpat(a) }},
		"pubsub|help":          {hShard0, "", func(c *session, _ string, a [][]byte) { c.forward(0, a) }},

		"asking":          {hLocal, "+OK: the proxy never answers ASK (it follows the destination's redirects itself)", func(c *session, _ string, a [][]byte) { c.replyOK() }},
		"cluster":         {hLocal, "a one-node cluster that owns every slot: the proxy", func(c *session, _ string, a [][]byte) { c.clusterCmd(a) }},
		"cluster|slots":   {hLocal, clusterNote, func(c *session, _ string, a [][]byte) { c.clusterSlots(a) }},
		"cluster|shards":  {hLocal, clusterNote, func(c *session, _ string, a [][]byte) { c.clusterShards(a) }},
		"cluster|nodes":   {hLocal, clusterNote, func(c *session, _ string, a [][]byte) { c.clusterNodes(a) }},
		"cluster|info":    {hLocal, "a healthy one-node cluster (cluster_state:ok, 16384 slots)", func(c *session, _ string, a [][]byte) { c.clusterInfo(a) }},
		"cluster|myid":    {hLocal, "the proxy's node ID", func(c *session, _ string, a [][]byte) { c.clusterMyID(a) }},
		"cluster|keyslot": {hLocal, "", func(c *session, _ string, a [][]byte) { c.clusterKeySlot(a) }},
	}
	for _, name := range []string{"command|info", "command|docs", "command|list", "command|getkeys", "command|getkeysandflags", "command|help"} {
		specials[name] = special{hShard0, "", func(c *session, _ string, a [][]byte) { c.forward(0, a) }}
	}
	for name, why := range deniedReasons {
		if _, ok := specials[name]; !ok {
			specials[name] = special{how: hRefused, note: why}
		}
	}
}

const noTouchReason = "reads share shard connections, so the shards cannot tell this client's reads from others'"

// deniedReasons are commands refused whatever their flags say: they would
// break the shared, pipelined shard connections or address the server
// rather than keys.
var deniedReasons = map[string]string{
	"wait":     "the shards' replicas are not the client's",
	"waitaof":  "the shards' AOF is not the client's",
	"monitor":  "would need every shard's stream of every client",
	"swapdb":   "would swap databases under the syncer",
	"reset":    "would reset the shared shard connection",
	"failover": "the shards' failover is not the client's",
}

// subcommand dispatches a container command (CLIENT, SCRIPT, …) through
// specials.
func (c *session) subcommand(parent string, args [][]byte) {
	if len(args) < 2 {
		c.wrongArgs(parent)
		return
	}
	if sp, ok := specials[parent+"|"+lowerArg(args[1])]; ok && sp.run != nil {
		sp.run(c, parent, args)
		return
	}
	c.unsupported(args)
}

// defaultHandling is how plan serves a command not in specials (check and
// route): the reason when refused.
func defaultHandling(cmd *router.Command) (handling, string) {
	switch {
	case deniedReasons[parentName(cmd.Name)] != "":
		return hRefused, deniedReasons[parentName(cmd.Name)]
	case cmd.Flags&router.FlagAdmin != 0:
		return hRefused, "an admin command: the shards are configured directly"
	case cmd.Flags&router.FlagPubSub != 0:
		return hRefused, "a pub/sub command the proxy does not implement"
	case len(cmd.KeySpecs) == 0 && cmd.FirstKey == 0:
		return hRefused, "no keys: no shard to ask"
	case cmd.Flags&router.FlagBlocking != 0:
		note := "the keys' shard; keys on several shards: -CROSSSLOT"
		if cmd.Name == "xread" || cmd.Name == "xreadgroup" {
			note = "with BLOCK; without, routed on the shared connections"
		}
		if cmd.Write() {
			note += "; needs allow_writes"
		}
		return hDedicated, note
	case cmd.Write():
		return hRouted, "needs allow_writes"
	}
	return hRouted, ""
}

// commandDocs renders docs/proxy-commands.md from specials and the
// default rule, for every command of table.
func commandDocs(table *router.Table) string {
	var b strings.Builder
	b.WriteString(`# Commands through the proxy

Generated from the proxy's command table (proxy/commands.go) by
` + "`go test ./proxy -run TestCommandDocs -update`" + `; do not edit by hand.

How each command of Redis ` + router.BuiltinVersion + ` is served:

- **routed**: to the shard its keys live on (keys on several shards: -CROSSSLOT), over the shared pipelined connections;
- **split**: split by shard, the parts merged;
- **fanned out**: every shard, the replies merged as described;
- **local**: answered by the proxy itself;
- **shard 0**: shard 0 answers for all;
- **dedicated connection**: on a shard connection the client holds (proxy.max_blocking bounds them for blocking commands and WATCH);
- **refused**: an error reply, for the reason given.

Writes answer -READONLY without allow_writes. Keys starting with ` + "`__replicaof:`" + ` are replicaof's own: reads see them absent, writes are refused.

The replicas column marks the reads proxy.read_from may send to a shard's replicas (docs/configuration.md, Reading from replicas); every other command runs on the primary: writes, MULTI/EXEC, WATCH, blocking commands, Pub/Sub, fan-outs and EVALSHA_RO (SCRIPT LOAD reaches the primaries only).

| command | handling | replicas | notes |
|---|---|---|---|
`)
	var rows []string
	done := map[string]bool{}
	row := func(name string, how handling, note string) {
		done[name] = true
		rep := ""
		if cmd := table.Lookup([][]byte{[]byte(name)}); cmd != nil && cmd.Name == name && replicaRead(cmd) && (how == hRouted || how == hSplit) &&
			(specials[name].run == nil || replicaSpecials[name]) {
			rep = "yes"
		} else if name == "xread" {
			rep = "without BLOCK"
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s |", strings.ToUpper(strings.ReplaceAll(name, "|", " ")), handlingNames[how], rep, note))
	}
	for _, cmd := range table.Commands() {
		if len(cmd.Subcommands) > 0 {
			if sp, ok := specials[cmd.Name]; ok && sp.note != "" {
				row(cmd.Name, sp.how, sp.note)
			}
			for _, sc := range cmd.Subcommands {
				if sp, ok := specials[sc.Name]; ok {
					row(sc.Name, sp.how, sp.note)
				} else if cmd.Name == "cluster" {
					row(sc.Name, hRefused, clusterRefused)
				} else if _, ok := specials[cmd.Name]; ok && deniedReasons[cmd.Name] == "" {
					row(sc.Name, hRefused, "not implemented by the proxy")
				} else {
					how, note := defaultHandling(sc)
					row(sc.Name, how, note)
				}
			}
			continue
		}
		if sp, ok := specials[cmd.Name]; ok {
			if sp.run == nil && sp.how != hRefused {
				_, dn := defaultHandling(cmd)
				note := sp.note
				if dn != "" {
					note = dn + "; " + note
				}
				row(cmd.Name, sp.how, note)
				continue
			}
			row(cmd.Name, sp.how, sp.note)
			continue
		}
		how, note := defaultHandling(cmd)
		row(cmd.Name, how, note)
	}
	// Handled by the proxy, newer than the table (CLIENT SETINFO…).
	for name, sp := range specials {
		if !done[name] && !inTable(table, name) {
			row(name, sp.how, strings.TrimPrefix(sp.note+" (newer than Redis "+router.BuiltinVersion+")", " "))
		}
	}
	sort.Strings(rows)
	b.WriteString(strings.Join(rows, "\n"))
	b.WriteString("\n")
	return b.String()
}

// replicaSpecials are the specials whose run takes the read path of the
// default rule (route or split), so read_from applies to them.
var replicaSpecials = map[string]bool{
	"ttl": true, "pttl": true, "expiretime": true, "pexpiretime": true,
	"httl": true, "hpttl": true, "hexpiretime": true, "hpexpiretime": true,
	"mget": true, "exists": true, "touch": true,
}

// inTable reports whether a specials name is a command of table.
func inTable(table *router.Table, name string) bool {
	parent, sub, isSub := strings.Cut(name, "|")
	cmd := table.LookupName(parent)
	return cmd != nil && (!isSub || cmd.Subcommands[sub] != nil)
}
