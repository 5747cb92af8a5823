package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
)

// ClientOptions describe the TLS side of an outgoing connection, e.g. the
// syncer dialling a rediss:// source. The zero value verifies the server
// against the system roots with TLS 1.2 or later.
type ClientOptions struct {
	// CAFile is a PEM bundle of CAs that sign the server certificate;
	// "" means the system roots.
	CAFile string
	// CertFile and KeyFile are the client certificate and key presented
	// for mutual TLS (the syncer certificate). Both or neither.
	CertFile, KeyFile string
	// ServerName is checked against the server certificate and sent as
	// SNI; "" means the host given to ClientConfig.
	ServerName string
	// MinVersion is tls.VersionTLS12 (the default when 0) or
	// tls.VersionTLS13. Anything lower is an error.
	MinVersion uint16
	// InsecureSkipVerify disables server verification. For demos only.
	InsecureSkipVerify bool
}

// ServerOptions describe the TLS side of a listener, e.g. the proxy.
type ServerOptions struct {
	// CertFile and KeyFile are the server certificate (with any
	// intermediates) and its key. Required.
	CertFile, KeyFile string
	// ClientCAFile, when set, turns on mutual TLS: clients must present
	// a certificate signed by one of these CAs.
	ClientCAFile string
	// MinVersion as in ClientOptions.
	MinVersion uint16
}

// ClientConfig builds a client *tls.Config for a connection to host
// ("name", "ip" or "host:port"). It reads the files now; the returned
// config does not touch the file system.
func ClientConfig(host string, o ClientOptions) (*tls.Config, error) {
	minVer, err := minVersion(o.MinVersion)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:         minVer,
		ServerName:         o.ServerName,
		InsecureSkipVerify: o.InsecureSkipVerify,
	}
	if cfg.ServerName == "" {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		cfg.ServerName = strings.Trim(host, "[]")
	}
	if cfg.ServerName == "" && !o.InsecureSkipVerify {
		return nil, errors.New("tlsutil: no server name to verify (set a host or ServerName)")
	}
	if o.CAFile != "" {
		if cfg.RootCAs, err = LoadCertPool(o.CAFile); err != nil {
			return nil, err
		}
	}
	if o.CertFile != "" || o.KeyFile != "" {
		cert, err := LoadKeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// ServerConfig builds a server *tls.Config. With ClientCAFile set it
// requires and verifies client certificates.
func ServerConfig(o ServerOptions) (*tls.Config, error) {
	minVer, err := minVersion(o.MinVersion)
	if err != nil {
		return nil, err
	}
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, errors.New("tlsutil: a server needs both a certificate and a key file")
	}
	cert, err := LoadKeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   minVer,
		Certificates: []tls.Certificate{cert},
	}
	if o.ClientCAFile != "" {
		if cfg.ClientCAs, err = LoadCertPool(o.ClientCAFile); err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ParseVersion maps "1.2" and "1.3" (and "" → 1.2) to crypto/tls
// constants.
func ParseVersion(s string) (uint16, error) {
	switch s {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf(`tlsutil: unsupported TLS version %q (want "1.2" or "1.3")`, s)
}

func minVersion(v uint16) (uint16, error) {
	switch v {
	case 0:
		return tls.VersionTLS12, nil
	case tls.VersionTLS12, tls.VersionTLS13:
		return v, nil
	}
	return 0, fmt.Errorf("tlsutil: minimum version %s not allowed (want TLS 1.2 or TLS 1.3)", tls.VersionName(v))
}

// readFile reads path; errors name the file once ("tlsutil: ca.pem: no
// such file or directory") and still match fs.ErrNotExist.
func readFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("tlsutil: %s: %w", path, err)
	}
	return data, nil
}

// LoadCertPool reads a PEM bundle of CA certificates. Every CERTIFICATE
// block must parse; other block types are ignored; at least one
// certificate is required.
func LoadCertPool(path string) (*x509.CertPool, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := parseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

var (
	errNoCerts = errors.New("no certificates found")
	errNoKey   = errors.New("no private key found")
)

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errNoCerts
	}
	return certs, nil
}

// LoadKeyPair reads a PEM certificate chain and its private key, naming
// the file at fault in every error.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	if certFile == "" || keyFile == "" {
		return tls.Certificate{}, errors.New("tlsutil: certificate and key files must be set together")
	}
	certPEM, err := readFile(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	if _, err := parseCerts(certPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: %s: %w", certFile, err)
	}
	keyPEM, err := readFile(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	if !hasKey(keyPEM) {
		return tls.Certificate{}, fmt.Errorf("tlsutil: %s: %w", keyFile, errNoKey)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: %s, %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

func hasKey(data []byte) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if b.Type == "PRIVATE KEY" || strings.HasSuffix(b.Type, " PRIVATE KEY") {
			return true
		}
	}
}
