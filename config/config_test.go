package config

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// equal compares configs, ignoring YAML positions.
func equal(a, b *Config) bool {
	x, y := *a, *b
	x.pos, y.pos = nil, nil
	return reflect.DeepEqual(x, y)
}

func TestGolden(t *testing.T) {
	c, err := Load("testdata/golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Proxy: Proxy{
			Listen: "0.0.0.0:6380", Password: "proxy-secret", AllowWrites: true,
			MaxBulk: 64 << 20, MaxArgs: 4096, MaxInline: 16 << 10, MaxBlocking: 200, Timeout: 5 * time.Minute,
			Loops: ptr(2), MaxPending: 32 << 20,
			TLS: &ProxyTLS{Cert: "proxy.pem", Key: "proxy.key", ClientCA: "ca.pem", MinVersion: "1.3"},
		},
		Admin: Admin{Listen: "127.0.0.1:8381", Token: "admin-token"},
		Destination: Destination{
			Shards: []Endpoint{
				{Host: "127.0.0.1", Port: 7001},
				{Host: "127.0.0.1", Port: 7002, Password: "shard@pw"},
				{Host: "::1", Port: 7003, TLS: true},
			},
			TLS: &TLSFiles{CA: "ca.pem", MinVersion: "1.3"},
		},
		ReplicaOf: ReplicaOf{Sources: []Source{
			{Name: "orders", Endpoint: Endpoint{Host: "10.0.0.5", Port: 12000, User: "admin", Password: "secret"}},
			{Name: "cache.example.com:6379", Endpoint: Endpoint{Host: "cache.example.com", Port: 6379, Password: "p@ss"}},
			{Name: "10.0.0.7:6380", Endpoint: Endpoint{Host: "10.0.0.7", Port: 6380}},
			{
				Name: "host:6379", Endpoint: Endpoint{Host: "host", Port: 6379, Password: "p@ss", TLS: true}, Compression: 6,
				TLSFiles: &TLSFiles{CA: "ca.pem", Cert: "syncer.pem", Key: "syncer.key"},
			},
			{
				Name: "users", Endpoint: Endpoint{Host: "2001:db8::1", Port: 6390, User: "app", Password: "pw", TLS: true},
				TLSFiles: &TLSFiles{ServerName: "users.internal", InsecureSkipVerify: true},
			},
		}, CrossShard: CrossShardStop, TTLGrace: ptr(90 * time.Second), UnsupportedKeys: UnsupportedSkip},
		StateDir: "/var/lib/replicaof",
		Log:      Log{Level: "debug", Format: "json"},
	}
	if !equal(c, want) {
		t.Fatalf("Load(golden.yaml) =\n%+v\nwant\n%+v", *c, *want)
	}
	if o := want.Proxy.TLS.ServerOptions(); !want.Proxy.TLS.Enabled() || o.MinVersion != 0x0304 || o.ClientCAFile != "ca.pem" {
		t.Errorf("proxy ServerOptions = %+v, want TLS 1.3 with ca.pem", o)
	}
	if got := want.Destination.TLS.MinTLSVersion(); got != 0x0304 {
		t.Errorf("MinTLSVersion = %#x, want TLS 1.3", got)
	}

	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/golden.out.yaml"
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantOut, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(wantOut) {
		t.Errorf("Marshal() =\n%s\nwant (%s; -update to rewrite)\n%s", out, golden, wantOut)
	}
	again, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(Marshal()): %v", err)
	}
	if !equal(again, c) {
		t.Errorf("Parse(Marshal()) =\n%+v\nwant\n%+v", *again, *c)
	}
	assertNoSecret(t, c, "proxy-secret")
	assertNoSecret(t, c, "admin-token")
	assertNoSecret(t, c, "shard@pw")
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(`destination: { shards: ["redis://127.0.0.1:7001"] }`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Proxy: Proxy{
			Listen: DefaultProxyListen, MaxBulk: 512 << 20, MaxArgs: 1048576, MaxInline: 64 << 10,
			MaxBlocking: DefaultMaxBlocking, MaxPending: DefaultMaxPending,
		},
		Admin:       Admin{Listen: DefaultAdminListen},
		Destination: Destination{Shards: []Endpoint{{Host: "127.0.0.1", Port: 7001}}},
		ReplicaOf:   ReplicaOf{CrossShard: CrossShardEmulate, UnsupportedKeys: UnsupportedStop},
		StateDir:    "./replicaof-state",
		Log:         Log{Level: "info", Format: "text"},
	}
	if !equal(c, want) {
		t.Fatalf("Parse =\n%+v\nwant\n%+v", *c, *want)
	}
	if g := c.ReplicaOf.Grace(); g != DefaultTTLGrace {
		t.Fatalf("default grace %v", g)
	}
}

