package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/replicaof/replicaof/config"
)

// memPassword is an in-memory AdminPassword.
type memPassword struct {
	mu       sync.Mutex
	pw       string
	rotated  int
	rotateFn func() error // nil succeeds
}

func (m *memPassword) Password() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pw
}

func (m *memPassword) Rotate() (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rotateFn != nil {
		if err := m.rotateFn(); err != nil {
			return "", err
		}
	}
	m.rotated++
	m.pw = fmt.Sprintf("new/pw@%d", m.rotated)
	return m.pw, nil
}

func fixedURL(raw string) func() (*url.URL, error) {
	return func() (*url.URL, error) { return url.Parse(raw) }
}

// decodeURL returns the url of a SourceURLBody response.
func decodeURL(t *testing.T, w interface{ Result() *http.Response }, body string) *url.URL {
	t.Helper()
	var b SourceURLBody
	if err := json.Unmarshal([]byte(body), &b); err != nil || b.URL == "" {
		t.Fatalf("body %s: %v", body, err)
	}
	if cc := w.Result().Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q on a response holding a password", cc)
	}
	u, err := url.Parse(b.URL)
	if err != nil {
		t.Fatalf("url %q: %v", b.URL, err)
	}
	return u
}

func TestSourceURL(t *testing.T) {
	pw := &memPassword{pw: "0123abcd"}
	h := New(Config{Controller: &memController{}, AdminPassword: pw, ProxyURL: fixedURL("redis://db.example:6380")})

	w := do(t, h, "GET", "/v1/source-url", "", "")
	if w.Code != 200 {
		t.Fatalf("GET: %d %s", w.Code, w.Body)
	}
	if u := decodeURL(t, w, w.Body.String()); u.String() != "redis://admin:0123abcd@db.example:6380" {
		t.Fatalf("GET url %s", u)
	}

	w = do(t, h, "POST", "/v1/admin-password/rotate", "", "")
	if w.Code != 200 || pw.rotated != 1 {
		t.Fatalf("rotate: %d %s (rotated %d)", w.Code, w.Body, pw.rotated)
	}
	u := decodeURL(t, w, w.Body.String())
	if got, _ := u.User.Password(); got != "new/pw@1" || u.User.Username() != AdminUser || u.Host != "db.example:6380" || u.Scheme != "redis" {
		t.Fatalf("rotate url %s: password %q", u, got)
	}
	// The URL, special characters escaped, is a valid source for the
	// other deployment's config.
	src, err := config.ParseSource("a: " + u.String())
	if err != nil || string(src.Password) != "new/pw@1" || src.User != AdminUser || src.Addr() != "db.example:6380" {
		t.Fatalf("config.ParseSource(%s) = %+v, %v", u, src, err)
	}
	w = do(t, h, "GET", "/v1/source-url", "", "")
	if got, _ := decodeURL(t, w, w.Body.String()).User.Password(); got != "new/pw@1" {
		t.Fatalf("GET after rotate: password %q", got)
	}

	if w := do(t, h, "GET", "/v1/admin-password/rotate", "", ""); w.Code != http.StatusMethodNotAllowed || pw.rotated != 1 {
		t.Fatalf("GET rotate: %d (rotated %d)", w.Code, pw.rotated)
	}
	if w := do(t, h, "POST", "/v1/source-url", "", ""); w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST source-url: %d", w.Code)
	}
}

func TestSourceURLTLS(t *testing.T) {
	h := New(Config{Controller: &memController{}, AdminPassword: &memPassword{pw: "x"}, ProxyURL: fixedURL("rediss://[::1]:6390")})
	w := do(t, h, "GET", "/v1/source-url", "", "")
	if u := decodeURL(t, w, w.Body.String()); w.Code != 200 || u.String() != "rediss://admin:x@[::1]:6390" {
		t.Fatalf("%d %s", w.Code, u)
	}
}

