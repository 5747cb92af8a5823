package integration

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/proxy"
	"github.com/replicaof/replicaof/syncer"
	"github.com/replicaof/replicaof/syncer/apply"
)

// startProxy serves d's shards with the grace taken off TTL reads.
func startProxy(t *testing.T, d *destination, grace time.Duration) *redis.Client {
	t.Helper()
	p, err := proxy.New(proxy.Config{Listen: "127.0.0.1:0", Destination: d.dest, TTLGrace: grace})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx) }()
	t.Cleanup(func() { stop(); <-served })
	c := redis.NewClient(&redis.Options{Addr: p.Addr().String()})
	t.Cleanup(func() { c.Close() })
	return c
}

// renewer renews the TTL of keys every period until stopped: the
// session-store pattern.
type renewer struct {
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
	err  error
}

func renew(ctx context.Context, c *redis.Client, keys []string, ttl, period time.Duration) *renewer {
	r := &renewer{stop: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for i := 0; i < 1000; i++ { // bounded: 300 s at 0.3 s
			pipe := c.Pipeline()
			for _, k := range keys {
				pipe.PExpire(ctx, k, ttl)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				r.err = err
				return
			}
			select {
			case <-r.stop:
				return
			case <-ctx.Done():
				r.err = ctx.Err()
				return
			case <-tick.C:
			}
		}
	}()
	return r
}

func (r *renewer) Stop() error {
	r.once.Do(func() { close(r.stop) })
	r.wg.Wait()
	return r.err
}

// TestTTLRenewalsSurviveLag is issue 13's session-store scenario: 40 keys
// with a 1.5 s TTL renewed every 0.3 s on the source while the syncer is
// stalled for 2.5 s. With the grace, the destination keeps every key (a
// native replica never expires keys itself), PTTL through the proxy
// follows the source's, and once renewals stop the keys leave the
// destination soon after the source. Without it the shards expire the keys
// during the stall and the late renewals find nothing: the loss the grace
// exists for.
func TestTTLRenewalsSurviveLag(t *testing.T) {
	const (
		nkeys  = 40
		ttl    = 1500 * time.Millisecond
		period = 300 * time.Millisecond
		stall  = 2500 * time.Millisecond
	)
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("session:%d", i)
	}
	scenario := func(t *testing.T, grace time.Duration) (src *harness.Redis, d *destination, viaProxy *redis.Client, r *renewer) {
		ctx := harness.Context(t, 2*time.Minute)
		src = harness.StartRedis(t)
		fp := harness.NewFaultProxy(t, src.Addr)
		d = startDestination(t, 3)
		sc := src.Client()
		for _, k := range keys {
			if err := sc.Set(ctx, k, "user data", ttl).Err(); err != nil {
				t.Fatal(err)
			}
		}
		sup := runSupervisorWith(t, d, apply.Options{TTLGrace: grace}, sourceAt(t, "src", fp.Addr, ""))
		viaProxy = startProxy(t, d, grace)
		r = renew(ctx, sc, keys, ttl, period)
		t.Cleanup(func() { _ = r.Stop() })
		waitState(t, sup, syncer.StateSynced, time.Minute)
		time.Sleep(2 * period) // a few renewals applied live
		fp.Pause()
		time.Sleep(stall)
		fp.Resume()
		// Let the stream catch up: the applied offset passes the
		// source's current one.
		target := replOffset(t, ctx, sc)
		harness.WaitFor(t, 30*time.Second, "the syncer to catch up", func() bool {
			st := sup.Status()
			return len(st.Sources) == 1 && st.Sources[0].AppliedOffset >= target
		})
		return src, d, viaProxy, r
	}

	t.Run("with grace", func(t *testing.T) {
		ctx := harness.Context(t, 2*time.Minute)
		const grace = time.Minute
		src, d, viaProxy, r := scenario(t, grace)
		sc := src.Client()
		// The same keys on both sides (renewals still running).
		if n := countKeys(t, ctx, viaProxy, keys); n != nkeys {
			t.Fatalf("%d of %d keys on the destination after the stall", n, nkeys)
		}
		harness.RequireEqual(t, ctx, []*redis.Client{sc}, d.clients(0),
			harness.CompareOptions{Skip: internalKey, TTLGrace: grace, TTLTolerance: time.Second})
		// PTTL through the proxy within 1 s of the source's.
		for _, k := range keys {
			ps, pd := sc.PTTL(ctx, k).Val(), viaProxy.PTTL(ctx, k).Val()
			if ps <= 0 || pd <= 0 || (pd-ps).Abs() > time.Second {
				t.Errorf("%s: PTTL %v on the source, %v through the proxy", k, ps, pd)
			}
		}
		// Renewals stop: the keys expire on the source, whose DELs
		// remove them from the destination.
		if err := r.Stop(); err != nil {
			t.Fatal(err)
		}
		harness.WaitFor(t, 10*time.Second, "the keys to expire on the source", func() bool {
			return countKeys(t, ctx, sc, keys) == 0
		})
		gone := time.Now()
		harness.WaitFor(t, 5*time.Second, "the keys to leave the destination", func() bool {
			return countKeys(t, ctx, viaProxy, keys) == 0
		})
		t.Logf("keys gone from the destination %v after the source", time.Since(gone).Round(time.Millisecond))
		harness.RequireEqual(t, ctx, []*redis.Client{sc}, d.clients(0), harness.CompareOptions{Skip: internalKey})
	})

	t.Run("without grace the keys are lost", func(t *testing.T) {
		// The failure the grace fixes, so that the scenario above is known
		// to exercise it.
		ctx := harness.Context(t, 2*time.Minute)
		src, _, viaProxy, _ := scenario(t, 0)
		if n := countKeys(t, ctx, src.Client(), keys); n != nkeys {
			t.Fatalf("source holds %d keys, want %d", n, nkeys)
		}
		n := countKeys(t, ctx, viaProxy, keys)
		if n == nkeys {
			t.Fatalf("all %d keys survived a %v stall without a grace: the scenario no longer reproduces the loss", n, stall)
		}
		t.Logf("without a grace %d of %d keys were lost", nkeys-n, nkeys)
	})
}

// countKeys counts how many of keys exist, through c.
func countKeys(t *testing.T, ctx context.Context, c *redis.Client, keys []string) int {
	t.Helper()
	pipe := c.Pipeline()
	cmds := make([]*redis.IntCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Exists(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cmds {
		n += int(c.Val())
	}
	return n
}

// replOffset is the source's master_repl_offset.
func replOffset(t *testing.T, ctx context.Context, c *redis.Client) int64 {
	t.Helper()
	off, err := strconv.ParseInt(harness.InfoField(t, ctx, c, "replication", "master_repl_offset"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return off
}
