package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/replicaof/replicaof/tlsutil"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// DefaultPort is used when a redis:// URL names no port.
const DefaultPort = 6379

// Endpoint is a parsed redis:// or rediss:// URL: one Redis server to
// connect to. Its String, Redacted and LogValue methods never show the
// password; URI is the only method that does.
//
// The URL path may be empty, "/" or "/0". Other databases are rejected:
// a URL names a server, and replication copies every database of a source
// into the same database numbers on the destination shards. Query strings
// and fragments are rejected too.
type Endpoint struct {
	Host     string // host name or IP, without brackets; never empty
	Port     int    // 1..65535; DefaultPort when the URL has none
	User     string // ACL user; "" means the default user
	Password Secret // URL-decoded; "" means no AUTH
	TLS      bool   // true for rediss://
}

// ParseURL parses one redis:// or rediss:// URL. Errors never contain the
// password.
func ParseURL(raw string) (Endpoint, error) {
	var e Endpoint
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return e, errors.New("empty URL")
	}
	if !strings.Contains(raw, "://") {
		if scheme, _, ok := strings.Cut(raw, ":"); ok && (strings.EqualFold(scheme, "redis") || strings.EqualFold(scheme, "rediss")) {
			return e, fmt.Errorf(`missing "//" after %q`, scheme+":")
		}
		return e, errors.New("missing scheme (want redis:// or rediss://)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return e, urlError(err)
	}
	switch strings.ToLower(u.Scheme) {
	case "redis":
	case "rediss":
		e.TLS = true
	case "":
		return e, errors.New(`missing scheme (want redis:// or rediss://)`)
	default:
		return e, fmt.Errorf("unsupported scheme %q (want redis or rediss)", u.Scheme)
	}
	if u.Opaque != "" {
		return e, fmt.Errorf(`missing "//" after %q`, u.Scheme+":")
	}
	if u.User != nil {
		e.User = u.User.Username()
		pw, _ := u.User.Password()
		e.Password = Secret(pw)
	}
	if err := e.setHostPort(u); err != nil {
		return e, err
	}
	// From here on the host is known, so errors show the redacted URL
	// (unless a stray '@' suggests the "host" is really part of an
	// unescaped password).
	suspicious := strings.ContainsAny(u.Path+u.RawQuery+u.Fragment, "@")
	fail := func(msg string) error {
		if suspicious {
			return errors.New(msg + ` (characters such as "/", "?", "#" and "@" in a password must be percent-encoded)`)
		}
		return fmt.Errorf("%s: %s", e.Redacted(), msg)
	}
	switch u.Path {
	case "", "/", "/0":
	default:
		if suspicious {
			return e, fail("unsupported path")
		}
		return e, fail(fmt.Sprintf(`unsupported path %q (want none or "/0": replication covers every database)`, u.Path))
	}
	if u.RawQuery != "" {
		return e, fail("query parameters are not supported")
	}
	if u.Fragment != "" {
		return e, fail("URL fragments are not supported")
	}
	return e, nil
}

// urlError maps a net/url error to a message that cannot contain the
// password: net/url errors quote the whole URL, and some quote the part
// of it that failed, which may be a misplaced password.
func urlError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var esc url.EscapeError
	var host url.InvalidHostError
	switch {
	case errors.As(err, &esc):
		return errors.New("malformed URL: invalid percent-encoding")
	case errors.As(err, &host):
		return errors.New("malformed URL: invalid character in host")
	}
	// The remaining net/url errors are fixed strings, some followed by a
	// quoted piece of the input: keep only our own words.
	msg := err.Error()
	for _, m := range []struct{ substr, say string }{
		{"port", "invalid port (characters such as \"/\" in a password must be percent-encoded)"},
		{"userinfo", "invalid user or password (percent-encode special characters)"},
		{"IP-literal", "invalid IPv6 address in brackets"},
		{"']'", "invalid IPv6 address in brackets"},
		{"control character", "invalid control character"},
	} {
		if strings.Contains(msg, m.substr) {
			return errors.New("malformed URL: " + m.say)
		}
	}
	return errors.New("malformed URL")
}

