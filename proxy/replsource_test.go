package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/syncer/replica"
	"github.com/replicaof/replicaof/tlsutil"
)

// collector is a replica.Handler that counts what a link delivers.
type collector struct {
	mu       sync.Mutex
	rdb      int64
	full     int
	cont     int
	replID   string
	sets     map[string]string
	lastSeen int64
}

func (h *collector) FullSync(ctx context.Context, replID string, offset, size int64, rdb io.Reader) error {
	n, err := io.Copy(io.Discard, rdb)
	h.mu.Lock()
	h.rdb, h.full, h.replID = n, h.full+1, replID
	h.mu.Unlock()
	return err
}

func (h *collector) Continue(ctx context.Context, replID string, offset int64) error {
	h.mu.Lock()
	h.cont++
	h.mu.Unlock()
	return nil
}

func (h *collector) Apply(ctx context.Context, cmds []replica.Command) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range cmds {
		if len(c.Args) == 3 && equalFold(c.Args[0], "set") {
			h.sets[string(c.Args[1])] = string(c.Args[2])
		}
		h.lastSeen = c.Offset
	}
	return nil
}

func (h *collector) get(k string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.sets[k]
	return v, ok
}

func (h *collector) counts() (full, cont int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.full, h.cont
}

const testAdminPW = "s3cret-admin"

func adminCluster(t *testing.T) *cluster {
	// No 5 s wait before each diskless snapshot.
	return newCluster(t, func(c *Config) { c.AdminPassword = func() string { return testAdminPW } },
		"--repl-diskless-sync-delay", "0")
}

func relayLink(c *cluster, shard, level int, pw string, h replica.Handler) *replica.Link {
	cfg := replica.Config{
		Addr: c.addr, Username: AdminUser, Password: pw,
		Handshake:   [][]string{{"REPLCONF", "rof-shard", strconv.Itoa(shard)}},
		ReadTimeout: 10 * time.Second, AckInterval: 100 * time.Millisecond,
	}
	if level > 0 {
		cfg.Handshake = append(cfg.Handshake, []string{"REPLCONF", "rof-compress", "gzip", strconv.Itoa(level)})
		cfg.Gzip = true
	}
	return replica.New(cfg, h)
}

// TestReplicationRelay replicates every shard through the proxy, plain
// and gzip: the snapshot arrives, then the stream, and a reconnect
// resumes by partial resync through the relay.
func TestReplicationRelay(t *testing.T) {
	c := adminCluster(t)
	ctx := harness.Context(t, 60*time.Second)
	for _, level := range []int{0, 6} {
		for shard := range c.shards {
			t.Run(fmt.Sprintf("gzip%d/shard%d", level, shard), func(t *testing.T) {
				sc := c.shards[shard].Client()
				if err := harness.LoadDataset(ctx, sc, fmt.Sprintf("pre%d:", level), int64(shard), 500); err != nil {
					t.Fatal(err)
				}
				h := &collector{sets: map[string]string{}}
				link := relayLink(c, shard, level, testAdminPW, h)
				lctx, stop := context.WithCancel(ctx)
				done := make(chan replica.Position, 1)
				go func() { pos, _ := link.Run(lctx, replica.Position{}); done <- pos }()
				harness.WaitFor(t, 20*time.Second, "snapshot", func() bool { f, _ := h.counts(); return f == 1 })
				key := fmt.Sprintf("after%d", level)
				if err := sc.Set(ctx, key, "v1", 0).Err(); err != nil {
					t.Fatal(err)
				}
				harness.WaitFor(t, 10*time.Second, "streamed write", func() bool { v, _ := h.get(key); return v == "v1" })
				if h.rdb == 0 {
					t.Fatal("empty snapshot")
				}
				st := link.Stats()
				if level > 0 && st.WireBytes >= st.BytesReceived {
					t.Errorf("gzip: %d bytes on the wire for %d received", st.WireBytes, st.BytesReceived)
				}
				stop()
				pos := <-done
				if pos.IsZero() {
					t.Fatal("no position to resume from")
				}
				// Written while the link is down: the resume must bring it.
				if err := sc.Set(ctx, key, "v2", 0).Err(); err != nil {
					t.Fatal(err)
				}
				lctx, stop = context.WithCancel(ctx)
				defer stop()
				go func() { p, _ := link.Run(lctx, pos); done <- p }()
				harness.WaitFor(t, 10*time.Second, "resumed write", func() bool { v, _ := h.get(key); return v == "v2" })
				if full, cont := h.counts(); full != 1 || cont != 1 {
					t.Errorf("full syncs %d, partial %d; want 1 and 1", full, cont)
				}
				stop()
				<-done
			})
		}
	}
}

