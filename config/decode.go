package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder walks a yaml.Node tree into a Config by hand, so that every
// value keeps its line and column and unknown fields are errors.
type decoder struct {
	c    *Config
	errs []error
}

type fieldFunc func(n *yaml.Node, path string)

func decode(data []byte) (*Config, error) {
	c := &Config{pos: make(map[string]position)}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return c, nil // empty file: all defaults
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{Line: extra.Line, Column: extra.Column, Err: errors.New("more than one YAML document")}
	} else if !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config: %w", err)
	}
	d := &decoder{c: c}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return c, nil
		}
		root = root.Content[0]
	}
	d.mapping(root, "", map[string]fieldFunc{
		"proxy":       d.proxy,
		"admin":       d.admin,
		"destination": d.destination,
		"replica_of":  d.replicaOf,
		"state_dir":   func(n *yaml.Node, p string) { c.StateDir, _ = d.str(n, p) },
		"log":         d.log,
	})
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	return c, nil
}

func (d *decoder) fail(n *yaml.Node, path string, err error) {
	d.errs = append(d.errs, &Error{Line: n.Line, Column: n.Column, Path: path, Err: err})
}

func (d *decoder) failf(n *yaml.Node, path, format string, args ...any) {
	d.fail(n, path, fmt.Errorf(format, args...))
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a scalar"
	}
	return "an unexpected node"
}

// mapping decodes a YAML mapping, calling fields[key] for each key. A
// null node is an empty mapping.
func (d *decoder) mapping(n *yaml.Node, path string, fields map[string]fieldFunc) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.failf(n, path, "want a mapping, got %s", kindName(n))
		return
	}
	seen := make(map[string]bool)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.failf(k, path, "mapping key must be a string")
			continue
		}
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		f, ok := fields[k.Value]
		if !ok {
			d.failf(k, path, "unknown field %q", k.Value)
			continue
		}
		if seen[k.Value] {
			d.failf(k, p, "field set twice")
			continue
		}
		seen[k.Value] = true
		rv := resolve(v)
		d.c.pos[p] = position{rv.Line, rv.Column}
		f(rv, p)
	}
}

// sequence calls item for each element of a YAML list; null is empty.
func (d *decoder) sequence(n *yaml.Node, path string, item func(n *yaml.Node, path string)) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.failf(n, path, "want a list, got %s", kindName(n))
		return
	}
	for i, e := range n.Content {
		e = resolve(e)
		p := fmt.Sprintf("%s[%d]", path, i)
		d.c.pos[p] = position{e.Line, e.Column}
		item(e, p)
	}
}

// str accepts any scalar and returns its text as written; null is "".
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		d.failf(n, path, "want a string, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) boolean(n *yaml.Node, path string) bool {
	s, ok := d.str(n, path)
	switch {
	case !ok:
	case s == "":
	case strings.EqualFold(s, "true"):
		return true
	case strings.EqualFold(s, "false"):
	default:
		d.failf(n, path, "invalid boolean %q (want true or false)", s)
	}
	return false
}

func (d *decoder) integer(n *yaml.Node, path string) int64 {
	s, ok := d.str(n, path)
	if !ok || s == "" {
		return 0
	}
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		d.failf(n, path, "invalid integer %q", s)
		return 0
	}
	return v
}

// intField decodes an int that must fit in 32 bits.
func (d *decoder) intField(n *yaml.Node, path string) int {
	v := d.integer(n, path)
	if v > math.MaxInt32 || v < math.MinInt32 {
		d.failf(n, path, "%d out of range", v)
		return 0
	}
	return int(v)
}

// size decodes a byte count: an integer or a number with a k/kb/m/mb/g/gb
// suffix (powers of 1024, as in redis.conf).
func (d *decoder) size(n *yaml.Node, path string) int64 {
	s, ok := d.str(n, path)
	if !ok || s == "" {
		return 0
	}
	v, err := parseSize(s)
	if err != nil {
		d.fail(n, path, err)
	}
	return v
}

