package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/replicaof/replicaof/admin"
	"github.com/replicaof/replicaof/admin/ui"
	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/metrics"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/proxy"
	"github.com/replicaof/replicaof/syncer"
)

// errProxyOnly answers the admin API's sync controls on a --proxy-only
// instance.
var errProxyOnly = errors.New("this instance runs with --proxy-only: it has no syncer; use the syncing instance")

// proxyOnlyController is the admin API's view of a --proxy-only
// instance: no sources, no sync to drive.
type proxyOnlyController struct{}

func (proxyOnlyController) Status() syncer.Status {
	return syncer.Status{Status: "proxy-only", Role: "proxy-only", Sources: []syncer.SourceStatus{}}
}
func (proxyOnlyController) Sources() []config.Source                          { return nil }
func (proxyOnlyController) Stop(context.Context) error                        { return errProxyOnly }
func (proxyOnlyController) Restart(context.Context) error                     { return errProxyOnly }
func (proxyOnlyController) SetSources(context.Context, []config.Source) error { return errProxyOnly }

// serveProxyOnly runs a proxy and the admin API over the destination and
// never writes to it: no flush, no checkpoints, no lease, no syncer.
// Several such instances can serve one destination beside the one that
// syncs. The config's sources, if any, are ignored. Replication through
// this proxy (the internal admin user) is off: it keeps no state_dir.
func serveProxyOnly(ctx context.Context, cfg *config.Config, log *slog.Logger, ready func(running)) error {
	proxyTLS, err := proxyTLSConfig(cfg.Proxy.TLS)
	if err != nil {
		return err
	}
	readFrom, err := proxy.ParseReadFrom(cfg.Proxy.ReadFrom)
	if err != nil {
		return fmt.Errorf("proxy.%w", err)
	}
	m, err := metrics.New(metrics.Config{Version: versionString()})
	if err != nil {
		return err
	}
	defer func() { _ = m.Shutdown(context.Background()) }()
	dest, err := newDestination(ctx, cfg.Destination, pool.Config{}, log)
	if err != nil {
		return err
	}
	defer dest.Close()
	adminLn, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return err
	}
	defer adminLn.Close()
	prox, err := proxy.New(proxyConfig(cfg, dest, proxyTLS, readFrom, log, m))
	if err != nil {
		return err
	}
	m.SetNodes(func() []metrics.Node { return metricNodes(prox.Nodes()) })
	hs := &http.Server{
		Handler: admin.New(admin.Config{
			Controller: proxyOnlyController{}, Token: string(cfg.Admin.Token), Logger: log.With("component", "admin"),
			Extra:           map[string]http.Handler{"/metrics": m.Handler(), "/": ui.Handler()},
			Nodes:           func() []admin.DestinationNode { return statusNodes(prox.Nodes()) },
			DestinationKind: destinationKind(dest),
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return prox.Serve(gctx) })
	serveAdmin(gctx, g, hs, adminLn)
	log.Info("replicaof serving the proxy only (no syncer)", "proxy", prox.Addr().String(),
		"admin", "http://"+adminLn.Addr().String(), "shards", dest.Len(), "read_from", readFrom.String())
	if ready != nil {
		ready(running{ProxyAddr: prox.Addr().String(), AdminURL: "http://" + adminLn.Addr().String()})
	}
	return g.Wait()
}
