package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/internal/redisproc"
	"github.com/replicaof/replicaof/syncer"
	"github.com/replicaof/replicaof/tlsutil"
)

// With proxy.tls (mutual TLS), serve's proxy answers redis-cli over TLS
// with the demo certificates, and refuses it without a client certificate
// or without TLS.
func TestServeProxyTLS(t *testing.T) {
	src, shard := harness.StartRedis(t), harness.StartRedis(t)
	ctx := harness.Context(t, 2*time.Minute)
	if err := src.Client().Set(ctx, "over-tls", "yes", 0).Err(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := tlsutil.GenerateDemo(filepath.Join(dir, "certs"), nil)
	if err != nil {
		t.Fatal(err)
	}
	adminPort, _ := redisproc.FreePort()
	proxyPort, _ := redisproc.FreePort()
	yaml := fmt.Sprintf(`proxy:
  listen: "127.0.0.1:%d"
  tls: { cert: %q, key: %q, client_ca: %q }
admin: { listen: "127.0.0.1:%d" }
destination: { shards: ["redis://%s"] }
replica_of: { sources: ["redis://%s"] }
state_dir: %q
`, proxyPort, files.ProxyCert, files.ProxyKey, files.CA, adminPort, shard.Addr, src.Addr, filepath.Join(dir, "state"))
	path := filepath.Join(dir, "replicaof.yaml")
	writeConfig(t, path, yaml)
	run, stop := startServe(t, ctx, path)
	defer stop()
	sup := run.Supervisor
	harness.WaitFor(t, time.Minute, "synced", func() bool { return sup.Status().Status == syncer.StateSynced })

	cli := func(args ...string) (string, error) {
		cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
		defer ccancel()
		base := []string{"-h", "127.0.0.1", "-p", fmt.Sprint(proxyPort)}
		out, err := exec.CommandContext(cctx, "redis-cli", append(base, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	tlsArgs := []string{"--tls", "--cacert", files.CA, "--cert", files.SyncerCert, "--key", files.SyncerKey}
	if out, err := cli(append(tlsArgs, "GET", "over-tls")...); err != nil || out != "yes" {
		t.Fatalf("redis-cli --tls GET = %q, %v", out, err)
	}
	if out, _ := cli("--tls", "--cacert", files.CA, "GET", "over-tls"); out == "yes" {
		t.Fatalf("redis-cli without a client certificate got the value")
	}
	if out, _ := cli("GET", "over-tls"); out == "yes" {
		t.Fatalf("redis-cli without TLS got the value")
	}
}

// A proxy.tls that names a missing file stops serve before it listens.
func TestServeProxyTLSBadFile(t *testing.T) {
	dir := t.TempDir()
	_, err := proxyTLSConfig(&config.ProxyTLS{Cert: filepath.Join(dir, "none.pem"), Key: filepath.Join(dir, "none.key")})
	if err == nil || !strings.Contains(err.Error(), "proxy.tls: tlsutil: ") || !strings.Contains(err.Error(), "none.pem") {
		t.Fatalf("proxyTLSConfig(missing files) = %v", err)
	}
	if tc, err := proxyTLSConfig(nil); tc != nil || err != nil {
		t.Fatalf("proxyTLSConfig(nil) = %v, %v; want plain TCP", tc, err)
	}
}
