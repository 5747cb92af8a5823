package proxy

import (
	"bufio"
	"errors"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/tidwall/redcon"
)

// subState is a client's subscriptions. A channel is subscribed on the
// shard that owns its slot (where the syncer publishes it); a pattern on
// every shard. Each shard the client uses gets a dedicated connection and
// a reader goroutine, owned by the client, that forwards messages and
// resubscribes after a reconnect.
type subState struct {
	c *client

	mu       sync.Mutex // guards the sets against readers resubscribing
	channels map[string]bool
	patterns map[string]bool
	conns    []*subConn // by shard; nil until used

	done chan struct{} // closed by closeAll
	wg   sync.WaitGroup
}

func (s *subState) active() bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.channels)+len(s.patterns) > 0
}

func (s *subState) nChannels() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.channels)
}

func (s *subState) nPatterns() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.patterns)
}

// subConn is one shard connection in subscribed mode.
type subConn struct {
	shard int
	cfg   pool.Config

	mu sync.Mutex // guards nc, replaced on reconnect
	nc net.Conn

	acks chan struct{} // one per subscribe/unsubscribe confirmation
}

// pubsub runs SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE and PUNSUBSCRIBE. It waits
// for the shards to confirm before confirming to the client, so a message
// published after the client's confirmation is delivered.
func (c *client) pubsub(name string, args [][]byte) {
	pattern := name[0] == 'p'
	subscribe := name == "subscribe" || name == "psubscribe"
	if subscribe && len(args) < 2 {
		c.wrongArgs(name)
		return
	}
	c.run()
	// Hold the client's writes until the confirmations are out: a message
	// the shard sends right after confirming must follow them. A state
	// left without subscriptions is closed after unlocking: its readers
	// may be waiting for the lock.
	var drop *subState
	defer func() {
		if drop != nil {
			drop.closeAll()
		}
	}()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	defer c.flushLocked()
	if c.sub == nil {
		c.sub = &subState{c: c, channels: map[string]bool{}, patterns: map[string]bool{},
			conns: make([]*subConn, c.s.shards().Len()), done: make(chan struct{})}
	}
	s := c.sub
	set := s.channels
	kind := "subscribe"
	if pattern {
		set, kind = s.patterns, "psubscribe"
	}
	if !subscribe {
		kind = name // "unsubscribe" or "punsubscribe"
	}
	names := make([]string, 0, len(args)-1)
	for _, a := range args[1:] {
		names = append(names, string(a))
	}
	if !subscribe && len(names) == 0 {
		s.mu.Lock()
		for n := range set {
			names = append(names, n)
		}
		s.mu.Unlock()
		sort.Strings(names)
	}
	// What each shard must be told: new names only for subscribe, known
	// names only for unsubscribe.
	perShard := make([][]string, c.s.shards().Len())
	seen := map[string]bool{}
	s.mu.Lock()
	for _, n := range names {
		if seen[n] || set[n] == subscribe {
			continue
		}
		seen[n] = true
		if pattern {
			for i := range perShard {
				perShard[i] = append(perShard[i], n)
			}
		} else {
			sh := c.s.shards().ShardOf([]byte(n))
			perShard[sh] = append(perShard[sh], n)
		}
	}
	s.mu.Unlock()
	cmd := upper(kind)
	for shard, list := range perShard {
		if len(list) == 0 {
			continue
		}
		if err := s.send(shard, cmd, list); err != nil {
			c.replyErr(shardErr(shard, err))
			return
		}
	}
	// Apply to the sets and confirm each name, as Redis does.
	lo := len(c.local)
	s.mu.Lock()
	for _, n := range names {
		if subscribe {
			set[n] = true
		} else {
			delete(set, n)
		}
		c.local = redcon.AppendArray(c.local, 3)
		c.local = redcon.AppendBulkString(c.local, kind)
		c.local = redcon.AppendBulkString(c.local, n)
		c.local = redcon.AppendInt(c.local, int64(len(s.channels)+len(s.patterns)))
	}
	if len(names) == 0 {
		c.local = redcon.AppendArray(c.local, 3)
		c.local = redcon.AppendBulkString(c.local, kind)
		c.local = redcon.AppendNull(c.local)
		c.local = redcon.AppendInt(c.local, int64(len(s.channels)+len(s.patterns)))
	}
	idle := len(s.channels)+len(s.patterns) == 0
	s.mu.Unlock()
	c.localOp(lo)
	if idle {
		drop, c.sub = s, nil
	}
}

