package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// The file layout written by Marshal. Secrets are written in full: the
// file is the one place they are kept.
type (
	fileConfig struct {
		Proxy       fileProxy       `yaml:"proxy"`
		Admin       fileAdmin       `yaml:"admin"`
		Destination fileDestination `yaml:"destination"`
		ReplicaOf   fileReplicaOf   `yaml:"replica_of"`
		StateDir    string          `yaml:"state_dir,omitempty"`
		Log         fileLog         `yaml:"log"`
	}
	fileProxy struct {
		Listen      string        `yaml:"listen,omitempty"`
		Password    string        `yaml:"password,omitempty"`
		AllowWrites bool          `yaml:"allow_writes"`
		MaxBulk     int64         `yaml:"max_bulk,omitempty"`
		MaxArgs     int           `yaml:"max_args,omitempty"`
		MaxInline   int           `yaml:"max_inline,omitempty"`
		MaxBlocking int           `yaml:"max_blocking,omitempty"`
		Timeout     string        `yaml:"timeout,omitempty"`
		TLS         *fileProxyTLS `yaml:"tls,omitempty"`
		ReadFrom    string        `yaml:"read_from,omitempty"`
		MaxLag      string        `yaml:"max_replica_lag,omitempty"`
		Loops       *int          `yaml:"loops,omitempty"`
		MaxPending  int64         `yaml:"max_pending,omitempty"`
	}
	fileProxyTLS struct {
		Cert       string `yaml:"cert,omitempty"`
		Key        string `yaml:"key,omitempty"`
		ClientCA   string `yaml:"client_ca,omitempty"`
		MinVersion string `yaml:"min_version,omitempty"`
		Mode       string `yaml:"mode,omitempty"`
	}
	fileAdmin struct {
		Listen string `yaml:"listen,omitempty"`
		Token  string `yaml:"token,omitempty"`
	}
	fileDestination struct {
		Shards  []any          `yaml:"shards"` // string or fileShard
		TLS     *fileTLS       `yaml:"tls,omitempty"`
		Refresh string         `yaml:"refresh,omitempty"`
		DBMap   map[int]string `yaml:"db_map,omitempty"`
	}
	fileShard struct {
		URI      string   `yaml:"uri"`
		Replicas []string `yaml:"replicas"`
	}
	fileReplicaOf struct {
		Sources         []any  `yaml:"sources"` // string or fileSource
		CrossShard      string `yaml:"cross_shard,omitempty"`
		TTLGrace        string `yaml:"ttl_grace,omitempty"`
		UnsupportedKeys string `yaml:"unsupported_keys,omitempty"`
		Lease           string `yaml:"lease,omitempty"`
	}
	fileSource struct {
		Name        string   `yaml:"name,omitempty"`
		URI         string   `yaml:"uri"`
		Compression int      `yaml:"compression,omitempty"`
		TLS         *fileTLS `yaml:"tls,omitempty"`
	}
	fileTLS struct {
		CA                 string `yaml:"ca,omitempty"`
		Cert               string `yaml:"cert,omitempty"`
		Key                string `yaml:"key,omitempty"`
		ServerName         string `yaml:"server_name,omitempty"`
		MinVersion         string `yaml:"min_version,omitempty"`
		InsecureSkipVerify bool   `yaml:"insecure_skip_verify,omitempty"`
	}
	fileLog struct {
		Level  string `yaml:"level,omitempty"`
		Format string `yaml:"format,omitempty"`
	}
)

func toFileTLS(t *TLSFiles) *fileTLS {
	if t == nil {
		return nil
	}
	f := fileTLS(*t)
	return &f
}