func ptr[T any](v T) *T { return &v }

func TestTTLGraceAndUnsupportedKeys(t *testing.T) {
	const shards = "destination: { shards: [\"redis://127.0.0.1:7001\"] }\n"
	for _, tc := range []struct {
		yaml  string
		grace time.Duration
		skip  bool
	}{
		{"replica_of: { ttl_grace: 0 }", 0, false},
		{"replica_of: { ttl_grace: 30 }", 30 * time.Second, false},
		{"replica_of: { ttl_grace: 1500ms, unsupported_keys: skip }", 1500 * time.Millisecond, true},
		{"replica_of: { ttl_grace: null, unsupported_keys: stop }", DefaultTTLGrace, false},
		{"replica_of: { ttl_grace: \"\" }", DefaultTTLGrace, false},
	} {
		c, err := Parse([]byte(shards + tc.yaml))
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		if c.ReplicaOf.Grace() != tc.grace || c.ReplicaOf.SkipUnsupported() != tc.skip {
			t.Errorf("%s: grace %v skip %v", tc.yaml, c.ReplicaOf.Grace(), c.ReplicaOf.SkipUnsupported())
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out)
		if err != nil || !equal(back, c) {
			t.Errorf("%s: round trip: %v\n%s", tc.yaml, err, out)
		}
	}
	for _, bad := range []string{
		"replica_of: { ttl_grace: -1s }", "replica_of: { ttl_grace: 9000h }",
		"replica_of: { ttl_grace: 1us }", "replica_of: { unsupported_keys: ignore }",
	} {
		_, err := Parse([]byte(shards + bad))
		var e *Error
		if err == nil || !errors.As(err, &e) || !strings.Contains(err.Error(), "replica_of.") {
			t.Errorf("%s: err %v", bad, err)
		}
	}
}

