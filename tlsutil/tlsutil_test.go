package tlsutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func demo(t *testing.T) Files {
	t.Helper()
	f, err := GenerateDemo(t.TempDir(), []string{"source.example", "10.1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// result is what each side saw of one connection.
type result struct {
	serverErr, clientErr error
	server, client       tls.ConnectionState
}

// handshake runs a real TLS handshake over loopback TCP, then exchanges a
// byte each way so that late failures (TLS 1.3 reports a rejected client
// certificate after the client's handshake returns) show up. Every
// network call is bounded by a deadline.
func handshake(t *testing.T, server, client *tls.Config) result {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := ln.(*net.TCPListener).SetDeadline(deadline); err != nil {
		t.Fatal(err)
	}

	type serverResult struct {
		err   error
		state tls.ConnectionState
	}
	done := make(chan serverResult, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- serverResult{err: err}
			return
		}
		defer conn.Close()
		if err := conn.SetDeadline(deadline); err != nil {
			done <- serverResult{err: err}
			return
		}
		tc := tls.Server(conn, server)
		err = tc.HandshakeContext(ctx)
		if err == nil {
			var b [1]byte
			if _, err = io.ReadFull(tc, b[:]); err == nil {
				_, err = tc.Write(b[:])
			}
		}
		done <- serverResult{err: err, state: tc.ConnectionState()}
	}()

	var r result
	d := tls.Dialer{NetDialer: &net.Dialer{Deadline: deadline}, Config: client}
	conn, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err == nil {
		tc := conn.(*tls.Conn)
		if err = tc.SetDeadline(deadline); err == nil {
			if _, err = tc.Write([]byte{'x'}); err == nil {
				var b [1]byte
				_, err = io.ReadFull(tc, b[:])
			}
		}
		r.client = tc.ConnectionState()
		tc.Close()
	}
	r.clientErr = err
	sr := <-done
	r.serverErr, r.server = sr.err, sr.state
	return r
}

func TestHandshake(t *testing.T) {
	a, b := demo(t), demo(t) // b is an unrelated CA
	mutual := ServerOptions{CertFile: a.ProxyCert, KeyFile: a.ProxyKey, ClientCAFile: a.CA}
	plain := ServerOptions{CertFile: a.ProxyCert, KeyFile: a.ProxyKey}
	withCert := ClientOptions{CAFile: a.CA, CertFile: a.SyncerCert, KeyFile: a.SyncerKey}

	tests := []struct {
		name        string
		server      ServerOptions
		host        string
		client      ClientOptions
		tweak       func(*tls.Config) // applied to the client config
		ok          bool
		wantErr     string // on failure, in the client's or the server's error
		wantVersion uint16
	}{
		{name: "mutual TLS", server: mutual, host: "127.0.0.1", client: withCert, ok: true},
		{name: "mutual TLS 1.2", server: mutual, host: "127.0.0.1", client: withCert, ok: true,
			tweak: func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }, wantVersion: tls.VersionTLS12},
		{name: "client min 1.3", server: mutual, host: "127.0.0.1", ok: true, wantVersion: tls.VersionTLS13,
			client: ClientOptions{CAFile: a.CA, CertFile: a.SyncerCert, KeyFile: a.SyncerKey, MinVersion: tls.VersionTLS13}},
		{name: "server only", server: plain, host: "127.0.0.1", client: ClientOptions{CAFile: a.CA}, ok: true},
		{name: "localhost name", server: plain, host: "localhost:6379", client: ClientOptions{CAFile: a.CA}, ok: true},
		{name: "extra host name", server: plain, host: "127.0.0.1", client: ClientOptions{CAFile: a.CA, ServerName: "source.example"}, ok: true},
		{name: "ipv6 name", server: plain, host: "[::1]:6379", client: ClientOptions{CAFile: a.CA}, ok: true},
		{name: "no client certificate", server: mutual, host: "127.0.0.1", client: ClientOptions{CAFile: a.CA},
			wantErr: "client didn't provide a certificate"},
		{name: "no client certificate TLS 1.2", server: mutual, host: "127.0.0.1", client: ClientOptions{CAFile: a.CA},
			tweak: func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }, wantErr: "client didn't provide a certificate"},
		{name: "client max TLS 1.1", server: plain, host: "127.0.0.1", client: ClientOptions{CAFile: a.CA},
			tweak:   func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 },
			wantErr: "client offered only unsupported versions"},
		{name: "server min 1.3 client max 1.2", host: "127.0.0.1", client: ClientOptions{CAFile: a.CA},
			server: ServerOptions{CertFile: a.ProxyCert, KeyFile: a.ProxyKey, MinVersion: tls.VersionTLS13},
			tweak:  func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }, wantErr: "unsupported versions"},
		{name: "wrong CA", server: plain, host: "127.0.0.1", client: ClientOptions{CAFile: b.CA}, wantErr: "unknown authority"},
		{name: "system roots", server: plain, host: "127.0.0.1", client: ClientOptions{}, wantErr: "unknown authority"},
		{name: "client certificate from another CA", server: mutual, host: "127.0.0.1",
			client: ClientOptions{CAFile: a.CA, CertFile: b.SyncerCert, KeyFile: b.SyncerKey}, wantErr: "unknown certificate authority"},
		{name: "wrong server name", server: plain, host: "other.example", client: ClientOptions{CAFile: a.CA}, wantErr: "not other.example"},
		{name: "insecure skip verify", server: plain, host: "other.example", client: ClientOptions{InsecureSkipVerify: true}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scfg, err := ServerConfig(tt.server)
			if err != nil {
				t.Fatal(err)
			}
			ccfg, err := ClientConfig(tt.host, tt.client)
			if err != nil {
				t.Fatal(err)
			}
			if tt.tweak != nil {
				tt.tweak(ccfg)
			}
			r := handshake(t, scfg, ccfg)
			if !tt.ok {
				if r.clientErr == nil && r.serverErr == nil {
					t.Fatal("handshake succeeded, want failure")
				}
				if msg := fmt.Sprintf("client: %v; server: %v", r.clientErr, r.serverErr); !strings.Contains(msg, tt.wantErr) {
					t.Errorf("%s\nwant %q in one of them", msg, tt.wantErr)
				}
				return
			}
			if r.clientErr != nil || r.serverErr != nil {
				t.Fatalf("client: %v; server: %v", r.clientErr, r.serverErr)
			}
			if r.client.Version < tls.VersionTLS12 {
				t.Errorf("negotiated %s", tls.VersionName(r.client.Version))
			}
			if tt.wantVersion != 0 && r.client.Version != tt.wantVersion {
				t.Errorf("negotiated %s, want %s", tls.VersionName(r.client.Version), tls.VersionName(tt.wantVersion))
			}
			if tt.server.ClientCAFile != "" {
				if n := len(r.server.PeerCertificates); n == 0 || r.server.PeerCertificates[0].Subject.CommonName != "replicaof syncer" {
					t.Errorf("server saw %d peer certificates, want the syncer certificate", n)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	f := demo(t)
	c, err := ClientConfig("[::1]:7000", ClientOptions{CAFile: f.CA})
	if err != nil {
		t.Fatal(err)
	}
	if c.MinVersion != tls.VersionTLS12 || c.ServerName != "::1" || c.RootCAs == nil || len(c.Certificates) != 0 {
		t.Errorf("client config: min %x, server name %q, roots %v, %d certificates", c.MinVersion, c.ServerName, c.RootCAs != nil, len(c.Certificates))
	}
	s, err := ServerConfig(ServerOptions{CertFile: f.ProxyCert, KeyFile: f.ProxyKey, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	if s.MinVersion != tls.VersionTLS13 || s.ClientAuth != tls.NoClientCert {
		t.Errorf("server config: min %x, client auth %v", s.MinVersion, s.ClientAuth)
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want uint16
		ok   bool
	}{{"", tls.VersionTLS12, true}, {"1.2", tls.VersionTLS12, true}, {"1.3", tls.VersionTLS13, true}, {"1.1", 0, false}, {"TLS1.3", 0, false}}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseVersion(tt.in)
			if got != tt.want || (err == nil) != tt.ok {
				t.Errorf("ParseVersion(%q) = %x, %v", tt.in, got, err)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	f := demo(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing.pem")
	empty := write("empty.pem", "not PEM at all\n")
	badCert := write("bad.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	keyOnly := f.SyncerKey

	tests := []struct {
		name string
		run  func() error
		want string
		is   error
	}{
		{"missing CA", func() error { _, err := ClientConfig("h", ClientOptions{CAFile: missing}); return err },
			"tlsutil: " + missing + ": no such file or directory", fs.ErrNotExist},
		{"CA without PEM", func() error { _, err := ClientConfig("h", ClientOptions{CAFile: empty}); return err },
			"tlsutil: " + empty + ": no certificates found", nil},
		{"CA is a key", func() error { _, err := ClientConfig("h", ClientOptions{CAFile: keyOnly}); return err },
			"tlsutil: " + keyOnly + ": no certificates found", nil},
		{"CA with bad certificate", func() error { _, err := ClientConfig("h", ClientOptions{CAFile: badCert}); return err },
			"tlsutil: " + badCert + ": certificate 1:", nil},
		{"cert without key", func() error {
			_, err := ClientConfig("h", ClientOptions{CertFile: f.SyncerCert})
			return err
		}, "tlsutil: certificate and key files must be set together", nil},
		{"key without cert", func() error {
			_, err := ClientConfig("h", ClientOptions{KeyFile: f.SyncerKey})
			return err
		}, "must be set together", nil},
		{"missing cert", func() error {
			_, err := ClientConfig("h", ClientOptions{CertFile: missing, KeyFile: f.SyncerKey})
			return err
		}, "tlsutil: " + missing + ": no such file", fs.ErrNotExist},
		{"missing key", func() error {
			_, err := ServerConfig(ServerOptions{CertFile: f.ProxyCert, KeyFile: missing})
			return err
		}, "tlsutil: " + missing + ": no such file", fs.ErrNotExist},
		{"cert file holds no certificate", func() error {
			_, err := ServerConfig(ServerOptions{CertFile: f.ProxyKey, KeyFile: f.ProxyKey})
			return err
		}, "tlsutil: " + f.ProxyKey + ": no certificates found", nil},
		{"key file holds no key", func() error {
			_, err := ServerConfig(ServerOptions{CertFile: f.ProxyCert, KeyFile: f.ProxyCert})
			return err
		}, "tlsutil: " + f.ProxyCert + ": no private key found", nil},
		{"mismatched key", func() error {
			_, err := ServerConfig(ServerOptions{CertFile: f.ProxyCert, KeyFile: f.SyncerKey})
			return err
		}, "tlsutil: " + f.ProxyCert + ", " + f.SyncerKey + ":", nil},
		{"server without cert", func() error { _, err := ServerConfig(ServerOptions{}); return err },
			"tlsutil: a server needs both a certificate and a key file", nil},
		{"missing client CA", func() error {
			_, err := ServerConfig(ServerOptions{CertFile: f.ProxyCert, KeyFile: f.ProxyKey, ClientCAFile: missing})
			return err
		}, "tlsutil: " + missing + ":", fs.ErrNotExist},
		{"client TLS 1.1", func() error {
			_, err := ClientConfig("h", ClientOptions{MinVersion: tls.VersionTLS11})
			return err
		}, "tlsutil: minimum version TLS 1.1 not allowed (want TLS 1.2 or TLS 1.3)", nil},
		{"server TLS 1.0", func() error {
			_, err := ServerConfig(ServerOptions{CertFile: f.ProxyCert, KeyFile: f.ProxyKey, MinVersion: tls.VersionTLS10})
			return err
		}, "minimum version TLS 1.0 not allowed", nil},
		{"no server name", func() error { _, err := ClientConfig("", ClientOptions{}); return err },
			"tlsutil: no server name to verify", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
}

func TestGenerateDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	f, err := GenerateDemo(dir, []string{"Source.Example.", "10.1.2.3", "[2001:db8::1]", "localhost", " 127.0.0.1 "})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f.CAKey, f.SyncerKey, f.ProxyKey} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	load := func(path string) *x509.Certificate {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		certs, err := parseCerts(data)
		if err != nil {
			t.Fatal(err)
		}
		return certs[0]
	}
	ca, syncer, proxy := load(f.CA), load(f.SyncerCert), load(f.ProxyCert)
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA: IsCA %v, key usage %v", ca.IsCA, ca.KeyUsage)
	}
	if !slices.Equal(syncer.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("syncer ExtKeyUsage = %v, want client auth", syncer.ExtKeyUsage)
	}
	if !slices.Contains(proxy.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("proxy ExtKeyUsage = %v, want server auth", proxy.ExtKeyUsage)
	}
	if want := []string{"localhost", "source.example"}; !slices.Equal(proxy.DNSNames, want) {
		t.Errorf("proxy DNSNames = %v, want %v", proxy.DNSNames, want)
	}
	var ips []string
	for _, ip := range proxy.IPAddresses {
		ips = append(ips, ip.String())
	}
	if want := []string{"127.0.0.1", "::1", "10.1.2.3", "2001:db8::1"}; !slices.Equal(ips, want) {
		t.Errorf("proxy IPs = %v, want %v", ips, want)
	}
	now := time.Now()
	for _, c := range []*x509.Certificate{ca, syncer, proxy} {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) || c.NotAfter.After(ca.NotAfter) && c != ca {
			t.Errorf("%s: validity %v to %v", c.Subject.CommonName, c.NotBefore, c.NotAfter)
		}
		if c.PublicKeyAlgorithm != x509.ECDSA {
			t.Errorf("%s: key algorithm %v", c.Subject.CommonName, c.PublicKeyAlgorithm)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := proxy.Verify(x509.VerifyOptions{Roots: roots, DNSName: "source.example"}); err != nil {
		t.Errorf("proxy certificate does not verify: %v", err)
	}
	if _, err := syncer.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("syncer certificate does not verify: %v", err)
	}

	// A second run must not overwrite the CA.
	before, _ := os.ReadFile(f.CAKey)
	if _, err := GenerateDemo(dir, nil); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second GenerateDemo = %v, want ErrExist", err)
	}
	after, _ := os.ReadFile(f.CAKey)
	if string(before) != string(after) {
		t.Error("second GenerateDemo changed ca.key")
	}
}

func TestGenerateDemoBadHost(t *testing.T) {
	for _, h := range []string{"host:6379", "", "a..b", "-a.example", "a b", "exa_mple.com"} {
		t.Run(h, func(t *testing.T) {
			dir := t.TempDir()
			_, err := GenerateDemo(dir, []string{h})
			if err == nil || !strings.Contains(err.Error(), "invalid host") {
				t.Errorf("GenerateDemo(%q) = %v, want an invalid host error", h, err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("files written despite the error: %v", entries)
			}
		})
	}
}