// Marshal encodes c as YAML that Parse reads back to an equal Config.
// The output contains passwords and tokens in clear: write it to a file
// with restricted permissions (see WriteFile), never to a log. Comments in
// the original file are not kept.
func (c *Config) Marshal() ([]byte, error) {
	f := fileConfig{
		Proxy: fileProxy{
			Listen:      c.Proxy.Listen,
			Password:    string(c.Proxy.Password),
			AllowWrites: c.Proxy.AllowWrites,
			MaxBulk:     c.Proxy.MaxBulk,
			MaxArgs:     c.Proxy.MaxArgs,
			MaxInline:   c.Proxy.MaxInline,
			MaxBlocking: c.Proxy.MaxBlocking,
			ReadFrom:    c.Proxy.ReadFrom,
			Loops:       c.Proxy.Loops,
			MaxPending:  c.Proxy.MaxPending,
		},
		Admin:       fileAdmin{Listen: c.Admin.Listen, Token: string(c.Admin.Token)},
		Destination: fileDestination{Shards: []any{}, TLS: toFileTLS(c.Destination.TLS)},
		ReplicaOf:   fileReplicaOf{Sources: []any{}, CrossShard: c.ReplicaOf.CrossShard, UnsupportedKeys: c.ReplicaOf.UnsupportedKeys},
		StateDir:    c.StateDir,
		Log:         fileLog(c.Log),
	}
	if t := c.Proxy.TLS; t != nil {
		f.Proxy.TLS = &fileProxyTLS{Cert: t.Cert, Key: t.Key, ClientCA: t.ClientCA, MinVersion: t.MinVersion, Mode: t.Mode}
	}
	if c.ReplicaOf.Lease != 0 {
		f.ReplicaOf.Lease = c.ReplicaOf.Lease.String()
	}
	if c.Destination.Refresh != 0 {
		f.Destination.Refresh = c.Destination.Refresh.String()
	}
	for db, to := range c.Destination.DBMap {
		if f.Destination.DBMap == nil {
			f.Destination.DBMap = map[int]string{}
		}
		f.Destination.DBMap[db] = strconv.Itoa(to)
		if to == DBDrop {
			f.Destination.DBMap[db] = "drop"
		}
	}
	if g := c.ReplicaOf.TTLGrace; g != nil {
		f.ReplicaOf.TTLGrace = g.String()
	}
	if c.Proxy.Timeout != 0 {
		f.Proxy.Timeout = c.Proxy.Timeout.String()
	}
	if c.Proxy.MaxReplicaLag != 0 {
		f.Proxy.MaxLag = c.Proxy.MaxReplicaLag.String()
	}
	for i, s := range c.Destination.Shards {
		if i < len(c.Destination.Replicas) && len(c.Destination.Replicas[i]) > 0 {
			fs := fileShard{URI: s.URI()}
			for _, r := range c.Destination.Replicas[i] {
				fs.Replicas = append(fs.Replicas, r.URI())
			}
			f.Destination.Shards = append(f.Destination.Shards, fs)
			continue
		}
		f.Destination.Shards = append(f.Destination.Shards, s.URI())
	}
	f.ReplicaOf.Sources = fileSources(c.ReplicaOf.Sources)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&f); err != nil {
		return nil, fmt.Errorf("config: marshal: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: marshal: %w", err)
	}
	return buf.Bytes(), nil
}

// MarshalSources encodes a source list (passwords included) as the
// replica_of section of a config file; ParseSources reads it back.
func MarshalSources(srcs []Source) ([]byte, error) {
	f := struct {
		ReplicaOf struct {
			Sources []any `yaml:"sources"`
		} `yaml:"replica_of"`
	}{}
	f.ReplicaOf.Sources = fileSources(srcs)
	b, err := yaml.Marshal(&f)
	if err != nil {
		return nil, fmt.Errorf("config: marshal sources: %w", err)
	}
	return b, nil
}

// ParseSources reads what MarshalSources wrote, checked as in a config
// file.
func ParseSources(data []byte) ([]Source, error) {
	c, err := decode(data)
	if err != nil {
		return nil, err
	}
	c.withDefaults()
	return c.ReplicaOf.Sources, nil
}

func fileSources(srcs []Source) []any {
	out := []any{}
	for _, s := range srcs {
		name := s.Name
		if name == s.Addr() {
			name = "" // the default
		}
		if s.Compression == 0 && s.TLSFiles == nil {
			item := s.URI()
			if name != "" {
				item = name + ": " + item
			}
			out = append(out, item)
			continue
		}
		out = append(out, fileSource{
			Name: name, URI: s.URI(), Compression: s.Compression, TLS: toFileTLS(s.TLSFiles),
		})
	}
	return out
}

// WriteFile writes c.Marshal() to path atomically (a temporary file in
// the same directory, then rename) with mode 0600, since the file holds
// passwords.
func (c *Config) WriteFile(path string) error {
	data, err := c.Marshal()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("config: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("config: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}