func TestParseValues(t *testing.T) {
	const dst = "destination: { shards: [redis://d:1] }\n"
	tests := []struct {
		name, yaml string
		check      func(c *Config) bool
	}{
		{"timeout seconds", "proxy: { timeout: 300 }", func(c *Config) bool { return c.Proxy.Timeout == 5*time.Minute }},
		{"timeout duration", "proxy: { timeout: 1m30s }", func(c *Config) bool { return c.Proxy.Timeout == 90*time.Second }},
		{"size plain", "proxy: { max_bulk: 1000 }", func(c *Config) bool { return c.Proxy.MaxBulk == 1000 }},
		{"size gb", "proxy: { max_bulk: 1GB }", func(c *Config) bool { return c.Proxy.MaxBulk == 1<<30 }},
		{"size k", "proxy: { max_inline: 4k }", func(c *Config) bool { return c.Proxy.MaxInline == 4096 }},
		{"hex int", "proxy: { max_args: 0x10 }", func(c *Config) bool { return c.Proxy.MaxArgs == 16 }},
		{"numeric password", "proxy: { password: 0123 }", func(c *Config) bool { return c.Proxy.Password == "0123" }},
		{"null sections", "proxy:\nadmin: ~\nreplica_of:\nlog:", func(c *Config) bool { return c.Proxy.Listen == DefaultProxyListen }},
		{"null sources", "replica_of: { sources: ~ }", func(c *Config) bool { return len(c.ReplicaOf.Sources) == 0 }},
		{"anchors", "x_: &s redis://h:1\n", nil}, // unknown field: tested as an error below
		{"alias", "replica_of: { sources: [&a \"redis://h:1\"] }\nstate_dir: *a", func(c *Config) bool { return c.StateDir == "redis://h:1" }},
		{"mapping source defaults name", "replica_of: { sources: [{ uri: \"redis://h:2\" }] }", func(c *Config) bool {
			return c.ReplicaOf.Sources[0].Name == "h:2"
		}},
		{"allow writes", "proxy: { allow_writes: True }", func(c *Config) bool { return c.Proxy.AllowWrites }},
		{"32 sources", sources(32), func(c *Config) bool { return len(c.ReplicaOf.Sources) == 32 }},
		{"empty listen host", "proxy: { listen: \":6380\" }", func(c *Config) bool { return c.Proxy.Listen == ":6380" }},
		{"log level case", "log: { level: WARN }", func(c *Config) bool { return c.Log.SlogLevel().String() == "WARN" }},
		{"cross_shard default", "", func(c *Config) bool { return c.ReplicaOf.CrossShard == CrossShardEmulate }},
		{"cross_shard stop", "replica_of: { cross_shard: stop }", func(c *Config) bool { return c.ReplicaOf.CrossShard == CrossShardStop }},
		{"loops default auto", "", func(c *Config) bool { return c.Proxy.Loops == nil }},
		{"loops auto", "proxy: { loops: auto }", func(c *Config) bool { return c.Proxy.Loops == nil }},
		{"loops zero", "proxy: { loops: 0 }", func(c *Config) bool { return c.Proxy.Loops != nil && *c.Proxy.Loops == 0 }},
		{"loops max", "proxy: { loops: 1024 }", func(c *Config) bool { return c.Proxy.Loops != nil && *c.Proxy.Loops == MaxLoops }},
		{"max_pending default", "", func(c *Config) bool { return c.Proxy.MaxPending == 64<<20 }},
		{"max_pending min", "proxy: { max_pending: 64kb }", func(c *Config) bool { return c.Proxy.MaxPending == MinMaxPending }},
		{"max_pending gb", "proxy: { max_pending: 1gb }", func(c *Config) bool { return c.Proxy.MaxPending == 1<<30 }},
	}
	for _, tt := range tests {
		if tt.check == nil {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(dst + tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected result: %+v", *c)
			}
		})
	}
}