func parseSize(s string) (int64, error) {
	num, mult := strings.ToLower(strings.TrimSpace(s)), int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v > math.MaxInt64/mult || v < math.MinInt64/mult {
		return 0, fmt.Errorf("invalid size %q (want bytes, or a number with kb, mb or gb)", s)
	}
	return v * mult, nil
}

// duration decodes a Go duration ("30s") or an integer number of seconds.
func (d *decoder) duration(n *yaml.Node, path string) time.Duration {
	s, ok := d.str(n, path)
	if !ok || s == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		if secs > int64(math.MaxInt64/time.Second) || secs < int64(math.MinInt64/time.Second) {
			d.failf(n, path, "%d seconds out of range", secs)
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.failf(n, path, "invalid duration %q (want e.g. 30s or 5m, or seconds)", s)
	}
	return v
}

func (d *decoder) proxy(n *yaml.Node, path string) {
	p := &d.c.Proxy
	d.mapping(n, path, map[string]fieldFunc{
		"listen":       func(n *yaml.Node, path string) { p.Listen, _ = d.str(n, path) },
		"password":     func(n *yaml.Node, path string) { s, _ := d.str(n, path); p.Password = Secret(s) },
		"allow_writes": func(n *yaml.Node, path string) { p.AllowWrites = d.boolean(n, path) },
		"max_bulk":     func(n *yaml.Node, path string) { p.MaxBulk = d.size(n, path) },
		"max_args":     func(n *yaml.Node, path string) { p.MaxArgs = d.intField(n, path) },
		"max_blocking": func(n *yaml.Node, path string) { p.MaxBlocking = d.intField(n, path) },
		"max_inline": func(n *yaml.Node, path string) {
			v := d.size(n, path)
			if v > math.MaxInt32 {
				d.failf(n, path, "%d out of range", v)
				return
			}
			p.MaxInline = int(v)
		},
		"timeout":         func(n *yaml.Node, path string) { p.Timeout = d.duration(n, path) },
		"tls":             func(n *yaml.Node, path string) { p.TLS = d.proxyTLS(n, path) },
		"read_from":       func(n *yaml.Node, path string) { p.ReadFrom, _ = d.str(n, path) },
		"max_replica_lag": func(n *yaml.Node, path string) { p.MaxReplicaLag = d.duration(n, path) },
		"loops":           func(n *yaml.Node, path string) { p.Loops = d.loops(n, path) },
		"max_pending":     func(n *yaml.Node, path string) { p.MaxPending = d.size(n, path) },
	})
}

// loops decodes proxy.loops: "auto" (nil) or a number of loops.
func (d *decoder) loops(n *yaml.Node, path string) *int {
	s, ok := d.str(n, path)
	if !ok || s == "" || strings.EqualFold(s, "auto") {
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		d.failf(n, path, "invalid value %q (want auto or a number of loops)", s)
		return nil
	}
	l := int(v)
	return &l
}

func (d *decoder) proxyTLS(n *yaml.Node, path string) *ProxyTLS {
	if isNull(n) {
		return nil
	}
	t := &ProxyTLS{}
	d.mapping(n, path, map[string]fieldFunc{
		"cert":        func(n *yaml.Node, path string) { t.Cert, _ = d.str(n, path) },
		"key":         func(n *yaml.Node, path string) { t.Key, _ = d.str(n, path) },
		"client_ca":   func(n *yaml.Node, path string) { t.ClientCA, _ = d.str(n, path) },
		"min_version": func(n *yaml.Node, path string) { t.MinVersion, _ = d.str(n, path) },
		"mode":        func(n *yaml.Node, path string) { t.Mode, _ = d.str(n, path) },
	})
	return t
}

func (d *decoder) admin(n *yaml.Node, path string) {
	a := &d.c.Admin
	d.mapping(n, path, map[string]fieldFunc{
		"listen": func(n *yaml.Node, path string) { a.Listen, _ = d.str(n, path) },
		"token":  func(n *yaml.Node, path string) { s, _ := d.str(n, path); a.Token = Secret(s) },
	})
}