func (e *Endpoint) setHostPort(u *url.URL) error {
	if u.Host == "" {
		return errors.New("missing host")
	}
	host := u.Hostname()
	bracketed := strings.HasPrefix(u.Host, "[")
	switch {
	case host == "":
		return errors.New("missing host")
	case bracketed:
		addr, err := netip.ParseAddr(host)
		if err != nil || !addr.Is6() {
			return errors.New("invalid IPv6 address in brackets")
		}
		host = addr.String()
	case strings.Contains(host, ":"):
		return errors.New("IPv6 addresses must be in brackets, e.g. redis://[::1]:6379")
	default:
		for _, c := range host {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
				return errors.New("malformed URL: invalid character in host")
			}
		}
		host = strings.ToLower(host)
	}
	e.Host = host
	e.Port = DefaultPort
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("invalid port %q (want 1-65535)", p)
		}
		e.Port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return errors.New("empty port")
	}
	return nil
}

// Addr is host:port for net.Dial, with brackets around IPv6 addresses.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

func (e Endpoint) scheme() string {
	if e.TLS {
		return "rediss"
	}
	return "redis"
}

// Redacted is the URL with the password replaced by "***":
// redis://:***@host:port, redis://user:***@host:port, or redis://host:port
// when there is no password. The port is always present.
func (e Endpoint) Redacted() string {
	return e.build(e.Password.redacted())
}

// URI is the full URL including the password, percent-encoded; parsing it
// gives back e. It is for writing the configuration file and for dialling,
// never for logs.
func (e Endpoint) URI() string { return e.build(string(e.Password)) }

func (e Endpoint) build(pw string) string {
	var b strings.Builder
	b.WriteString(e.scheme())
	b.WriteString("://")
	switch {
	case pw != "":
		b.WriteString(url.UserPassword(e.User, "").String()) // escaped "user:"
		if pw == redactedSecret {
			b.WriteString(pw)
		} else {
			b.WriteString(escapePassword(pw))
		}
		b.WriteByte('@')
	case e.User != "":
		b.WriteString(url.User(e.User).String())
		b.WriteByte('@')
	}
	// In a URL an IPv6 zone's "%" is itself escaped (RFC 6874).
	b.WriteString(strings.Replace(e.Addr(), "%", "%25", 1))
	return b.String()
}

