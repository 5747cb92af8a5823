package syncer

import (
	"context"
	"net"
	"time"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/tlsutil"
)

// dialFunc dials a source (plain TCP or TLS, as its URL says).
type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// dialer returns how to dial src: TCP with keepalives, wrapped in TLS for
// a rediss:// source. It reads the TLS files now (once per sync run); an
// error there is the source's configuration (errFatalConfig).
func dialer(src config.Source) (dialFunc, error) {
	d := &net.Dialer{KeepAlive: 30 * time.Second}
	if !src.TLS {
		return d.DialContext, nil
	}
	tcfg, err := tlsutil.ClientConfig(src.Host, src.TLSFiles.ClientOptions())
	if err != nil {
		return nil, err
	}
	return (&tlsutil.Dialer{Config: tcfg, Net: d}).DialContext, nil
}
