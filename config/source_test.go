package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestParseSource(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     Source
		redacted string
		str      string // String(), when it differs from redacted
	}{
		{
			name:     "named with admin user",
			in:       "orders: redis://admin:secret@10.0.0.5:12000",
			want:     Source{Name: "orders", Endpoint: Endpoint{Host: "10.0.0.5", Port: 12000, User: "admin", Password: "secret"}},
			redacted: "redis://admin:***@10.0.0.5:12000",
			str:      "orders: redis://admin:***@10.0.0.5:12000",
		},
		{
			name:     "encoded password only",
			in:       "redis://:p%40ss%3Aw%2Fd@host:6379",
			want:     Source{Name: "host:6379", Endpoint: Endpoint{Host: "host", Port: 6379, Password: "p@ss:w/d"}},
			redacted: "redis://:***@host:6379",
		},
		{
			name:     "acl user",
			in:       "redis://app:pw@cache.example.com:7000",
			want:     Source{Name: "cache.example.com:7000", Endpoint: Endpoint{Host: "cache.example.com", Port: 7000, User: "app", Password: "pw"}},
			redacted: "redis://app:***@cache.example.com:7000",
		},
		{
			name:     "user without password",
			in:       "redis://app@h:1",
			want:     Source{Name: "h:1", Endpoint: Endpoint{Host: "h", Port: 1, User: "app"}},
			redacted: "redis://app@h:1",
		},
		{
			name:     "empty password is none",
			in:       "redis://:@h:1",
			want:     Source{Name: "h:1", Endpoint: Endpoint{Host: "h", Port: 1}},
			redacted: "redis://h:1",
		},
		{
			name:     "host and port",
			in:       "redis://10.0.0.7:6380",
			want:     Source{Name: "10.0.0.7:6380", Endpoint: Endpoint{Host: "10.0.0.7", Port: 6380}},
			redacted: "redis://10.0.0.7:6380",
		},
		{
			name:     "default port",
			in:       "redis://localhost",
			want:     Source{Name: "localhost:6379", Endpoint: Endpoint{Host: "localhost", Port: 6379}},
			redacted: "redis://localhost:6379",
		},
		{
			name:     "tls",
			in:       "rediss://:pw@host",
			want:     Source{Name: "host:6379", Endpoint: Endpoint{Host: "host", Port: 6379, Password: "pw", TLS: true}},
			redacted: "rediss://:***@host:6379",
		},
		{
			name:     "uppercase scheme and host",
			in:       "REDISS://HOST.Example:1",
			want:     Source{Name: "host.example:1", Endpoint: Endpoint{Host: "host.example", Port: 1, TLS: true}},
			redacted: "rediss://host.example:1",
		},
		{
			name:     "ipv6",
			in:       "redis://:pw@[::1]:7000",
			want:     Source{Name: "[::1]:7000", Endpoint: Endpoint{Host: "::1", Port: 7000, Password: "pw"}},
			redacted: "redis://:***@[::1]:7000",
		},
		{
			name:     "ipv6 default port",
			in:       "main: redis://[2001:DB8::1]",
			want:     Source{Name: "main", Endpoint: Endpoint{Host: "2001:db8::1", Port: 6379}},
			redacted: "redis://[2001:db8::1]:6379",
			str:      "main: redis://[2001:db8::1]:6379",
		},
		{
			name:     "ipv6 zone",
			in:       "redis://[fe80::1%25eth0]:6379",
			want:     Source{Name: "[fe80::1%eth0]:6379", Endpoint: Endpoint{Host: "fe80::1%eth0", Port: 6379}},
			redacted: "redis://[fe80::1%25eth0]:6379",
		},
		{
			name:     "db 0 path",
			in:       "redis://h:1/0",
			want:     Source{Name: "h:1", Endpoint: Endpoint{Host: "h", Port: 1}},
			redacted: "redis://h:1",
		},
		{
			name:     "slash path and spaces",
			in:       "  a-b_c.d : redis://h:1/  ",
			want:     Source{Name: "a-b_c.d", Endpoint: Endpoint{Host: "h", Port: 1}},
			redacted: "redis://h:1",
			str:      "a-b_c.d: redis://h:1",
		},
		{
			name:     "encoded colon space in password",
			in:       "x: redis://u:a%3A%20b@h:1",
			want:     Source{Name: "x", Endpoint: Endpoint{Host: "h", Port: 1, User: "u", Password: "a: b"}},
			redacted: "redis://u:***@h:1",
			str:      "x: redis://u:***@h:1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSource(tt.in)
			if err != nil {
				t.Fatalf("ParseSource(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseSource(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			if r := got.Redacted(); r != tt.redacted {
				t.Errorf("Redacted() = %q, want %q", r, tt.redacted)
			}
			str := tt.str
			if str == "" {
				str = tt.redacted
			}
			if s := got.String(); s != str {
				t.Errorf("String() = %q, want %q", s, str)
			}
			again, err := ParseURL(got.URI())
			if err != nil || again != got.Endpoint {
				t.Errorf("ParseURL(URI()=%q) = %#v, %v; want %#v", got.URI(), again, err, got.Endpoint)
			}
			assertNoSecret(t, got, string(got.Password))
		})
	}
}

