package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/internal/redisproc"
	"github.com/replicaof/replicaof/syncer"
	"github.com/replicaof/replicaof/tlsutil"
)

// startTLSRedis starts a source that serves TLS on its own port with the
// demo proxy certificate and requires client certificates from the demo CA.
func startTLSRedis(t *testing.T, certs tlsutil.Files, extra ...string) (*harness.Redis, string) {
	t.Helper()
	port, err := redisproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"--tls-port", fmt.Sprint(port),
		"--tls-cert-file", certs.ProxyCert, "--tls-key-file", certs.ProxyKey,
		"--tls-ca-cert-file", certs.CA, "--tls-auth-clients", "yes",
		"--tls-replication", "yes",
	}, extra...)
	return harness.StartRedis(t, args...), fmt.Sprintf("127.0.0.1:%d", port)
}

func tlsSource(t *testing.T, addr string, certs tlsutil.Files) config.Source {
	t.Helper()
	yaml := fmt.Sprintf(`destination: { shards: ["redis://127.0.0.1:1"] }
replica_of:
  sources:
    - { name: tls, uri: "rediss://%s", tls: { ca: %q, cert: %q, key: %q } }
`, addr, certs.CA, certs.SyncerCert, certs.SyncerKey)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.ReplicaOf.Sources[0]
}

func TestTLSSourceWithClientCertificates(t *testing.T) {
	dir := t.TempDir()
	certs, err := tlsutil.GenerateDemo(filepath.Join(dir, "good"), nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := tlsutil.GenerateDemo(filepath.Join(dir, "other"), nil)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("right certificate", func(t *testing.T) {
		ctx := harness.Context(t, 2*time.Minute)
		src, tlsAddr := startTLSRedis(t, certs)
		harness.LoadDataset(ctx, src.Client(), "", 4, 300)
		d := startDestination(t, 2)
		sup := runSupervisor(t, d, tlsSource(t, tlsAddr, certs))
		waitState(t, sup, syncer.StateSynced, time.Minute)
		w := &harness.Workload{Seed: 4}
		if err := w.Run(ctx, src.Client(), nil, 500); err != nil {
			t.Fatal(err)
		}
		requireExact(t, ctx, []*redis.Client{src.Client()}, d, w)
	})
	t.Run("certificate from another CA", func(t *testing.T) {
		_, tlsAddr := startTLSRedis(t, certs)
		d := startDestination(t, 1)
		wrong := other
		wrong.CA = certs.CA // we trust the server, the server does not trust us
		st := waitState(t, runSupervisor(t, d, tlsSource(t, tlsAddr, wrong)), syncer.StateStopped, time.Minute)
		if e := st.Sources[0].LastError; !strings.Contains(e, "tls") {
			t.Fatalf("last_error %q is not a TLS error", e)
		}
	})
	t.Run("server forced to TLS 1.1", func(t *testing.T) {
		_, tlsAddr := startTLSRedis(t, certs, "--tls-protocols", "TLSv1.1")
		d := startDestination(t, 1)
		st := waitState(t, runSupervisor(t, d, tlsSource(t, tlsAddr, certs)), syncer.StateStopped, time.Minute)
		if e := st.Sources[0].LastError; !strings.Contains(e, "tls") && !strings.Contains(e, "version") {
			t.Fatalf("last_error %q is not a TLS version error", e)
		}
	})
}