func (d *decoder) destination(n *yaml.Node, path string) {
	dst := &d.c.Destination
	d.mapping(n, path, map[string]fieldFunc{
		"shards": func(n *yaml.Node, path string) {
			d.sequence(n, path, func(n *yaml.Node, path string) {
				ep, reps, ok := d.shard(n, path)
				if !ok {
					return
				}
				if len(reps) > 0 {
					for len(dst.Replicas) < len(dst.Shards) {
						dst.Replicas = append(dst.Replicas, nil)
					}
					dst.Replicas = append(dst.Replicas, reps)
				}
				dst.Shards = append(dst.Shards, ep)
			})
		},
		"tls":     func(n *yaml.Node, path string) { dst.TLS = d.tls(n, path) },
		"refresh": func(n *yaml.Node, path string) { dst.Refresh = d.duration(n, path) },
		"db_map":  func(n *yaml.Node, path string) { dst.DBMap = d.dbMap(n, path) },
	})
}

// dbMap decodes destination.db_map: a mapping of database numbers to 0
// or "drop".
func (d *decoder) dbMap(n *yaml.Node, path string) map[int]int {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.failf(n, path, "want a mapping of databases (e.g. {1: 0, 2: drop}), got %s", kindName(n))
		return nil
	}
	m := map[int]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		db, err := strconv.Atoi(k.Value)
		if k.Kind != yaml.ScalarNode || err != nil {
			d.failf(k, path, "database %q: want a number", k.Value)
			continue
		}
		p := path + "." + k.Value
		if _, dup := m[db]; dup {
			d.failf(k, p, "database set twice")
			continue
		}
		d.c.pos[p] = position{v.Line, v.Column}
		switch s, _ := d.str(v, p); s {
		case "drop":
			m[db] = DBDrop
		default:
			to, err := strconv.Atoi(s)
			if err != nil {
				d.failf(v, p, "%q: want 0 or drop", s)
				continue
			}
			m[db] = to
		}
	}
	return m
}

// shard decodes one destination shard: a URL, or a mapping
// {uri: URL, replicas: [URL, …]}.
func (d *decoder) shard(n *yaml.Node, path string) (Endpoint, []Endpoint, bool) {
	url := func(n *yaml.Node, path string) (Endpoint, bool) {
		s, ok := d.str(n, path)
		if !ok {
			return Endpoint{}, false
		}
		ep, err := ParseURL(s)
		if err != nil {
			d.fail(n, path, err)
			return Endpoint{}, false
		}
		return ep, true
	}
	if n.Kind != yaml.MappingNode {
		ep, ok := url(n, path)
		return ep, nil, ok
	}
	var ep Endpoint
	var reps []Endpoint
	var hasURI bool
	ok := true
	d.mapping(n, path, map[string]fieldFunc{
		"uri": func(n *yaml.Node, path string) { ep, hasURI = url(n, path); ok = ok && hasURI },
		"replicas": func(n *yaml.Node, path string) {
			d.sequence(n, path, func(n *yaml.Node, path string) {
				if r, good := url(n, path); good {
					reps = append(reps, r)
				}
			})
		},
	})
	if !hasURI && ok {
		d.failf(n, path, "a shard given as a mapping needs uri")
		return Endpoint{}, nil, false
	}
	return ep, reps, ok && hasURI
}