// proxy.loops: 0 (goroutines only) survives Marshal and Parse as 0, not
// as the default.
func TestLoopsRoundTrip(t *testing.T) {
	const dst = "destination: { shards: [redis://d:1] }\n"
	for _, in := range []string{"proxy: { loops: 0 }", "proxy: { loops: 3 }", "proxy: { loops: auto }"} {
		c, err := Parse([]byte(dst + in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out)
		if err != nil || !equal(back, c) {
			t.Errorf("%s: round trip: %v\n%s", in, err, out)
		}
	}
}

func sources(n int) string {
	var b strings.Builder
	b.WriteString("replica_of:\n  sources:\n")
	for i := range n {
		fmt.Fprintf(&b, "    - redis://10.0.0.1:%d\n", 1000+i)
	}
	return b.String()
}

func TestParseErrors(t *testing.T) {
	const dst = "destination: { shards: [redis://d:1] }\n" // line 1
	tests := []struct {
		name, yaml string
		want       string // substring of the error
	}{
		{"bad scheme", "replica_of:\n  sources:\n    - redis://a:1\n    - \"redis://b:1\"\n    - \"http://:pw@c:1\"",
			`config: line 6, column 7: replica_of.sources[2]: unsupported scheme "http" (want redis or rediss)`},
		{"unknown top field", "statedir: x", `config: line 2, column 1: unknown field "statedir"`},
		{"unknown nested field", "proxy:\n  listen: \":1\"\n  pasword: x", `config: line 4, column 3: proxy: unknown field "pasword"`},
		{"unknown tls field", "replica_of: { sources: [{ uri: \"rediss://h\", tls: { cafile: x } }] }",
			`line 2, column 53: replica_of.sources[0].tls: unknown field "cafile"`},
		{"unquoted named source", "replica_of:\n  sources:\n    - orders: redis://h:1",
			`line 4, column 7: replica_of.sources[0]: unknown field "orders" in source (to name a source, quote the item: "orders: redis://…")`},
		{"field twice", "state_dir: a\nstate_dir: b", `line 3, column 1: state_dir: field set twice`},
		{"cross_shard", "replica_of: { cross_shard: refuse }", `line 2, column 28: replica_of.cross_shard: unknown value "refuse" (want emulate or stop)`},
		{"too many sources", sources(33), "config: line 4, column 5: replica_of.sources: 33 sources, at most 32 allowed"},
		{"duplicate name", "replica_of: { sources: [\"a: redis://h:1\", \"a: redis://h:2\"] }",
			`line 2, column 43: replica_of.sources[1].name: duplicate source name "a" (also replica_of.sources[0])`},
		{"duplicate name mapping", "replica_of: { sources: [\"a: redis://h:1\", {name: a, uri: \"redis://h:2\"}] }",
			`line 2, column 50: replica_of.sources[1].name: duplicate source name "a"`},
		{"duplicate address", "replica_of: { sources: [\"a: redis://:pw1@H:1\", \"b: redis://:pw2@h:1/0\"] }",
			`replica_of.sources[1]: redis://:***@h:1: same address as replica_of.sources[0]`},
		{"source is a shard", "replica_of: { sources: [\"redis://d:1\"] }", `replica_of.sources[0]: redis://d:1: source is destination.shards[0]`},
		{"compression", "replica_of: { sources: [{ uri: \"redis://h\", compression: 10 }] }",
			`line 2, column 58: replica_of.sources[0].compression: compression 10 out of range (want 0 = off or a gzip level 1-9)`},
		{"negative compression", "replica_of: { sources: [{ uri: \"redis://h\", compression: -1 }] }", "compression -1 out of range"},
		{"compression not int", "replica_of: { sources: [{ uri: \"redis://h\", compression: high }] }", `invalid integer "high"`},
		{"tls without rediss", "replica_of: { sources: [{ uri: \"redis://h\", tls: { ca: ca.pem } }] }",
			`replica_of.sources[0].tls: tls is set but the URL is not rediss://`},
		{"tls version", "replica_of: { sources: [{ uri: \"rediss://h\", tls: { min_version: \"1.1\" } }] }",
			`replica_of.sources[0].tls.min_version: unsupported TLS version "1.1" (want "1.2" or "1.3")`},
		{"cert without key", "replica_of: { sources: [{ uri: \"rediss://h\", tls: { cert: c.pem } }] }", "cert and key must be set together"},
		{"missing uri", "replica_of: { sources: [{ name: x }] }", "line 2, column 25: replica_of.sources[0]: missing uri"},
		{"empty name", "replica_of: { sources: [{ name: \"\", uri: \"redis://h\" }] }", "replica_of.sources[0].name: empty source name"},
		{"bad name", "replica_of: { sources: [{ name: \"a b\", uri: \"redis://h\" }] }", "replica_of.sources[0].name: invalid character ' '"},
		{"bad uri in mapping", "replica_of: { sources: [{ uri: \"redis://:pw@h/2\" }] }",
			`line 2, column 32: replica_of.sources[0].uri: redis://:***@h:6379: unsupported path "/2"`},
		{"empty source", "replica_of:\n  sources:\n    -\n", "line 4, column 6: replica_of.sources[0]: empty source"},
		{"source list item", "replica_of: { sources: [[a]] }", "replica_of.sources[0]: want a string or a mapping, got a list"},
		{"sources not list", "replica_of: { sources: redis://h }", "replica_of.sources: want a list, got a scalar"},
		{"proxy not mapping", "proxy: [1]", "line 2, column 8: proxy: want a mapping, got a list"},
		{"listen not string", "proxy: { listen: [1] }", "proxy.listen: want a string, got a list"},
		{"bad listen", "proxy: { listen: localhost }", `proxy.listen: "localhost" is not host:port`},
		{"bad listen port", "admin: { listen: \"h:http\" }", `admin.listen: "h:http": invalid port`},
		{"same listen", "proxy: { listen: \"h:1\" }\nadmin: { listen: \"h:1\" }", "line 3, column 18: admin.listen: same address as proxy.listen (h:1)"},
		{"bad bool", "proxy: { allow_writes: yes }", `proxy.allow_writes: invalid boolean "yes" (want true or false)`},
		{"negative max_args", "proxy: { max_args: -1 }", "proxy.max_args: must not be negative"},
		{"negative max_bulk", "proxy: { max_bulk: -1 }", "proxy.max_bulk: must not be negative"},
		{"negative max_inline", "proxy: { max_inline: -1kb }", "proxy.max_inline: must not be negative"},
		{"negative max_blocking", "proxy: { max_blocking: -1 }", "proxy.max_blocking: must not be negative"},
		{"bad size", "proxy: { max_bulk: 1tb }", `invalid size "1tb"`},
		{"negative loops", "proxy: { loops: -1 }", "proxy.loops: -1 out of range (want auto, or 0 to 1024)"},
		{"too many loops", "proxy: { loops: 1025 }", "proxy.loops: 1025 out of range"},
		{"bad loops", "proxy: { loops: many }", `proxy.loops: invalid value "many" (want auto or a number of loops)`},
		{"huge loops", "proxy: { loops: 99999999999 }", `proxy.loops: invalid value "99999999999"`},
		{"small max_pending", "proxy: { max_pending: 1kb }", "proxy.max_pending: 1024 out of range (want at least 65536 bytes)"},
		{"negative max_pending", "proxy: { max_pending: -1mb }", "proxy.max_pending: -1048576 out of range"},
		{"huge max_pending", "proxy: { max_pending: 8000000000gb }", "proxy.max_pending"},
		{"huge size", "proxy: { max_bulk: 99999999999gb }", `invalid size`},
		{"max_args range", "proxy: { max_args: 99999999999 }", "proxy.max_args: 99999999999 out of range"},
		{"bad timeout", "proxy: { timeout: soon }", `invalid duration "soon"`},
		{"negative timeout", "proxy: { timeout: -1s }", "proxy.timeout: must not be negative"},
		{"huge timeout", "proxy: { timeout: 99999999999999 }", "seconds out of range"},
		{"proxy tls cert without key", "proxy: { tls: { cert: p.pem } }", "line 2, column 23: proxy.tls.cert: cert and key must be set together"},
		{"proxy tls key without cert", "proxy: { tls: { key: p.key } }", "proxy.tls.cert: cert and key must be set together"},
		{"proxy tls ca without cert", "proxy: { tls: { client_ca: ca.pem } }", "proxy.tls.cert: client_ca, min_version and mode need cert and key"},
		{"proxy tls mode", "proxy: { tls: { cert: c.pem, key: k.pem, mode: clients } }", `proxy.tls.mode: unknown mode "clients"`},
		{"proxy tls version", "proxy: { tls: { cert: p, key: k, min_version: \"1.1\" } }",
			`proxy.tls.min_version: unsupported TLS version "1.1" (want "1.2" or "1.3")`},
		{"proxy tls unknown field", "proxy: { tls: { ca: x } }", `proxy.tls: unknown field "ca"`},
		{"proxy tls not mapping", "proxy: { tls: on }", "proxy.tls: want a mapping, got a scalar"},
		{"log level", "log: { level: trace }", `log.level: unknown level "trace"`},
		{"log format", "log: { format: xml }", `log.format: unknown format "xml"`},
		{"syntax", "proxy: {", "config: yaml:"},
		{"two documents", "---\nstate_dir: b\n", "more than one YAML document"},
		{"key not scalar", "? [a]\n: b", "mapping key must be a string"},
		{"unknown anchor field", "x_: &s redis://h:1", `unknown field "x_"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(dst + tt.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n%v\nwant it to contain\n%s", err, tt.want)
			}
			if strings.Contains(err.Error(), "pw") && !strings.Contains(tt.want, "pw") {
				t.Errorf("error shows a password: %v", err)
			}
		})
	}
}

func TestParseNoShards(t *testing.T) {
	for _, in := range []string{"", "# only a comment\n", "destination: { shards: [] }", "destination:"} {
		t.Run(fmt.Sprintf("%q", in), func(t *testing.T) {
			_, err := Parse([]byte(in))
			var ce *Error
			if !errors.As(err, &ce) || ce.Path != "destination.shards" {
				t.Fatalf("Parse(%q) = %v, want an *Error at destination.shards", in, err)
			}
		})
	}
}

func TestParseErrorsNoPrefix(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"bad url", "destination: { shards: [\"redis://:pw@h:1/9\"] }", `line 1, column 25: destination.shards[0]: redis://:***@h:1: unsupported path "/9"`},
		{"duplicate", "destination: { shards: [\"redis://h:1\", \"redis://H:1/0\"] }", "destination.shards[1]: redis://h:1: same address as destination.shards[0]"},
		{"tls without rediss", "destination: { shards: [\"redis://h:1\"], tls: { ca: a } }", "destination.tls: tls is set but no shard uses rediss://"},
		{"tls bad", "destination: { shards: [\"rediss://h:1\"], tls: { key: a } }", "destination.tls.cert: cert and key must be set together"},
		{"not a mapping", "- a", "config: line 1, column 1: want a mapping, got a list"},
		{"scalar document", "hello", "config: line 1, column 1: want a mapping, got a scalar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n%v\nwant it to contain\n%s", err, tt.want)
			}
		})
	}
}