// TestReplicationNeedsAdmin: a wrong password, no password and a
// non-admin client are refused with errors the syncer classifies as
// authentication failures; DropAdmin ends a relay and the admin session.
func TestReplicationNeedsAdmin(t *testing.T) {
	c := adminCluster(t)
	ctx := harness.Context(t, 60*time.Second)
	for _, pw := range []string{"wrong", ""} {
		h := &collector{sets: map[string]string{}}
		l := relayLink(c, 0, 0, pw, h)
		if pw == "" {
			l = replica.New(replica.Config{Addr: c.addr, Handshake: [][]string{{"REPLCONF", "rof-shard", "0"}}}, h)
		}
		_, err := l.Run(ctx, replica.Position{})
		if !errors.Is(err, replica.ErrAuth) || errclass.Classify(err) != errclass.Fatal {
			t.Errorf("password %q: %v (class %v), want a fatal authentication error", pw, err, errclass.Classify(err))
		}
	}
	// Without rof-shard a proxy of several shards cannot choose.
	pc := c.client(&redis.Options{PoolSize: 1})
	if err := pc.Do(ctx, "AUTH", AdminUser, testAdminPW).Err(); err != nil {
		t.Fatal(err)
	}
	if err := pc.Do(ctx, "PSYNC", "?", "-1").Err(); err == nil || !strings.Contains(err.Error(), "rof-shard") {
		t.Errorf("PSYNC without rof-shard: %v", err)
	}
	info, err := pc.Info(ctx, "replication").Result()
	if err != nil || !strings.Contains(info, "replicaof_shards:3") {
		t.Errorf("INFO replication = %q, %v", info, err)
	}
	if err := pc.Do(ctx, "REPLCONF", "rof-shard", "3").Err(); err == nil {
		t.Error("rof-shard 3 of 3 accepted")
	}
	if err := pc.Do(ctx, "REPLCONF", "rof-compress", "gzip", "10").Err(); err == nil {
		t.Error("gzip level 10 accepted")
	}

	h := &collector{sets: map[string]string{}}
	link := relayLink(c, 1, 0, testAdminPW, h)
	done := make(chan error, 1)
	go func() { _, err := link.Run(ctx, replica.Position{}); done <- err }()
	harness.WaitFor(t, 20*time.Second, "snapshot", func() bool { f, _ := h.counts(); return f == 1 })
	if n := c.srv.DropAdmin(); n < 2 {
		t.Errorf("DropAdmin closed %d connections, want the relay and the admin client", n)
	}
	select {
	case err := <-done:
		if errclass.Classify(err) != errclass.Retry {
			t.Errorf("relay dropped: %v, want a retryable connection error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("DropAdmin did not end the relay")
	}
	// go-redis replaces the closed connection with a new one, which is
	// not the admin's.
	if err := pc.Do(ctx, "REPLCONF", "rof-shard", "0").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("the admin session survived DropAdmin: %v", err)
	}

	// A plain client cannot replicate even without a proxy password.
	plain := c.client(&redis.Options{MaxRetries: -1})
	if err := plain.Do(ctx, "PSYNC", "?", "-1").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("PSYNC by a non-admin: %v", err)
	}
}

// TestTLSForReplicationOnly: with TLSReplicationOnly one port serves
// plain clients and TLS clients; the admin user (and so replication)
// needs TLS.
func TestTLSForReplicationOnly(t *testing.T) {
	_, sc, cc := demoTLS(t, true)
	c := newCluster(t, func(cfg *Config) {
		cfg.TLS, cfg.TLSReplicationOnly = sc, true
		cfg.AdminPassword = func() string { return testAdminPW }
		cfg.idleAfter = 50 * time.Millisecond
	}, "--repl-diskless-sync-delay", "0")
	ctx := harness.Context(t, time.Minute)

	plain := c.client(&redis.Options{PoolSize: 1})
	for i := range 3 { // idle in between: the cold path peeks again
		idled := c.srv.idled.Load()
		if err := plain.Set(ctx, fmt.Sprint("k", i), "v", 0).Err(); err == nil || !strings.Contains(err.Error(), "READONLY") {
			t.Fatalf("plain client: %v, want the proxy's own READONLY", err)
		}
		if err := plain.Ping(ctx).Err(); err != nil {
			t.Fatalf("plain client: %v", err)
		}
		harness.WaitFor(t, 10*time.Second, "client idle", func() bool { return c.srv.idled.Load() > idled })
	}
	if err := plain.Do(ctx, "AUTH", AdminUser, testAdminPW).Err(); err == nil || !strings.Contains(err.Error(), "needs TLS") {
		t.Errorf("AUTH admin over plain TCP: %v, want refused", err)
	}

	secure := c.client(&redis.Options{PoolSize: 1, TLSConfig: cc})
	if err := secure.Do(ctx, "AUTH", AdminUser, testAdminPW).Err(); err != nil {
		t.Fatalf("AUTH admin over TLS: %v", err)
	}
	h := &collector{sets: map[string]string{}}
	l := replica.New(replica.Config{
		Addr: c.addr, Username: AdminUser, Password: testAdminPW,
		Dial:      (&tlsutil.Dialer{Config: cc}).DialContext,
		Handshake: [][]string{{"REPLCONF", "rof-shard", "2"}},
	}, h)
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _, _ = l.Run(lctx, replica.Position{}) }()
	harness.WaitFor(t, 20*time.Second, "snapshot over TLS", func() bool { f, _ := h.counts(); return f == 1 })
	stop()
	<-done
}
