package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/internal/adminpw"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/internal/redisproc"
	"github.com/replicaof/replicaof/tlsutil"
)

// cliSplit runs the CLI in-process with stdout and stderr apart.
func cliSplit(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = runWith(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// source-url, rotate-password and the admin password across restarts,
// against the real serve.
func TestSourceURLAndRotatePassword(t *testing.T) {
	shard := harness.StartRedis(t)
	ctx := harness.Context(t, 2*time.Minute)
	proxyPort, _ := redisproc.FreePort()
	adminPort, _ := redisproc.FreePort()
	proxyAddr := fmt.Sprintf("127.0.0.1:%d", proxyPort)
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	path := filepath.Join(dir, "replicaof.yaml")
	yaml := fmt.Sprintf(`proxy: { listen: %q }
admin: { listen: "127.0.0.1:%d", token: "tok" }
destination: { shards: ["redis://%s"] }
state_dir: %q
`, proxyAddr, adminPort, shard.Addr, stateDir)
	writeConfig(t, path, yaml)
	_, stop := startServe(t, ctx, path)
	admin := []string{"--admin", fmt.Sprintf("127.0.0.1:%d", adminPort), "--token", "tok"}

	// sourceURL runs `replicaof source-url` and returns the URL and its
	// password.
	sourceURL := func(extra ...string) (*url.URL, string) {
		t.Helper()
		code, out, errOut := cliSplit(append(append([]string{"source-url"}, admin...), extra...)...)
		if code != exitOK || errOut != "" || !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
			t.Fatalf("source-url %v: exit %d: %q %q", extra, code, out, errOut)
		}
		u, err := url.Parse(strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("source-url printed %q: %v", out, err)
		}
		pw, _ := u.User.Password()
		return u, pw
	}
	u, pw := sourceURL()
	if u.Scheme != "redis" || u.Host != proxyAddr || u.User.Username() != "admin" || len(pw) != 64 {
		t.Fatalf("source-url = %s", u)
	}
	// The password is the one in state_dir, in a file only its owner reads.
	pwFile := filepath.Join(stateDir, adminpw.FileName)
	if data, err := os.ReadFile(pwFile); err != nil || strings.TrimSpace(string(data)) != pw {
		t.Fatalf("%s holds %q, %v; source-url says %q", pwFile, data, err, pw)
	}
	if fi, err := os.Stat(pwFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v", pwFile, fi, err)
	}
	// The other deployment's config takes the URL as it is.
	if src, err := config.ParseSource("a: " + u.String()); err != nil || string(src.Password) != pw || src.User != "admin" || src.Addr() != proxyAddr {
		t.Fatalf("config.ParseSource(source-url) = %+v, %v", src, err)
	}

	pc := redis.NewClient(&redis.Options{Addr: proxyAddr, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	t.Cleanup(func() { pc.Close() })
	auth := func(pw string) error {
		conn := pc.Conn()
		defer conn.Close()
		return conn.Do(ctx, "AUTH", "admin", pw).Err()
	}
	if err := auth(pw); err != nil {
		t.Fatalf("AUTH admin <source-url's password>: %v", err)
	}
	if err := auth(pw + "x"); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
		t.Fatalf("AUTH admin <wrong password>: %v", err)
	}

	// An admin connection and an application's, open across the rotation.
	adminConn, appConn := harness.DialRaw(t, proxyAddr), harness.DialRaw(t, proxyAddr)
	if r, err := adminConn.Do("AUTH", "admin", pw); err != nil || r != "+OK\r\n" {
		t.Fatalf("raw AUTH admin: %q %v", r, err)
	}
	if r, err := appConn.Do("PING"); err != nil || r != "+PONG\r\n" {
		t.Fatalf("raw PING: %q %v", r, err)
	}

	// Without the token nothing rotates.
	if code, _, errOut := cliSplit("rotate-password", "--admin", admin[1], "--token", "bad"); code != exitError || !strings.Contains(errOut, "token") {
		t.Fatalf("rotate-password with a bad token: exit %d: %s", code, errOut)
	}
	if _, again := sourceURL(); again != pw {
		t.Fatal("a refused rotate-password changed the password")
	}

	code, out, errOut := cliSplit(append([]string{"rotate-password"}, admin...)...)
	if code != exitOK || !strings.Contains(errOut, "dropped") || !strings.Contains(errOut, "authentication error") {
		t.Fatalf("rotate-password: exit %d: %q %q", code, out, errOut)
	}
	nu, err := url.Parse(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("rotate-password printed %q: %v", out, err)
	}
	newPW, _ := nu.User.Password()
	if newPW == pw || len(newPW) != 64 || nu.Host != proxyAddr || nu.User.Username() != "admin" {
		t.Fatalf("rotate-password = %s (old password %s)", nu, pw)
	}

	// The admin connection was closed by the rotation (not by a
	// timeout); the application's still answers.
	_ = adminConn.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := adminConn.Reader.Read(make([]byte, 64)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("admin connection still open after rotate-password: read %d, %v", n, err)
	}
	if r, err := appConn.Do("PING"); err != nil || r != "+PONG\r\n" {
		t.Fatalf("application connection after rotate-password: %q %v", r, err)
	}
	if err := auth(pw); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
		t.Fatalf("AUTH admin <old password>: %v, want WRONGPASS", err)
	}
	if err := auth(newPW); err != nil {
		t.Fatalf("AUTH admin <new password>: %v", err)
	}
	if _, got := sourceURL(); got != newPW {
		t.Fatalf("source-url after rotation: password %q, want %q", got, newPW)
	}

	// --host replaces the host, and the port when it has one.
	for host, want := range map[string]string{
		"replicas.example": fmt.Sprintf("replicas.example:%d", proxyPort),
		"10.0.0.9:7000":    "10.0.0.9:7000",
		"::1":              fmt.Sprintf("[::1]:%d", proxyPort),
	} {
		if u, got := sourceURL("--host", host); u.Host != want || got != newPW || u.Scheme != "redis" {
			t.Errorf("source-url --host %s = %s, want host %s", host, u, want)
		}
	}
	for _, args := range [][]string{
		{"source-url", "extra"},
		{"source-url", "--host", ""},
		{"source-url", "--host", "a/b"},
		{"source-url", "--host", "h:99999"},
		{"rotate-password", "extra"},
	} {
		if code, _, errOut := cliSplit(append(args, admin...)...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d: %s", args, code, exitUsage, errOut)
		}
	}

	// A restarted serve keeps the rotated password.
	stop()
	startServe(t, ctx, path)
	if _, got := sourceURL(); got != newPW {
		t.Fatalf("source-url after restart: password %q, want the rotated %q", got, newPW)
	}
	harness.WaitFor(t, 30*time.Second, "AUTH admin with the rotated password after restart", func() bool { return auth(newPW) == nil })
	if err := auth(pw); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
		t.Fatalf("AUTH admin <old password> after restart: %v", err)
	}
}