func TestMultipleErrors(t *testing.T) {
	_, err := Parse([]byte("proxy: { max_args: -1 }\nlog: { level: x }\n"))
	var lines []int
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *Error
		if errors.As(e, &ce) {
			lines = append(lines, ce.Line)
		}
	}
	// max_args (line 1), missing shards (no line of its own), log.level (line 2)
	if want := []int{1, 0, 2}; !reflect.DeepEqual(lines, want) {
		t.Errorf("error lines = %v, want %v (%v)", lines, want, err)
	}
}

func TestValidateProgrammatic(t *testing.T) {
	ep, _ := ParseURL("redis://d:1")
	src, _ := ParseSource("redis://s:1")
	c := &Config{Destination: Destination{Shards: []Endpoint{ep}}}
	if err := c.Validate(); err != nil {
		t.Fatalf("zero-value fields should be valid: %v", err)
	}
	for range MaxSources + 1 {
		c.ReplicaOf.Sources = append(c.ReplicaOf.Sources, src)
		src.Port++
		src.Name = ""
	}
	err := c.Validate()
	if !errors.Is(err, ErrTooManySources) {
		t.Fatalf("Validate() = %v, want ErrTooManySources", err)
	}
	if want := "config: replica_of.sources: 33 sources, at most 32 allowed"; err.Error() != want {
		t.Errorf("Validate() = %q, want %q", err, want)
	}
	if c.ReplicaOf.Sources[1].Name != "" {
		t.Errorf("Validate modified the config")
	}
}

