package integration

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/proxy"
	"github.com/replicaof/replicaof/syncer"
	"github.com/replicaof/replicaof/tlsutil"
)

// deployment is replicaof A: a destination synced from sources, and its
// proxy serving replication to the admin user, over mutual TLS.
type deployment struct {
	d        *destination
	sup      *syncer.Supervisor
	srv      *proxy.Server
	password atomic.Pointer[string]
}

func startDeployment(t *testing.T, shards int, certs tlsutil.Files, srcs ...config.Source) *deployment {
	t.Helper()
	a := &deployment{d: startDestination(t, shards, "--repl-diskless-sync-delay", "0")}
	a.sup = runSupervisor(t, a.d, srcs...)
	pw := "first-admin-password"
	a.password.Store(&pw)
	tcfg, err := tlsutil.ServerConfig(tlsutil.ServerOptions{
		CertFile: certs.ProxyCert, KeyFile: certs.ProxyKey, ClientCAFile: certs.CA,
	})
	if err != nil {
		t.Fatal(err)
	}
	a.srv, err = proxy.New(proxy.Config{
		Listen: "127.0.0.1:0", Destination: a.d.dest, TLS: tcfg,
		AdminPassword: func() string { return *a.password.Load() },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// rotate is what `replicaof rotate-password` does to the proxy.
func (a *deployment) rotate(pw string) int {
	a.password.Store(&pw)
	return a.srv.DropAdmin()
}

// sourceOf is A's proxy as a source of B: rediss, the admin user, the
// syncer certificate, gzip at level.
func (a *deployment) sourceOf(t *testing.T, certs tlsutil.Files, level int) config.Source {
	t.Helper()
	u := fmt.Sprintf("rediss://admin:%s@%s", url.QueryEscape(*a.password.Load()), a.srv.Addr())
	yaml := fmt.Sprintf(`destination: { shards: ["redis://127.0.0.1:1"] }
replica_of:
  sources:
    - { name: a, uri: %q, compression: %d, tls: { ca: %q, cert: %q, key: %q } }
`, u, level, certs.CA, certs.SyncerCert, certs.SyncerKey)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.ReplicaOf.Sources[0]
}

// TestChain: two sources → replicaof A (3 shards) → A's proxy as the
// source of replicaof B (2 shards), over mutual TLS with gzip. B equals
// the sources; rotating A's admin password stops B with an
// authentication error; B resumes once its source URL carries the new
// password.
func TestChain(t *testing.T) {
	ctx := harness.Context(t, 4*time.Minute)
	certs, err := tlsutil.GenerateDemo(filepath.Join(t.TempDir(), "certs"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s1, s2 := harness.StartRedis(t), harness.StartRedis(t)
	if err := harness.LoadDataset(ctx, s1.Client(), "one:", 1, 2000); err != nil {
		t.Fatal(err)
	}
	if err := harness.LoadDataset(ctx, s2.Client(), "two:", 2, 2000); err != nil {
		t.Fatal(err)
	}
	if err := harness.LoadDataset(ctx, s1.ClientDB(2), "one-db2:", 3, 300); err != nil {
		t.Fatal(err)
	}
	a := startDeployment(t, 3, certs, source(t, "s1", s1, ""), source(t, "s2", s2, ""))
	waitState(t, a.sup, syncer.StateSynced, time.Minute)

	b := startDestination(t, 2)
	bsup := runSupervisor(t, b, a.sourceOf(t, certs, 6))
	st := waitState(t, bsup, syncer.StateSynced, time.Minute).Sources[0]
	if st.Kind != syncer.KindReplicaof || st.Links != 3 {
		t.Fatalf("B's source: %+v, want a replicaof source with 3 links", st)
	}
	if st.WireBytes <= 0 || st.WireBytes >= st.BytesReceived {
		t.Errorf("gzip level 6: %d bytes on the wire for %d received, want fewer (random test data compresses to ~70%%)", st.WireBytes, st.BytesReceived)
	}

	w1 := &harness.Workload{Prefix: "w1:", Seed: 5, DB: 2}
	w2 := &harness.Workload{Prefix: "w2:", Seed: 6}
	if err := w1.Run(ctx, s1.Client(), s1.ClientDB(2), 2000); err != nil {
		t.Fatal(err)
	}
	if err := w2.Run(ctx, s2.Client(), nil, 2000); err != nil {
		t.Fatal(err)
	}
	srcs := map[int][]*redis.Client{0: {s1.Client(), s2.Client()}, 2: {s1.ClientDB(2)}}
	bdst := map[int][]*redis.Client{0: b.clients(0), 2: b.clients(2)}
	waitEqual(t, ctx, srcs, bdst, time.Minute)
	for _, w := range []*harness.Workload{w1, w2} {
		if err := w.CheckCounters(ctx, bdst); err != nil {
			t.Fatal(err)
		}
	}
	// A's checkpoints (one per A source on each A shard) stay A's: each
	// B shard holds B's own, one per B link.
	for i, c := range b.clients(0) {
		keys, err := c.Keys(ctx, "__replicaof:ckpt:*").Result()
		if err != nil || len(keys) != 3 {
			t.Errorf("B shard %d: checkpoints %v (%v), want B's 3", i, keys, err)
		}
	}

	// Rotation: B's links are dropped and cannot come back.
	if n := a.rotate("second-admin-password"); n < 3 {
		t.Errorf("rotation dropped %d admin connections, want B's 3 links at least", n)
	}
	st = waitState(t, bsup, syncer.StateStopped, time.Minute).Sources[0]
	if !strings.Contains(st.LastError, "authentication") {
		t.Errorf("B stopped with %q, want an authentication error", st.LastError)
	}
	if err := w2.Run(ctx, s2.Client(), nil, 500); err != nil {
		t.Fatal(err)
	}

	// The new URL resumes B (a source list change: flush and full sync).
	if err := bsup.SetSources(ctx, []config.Source{a.sourceOf(t, certs, 6)}); err != nil {
		t.Fatal(err)
	}
	waitState(t, bsup, syncer.StateSynced, time.Minute)
	waitEqual(t, ctx, srcs, bdst, time.Minute)
	if err := w2.CheckCounters(ctx, bdst); err != nil {
		t.Fatal(err)
	}
}