// With proxy.tls the source URL says rediss://, and a TLS client can
// AUTH admin with it.
func TestSourceURLTLS(t *testing.T) {
	shard := harness.StartRedis(t)
	ctx := harness.Context(t, time.Minute)
	dir := t.TempDir()
	files, err := tlsutil.GenerateDemo(filepath.Join(dir, "certs"), nil)
	if err != nil {
		t.Fatal(err)
	}
	proxyPort, _ := redisproc.FreePort()
	adminPort, _ := redisproc.FreePort()
	yaml := fmt.Sprintf(`proxy:
  listen: "127.0.0.1:%d"
  tls: { cert: %q, key: %q }
admin: { listen: "127.0.0.1:%d" }
destination: { shards: ["redis://%s"] }
state_dir: %q
`, proxyPort, files.ProxyCert, files.ProxyKey, adminPort, shard.Addr, filepath.Join(dir, "state"))
	path := filepath.Join(dir, "replicaof.yaml")
	writeConfig(t, path, yaml)
	startServe(t, ctx, path)
	// -c reads the admin address from the config.
	code, out, errOut := cliSplit("source-url", "-c", path)
	u, err := url.Parse(strings.TrimSpace(out))
	if code != exitOK || err != nil || u.Scheme != "rediss" || u.Host != fmt.Sprintf("127.0.0.1:%d", proxyPort) {
		t.Fatalf("source-url: exit %d: %q %q", code, out, errOut)
	}
	pw, _ := u.User.Password()
	tc, err := tlsutil.ClientConfig("127.0.0.1", tlsutil.ClientOptions{CAFile: files.CA})
	if err != nil {
		t.Fatal(err)
	}
	pc := redis.NewClient(&redis.Options{Addr: u.Host, TLSConfig: tc, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	defer pc.Close()
	conn := pc.Conn()
	defer conn.Close()
	if err := conn.Do(ctx, "AUTH", "admin", pw).Err(); err != nil {
		t.Fatalf("AUTH admin over TLS: %v", err)
	}
}

func TestParseHostFlag(t *testing.T) {
	const base = "redis://admin:p%40w@127.0.0.1:6380"
	for _, c := range []struct{ in, want string }{ // want "" for a usage error
		{"db1", "redis://admin:p%40w@db1:6380"},
		{"db1.example.com:7000", "redis://admin:p%40w@db1.example.com:7000"},
		{"10.0.0.1", "redis://admin:p%40w@10.0.0.1:6380"},
		{"::1", "redis://admin:p%40w@[::1]:6380"},
		{"[::1]", "redis://admin:p%40w@[::1]:6380"},
		{"[fe80::1]:7000", "redis://admin:p%40w@[fe80::1]:7000"},
		{"", ""},
		{":7000", ""},
		{"h:0", ""},
		{"h:65536", ""},
		{"h:07000", ""},
		{"h:port", ""},
		{"a b", ""},
		{"user@h", ""},
		{"h/path", ""},
		{"h?x", ""},
		{"a:b:c", ""},
		{"[h]", ""},
		{"[10.0.0.1]:1", ""},
		{"!", ""},
		{"redis_1", "redis://admin:p%40w@redis_1:6380"},
		{"hé", ""},
	} {
		h, err := parseHostFlag(c.in, true)
		if c.want == "" {
			if err == nil {
				t.Errorf("parseHostFlag(%q) = %+v, want an error", c.in, h)
			}
			continue
		}
		got, aerr := h.apply(base)
		if err != nil || aerr != nil || got != c.want {
			t.Errorf("--host %q: %q, %v, %v; want %q", c.in, got, err, aerr, c.want)
		}
	}
	if h, err := parseHostFlag("", false); err != nil || h != (hostFlag{}) {
		t.Fatalf("flag not given: %+v, %v", h, err)
	}
	if got, _ := (hostFlag{}).apply(base); got != base {
		t.Fatalf("no --host changed the URL: %s", got)
	}
}

func FuzzParseHostFlag(f *testing.F) {
	for _, s := range []string{"db1", "db1:7000", "::1", "[::1]:1", "10.0.0.1", "", "a b", "h:0", "x@y", "[", "]:1", "h:+1"} {
		f.Add(s)
	}
	const base = "rediss://admin:p%40w@127.0.0.1:6380"
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseHostFlag(s, true)
		if err != nil {
			return
		}
		got, err := h.apply(base)
		if err != nil {
			t.Fatalf("apply(%q): %v", s, err)
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("--host %q made %q: %v", s, got, err)
		}
		wantPort := h.port
		if wantPort == "" {
			wantPort = "6380"
		}
		if pw, _ := u.User.Password(); u.Scheme != "rediss" || pw != "p@w" || u.Hostname() != h.host || u.Port() != wantPort {
			t.Fatalf("--host %q made %q", s, got)
		}
		// The other deployment takes it as a source.
		src, err := config.ParseSource("a: " + got)
		if err != nil || string(src.Password) != "p@w" || src.Port != mustAtoi(t, wantPort) {
			t.Fatalf("--host %q made %q, a bad source: %+v, %v", s, got, src, err)
		}
	})
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