// escapePassword percent-encodes everything but unreserved characters, so
// the result survives url.Parse whatever the password holds.
func escapePassword(pw string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(pw); i++ {
		c := pw[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// String is Redacted.
func (e Endpoint) String() string { return e.Redacted() }

// LogValue implements slog.LogValuer with the redacted URL.
func (e Endpoint) LogValue() slog.Value { return slog.StringValue(e.Redacted()) }

// key identifies the server for duplicate detection.
func (e Endpoint) key() string { return e.Addr() }

// TLSFiles configures TLS for a rediss:// connection. Paths are used as
// written (relative to the working directory); the files are read when the
// connection is set up (see package tlsutil), not by this package.
type TLSFiles struct {
	CA         string // PEM CA bundle to verify the server; "" = system roots
	Cert       string // PEM client certificate for mutual TLS; needs Key
	Key        string // PEM private key of Cert
	ServerName string // name to verify (SNI); "" = the URL host
	// MinVersion is "1.2" (the default when empty) or "1.3".
	MinVersion         string
	InsecureSkipVerify bool // skip server verification; demos only
}

// MinTLSVersion is MinVersion as a crypto/tls constant, TLS 1.2 by default.
// ClientOptions converts the files to tlsutil's client options; a nil t
// gives the zero options (system roots, no client certificate, TLS 1.2+).
func (t *TLSFiles) ClientOptions() tlsutil.ClientOptions {
	if t == nil {
		return tlsutil.ClientOptions{}
	}
	return tlsutil.ClientOptions{CAFile: t.CA, CertFile: t.Cert, KeyFile: t.Key, ServerName: t.ServerName,
		MinVersion: t.MinTLSVersion(), InsecureSkipVerify: t.InsecureSkipVerify}
}

func (t *TLSFiles) MinTLSVersion() uint16 {
	if t == nil {
		return tls.VersionTLS12
	}
	return minTLSVersion(t.MinVersion)
}

// minTLSVersion is a min_version setting ("1.2", the default, or "1.3")
// as a crypto/tls version.
func minTLSVersion(v string) uint16 {
	if v == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// validateMinVersion checks a min_version setting.
func validateMinVersion(v string, add func(field, msg string)) {
	switch v {
	case "", "1.2", "1.3":
	default:
		add("min_version", fmt.Sprintf(`unsupported TLS version %q (want "1.2" or "1.3")`, v))
	}
}

func (t *TLSFiles) validate(add func(field, msg string)) {
	if t == nil {
		return
	}
	validateMinVersion(t.MinVersion, add)
	if (t.Cert == "") != (t.Key == "") {
		add("cert", "cert and key must be set together")
	}
}

// ProxyTLS configures TLS on the proxy's client listener: with it, every
// client connection (not only replication) is encrypted. Paths are used
// as written; the files are read when the proxy starts (see
// tlsutil.ServerConfig).
type ProxyTLS struct {
	Cert string // PEM server certificate (with intermediates); needs Key
	Key  string // PEM private key of Cert
	// ClientCA, when set, turns on mutual TLS: clients must present a
	// certificate signed by one of these CAs (PEM bundle).
	ClientCA string
	// MinVersion is "1.2" (the default when empty) or "1.3".
	MinVersion string
	// Mode is TLSModeAll (the default when empty: every client must use
	// TLS) or TLSModeReplication (TLS for replication only: plain clients
	// are served too, but only TLS clients may log in as the admin user
	// and replicate).
	Mode string
}

// Proxy TLS modes (proxy.tls.mode), as in the reproduced product: TLS for
// all communications, or for replication only.
const (
	TLSModeAll         = "all"
	TLSModeReplication = "replication"
)

// ReplicationOnly reports whether t requires TLS for replication only.
func (t *ProxyTLS) ReplicationOnly() bool { return t.Enabled() && t.Mode == TLSModeReplication }

// Enabled reports whether t turns TLS on: a certificate is configured.
// A nil t is plain TCP.
func (t *ProxyTLS) Enabled() bool { return t != nil && t.Cert != "" }

// ServerOptions converts t to tlsutil's server options.
func (t *ProxyTLS) ServerOptions() tlsutil.ServerOptions {
	if t == nil {
		return tlsutil.ServerOptions{}
	}
	return tlsutil.ServerOptions{CertFile: t.Cert, KeyFile: t.Key, ClientCAFile: t.ClientCA, MinVersion: minTLSVersion(t.MinVersion)}
}

func (t *ProxyTLS) validate(add func(field, msg string)) {
	if t == nil {
		return
	}
	validateMinVersion(t.MinVersion, add)
	switch t.Mode {
	case "", TLSModeAll, TLSModeReplication:
	default:
		add("mode", fmt.Sprintf(`unknown mode %q (want %q or %q)`, t.Mode, TLSModeAll, TLSModeReplication))
	}
	if (t.Cert == "") != (t.Key == "") {
		add("cert", "cert and key must be set together")
	} else if t.Cert == "" && (t.ClientCA != "" || t.MinVersion != "" || t.Mode != "") {
		add("cert", "client_ca, min_version and mode need cert and key")
	}
}

// Source is one Redis database to replicate from. Its String, Redacted and
// LogValue never show the password.
type Source struct {
	// Name labels the source in status, logs and metrics; unique. It
	// defaults to the address, host:port.
	Name string
	Endpoint
	// Compression is 0 (off) or a gzip level 1-9 for the replication
	// link.
	Compression int
	// TLSFiles configures TLS for a rediss:// source; nil means system
	// roots and no client certificate.
	TLSFiles *TLSFiles
}

// ParseSource parses the string form of a source: "URL" or "name: URL",
// where the name is a label before ": ". The name defaults to host:port.
func ParseSource(s string) (Source, error) {
	var src Source
	s = strings.TrimSpace(s)
	if i, j := strings.Index(s, ": "), strings.Index(s, "://"); i >= 0 && (j < 0 || i < j) {
		src.Name = strings.TrimSpace(s[:i])
		if err := checkName(src.Name); err != nil {
			return src, err
		}
		s = s[i+2:]
	}
	ep, err := ParseURL(s)
	if err != nil {
		return src, err
	}
	src.Endpoint = ep
	if src.Name == "" {
		src.Name = ep.Addr()
	}
	return src, nil
}

// checkName accepts 1-64 letters, digits and "-_.:[]%".
func checkName(name string) error {
	if name == "" {
		return errors.New("empty source name")
	}
	if len(name) > 64 {
		return errors.New("source name longer than 64 bytes")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:[]%", c)) {
			return fmt.Errorf("invalid character %q in source name (want letters, digits and -_.:[]%%)", c)
		}
	}
	return nil
}

// Redacted is the redacted URL (see Endpoint.Redacted), without the name.
func (s Source) Redacted() string { return s.Endpoint.Redacted() }

// String is "name: redacted URL", or the redacted URL when the name is the
// default (the address).
func (s Source) String() string {
	if s.Name == "" || s.Name == s.Addr() {
		return s.Redacted()
	}
	return s.Name + ": " + s.Redacted()
}

// LogValue implements slog.LogValuer: a group with the name and the
// redacted URL.
func (s Source) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", s.Name), slog.String("uri", s.Redacted()))
}
