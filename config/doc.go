// Package config reads the replicaof YAML file into validated structs and
// parses source URLs.
//
// # File
//
// Every field is optional except destination.shards; defaults are shown.
//
//	proxy:
//	  listen: "127.0.0.1:6380"  # host:port of the RESP proxy
//	  password: ""              # clients must AUTH with it when set
//	  allow_writes: false       # false: writes get -READONLY
//	  max_bulk: 512mb           # bytes per bulk string (k/kb, m/mb, g/gb = powers of 1024)
//	  max_args: 1048576         # arguments per command
//	  max_inline: 64kb          # bytes per inline command
//	  max_blocking: 1024        # shard connections held by blocked (BLPOP…) or WATCHing clients
//	  timeout: 0                # close idle clients after this ("5m", or seconds); 0 = never
//	  loops: auto               # event loops for plain-TCP clients (auto = GOMAXPROCS); 0 = a goroutine per client
//	  max_pending: 64mb         # replies waiting for one client before its input is paused; closed past 4x
//	  tls:                      # optional: TLS for clients too (off when absent)
//	    cert: proxy.pem         # server certificate and key, set together
//	    key: proxy.key
//	    client_ca: ""           # set: clients must present a certificate it signed (mutual TLS)
//	    min_version: "1.2"      # or "1.3"
//	admin:
//	  listen: "127.0.0.1:8380"  # REST /v1, /metrics, dashboard
//	  token: ""                 # bearer token for /v1 when set
//	destination:
//	  shards: ["redis://127.0.0.1:7001", "redis://127.0.0.1:7002"]  # at least one
//	  tls: { ca: ca.pem }       # optional, for rediss:// shards
//	replica_of:
//	  sources:                  # at most 32 (MaxSources); may be empty
//	    - "orders: redis://admin:secret@10.0.0.5:12000"
//	    - { uri: "rediss://:p%40ss@host:6379", compression: 6,
//	        tls: { ca: ca.pem, cert: syncer.pem, key: syncer.key } }
//	  cross_shard: emulate      # or stop: a command whose keys span shards stops sync
//	  ttl_grace: 5m             # added to every TTL on the destination; 0 = off
//	  unsupported_keys: stop    # or skip: keys the destination cannot take
//	  lease: 10s                # HA: the destination's lease (several instances)
//	state_dir: "./replicaof-state"
//	log: { level: info, format: text }  # debug|info|warn|error, text|json
//
// A source is a string, "URL" or "name: URL" (quote it: unquoted, YAML
// reads "name: URL" as a mapping), or a mapping with name, uri,
// compression (0 = off, 1-9 = gzip level) and tls (ca, cert, key,
// server_name, min_version "1.2" or "1.3", insecure_skip_verify). The
// name defaults to host:port. Names and addresses must be unique, and no
// source may be a destination shard.
//
// # URLs
//
// Accepted: redis://host, redis://host:port, redis://:password@host:port,
// redis://user:password@host:port, the same with rediss:// for TLS, and
// IPv6 literals in brackets (redis://[::1]:6379). The port defaults to
// 6379. Passwords are percent-decoded, so "/", "@", "?", "#" and ":" in a
// password must be percent-encoded. The path may be empty, "/" or "/0"
// only: a URL names a server, and replication copies every database of a
// source into the same database numbers on the destination shards. Query
// strings and fragments are rejected.
//
// # Secrets
//
// Passwords and tokens are of type Secret, which prints as "***" through
// fmt, slog, JSON and YAML. Endpoint and Source print the redacted URL
// (redis://:***@host:port) through String, Redacted and LogValue, and no
// error of this package contains a password. Endpoint.URI and
// Config.Marshal are the only ways to get the clear text back: they exist
// to dial and to write the file.
//
// # Errors
//
// Parse reports every problem it finds, joined; each is an *Error with
// the YAML line and column and the field path, for example
//
//	config: line 7, column 7: replica_of.sources[2]: unsupported scheme "http" (want redis or rediss)
//
// Unknown fields are errors. TLS files are not read here; package
// tlsutil reads them when connections are set up.
package config
