// Package proxy is the RESP endpoint applications use to read the
// destination: any Redis client connects to it as if it were one Redis
// server, and every command goes to the shard the destination's current
// slot map places its keys on (Config.Destination, shared with the syncer
// and verify: its router.SlotMap, its shards with their AUTH and TLS, and
// the backends; the proxy has no placement logic of its own).
//
//	dest, err := destination.New(destination.Config{
//		Shards: []destination.Shard{{Addr: "127.0.0.1:7001"}, {Addr: "127.0.0.1:7002"}},
//	})
//	if err != nil { ... }
//	srv, err := proxy.New(proxy.Config{Listen: "127.0.0.1:6380", Destination: dest})
//	if err != nil { ... }
//	go srv.Serve(ctx) // returns when ctx ends, every client closed
//
// # Commands
//
// docs/proxy-commands.md lists every command with how it is served; it is
// generated from the one table plan dispatches through (specials in
// commands.go, plus the default rule of check for every other command),
// and TestCommandDocs fails when the file is out of date.
//
// Single-key commands go to the key's shard; a client's pipeline is
// forwarded pipelined and answered in order, replies from different shards
// included: the executor sends one block per shard and completes the
// batch when all have answered, with no goroutine per shard (see
// "Session, plan, executor, driver" below). Each event loop has one
// pipelined connection per shard and database, shared by its clients, so
// one write to a shard carries every command its clients sent in a loop
// pass; on the goroutine driver each shard and database has one pipelined
// connection by default (Config.Backend.Conns), shared by every client
// (pool.Backend lets callers that are runnable queue theirs before it
// writes). MGET, EXISTS, TOUCH, DEL, UNLINK and MSET are split by
// router.SlotMap.Split and merged; DBSIZE, KEYS and RANDOMKEY ask every
// shard; SCAN walks the shards one after another, its cursor being
// shardCursor<<(b+16) | tag<<b | shard (b bits hold a shard index), so
// MATCH, COUNT and TYPE pass through and every key is visited once. The
// tag digests the topology the cursor is valid in (scancursor.go): the
// slot map and, while a shard is being scanned, the address of its node.
// After resharding or a failover of the shard being scanned a cursor
// cannot keep SCAN's guarantee (a shard's cursor means nothing on another
// node; moved slots would be missed or seen twice), so it is answered
// "-ERR SCAN cursor is from before a change of the destination …: start
// again from cursor 0"; a failover of a shard not being scanned, or a new
// map placing every slot the same way, leaves it valid. PING, ECHO, QUIT,
// HELLO 2 (HELLO 3 answers -NOPROTO, on which clients fall back to RESP2),
// AUTH, SELECT, CLIENT SETNAME/GETNAME/SETINFO/ID/INFO, COMMAND
// COUNT, READONLY and READWRITE are answered locally; INFO is merged the
// way a client expects from one server (info.go): server fields from
// shard 0 plus the proxy's own process, memory, persistence and stats
// summed over the shards (with *_human recomputed, ratios averaged), CPU
// of the proxy process plus the shards, clients, replication and
// keyspace the proxy's, and a Proxy section of its own (shards,
// destination_kind shards or cluster, each shard's node address and
// slots; INFO cluster: cluster_enabled:1, see below); COMMAND, COMMAND INFO
// and COMMAND DOCS come from shard 0. SUBSCRIBE puts a channel on the
// shard of its slot (where the syncer publishes), PSUBSCRIBE a pattern on
// every shard, each over a connection the client owns.
//
// Writes answer -READONLY unless Config.AllowWrites; then single-shard
// writes, split DEL/UNLINK/MSET, scripts and MULTI/EXEC whose keys share
// one shard are forwarded, others answer -CROSSSLOT. MULTI … EXEC is sent
// as one pool.Backend.Pipeline, which reaches the shared connection as
// one block no other client's command can split. Without AllowWrites
// EVAL, EVALSHA and FCALL run as their _RO variants, so a script cannot
// write either. Admin commands and keyless commands the proxy does not
// answer itself get "-ERR unsupported command '<name>'"; commands and
// subcommands the table does not know get Redis' own "unknown command"
// and "unknown subcommand" errors, which client libraries match on.
// Inline commands are split with Redis' quoting rules (resp.ReadCommand).
//
// Scripts and functions are loaded on every shard, so EVALSHA and FCALL
// work for keys of any shard: SCRIPT LOAD/FLUSH and FUNCTION LOAD/DELETE/
// FLUSH/RESTORE/DUMP go to every shard and answer once all shards answered
// the same ("-ERR shards disagree: shard 0 answered …, shard N answered
// …" otherwise). They are allowed without AllowWrites (they load code,
// change no data); a script that writes still needs AllowWrites. SCRIPT
// EXISTS answers 1 for a script every shard has; FUNCTION LIST lists each
// library once; FUNCTION STATS is the stats of the shard running a
// function, else shard 0's. SCRIPT KILL and FUNCTION KILL go to every
// shard on connections of their own (a shard's shared connection waits
// behind its running script) and answer +OK if one shard killed a script.
//
// WATCH pins the client to the watched keys' shard: it runs on a shard
// connection the client holds until EXEC, DISCARD or UNWATCH (or the
// client leaves), and the MULTI … EXEC that follows runs there, so the
// shard's own WATCH semantics apply: a write to a watched key by anyone,
// through the proxy or by the syncer, makes EXEC answer nil. Watched keys
// on several shards, and transaction keys on another shard than the
// watched ones, answer -CROSSSLOT. Watching clients count against
// Config.MaxBlocking with blocked ones.
//
// Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
// BZPOPMAX, BZMPOP, XREAD BLOCK, XREADGROUP BLOCK) run on a shard
// connection the client holds for that command, dialed to the keys'
// shard and the client's database, so a client blocking for minutes
// holds up no one; the shard applies the command's own timeout. Keys on
// several shards answer -CROSSSLOT; the writing ones (all but XREAD) need
// AllowWrites. Replies to commands pipelined before one are written
// before it blocks, as Redis does. Config.MaxBlocking (default 1024)
// bounds the commands blocked at once; one more is answered "-ERR max
// number of blocked or watching clients reached". A client that
// disconnects while blocked has its shard connection closed at once (on
// Linux, where the proxy can see the hang-up without reading), so the
// shard unblocks it. XREAD and XREADGROUP without BLOCK never block and
// use the shared
// connections; inside MULTI blocking commands do not block either (as in
// Redis) and are queued like any other. INFO clients reports
// blocked_clients. A blocked client costs about 48 KB, both ends counted
// (TestManyBlocked, 1,000 at once).
//
// FLUSHDB and FLUSHALL (with AllowWrites) run on every shard as one Lua
// script each that copies replicaof's own keys, flushes and restores
// them, atomically, so the syncer's checkpoints survive and no syncer
// write can fall in between; the syncer then carries on without a full
// resync, and the flushed keys come back only as the sources write them.
// TIME is shard 0's clock. PUBSUB CHANNELS/SHARDCHANNELS merge the
// shards' lists; NUMSUB/SHARDNUMSUB sum (a channel lives on its slot's
// shard); NUMPAT is the largest shard's count, since the proxy subscribes
// each pattern on every shard. CLIENT REPLY ON/OFF/SKIP withhold replies
// as Redis does; CLIENT NO-EVICT answers +OK (the proxy never evicts
// clients); CLIENT NO-TOUCH is refused, since reads share shard
// connections and the shards cannot tell one client's reads from another's.
//
// TTL, PTTL, EXPIRETIME, PEXPIRETIME, HTTL, HPTTL, HEXPIRETIME and
// HPEXPIRETIME answer the source's TTL: Config.TTLGrace, which the syncer
// adds to every TTL it writes, is taken off their replies (ttl.go).
//
// Keys starting with "__replicaof:" belong to replicaof: KEYS, SCAN,
// RANDOMKEY, DBSIZE and INFO keyspace leave them out (DBSIZE checks the
// cached names of the hidden keys in the same script that counts, so it
// is exact right after a flush), reads of them read
// a key that never exists in the same slot (so they answer as if absent),
// writes to them are refused.
//
// # Session, plan, executor, driver
//
// A client is four parts, so that planning does no I/O of its own. Its
// session (session.go) holds the per-client state — database and its
// backends, AUTH, the MULTI queue, subscriptions, WATCH, CLIENT REPLY
// mode, names — and its methods are the planner (command and plan in
// session.go and dispatch.go, and the command files), which turns each
// parsed command into entries of the batch's plan (a batchPlan):
// local replies, calls to shards with how their replies merge, and
// continuations (cont) for commands that need shard replies before they
// can answer or go on: DBSIZE (with the hidden-key listing, itself SCAN
// rounds), RANDOMKEY, INFO, the SCRIPT/FUNCTION fan-outs, PUBSUB
// NUMPAT/CHANNELS/NUMSUB, FLUSHDB/FLUSHALL and EXEC. KEYS, SCAN and the
// split commands are plain calls merged at the end. Planning all of these
// does no I/O.
//
// The executor (exec.go) completes a plan, in rounds, and never waits
// itself: advance takes the replies of the round in flight and prepares
// the next, and the driver sends it. The calls planned before each
// continuation go as one block per backend (every shard's block sent
// before waiting on any, so the shards work in parallel), then the
// continuation runs its rounds (EXEC's as one block no other client's
// command can split), and only then are later calls sent, so every
// command sees the effects of the ones before it, as on one server. After
// a round of plain calls come, when needed, a round of a cluster
// destination's redirects (redirect.go) and one of reads retried on
// another node (Config.ReadFrom).
//
// There are two drivers. Plain (non-TLS) clients are served by event
// loops (loop.go, Config.Loops; internal/evloop, Linux): each loop is one
// goroutine that owns its clients' sockets, handed to it round robin, and
// its own pipelined connection to every backend (shard and database, or
// replica) its clients use. A loop pass reads each readable socket once
// (level-triggered), plans every complete command read as one batch per
// client, sends the rounds on its shard connections — written once per
// pass, every client's calls to a shard in one write — and, as replies
// come in, advances each client's plan and writes its replies, all at the
// end of the pass. A loop never blocks on a shard: a stalled shard's
// commands fail when their reply is Config.Timeout late (a timer per
// connection), while the loop serves the other shards. Everything else
// runs on the goroutine driver, a goroutine per client (client.go): it
// reads a batch, has the session plan it, the executor run it through the
// shared pool.Backends (each round queued in a reused pool.Batch and
// waited for), and writes the replies with one write. With Config.TLS
// set every client is served there from the start (with
// TLSReplicationOnly the plain ones too: the first byte, which tells
// them apart, is peeked on the client's goroutine), and so are all
// clients when the shards are reached through a Dial hook (TLS to the
// shards), or with Config.Loops 0.
//
// Some commands do their I/O while planned, on the goroutine driver
// (the session hands them over through its driver interface), because
// they hold a connection or the client's socket: SUBSCRIBE and the other
// pub/sub commands (the confirmations must precede pushes), WATCH and
// EXEC under WATCH (the client's own shard connection), blocking commands
// (a shard connection held for the command), SCRIPT KILL / FUNCTION KILL
// (connections of their own) and the PSYNC relay. They first have the
// executor complete the plan so far, so replies keep command order. On an
// event loop such a command ends the batch: the loop answers the commands
// before it, then hands the client over to the goroutine driver with
// evloop's Release (the socket, the replies not yet written and the input
// not yet read), which runs the command and serves the client from then
// on.
//
// # Reading from replicas
//
// With Config.ReadFrom other than ReadPrimary (replicas.go), reads may go
// to each shard's replicas: those the primary lists in INFO replication
// (online ones) and Config.Replicas. A goroutine Serve starts (and
// shutdown waits for) asks every primary and replica for INFO
// replication each Config.ReplicaRefresh, every node at once and the
// round bounded by Timeout and the period. A replica is in rotation
// while its last check answered, its master_link_status is up and its
// lag is within Config.MaxReplicaLag (while the primary is down, which
// takes the replicas' links down too, a replica that answers serves
// rather than every read failing); the lag is time, measured against
// samples of the primary's master_repl_offset taken at each check (the
// age of the oldest sample the replica's offset has not reached, as the
// syncer measures source lag). Which reads qualify is replicaRead: read-only
// commands of the default rule and of split (MGET, EXISTS, TOUCH), TTL
// reads, EVAL_RO and FCALL_RO, not EVALSHA_RO (SCRIPT LOAD reaches the
// primaries only), and nothing from a client holding a WATCH; MULTI/EXEC,
// blocking commands, Pub/Sub and fan-outs stay on the primaries. Each
// replica has its own pooled backends per database. A read that fails
// without a reply (the node died, stalled past Timeout, or was dropped
// from the list) takes the node out of rotation and is sent once more,
// in the same batch, to another node of the shard: the client sees no
// error. Server.Nodes reports every node with its role, state, lag and
// counts of reads, lag and link-down episodes and errors.
//
// # A Redis Cluster destination
//
// With a destination opened on a Redis Cluster (destination.Open) a shard
// is a group: a master and its replicas, whose master a failover changes
// and whose slots resharding changes, under the destination's live map
// and pools. The proxy places keys with that map; its per-database
// backend sets follow each group's current master (shardPools.current).
// A command that reaches a node no longer serving its slot is followed
// (redirect.go): -MOVED is told to the destination (which moves the slot
// in its map at once and refreshes) and the command goes to the new
// owner; -ASK sends ASKING and the command to the importing node, in
// one block, map unchanged; -TRYAGAIN and -CLUSTERDOWN are sent again
// after 20 ms, doubled each time. At most 5 hops per command; a command
// still redirected then is answered -TRYAGAIN naming the slot, so a
// client never sees MOVED or ASK. A command that failed on its
// connection (a master killed) is not sent again (its effect is
// unknown): the connection error makes the destination refresh, and the
// next commands reach the promoted replica. MOVED or ASK on a dedicated
// connection (blocking commands, WATCH) is answered -TRYAGAIN, and WATCH
// lets go of the wrong node. A MULTI … EXEC block whose slot moved is
// refused whole by the node (its commands answer MOVED, EXEC answers
// -EXECABORT: nothing ran), and is sent whole to the new owner; one whose
// slot is migrating (ASK, TRYAGAIN) is not sent with ASKING (that covers
// one command, not a transaction): its -EXECABORT reaches the client,
// which retries.
//
// Multi-key commands split by the proxy (MGET, EXISTS, TOUCH, DEL,
// UNLINK, MSET) are split per slot, since a cluster refuses keys of
// several slots in one command even on one node; other multi-key
// commands need their keys in one slot (hash tags), as on Redis Cluster.
// SELECT of a database other than 0 answers "-ERR SELECT is not allowed
// in cluster mode". Fan-outs (DBSIZE, KEYS, SCAN, RANDOMKEY, INFO, SCRIPT
// LOAD…) go to every group's master; DBSIZE and FLUSHDB/FLUSHALL run
// their scripts with the allow-cross-slot-keys flag (Redis 7.0+), since
// replicaof's own keys there are a checkpoint per slot and source
// (names passed as ARGV, up to 32 sources' worth per group). Scripts
// loaded with SCRIPT LOAD live on the masters they were loaded on: after
// a failover the new master answers EVALSHA with NOSCRIPT until the
// client sends the script again (client libraries do; functions
// replicate, FCALL is not affected); SCAN's cursor tag (above) makes a
// scan that resharding or a failover of its group would break fail
// clearly. With ReadFrom set, each group's replicas are the ones the
// destination's last refresh reports (their connections send READONLY).
//
// Whatever the destination, CLUSTER SLOTS, SHARDS, NODES, INFO, MYID and
// KEYSLOT answer as a one-node cluster that owns all 16384 slots, the
// node being the proxy at the local address of the client's connection
// (cluster.go), and INFO cluster says cluster_enabled:1: cluster-mode
// clients (go-redis ClusterClient, redis-cli -c) send everything to the
// proxy. HELLO and INFO server still say standalone, so SELECT-using
// clients are served as before. Other CLUSTER subcommands are refused;
// ASKING, READONLY and READWRITE answer +OK.
//
// # One client cannot hurt another
//
// Shard replies are framed without recursion, so replies nested as deep
// as Redis makes them (a Lua table thousands of levels deep) relay
// verbatim. A reply over one of a shard's reply limits
// (pool.Config.Limits: depth, line length, bulk size, whole
// reply size) is read to its end and dropped, and only the command that
// asked for it answers "-ERR shard N: reply too large for the proxy: …";
// the shared connection stays in sync, so other clients' commands on it,
// in flight or not, are not touched and the shard is not marked down.
// FuzzIsolation checks this with random replies on one client and
// pipelined GETs on another. An event loop frames replies in the bytes it
// holds (resp.ReplyLen), so it holds a reply over the limits whole before
// dropping it, up to twice MaxReply (at least 64 MB); a larger one fails
// the loop's connection to that shard, and the calls on it, which then
// reconnects. What remains shared is the shard's time: a
// command that keeps a shard busy past Config.Timeout (a slow script)
// times out the shared connection and the commands queued behind it, as
// on one Redis server other clients wait behind it (and get -BUSY).
//
// A shard that is down fails its own commands within Config.Timeout
// ("-ERR shard N unavailable: …"), the other shards keep serving, and the
// backend reconnects on its own.
//
// # Why the proxy reads clients with its own loop, not redcon's
//
// The original design named tidwall/redcon for the client side
// (docs/architecture.md records the decision). Both drivers follow
// redcon's design — every complete command in the read buffer handled as
// one batch, one write per batch, local replies appended to a []byte —
// but input is parsed with resp.ReadCommand on a pooled bufio.Reader (the
// goroutine driver) or framed in place with resp.CommandFramer, which
// makes the same checks and resumes where it stopped when a command
// arrives in pieces (an event loop), rather than with redcon's Reader,
// because redcon's parser cannot be guarded from the outside:
//
//   - it panics on lengths near MaxInt (`*1\r\n$9223372036854775807\r\n`
//     overflows an index) and spins on a huge `*<count>` with no data;
//   - it grows its buffer without bound for an inline line with no
//     newline, and for any bulk length, before checking anything;
//   - it re-parses the whole buffer from the start on every read, so a
//     large command sent slowly costs quadratic time;
//   - a guard in front of it would have to frame RESP completely to know
//     where commands end, i.e. parse everything twice.
//
// resp.ReadCommand checks every length against Config.Limits before
// allocating, reads bulks in bounded steps, and stops a line at
// MaxInline, so hostile input is answered "-ERR Protocol error: …" and
// that client alone is closed. It is also faster: BenchmarkParse (16
// pipelined GETs; -tags redconbench)
// measured resp.ReadCommand about 3x faster than redcon's reader, with 0
// allocations per batch against redcon's 37. Replies to clients are
// encoded with redcon's encoders (AppendBulk, AppendArray, AppendInt,
// AppendError, AppendOK…); commands to the shards with
// resp.AppendCommand.
//
// # Slow readers
//
// Config.MaxPending bounds the replies waiting for one client: past it
// the client's commands are not read until it has taken them, and a
// client not taking them that has more than Config.MaxPendingHard
// waiting is closed with a log line (counted in INFO stats
// client_output_buffer_limit_disconnections). The goroutine driver
// writes a batch's replies before reading on, cuts pipelined batches
// where their replies are expected to reach MaxPending, and closes a
// client whose batch passed the hard limit while earlier replies still
// wait unread in its socket (pending.go has the details); a write that
// makes no progress for Config.Timeout closes the client too. On an event
// loop a client whose unwritten replies reach MaxPending is not read (nor
// its buffered commands planned) until the kernel has taken half of them,
// batches are cut by the same estimate, and one whose batch would take
// its unwritten replies past MaxPendingHard while earlier ones wait is
// closed the same way; input read while a batch runs is bounded by
// pausing the reads past 4 MB. A loop client with replies waiting that
// takes none of them for Config.Timeout is reset (a check every second),
// with a log line. A stalled
// shard fails its own commands within Config.Timeout (see above), so
// what waits on it is bounded too.
//
// # Idle clients
//
// An idle client holds no buffer. On an event loop it is its client
// state and the loop's record of its socket: input and output buffers
// exist only while there is input left over or output not yet written.
// On the goroutine driver, between batches its goroutine waits for the
// socket to become readable with a one-byte MSG_PEEK (waitReadable) and
// takes a pooled reader only then, and oversized buffers left by a large
// command are dropped. 10,000 idle clients cost a few KB each
// (make bench-proxy: 1.9 KB on an event loop). Config.IdleTimeout closes
// idle clients on a loop from a timer that looks at the loop's clients
// every second (or every IdleTimeout, if shorter).
//
// # TLS
//
// With Config.TLS set every client connection is TLS: the handshake runs
// on the client's goroutine within Config.Timeout. An idle TLS client
// waits on its socket the same way, which is sound because it goes idle
// only after a read timed out, when crypto/tls has consumed every whole
// record it buffered (a read timeout is not fatal to a *tls.Conn); the
// TLS layer keeps its own record buffer meanwhile.
package proxy
