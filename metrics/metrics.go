package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/replicaof/replicaof/syncer"
)

// Source is what the syncer series are read from: the supervisor. Status
// is called once per scrape, from the scraping goroutine.
type Source interface {
	Status() syncer.Status
}

// FlushCounter is an optional capability of a Source (the supervisor has
// it): the number of destination flushes, exported as
// replicaof_destination_flushes_total.
type FlushCounter interface {
	Flushes() int
}

// Config configures a Provider. The zero value exports the proxy and shard
// instruments and the Go runtime's, but no syncer series.
type Config struct {
	// Source feeds the per-source series; nil exports none.
	Source Source
	// Version is reported as service.version in target_info.
	Version string
	// NoRuntime leaves out the Go runtime and process collectors (tests).
	NoRuntime bool
}

// Provider owns the meter provider, its Prometheus registry and the
// observers handed to the proxy and the router. Its methods and the
// observers' may be called from any goroutine.
type Provider struct {
	cfg      Config
	reg      *prometheus.Registry
	mp       *sdkmetric.MeterProvider
	cb       metric.Registration
	errs     errorCounter
	proxy    *proxyObserver
	shards   *shardObserver
	shutdown sync.Once
	nodes    atomic.Pointer[func() []Node]
	nodeCB   metric.Registration
}

// meterName is the instrumentation scope of every instrument.
const meterName = "github.com/replicaof/replicaof"

// New builds the provider and registers every instrument. It starts no
// goroutine: instruments are collected when /metrics is scraped.
func New(cfg Config) (*Provider, error) {
	reg := prometheus.NewRegistry()
	if !cfg.NoRuntime {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		otelprom.WithoutScopeInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("metrics: prometheus exporter: %w", err)
	}
	version := cfg.Version
	if version == "" {
		version = "devel"
	}
	res := resource.NewSchemaless(attribute.String("service.name", "replicaof"), attribute.String("service.version", version))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	p := &Provider{cfg: cfg, reg: reg, mp: mp}
	meter := mp.Meter(meterName)
	if p.proxy, err = newProxyObserver(meter); err == nil {
		p.shards, err = newShardObserver(meter)
	}
	if err == nil {
		err = p.registerNodes(meter)
	}
	if err == nil && cfg.Source != nil {
		err = p.registerSyncer(meter)
	}
	if err != nil {
		_ = mp.Shutdown(context.Background())
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return p, nil
}

// Handler serves the registry in the Prometheus exposition formats.
func (p *Provider) Handler() http.Handler {
	return promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{
		// One bad series must not hide the others.
		ErrorHandling:       promhttp.ContinueOnError,
		Timeout:             10 * time.Second,
		MaxRequestsInFlight: 4,
	})
}

// Proxy returns the observer the proxy reports connections and commands to.
func (p *Provider) Proxy() ProxyObserver { return p.proxy }

// Shards returns the observer the router's backends and the appliers
// report to.
func (p *Provider) Shards() ShardObserver { return p.shards }

// Shutdown unregisters the callbacks and stops the meter provider; later
// scrapes show no OpenTelemetry series.
func (p *Provider) Shutdown(ctx context.Context) error {
	var err error
	p.shutdown.Do(func() {
		if p.cb != nil {
			err = p.cb.Unregister()
		}
		if p.nodeCB != nil {
			err = errors.Join(err, p.nodeCB.Unregister())
		}
		err = errors.Join(err, p.mp.Shutdown(ctx))
	})
	return err
}
