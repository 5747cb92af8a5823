package tlsutil

import (
	"context"
	"crypto/tls"
	"net"
	"time"
)

// Dialer dials TCP and runs the TLS client handshake, both bounded by the
// context. Config must be set; a nil Net means a net.Dialer with a 30s
// keep-alive.
type Dialer struct {
	Config *tls.Config
	Net    *net.Dialer
}

// DialContext has the signature of net.Dialer.DialContext.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := d.Net
	if nd == nil {
		nd = &net.Dialer{KeepAlive: 30 * time.Second}
	}
	raw, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, d.Config)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}
