package errclass

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
)

// isTLSFailure reports whether err is a TLS handshake or certificate
// failure: a wrong certificate, an unknown CA, no common protocol version.
// Retrying cannot fix those, so they stop sync with the error.
//
// crypto/tls reports the peer's alerts as a *net.OpError with Op "remote
// error" around an unexported alert type whose text starts with "tls:", so
// a plain network-error check would take them for a dropped connection.
func isTLSFailure(err error) bool {
	var (
		cve *tls.CertificateVerificationError
		rhe tls.RecordHeaderError
		uae x509.UnknownAuthorityError
		cie x509.CertificateInvalidError
		he  x509.HostnameError
		ae  tls.AlertError
	)
	if errors.As(err, &cve) || errors.As(err, &rhe) || errors.As(err, &uae) ||
		errors.As(err, &cie) || errors.As(err, &he) || errors.As(err, &ae) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil && strings.HasPrefix(oe.Err.Error(), "tls:") {
		return true
	}
	// Client-side handshake failures are plain errors with a "tls: " text.
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.HasPrefix(e.Error(), "tls: ") {
			return true
		}
	}
	return false
}