func TestSourceURLErrors(t *testing.T) {
	jsonError := func(t *testing.T, body, want string) {
		t.Helper()
		var e struct{ Error string }
		if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, want) {
			t.Fatalf("error body %s: want %q", body, want)
		}
	}
	t.Run("no admin password", func(t *testing.T) {
		h := New(Config{Controller: &memController{}, ProxyURL: fixedURL("redis://h:1")})
		for _, r := range [][2]string{{"GET", "/v1/source-url"}, {"POST", "/v1/admin-password/rotate"}} {
			w := do(t, h, r[0], r[1], "", "")
			if w.Code != http.StatusNotFound {
				t.Fatalf("%s %s: %d", r[0], r[1], w.Code)
			}
			jsonError(t, w.Body.String(), "no internal admin password")
		}
	})
	t.Run("rotate fails", func(t *testing.T) {
		pw := &memPassword{pw: "old", rotateFn: func() error { return errors.New("disk full") }}
		h := New(Config{Controller: &memController{}, AdminPassword: pw, ProxyURL: fixedURL("redis://h:1")})
		w := do(t, h, "POST", "/v1/admin-password/rotate", "", "")
		if w.Code != http.StatusInternalServerError || pw.Password() != "old" {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		jsonError(t, w.Body.String(), "disk full")
	})
	t.Run("no proxy url", func(t *testing.T) {
		pw := &memPassword{pw: "old"}
		h := New(Config{Controller: &memController{}, AdminPassword: pw,
			ProxyURL: func() (*url.URL, error) { return nil, errors.New("unix socket") }})
		if w := do(t, h, "GET", "/v1/source-url", "", ""); w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "old") {
			t.Fatalf("GET: %d %s", w.Code, w.Body)
		}
		// No URL to tell: the password must not change.
		w := do(t, h, "POST", "/v1/admin-password/rotate", "", "")
		if w.Code != http.StatusInternalServerError || pw.rotated != 0 {
			t.Fatalf("rotate: %d %s, rotated %d", w.Code, w.Body, pw.rotated)
		}
		jsonError(t, w.Body.String(), "unix socket")
		h = New(Config{Controller: &memController{}, AdminPassword: pw}) // ProxyURL nil
		if w := do(t, h, "POST", "/v1/admin-password/rotate", "", ""); w.Code != http.StatusInternalServerError || pw.rotated != 0 {
			t.Fatalf("rotate without ProxyURL: %d %s", w.Code, w.Body)
		}
	})
	t.Run("token", func(t *testing.T) {
		pw := &memPassword{pw: "secret"}
		h := New(Config{Controller: &memController{}, Token: "tok", AdminPassword: pw, ProxyURL: fixedURL("redis://h:1")})
		for _, r := range [][2]string{{"GET", "/v1/source-url"}, {"POST", "/v1/admin-password/rotate"}} {
			if w := do(t, h, r[0], r[1], "", "bad"); w.Code != http.StatusUnauthorized || strings.Contains(w.Body.String(), "secret") {
				t.Fatalf("%s %s with a bad token: %d %s", r[0], r[1], w.Code, w.Body)
			}
		}
		if pw.rotated != 0 {
			t.Fatal("rotated without the token")
		}
		if w := do(t, h, "GET", "/v1/source-url", "", "tok"); w.Code != 200 {
			t.Fatalf("with the token: %d", w.Code)
		}
	})
}

type unixAddr string

func (a unixAddr) Network() string { return "unix" }
func (a unixAddr) String() string  { return string(a) }

func TestListenURL(t *testing.T) {
	host := func(name string, err error) func() (string, error) {
		return func() (string, error) { return name, err }
	}
	tcp := func(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }
	for _, c := range []struct {
		name     string
		listen   string
		bound    net.Addr
		tls      bool
		hostname func() (string, error)
		want     string // "" for an error
	}{
		{"loopback", "127.0.0.1:6380", tcp("127.0.0.1", 6380), false, nil, "redis://127.0.0.1:6380"},
		{"port 0", "127.0.0.1:0", tcp("127.0.0.1", 41234), false, nil, "redis://127.0.0.1:41234"},
		{"tls", "10.1.2.3:6380", tcp("10.1.2.3", 6380), true, nil, "rediss://10.1.2.3:6380"},
		{"name as written", "db1.example:6380", tcp("10.1.2.3", 6380), true, nil, "rediss://db1.example:6380"},
		{"ipv6", "[::1]:7000", tcp("::1", 7000), false, nil, "redis://[::1]:7000"},
		{"any ipv4", "0.0.0.0:6380", tcp("0.0.0.0", 6380), false, host("db1.example", nil), "redis://db1.example:6380"},
		{"any ipv6", "[::]:6380", tcp("::", 6380), true, host("db1", nil), "rediss://db1:6380"},
		{"no host", ":6380", tcp("::", 6380), false, host("db1", nil), "redis://db1:6380"},
		{"hostname fails", "0.0.0.0:6380", tcp("0.0.0.0", 6380), false, host("", errors.New("no name")), ""},
		{"hostname empty", ":6380", tcp("::", 6380), false, host("", nil), ""},
		{"hostname bad", ":6380", tcp("::", 6380), false, host("a/b", nil), ""},
		{"unix", "unix:/tmp/p.sock", unixAddr("/tmp/p.sock"), false, nil, ""},
		{"nil", "127.0.0.1:6380", nil, false, nil, ""},
		{"bad listen", "nonsense", tcp("127.0.0.1", 6380), false, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			hn := c.hostname
			if hn == nil {
				hn = func() (string, error) { t.Fatal("hostname called for a specific address"); return "", nil }
			}
			u, err := ListenURL(c.listen, c.bound, c.tls, hn)
			if c.want == "" {
				if err == nil {
					t.Fatalf("ListenURL = %s, want an error", u)
				}
				return
			}
			if err != nil || u.String() != c.want {
				t.Fatalf("ListenURL = %v, %v; want %s", u, err, c.want)
			}
		})
	}
}