// send tells one shard to (un)subscribe names and waits for its
// confirmations.
func (s *subState) send(shard int, cmd string, names []string) error {
	sc := s.conns[shard]
	if sc == nil {
		var err error
		if sc, err = s.dial(shard); err != nil {
			return err
		}
	}
	for len(sc.acks) > 0 { // late confirmations of an earlier timeout
		<-sc.acks
	}
	req := resp.AppendCommandString(nil, append([]string{cmd}, names...)...)
	sc.mu.Lock()
	nc := sc.nc
	sc.mu.Unlock()
	if nc == nil {
		return pool.ErrShardDown
	}
	timeout := s.c.s.cfg.Timeout
	_ = nc.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := nc.Write(req); err != nil {
		return err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for range names {
		select {
		case <-sc.acks:
		case <-t.C:
			return errors.New("no confirmation in time")
		case <-s.done:
			return pool.ErrClosed
		}
	}
	return nil
}

// dial opens the subscribed-mode connection of one shard and starts its
// reader.
func (s *subState) dial(shard int) (*subConn, error) {
	cfg := s.c.s.shardConfig(shard, 0)
	nc, br, err := pool.Dial(s.c.s.ctx, cfg, dedicatedBufSize)
	if err != nil {
		return nil, err
	}
	sc := &subConn{shard: shard, cfg: cfg, nc: nc, acks: make(chan struct{}, 64)}
	s.conns[shard] = sc
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.read(sc, br)
	}()
	return sc, nil
}

// dedicatedBufSize is the read buffer of a subscribed-mode or dedicated
// shard connection.
const dedicatedBufSize = 4096

// read forwards a shard's messages to the client and turns confirmations
// into acks. When the connection drops it reconnects and resubscribes
// until the client goes away.
func (s *subState) read(sc *subConn, br *bufio.Reader) {
	skip := 0 // confirmations of a resubscription, not awaited by anyone
	lim := s.c.s.cfg.Limits
	var buf []byte
	for {
		var err error
		buf, err = resp.ReadReply(br, buf[:0], lim)
		if err != nil {
			if br, skip = s.reconnect(sc); br == nil {
				return
			}
			continue
		}
		v, _, err := resp.ParseValue(buf, lim)
		if err != nil || len(v.Elems) == 0 {
			continue
		}
		switch string(v.Elems[0].Str) {
		case "message", "pmessage":
			s.c.push(buf)
		case "subscribe", "unsubscribe", "psubscribe", "punsubscribe":
			if skip > 0 {
				skip--
				continue
			}
			select {
			case sc.acks <- struct{}{}:
			case <-s.done:
				return
			}
		}
	}
}

// reconnect replaces a dropped shard connection, with backoff, and
// resubscribes what the client holds on that shard. It returns nil once
// the client is gone.
func (s *subState) reconnect(sc *subConn) (*bufio.Reader, int) {
	sc.mu.Lock()
	if sc.nc != nil {
		sc.nc.Close()
		sc.nc = nil
	}
	sc.mu.Unlock()
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-s.done:
			return nil, 0
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
		nc, br, err := pool.Dial(s.c.s.ctx, sc.cfg, dedicatedBufSize)
		if err != nil {
			continue
		}
		var chans, pats []string
		s.mu.Lock()
		for ch := range s.channels {
			if s.c.s.shards().ShardOf([]byte(ch)) == sc.shard {
				chans = append(chans, ch)
			}
		}
		for p := range s.patterns {
			pats = append(pats, p)
		}
		s.mu.Unlock()
		var req []byte
		if len(chans) > 0 {
			req = resp.AppendCommandString(req, append([]string{"SUBSCRIBE"}, chans...)...)
		}
		if len(pats) > 0 {
			req = resp.AppendCommandString(req, append([]string{"PSUBSCRIBE"}, pats...)...)
		}
		_ = nc.SetWriteDeadline(time.Now().Add(sc.cfg.WriteTimeout))
		if _, err := nc.Write(req); err != nil {
			nc.Close()
			continue
		}
		sc.mu.Lock()
		select {
		case <-s.done:
			sc.mu.Unlock()
			nc.Close()
			return nil, 0
		default:
		}
		sc.nc = nc
		sc.mu.Unlock()
		return br, len(chans) + len(pats)
	}
}

// closeAll closes the shard connections and waits for their readers.
func (s *subState) closeAll() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.done)
	for _, sc := range s.conns {
		if sc == nil {
			continue
		}
		sc.mu.Lock()
		if sc.nc != nil {
			sc.nc.Close()
		}
		sc.mu.Unlock()
	}
	s.wg.Wait()
}

// push writes a message from a shard to the client. A client that cannot
// take it in time is closed; its own goroutine then cleans up.
func (c *client) push(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.armWrite()
	if _, err := c.nc.Write(b); err != nil {
		c.nc.Close()
	}
}
