package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/tlsutil"
)

// tlsCluster is a cluster whose proxy requires TLS, with the demo files
// and a client config that presents the syncer certificate.
type tlsCluster struct {
	*cluster
	files tlsutil.Files
	cfg   *tls.Config // demo CA + syncer certificate
}

// demoTLS makes the demo certificates and the proxy's server config (with
// client certificates required when mutual) and a client config that
// presents the syncer's certificate.
func demoTLS(t *testing.T, mutual bool) (tlsutil.Files, *tls.Config, *tls.Config) {
	t.Helper()
	files, err := tlsutil.GenerateDemo(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	so := tlsutil.ServerOptions{CertFile: files.ProxyCert, KeyFile: files.ProxyKey}
	if mutual {
		so.ClientCAFile = files.CA
	}
	sc, err := tlsutil.ServerConfig(so)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := tlsutil.ClientConfig("127.0.0.1", tlsutil.ClientOptions{
		CAFile: files.CA, CertFile: files.SyncerCert, KeyFile: files.SyncerKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, sc, cc
}

func newTLSCluster(t *testing.T, mutual bool) *tlsCluster {
	t.Helper()
	files, sc, cc := demoTLS(t, mutual)
	c := newCluster(t, func(cfg *Config) {
		cfg.TLS = sc
		cfg.idleAfter = 50 * time.Millisecond
	})
	return &tlsCluster{cluster: c, files: files, cfg: cc}
}

func (c *tlsCluster) tlsClient(tc *tls.Config) *redis.Client {
	return c.cluster.client(&redis.Options{TLSConfig: tc, DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second})
}

func TestTLS(t *testing.T) {
	c := newTLSCluster(t, true)
	ctx := harness.Context(t, time.Minute)
	_, keys := c.putOnEveryShard(ctx, "tls:", 20)
	cl := c.tlsClient(c.cfg)

	if got, err := cl.Get(ctx, keys[0]).Result(); err != nil || got != "v-"+keys[0] {
		t.Fatalf("GET = %q, %v", got, err)
	}
	vals, err := cl.MGet(ctx, keys...).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if v != "v-"+keys[i] {
			t.Fatalf("MGET[%d] = %v, want v-%s", i, v, keys[i])
		}
	}
	// A pipeline larger than one TLS record (16 KB) of replies.
	big := strings.Repeat("x", 4000)
	c.put(ctx, "tls:big", big)
	cmds, err := cl.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 200 {
			p.Get(ctx, keys[i%len(keys)])
			p.Get(ctx, "tls:big")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, cmd := range cmds {
		want := "tls:big"
		if i%2 == 0 {
			want = keys[(i/2)%len(keys)]
		}
		wantVal := "v-" + want
		if want == "tls:big" {
			wantVal = big
		}
		if got := cmd.(*redis.StringCmd).Val(); got != wantVal {
			t.Fatalf("pipeline[%d] = %.20q…, want %.20q…", i, got, wantVal)
		}
	}

	// The TLS client still works after the failed attempts below, which
	// leave no client behind.
	before := c.srv.clientCount()
	t.Run("plain TCP", func(t *testing.T) {
		r := harness.DialRaw(t, c.addr)
		r.Send("PING\r\n")
		rest, err := io.ReadAll(r.Reader)
		if err != nil && !isReset(err) {
			t.Fatalf("read: %v", err)
		}
		if strings.Contains(string(rest), "PONG") || len(rest) > 0 && (rest[0] == '+' || rest[0] == '-') {
			t.Fatalf("plain client got a RESP reply: %q", rest)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		cc := c.cfg.Clone()
		cc.Certificates = nil
		err := c.tlsClient(cc).Ping(ctx).Err()
		if err == nil {
			t.Fatal("PING without a client certificate succeeded")
		}
		t.Logf("PING without a client certificate: %v", err)
	})
	t.Run("TLS 1.1", func(t *testing.T) {
		cc := c.cfg.Clone()
		cc.MinVersion, cc.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		err := c.tlsClient(cc).Ping(ctx).Err()
		if err == nil {
			t.Fatal("PING over TLS 1.1 succeeded")
		}
		t.Logf("PING over TLS 1.1: %v", err)
	})
	t.Run("wrong CA", func(t *testing.T) {
		other, err := tlsutil.GenerateDemo(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		cc, err := tlsutil.ClientConfig("127.0.0.1", tlsutil.ClientOptions{
			CAFile: c.files.CA, CertFile: other.SyncerCert, KeyFile: other.SyncerKey,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.tlsClient(cc).Ping(ctx).Err(); err == nil {
			t.Fatal("PING with a certificate of another CA succeeded")
		}
	})
	if err := cl.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after the failed clients: %v", err)
	}
	harness.WaitFor(t, 10*time.Second, "failed clients to be forgotten", func() bool {
		return c.srv.clientCount() <= before
	})
}

// TestTLSHandshakeTimeout: a client that connects and never says hello is
// closed after Timeout.
func TestTLSHandshakeTimeout(t *testing.T) {
	c := newTLSCluster(t, false)
	r := harness.DialRaw(t, c.addr)
	harness.WaitFor(t, 5*time.Second, "client admitted", func() bool { return c.srv.clientCount() == 1 })
	start := time.Now()
	_, err := r.Reader.ReadByte()
	if err == nil {
		t.Fatal("the proxy wrote to a client that sent nothing")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("silent client closed after %v", d)
	}
	harness.WaitFor(t, 5*time.Second, "silent client forgotten", func() bool { return c.srv.clientCount() == 0 })
}

// tlsRaw speaks bytes over TLS; each write is one TLS record.
func tlsRaw(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	tc, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
	return tc, bufio.NewReader(tc)
}

// TestTLSIdle: a TLS client that goes idle (its buffers given back, the
// socket watched by MSG_PEEK under the TLS layer) is served when it comes
// back, whether its command arrives in one record, split over records,
// or with more commands pipelined behind it.
func TestTLSIdle(t *testing.T) {
	c := newTLSCluster(t, true)
	ctx := harness.Context(t, time.Minute)
	c.put(ctx, "idle:a", "1")
	c.put(ctx, "idle:b", "2")

	tc, br := tlsRaw(t, c.addr, c.cfg)
	expect := func(want string) {
		t.Helper()
		got := make([]byte, len(want))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
			t.Fatalf("got %q (%v), want %q", got, err, want)
		}
	}
	send := func(s string) {
		t.Helper()
		if _, err := io.WriteString(tc, s); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle := func() {
		t.Helper()
		n := c.srv.idled.Load()
		harness.WaitFor(t, 10*time.Second, "client to go idle", func() bool { return c.srv.idled.Load() > n })
		// Idle means waiting on the socket under the TLS layer without a
		// buffer, not blocked in a TLS read (linux only: see wait_other.go).
		if runtime.GOOS != "linux" {
			return
		}
		harness.WaitFor(t, 10*time.Second, "client to wait in waitReadable", func() bool {
			buf := make([]byte, 1<<20)
			return bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("proxy.waitReadable("))
		})
	}

	send("*2\r\n$3\r\nGET\r\n$6\r\nidle:a\r\n")
	expect("$1\r\n1\r\n")
	for round := range 3 {
		waitIdle()
		switch round {
		case 0: // one record
			send("*2\r\n$3\r\nGET\r\n$6\r\nidle:b\r\n")
			expect("$1\r\n2\r\n")
		case 1: // one command over three records
			send("*2\r\n$3\r\nGE")
			send("T\r\n$6\r\nid")
			send("le:a\r\n")
			expect("$1\r\n1\r\n")
		case 2: // a pipeline in one record, then another in the next
			send("PING\r\n*2\r\n$3\r\nGET\r\n$6\r\nidle:b\r\n")
			send("*3\r\n$4\r\nMGET\r\n$6\r\nidle:a\r\n$6\r\nidle:b\r\n")
			expect("+PONG\r\n$1\r\n2\r\n*2\r\n$1\r\n1\r\n$1\r\n2\r\n")
		}
	}

	// go-redis too: an idle pooled connection is reused after the wait.
	cl := c.tlsClient(c.cfg)
	if err := cl.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitIdle()
	if got, err := cl.Get(ctx, "idle:a").Result(); err != nil || got != "1" {
		t.Fatalf("GET after idle = %q, %v", got, err)
	}
}

// TestTLSMaxClients: a client over the limit is closed without a
// handshake; those admitted are unaffected.
func TestTLSMaxClients(t *testing.T) {
	c := newTLSCluster(t, false)
	ctx := harness.Context(t, time.Minute)
	// Restart the proxy with a limit of one client.
	c.cluster.start(func(cfg *Config) {
		sc, err := tlsutil.ServerConfig(tlsutil.ServerOptions{CertFile: c.files.ProxyCert, KeyFile: c.files.ProxyKey})
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLS, cfg.MaxClients = sc, 1
	})
	first := c.tlsClient(c.cfg)
	if err := first.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	second := c.cluster.client(&redis.Options{TLSConfig: c.cfg, MaxRetries: -1, DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, PoolSize: 1})
	if err := second.Ping(ctx).Err(); err == nil {
		t.Fatal("a client over MaxClients was served")
	}
	if err := first.Ping(ctx).Err(); err != nil {
		t.Fatalf("admitted client after the refusal: %v", err)
	}
	if got := c.srv.rejected.Load(); got < 1 { // go-redis dials more than once
		t.Errorf("rejected = %d, want at least 1", got)
	}
}
