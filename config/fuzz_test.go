package config

import (
	"net/url"
	"os"
	"strings"
	"testing"
)

// staticText is every fixed word our URL errors may contain; a password
// that is a piece of it cannot be told apart from our own words.
const staticText = `empty URL missing scheme (want redis:// or rediss://) unsupported scheme (want redis or rediss)
missing "//" after malformed URL: invalid percent-encoding invalid character in host invalid port (characters such as "/" in a
password must be percent-encoded) invalid user or password (percent-encode special characters) invalid IPv6 address in
brackets invalid control character missing host IPv6 addresses must be in brackets, e.g. redis://[::1]:6379 empty port
(want 1-65535) unsupported path (want none or "/0": replication covers every database) query parameters are not supported
URL fragments are not supported (characters such as "/", "?", "#" and "@" in a password must be percent-encoded)
empty source name source name longer than 64 bytes invalid character in source name (want letters, digits and -_.:[]%) ***`

func FuzzSourceURL(f *testing.F) {
	for _, s := range []string{
		"orders: redis://admin:secret@10.0.0.5:12000",
		"redis://:p%40ss@host:6379",
		"redis://user:pw@host:6379",
		"redis://host:6379",
		"rediss://:pw@[::1]:7000/0",
		"redis://[fe80::1%25eth0]",
		"redis://h",
		"http://h",
		"redis://h:1/2?x=y#z",
		"redis://user:sec/ret@h",
		"redis://:secret%zz@h",
		": redis://h",
		"a: b: redis://h",
		"redis://[::1",
		"REDIS://H:0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		src, err := ParseSource(in)
		if err != nil {
			if u, perr := url.Parse(strings.TrimSpace(in)); perr == nil && u.User != nil {
				pw, _ := u.User.Password()
				if len(pw) >= 6 && strings.Count(in, pw) == 1 && !strings.Contains(staticText, pw) &&
					strings.Contains(err.Error(), pw) {
					t.Fatalf("ParseSource(%q) error shows password %q: %v", in, pw, err)
				}
			}
			return
		}
		if src.Name == "" || src.Host == "" || src.Port < 1 || src.Port > 65535 {
			t.Fatalf("ParseSource(%q) = %#v: incomplete", in, src)
		}
		again, err := ParseURL(src.URI())
		if err != nil || again != src.Endpoint {
			t.Fatalf("ParseURL(URI()=%q) = %#v, %v; want %#v", src.URI(), again, err, src.Endpoint)
		}
		red, err := ParseURL(src.Redacted())
		if err != nil {
			t.Fatalf("ParseURL(Redacted()=%q): %v", src.Redacted(), err)
		}
		if string(red.Password) != src.Password.redacted() {
			t.Fatalf("Redacted() = %q shows a password", src.Redacted())
		}
		if named, err := ParseSource(src.Name + ": " + src.URI()); err != nil || named != src {
			t.Fatalf("ParseSource(name: URI) = %#v, %v; want %#v", named, err, src)
		}
	})
}

func FuzzParse(f *testing.F) {
	golden, err := os.ReadFile("testdata/golden.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	for _, s := range []string{
		"",
		"destination: { shards: [redis://d:1] }",
		"destination: { shards: [redis://d:1] }\nreplica_of: { sources: [\"a: redis://h:1\", { uri: \"rediss://h:2\", compression: 3, tls: { ca: x } }] }",
		"proxy: { listen: \":0\", timeout: 30, max_bulk: 1gb }\nadmin: { listen: \":0\" }\ndestination: { shards: [redis://d:1] }",
		"proxy: { tls: { cert: p.pem, key: p.key, client_ca: ca.pem, min_version: \"1.3\" } }\ndestination: { shards: [redis://d:1] }",
		"proxy: { read_from: any, max_replica_lag: 2s }\ndestination: { shards: [redis://d:1, { uri: redis://d:2, replicas: [redis://r:2] }] }",
		"a: &x [1]\nb: *x",
		"- a",
		"proxy: {",
		"---\n---\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal()) = %v\ninput:\n%s\noutput:\n%s", err, data, out)
		}
		if !equal(again, c) {
			t.Fatalf("round trip differs\ninput:\n%s\noutput:\n%s", data, out)
		}
	})
}