// assertNoSecret prints v every way a program might and fails if pw shows.
func assertNoSecret(t *testing.T, v any, pw string) {
	t.Helper()
	if pw == "" {
		return
	}
	var buf bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		fmt.Fprintf(&buf, verb+"\n", v)
	}
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "v", v)
	log = slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("x", "v", v)
	if strings.Contains(buf.String(), pw) {
		t.Errorf("password %q printed:\n%s", pw, buf.String())
	}
}

func TestParseSourceErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty URL"},
		{"http scheme", "http://:secret1@h", `unsupported scheme "http" (want redis or rediss)`},
		{"no scheme", "secret1@host:6379", "missing scheme"},
		{"user without scheme", "admin:secret1@host:6379", "missing scheme"},
		{"user as scheme", "admin://:secret1@host:6379", `unsupported scheme "admin"`},
		{"space in password", "redis://:a: secret1@h:1", "invalid user or password"},
		{"control character", "redis://:secret1@h\x00", "invalid control character"},
		{"unclosed bracket", "redis://:secret1@[::1", "invalid IPv6 address"},
		{"opaque", "redis:host:6379", `missing "//"`},
		{"empty host", "redis://:secret1@:6379", "missing host"},
		{"no host", "redis://", "missing host"},
		{"bad port", "redis://:secret1@h:99999", `invalid port "99999"`},
		{"zero port", "redis://h:0", `invalid port "0"`},
		{"empty port", "redis://h:", "empty port"},
		{"non-numeric port", "redis://:secret1@h:abc", "invalid port"},
		{"unescaped slash in password", "redis://user:secret1/x@h:1", "invalid port"},
		{"unescaped slash, no user", "redis://secret1/x@h:1", "must be percent-encoded"},
		{"db path", "redis://:secret1@h:1/3", `redis://:***@h:1: unsupported path "/3" (want none or "/0"`},
		{"deep path", "redis://h:1/0/x", `unsupported path "/0/x"`},
		{"query", "redis://:secret1@h:1?db=1", "redis://:***@h:1: query parameters are not supported"},
		{"fragment", "redis://:secret1@h:1#x", "URL fragments are not supported"},
		{"query with at", "redis://h:1?secret1@x", "must be percent-encoded"},
		{"bad escape", "redis://:secret1%zz@h", "invalid percent-encoding"},
		{"unbracketed ipv6", "redis://::1:6379", "IPv6 addresses must be in brackets"},
		{"ipv4 in brackets", "redis://[127.0.0.1]:1", "invalid IPv6 address"},
		{"bad host char", "redis://ho$t:1", "invalid character in host"},
		{"bad name", "my source: redis://h", "invalid character ' ' in source name"},
		{"empty name", ": redis://h", "empty source name"},
		{"long name", strings.Repeat("n", 65) + ": redis://h", "longer than 64"},
		{"name then garbage", "name: secret1", "missing scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSource(tt.in)
			if err == nil {
				t.Fatalf("ParseSource(%q): no error, want %q", tt.in, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseSource(%q) = %q, want it to contain %q", tt.in, err, tt.want)
			}
			if strings.Contains(err.Error(), "secret1") {
				t.Errorf("error shows the password: %q", err)
			}
		})
	}
}

func TestSecret(t *testing.T) {
	type holder struct {
		Password Secret
		Token    *Secret
	}
	tok := Secret("tok-en-123")
	h := holder{Password: "hunter22", Token: &tok}
	assertNoSecret(t, h, "hunter22")
	assertNoSecret(t, h, "tok-en-123")
	if got := Secret("").String(); got != "" {
		t.Errorf(`Secret("").String() = %q, want ""`, got)
	}
	b, _ := Secret("x").MarshalText()
	if string(b) != "***" {
		t.Errorf("MarshalText = %q", b)
	}
}

func TestEndpointLogValue(t *testing.T) {
	ep, err := ParseURL("rediss://u:pa55word@h:1")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("dial", "shard", ep, "source", Source{Name: "s", Endpoint: ep})
	want := `shard=rediss://u:***@h:1 source.name=s source.uri=rediss://u:***@h:1`
	if !strings.Contains(buf.String(), want) {
		t.Errorf("log = %q, want it to contain %q", buf.String(), want)
	}
}
