// Package tlsutil builds *tls.Config values from PEM files and generates
// a demo certificate authority.
//
// Client configs are for outgoing connections, such as the syncer dialling
// a rediss:// source: a CA bundle to verify the server (system roots by
// default), an optional client certificate for mutual TLS (the "syncer
// certificate"), and a server name that defaults to the dialled host.
// Server configs are for listeners, such as the proxy: a certificate and
// key, and optionally a client CA, which makes client certificates
// required. Both sides use TLS 1.2 or later; 1.3 can be required, nothing
// lower can be set.
//
// Files are read when the config is built, and errors name the file:
//
//	tlsutil: ca.pem: no certificates found
//	tlsutil: syncer.key: no such file or directory
//
// GenerateDemo writes a CA, a syncer certificate and a proxy certificate
// for local testing (replicaof certs --out DIR):
//
//	files, err := tlsutil.GenerateDemo("certs", []string{"redis.local"})
//	if err != nil {
//		return err
//	}
//	srv, err := tlsutil.ServerConfig(tlsutil.ServerOptions{
//		CertFile: files.ProxyCert, KeyFile: files.ProxyKey, ClientCAFile: files.CA,
//	})
//	...
//	cli, err := tlsutil.ClientConfig("127.0.0.1:6379", tlsutil.ClientOptions{
//		CAFile: files.CA, CertFile: files.SyncerCert, KeyFile: files.SyncerKey,
//	})
//
// A config.TLSFiles maps onto ClientOptions field by field, with
// MinVersion from TLSFiles.MinTLSVersion.
package tlsutil