func (d *decoder) replicaOf(n *yaml.Node, path string) {
	r := &d.c.ReplicaOf
	d.mapping(n, path, map[string]fieldFunc{
		"sources": func(n *yaml.Node, path string) {
			d.sequence(n, path, func(n *yaml.Node, path string) {
				if src, ok := d.source(n, path); ok {
					r.Sources = append(r.Sources, src)
				}
			})
		},
		"cross_shard": func(n *yaml.Node, path string) { r.CrossShard, _ = d.str(n, path) },
		"ttl_grace": func(n *yaml.Node, path string) {
			if isNull(n) || n.Kind == yaml.ScalarNode && n.Value == "" {
				return // the default; 0 turns the grace off
			}
			g := d.duration(n, path)
			r.TTLGrace = &g
		},
		"unsupported_keys": func(n *yaml.Node, path string) { r.UnsupportedKeys, _ = d.str(n, path) },
		"lease":            func(n *yaml.Node, path string) { r.Lease = d.duration(n, path) },
	})
}

// source decodes one list item: "name: URL", "URL", or a mapping.
func (d *decoder) source(n *yaml.Node, path string) (Source, bool) {
	switch {
	case isNull(n):
		d.failf(n, path, "empty source")
		return Source{}, false
	case n.Kind == yaml.ScalarNode:
		src, err := ParseSource(n.Value)
		if err != nil {
			d.fail(n, path, err)
			return src, false
		}
		return src, true
	case n.Kind != yaml.MappingNode:
		d.failf(n, path, "want a string or a mapping, got %s", kindName(n))
		return Source{}, false
	}
	if len(n.Content) == 2 {
		// "- orders: redis://…" unquoted is a one-key mapping, not a name.
		k := resolve(n.Content[0])
		switch k.Value {
		case "name", "uri", "compression", "tls":
		default:
			d.failf(k, path, "unknown field %q in source (to name a source, quote the item: \"%s: redis://…\")", k.Value, k.Value)
			return Source{}, false
		}
	}
	var (
		src    Source
		uri    *yaml.Node
		nameAt *yaml.Node
		errs   = len(d.errs)
	)
	d.mapping(n, path, map[string]fieldFunc{
		"name":        func(n *yaml.Node, path string) { src.Name, _ = d.str(n, path); nameAt = n },
		"uri":         func(n *yaml.Node, path string) { uri = n },
		"compression": func(n *yaml.Node, path string) { src.Compression = d.intField(n, path) },
		"tls":         func(n *yaml.Node, path string) { src.TLSFiles = d.tls(n, path) },
	})
	if len(d.errs) > errs {
		return src, false
	}
	if uri == nil {
		d.failf(n, path, "missing uri")
		return src, false
	}
	s, ok := d.str(uri, path+".uri")
	if !ok {
		return src, false
	}
	ep, err := ParseURL(s)
	if err != nil {
		d.fail(uri, path+".uri", err)
		return src, false
	}
	src.Endpoint = ep
	if nameAt != nil && src.Name == "" {
		d.failf(nameAt, path+".name", "empty source name")
		return src, false
	}
	if src.Name == "" {
		src.Name = ep.Addr()
	}
	return src, true
}

func (d *decoder) tls(n *yaml.Node, path string) *TLSFiles {
	if isNull(n) {
		return nil
	}
	t := &TLSFiles{}
	d.mapping(n, path, map[string]fieldFunc{
		"ca":                   func(n *yaml.Node, path string) { t.CA, _ = d.str(n, path) },
		"cert":                 func(n *yaml.Node, path string) { t.Cert, _ = d.str(n, path) },
		"key":                  func(n *yaml.Node, path string) { t.Key, _ = d.str(n, path) },
		"server_name":          func(n *yaml.Node, path string) { t.ServerName, _ = d.str(n, path) },
		"min_version":          func(n *yaml.Node, path string) { t.MinVersion, _ = d.str(n, path) },
		"insecure_skip_verify": func(n *yaml.Node, path string) { t.InsecureSkipVerify = d.boolean(n, path) },
	})
	return t
}

func (d *decoder) log(n *yaml.Node, path string) {
	l := &d.c.Log
	d.mapping(n, path, map[string]fieldFunc{
		"level":  func(n *yaml.Node, path string) { l.Level, _ = d.str(n, path) },
		"format": func(n *yaml.Node, path string) { l.Format, _ = d.str(n, path) },
	})
}
