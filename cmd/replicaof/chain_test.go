package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/internal/redisproc"
	"github.com/replicaof/replicaof/syncer"
	"github.com/replicaof/replicaof/tlsutil"
)

// TestChainWithServe runs two deployments with `serve`, the way an
// operator chains them: A syncs a source and its proxy requires TLS for
// replication; `source-url` on A gives B its source (with A's CA, the
// syncer certificate and gzip); B equals the source. `rotate-password`
// on A stops B with an authentication error; `sources set` with the new
// URL on B (keeping the source's TLS files and compression) resumes it.
func TestChainWithServe(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	src := harness.StartRedis(t)
	if err := harness.LoadDataset(ctx, src.Client(), "", 4, 1500); err != nil {
		t.Fatal(err)
	}
	certs, err := tlsutil.GenerateDemo(filepath.Join(t.TempDir(), "certs"), nil)
	if err != nil {
		t.Fatal(err)
	}
	startDeployment := func(name, yaml string) (path string, admin []string) {
		t.Helper()
		dir := t.TempDir()
		adminPort, _ := redisproc.FreePort()
		yaml = fmt.Sprintf("admin: { listen: \"127.0.0.1:%d\" }\nstate_dir: %q\n%s", adminPort, filepath.Join(dir, "state"), yaml)
		path = filepath.Join(dir, name+".yaml")
		writeConfig(t, path, yaml)
		startServe(t, ctx, path)
		return path, []string{"--admin", fmt.Sprintf("127.0.0.1:%d", adminPort)}
	}

	aShards := harness.StartServers(t, 2, "--repl-diskless-sync-delay", "0")
	aProxy, _ := redisproc.FreePort()
	_, adminA := startDeployment("a", fmt.Sprintf(`proxy: { listen: "127.0.0.1:%d", tls: { cert: %q, key: %q, client_ca: %q, mode: replication } }
destination: { shards: ["redis://%s", "redis://%s"] }
replica_of: { sources: ["src: redis://%s"] }
`, aProxy, certs.ProxyCert, certs.ProxyKey, certs.CA, aShards[0].Addr, aShards[1].Addr, src.Addr))
	harness.WaitFor(t, time.Minute, "A synced", func() bool { return cliStatus(t, adminA).Status == syncer.StateSynced })

	sourceURL := func(cmd string) string {
		t.Helper()
		code, out, errOut := cliSplit(append([]string{cmd}, adminA...)...)
		if code != exitOK || !strings.HasPrefix(out, "rediss://admin:") {
			t.Fatalf("%s: exit %d: %q %q", cmd, code, out, errOut)
		}
		return strings.TrimSpace(out)
	}
	u := sourceURL("source-url")

	bShards := harness.StartServers(t, 2)
	bProxy, _ := redisproc.FreePort()
	_, adminB := startDeployment("b", fmt.Sprintf(`proxy: { listen: "127.0.0.1:%d" }
destination: { shards: ["redis://%s", "redis://%s"] }
replica_of:
  sources:
    - { name: a, uri: %q, compression: 6, tls: { ca: %q, cert: %q, key: %q } }
`, bProxy, bShards[0].Addr, bShards[1].Addr, u, certs.CA, certs.SyncerCert, certs.SyncerKey))
	harness.WaitFor(t, time.Minute, "B synced", func() bool { return cliStatus(t, adminB).Status == syncer.StateSynced })
	st := cliStatus(t, adminB).Sources[0]
	if st.Kind != syncer.KindReplicaof || st.Links != 2 || st.WireBytes >= st.BytesReceived {
		t.Fatalf("B's source: %+v: want 2 gzip links to A's proxy", st)
	}
	w := &harness.Workload{Seed: 21}
	if err := w.Run(ctx, src.Client(), nil, 1000); err != nil {
		t.Fatal(err)
	}
	var bClients []*redis.Client
	for _, s := range bShards {
		bClients = append(bClients, s.Client())
	}
	equal := func(what string) {
		t.Helper()
		var last string
		harness.WaitFor(t, time.Minute, what, func() bool {
			d, err := harness.Compare(ctx, []*redis.Client{src.Client()}, bClients,
				harness.CompareOptions{Skip: func(k string) bool { return strings.HasPrefix(k, "__replicaof:") }})
			if err != nil {
				t.Fatal(err)
			}
			last = d.String()
			return d.Empty()
		})
		if err := w.CheckCounters(ctx, map[int][]*redis.Client{0: bClients}); err != nil {
			t.Fatalf("%s: %v (%s)", what, err, last)
		}
	}
	equal("B equal to the source through A")

	newURL := sourceURL("rotate-password")
	if newURL == u {
		t.Fatal("rotate-password printed the old URL")
	}
	harness.WaitFor(t, time.Minute, "B stopped by the rotation", func() bool {
		st := cliStatus(t, adminB).Sources[0]
		return st.SyncState == syncer.StateStopped && strings.Contains(st.LastError, "authentication")
	})
	if err := w.Run(ctx, src.Client(), nil, 500); err != nil {
		t.Fatal(err)
	}
	if code, out := cli(t, append([]string{"sources", "set", "a: " + newURL}, adminB...)...); code != exitOK {
		t.Fatalf("sources set: exit %d: %s", code, out)
	}
	harness.WaitFor(t, time.Minute, "B synced again", func() bool { return cliStatus(t, adminB).Status == syncer.StateSynced })
	equal("B equal again after the new URL")
}