func TestWriteFile(t *testing.T) {
	c, err := Load("testdata/golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "replicaof.yaml")
	if err := c.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode())
	}
	again, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(again, c) {
		t.Errorf("Load(WriteFile()) differs:\n%+v\n%+v", *again, *c)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

// destination.refresh and destination.db_map: parsed, validated and
// written back.
func TestDestinationClusterKeys(t *testing.T) {
	const shards = "destination:\n  shards: [\"redis://127.0.0.1:7001\"]\n"
	c, err := Parse([]byte(shards + "  refresh: 2s\n  db_map: {1: 0, 2: drop, 0: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]int{0: 0, 1: 0, 2: DBDrop}
	if c.Destination.Refresh != 2*time.Second || !maps.Equal(c.Destination.DBMap, want) {
		t.Fatalf("refresh %v, db_map %v", c.Destination.Refresh, c.Destination.DBMap)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(Marshal()): %v\n%s", err, out)
	}
	if back.Destination.Refresh != 2*time.Second || !maps.Equal(back.Destination.DBMap, want) {
		t.Fatalf("after Marshal: refresh %v, db_map %v\n%s", back.Destination.Refresh, back.Destination.DBMap, out)
	}
	for _, tc := range []struct{ yaml, path string }{
		{"  refresh: 10ms\n", "destination.refresh"},
		{"  refresh: -1s\n", "destination.refresh"},
		{"  refresh: soon\n", "destination.refresh"},
		{"  db_map: {1: 3}\n", "destination.db_map.1"},
		{"  db_map: {1: keep}\n", "destination.db_map.1"},
		{"  db_map: {x: 0}\n", "destination.db_map"},
		{"  db_map: {-1: 0}\n", "destination.db_map"},
		{"  db_map: [1]\n", "destination.db_map"},
	} {
		_, err := Parse([]byte(shards + tc.yaml))
		var ce *Error
		if !errors.As(err, &ce) || ce.Path != tc.path {
			t.Errorf("%q: %v, want an error at %s", tc.yaml, err, tc.path)
		}
	}
}
