package tlsutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Files are the paths GenerateDemo wrote.
type Files struct {
	CA, CAKey             string // ca.pem, ca.key: the demo certificate authority
	SyncerCert, SyncerKey string // syncer.pem, syncer.key: client certificate the syncer presents
	ProxyCert, ProxyKey   string // proxy.pem, proxy.key: server certificate a source endpoint presents
}

// Validity of the generated certificates.
const (
	demoCAValidity   = 5 * 365 * 24 * time.Hour
	demoLeafValidity = 397 * 24 * time.Hour
	clockSkew        = time.Hour // NotBefore is backdated by this much
)

// GenerateDemo creates a throw-away certificate authority in dir and two
// certificates it signs, all ECDSA P-256:
//
//   - the syncer certificate (syncer.pem/.key), for client authentication:
//     the syncer presents it to sources that require mutual TLS;
//   - the proxy certificate (proxy.pem/.key), for server authentication
//     (and client authentication), valid for hosts plus localhost,
//     127.0.0.1 and ::1.
//
// hosts are DNS names or IP addresses, without ports. dir is created
// (0700) if needed. Private keys are written 0600, certificates 0644.
// GenerateDemo refuses to overwrite any existing file, so an existing CA
// key is never lost.
func GenerateDemo(dir string, hosts []string) (Files, error) {
	files := Files{
		CA: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca.key"),
		SyncerCert: filepath.Join(dir, "syncer.pem"), SyncerKey: filepath.Join(dir, "syncer.key"),
		ProxyCert: filepath.Join(dir, "proxy.pem"), ProxyKey: filepath.Join(dir, "proxy.key"),
	}
	dnsNames, ips, err := splitHosts(hosts)
	if err != nil {
		return Files{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, fmt.Errorf("tlsutil: %w", err)
	}
	for _, p := range []string{files.CA, files.CAKey, files.SyncerCert, files.SyncerKey, files.ProxyCert, files.ProxyKey} {
		if _, err := os.Lstat(p); err == nil {
			return Files{}, fmt.Errorf("tlsutil: %s: %w", p, fs.ErrExist)
		}
	}

	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Files{}, fmt.Errorf("tlsutil: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "replicaof demo CA", Organization: []string{"replicaof demo"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(demoCAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, caCert, err := sign(caTmpl, nil, caKey.Public(), caKey)
	if err != nil {
		return Files{}, err
	}

	syncerKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Files{}, fmt.Errorf("tlsutil: %w", err)
	}
	syncerDER, _, err := sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "replicaof syncer", Organization: []string{"replicaof demo"}},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(demoLeafValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, syncerKey.Public(), caKey)
	if err != nil {
		return Files{}, err
	}

	proxyKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Files{}, fmt.Errorf("tlsutil: %w", err)
	}
	proxyDER, _, err := sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "replicaof proxy", Organization: []string{"replicaof demo"}},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(demoLeafValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}, caCert, proxyKey.Public(), caKey)
	if err != nil {
		return Files{}, err
	}

	for _, w := range []struct {
		path string
		der  []byte
		key  *ecdsa.PrivateKey
	}{
		{files.CA, caDER, nil}, {files.CAKey, nil, caKey},
		{files.SyncerCert, syncerDER, nil}, {files.SyncerKey, nil, syncerKey},
		{files.ProxyCert, proxyDER, nil}, {files.ProxyKey, nil, proxyKey},
	} {
		block, mode := &pem.Block{Type: "CERTIFICATE", Bytes: w.der}, os.FileMode(0o644)
		if w.key != nil {
			der, err := x509.MarshalPKCS8PrivateKey(w.key)
			if err != nil {
				return Files{}, fmt.Errorf("tlsutil: %w", err)
			}
			block, mode = &pem.Block{Type: "PRIVATE KEY", Bytes: der}, 0o600
		}
		if err := writeNew(w.path, pem.EncodeToMemory(block), mode); err != nil {
			return Files{}, err
		}
	}
	return files, nil
}

// sign creates a certificate from tmpl signed by parent (self-signed when
// parent is nil) with a random 128-bit serial number.
func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: %w", err)
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: %w", err)
	}
	return der, cert, nil
}

// splitHosts sorts hosts into DNS names and IPs, always including
// localhost, 127.0.0.1 and ::1, without duplicates.
func splitHosts(hosts []string) ([]string, []net.IP, error) {
	dns := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	seen := map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			if !seen[ip.String()] {
				seen[ip.String()] = true
				ips = append(ips, ip)
			}
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(h, "."))
		if !validDNSName(name) {
			return nil, nil, fmt.Errorf("tlsutil: invalid host %q (want a DNS name or an IP address, without port)", h)
		}
		if !seen[name] {
			seen[name] = true
			dns = append(dns, name)
		}
	}
	return dns, ips, nil
}

// validDNSName accepts labels of letters, digits and '-', and a leading
// "*." wildcard.
func validDNSName(name string) bool {
	name = strings.TrimPrefix(name, "*.")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// writeNew writes data to a file that must not exist yet.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("tlsutil: %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("tlsutil: %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("tlsutil: %s: %w", path, err)
	}
	return nil
}
