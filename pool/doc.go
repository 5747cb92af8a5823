// Package pool carries raw RESP commands to one Redis server: the
// connections of the syncer's writes and of the proxy's forwarded
// commands.
//
// A Backend is a pool of pipelined connections to one server. Requests and
// replies cross it as raw RESP (replies are framed by resp.ReadReply,
// never decoded); many callers' requests share one write; a Pipeline
// reaches one connection as one block no other caller's command can split
// (MULTI … EXEC stays whole); a Batch waits for blocks on several backends
// at once. A server that cannot be reached fails calls at once with
// ErrShardDown for a backoff period, and the pool reconnects on its own.
// Every new connection runs Config.Init (AUTH, SELECT) first; an error
// reply fails the dial. Config.Down is called after every connection or
// dial failure (a cluster destination refreshes its topology then);
// Config.Fail makes a backend that fails every call with that error.
//
// Dial opens one dedicated connection the same way (dial, TLS through
// Config.Dial, Init, fail on an error reply), for a caller that needs a
// connection of its own: the proxy's pub/sub, blocking commands, WATCH …
// EXEC and replication relays. FetchTable asks a server for its command
// table.
//
// The package knows nothing of slots, sources or clients: which server a
// key goes to is router's and destination's business.
//
//	b := pool.NewBackend(pool.Config{Addr: "127.0.0.1:7001"})
//	defer b.Close()
//	reply, err := b.Do(ctx, resp.AppendCommandString(nil, "GET", "k"), nil)
package pool
