package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/replicaof/replicaof/admin"
	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/metrics"
	"github.com/replicaof/replicaof/metrics/metricstest"
	"github.com/replicaof/replicaof/syncer"
)

// TestScrapeDuringSync runs a real supervisor from a real source into a
// real shard and scrapes /metrics through the admin handler while the
// snapshot loads and then while the stream flows.
func TestScrapeDuringSync(t *testing.T) {
	ctx := harness.Context(t, 2*time.Minute)
	// A disk-based snapshot has a known size; the per-key save delay keeps
	// the full sync going long enough to be seen.
	src := harness.StartRedis(t, "--repl-diskless-sync", "no", "--rdb-key-save-delay", "300")
	shard := harness.StartRedis(t)
	const keys = 2000
	if err := harness.LoadDataset(ctx, src.Client(), "m:", 7, keys); err != nil {
		t.Fatal(err)
	}
	nkeys, err := src.Client().DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}

	dest, err := destination.New(destination.Config{Shards: []destination.Shard{{Addr: shard.Addr}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dest.Close() })
	s, err := config.ParseSource("orders: redis://" + src.Addr)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := syncer.New(syncer.Config{
		Sources: []config.Source{s}, Destination: dest,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		SampleInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := metrics.New(metrics.Config{Source: sup, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	srv := httptest.NewServer(admin.New(admin.Config{Controller: sup, Token: "t0ken",
		Extra: map[string]http.Handler{"/metrics": m.Handler()}}))
	t.Cleanup(srv.Close)

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	lbl := []string{"source=orders", "uid=1"}
	var (
		sawSyncing bool
		lastBytes  float64
		mfs        map[string]*dto.MetricFamily
		body       string
	)
	harness.WaitFor(t, time.Minute, "replicaof_syncer_status 0 (in sync)", func() bool {
		mfs, body = metricstest.Scrape(t, ctx, srv.URL)
		st, ok := metricstest.Value(mfs, "replicaof_syncer_status", lbl...)
		if !ok {
			return false
		}
		b, _ := metricstest.Value(mfs, "replicaof_syncer_snapshot_transferred_bytes", lbl...)
		if st == metrics.CodeSyncing {
			sawSyncing = true
			if b < lastBytes {
				t.Fatalf("snapshot bytes went down while syncing: %v after %v", b, lastBytes)
			}
			lastBytes = b
		}
		if lag, _ := metricstest.Value(mfs, "replicaof_syncer_lag_seconds", lbl...); lag < 0 {
			t.Fatalf("lag %v < 0", lag)
		}
		return st == metrics.CodeInSync
	})
	if !sawSyncing {
		t.Error("never scraped the source while syncing")
	}
	size := metricstest.Need(t, mfs, body, "replicaof_syncer_snapshot_size_bytes", lbl...)
	if got := metricstest.Need(t, mfs, body, "replicaof_syncer_snapshot_transferred_bytes", lbl...); size <= 0 || got != size {
		t.Errorf("snapshot transferred %v of %v bytes after sync", got, size)
	}
	if got := metricstest.Need(t, mfs, body, "replicaof_syncer_keys_loaded", lbl...); got != float64(nkeys) {
		t.Errorf("keys_loaded %v, want %d", got, nkeys)
	}
	if got := metricstest.Need(t, mfs, body, "replicaof_syncer_full_syncs_total", lbl...); got < 1 {
		t.Errorf("full_syncs_total %v", got)
	}
	if got := metricstest.Need(t, mfs, body, "replicaof_destination_flushes_total"); got < 1 {
		t.Errorf("destination flushes %v", got)
	}
	if got := metricstest.Need(t, mfs, body, "replicaof_destination_status"); got != metrics.CodeInSync {
		t.Errorf("destination status %v", got)
	}
	if _, ok := metricstest.Value(mfs, "go_goroutines"); !ok {
		t.Error("no Go runtime series")
	}

	// The stream: offsets advance and the applied offset catches up.
	if err := src.Client().Set(ctx, "m:after", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 30*time.Second, "applied offset to catch up with a write", func() bool {
		mfs, body = metricstest.Scrape(t, ctx, srv.URL)
		so, _ := metricstest.Value(mfs, "replicaof_syncer_source_offset_bytes", lbl...)
		ao, _ := metricstest.Value(mfs, "replicaof_syncer_applied_offset_bytes", lbl...)
		_, upd := metricstest.Value(mfs, "replicaof_syncer_last_update_timestamp_seconds", lbl...)
		return so > 0 && ao >= so && upd
	})
	if lag := metricstest.Need(t, mfs, body, "replicaof_syncer_lag_seconds", lbl...); lag < 0 || lag > 30 {
		t.Errorf("lag %v s", lag)
	}
	t.Logf("scrape after sync:\n%s", body)

	// Under a write load the measured lag is above zero at some scrape.
	loadCtx, stopLoad := context.WithCancel(ctx)
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		c := src.Client()
		for i := 0; i < 2000 && loadCtx.Err() == nil; i++ { // bounded: at most 1M writes
			pipe := c.Pipeline()
			for j := 0; j < 500; j++ {
				pipe.Incr(loadCtx, "m:load")
			}
			_, _ = pipe.Exec(loadCtx)
		}
	}()
	harness.WaitFor(t, 30*time.Second, "lag above zero under load", func() bool {
		mfs, body = metricstest.Scrape(t, ctx, srv.URL)
		lag, _ := metricstest.Value(mfs, "replicaof_syncer_lag_seconds", lbl...)
		return lag > 0
	})
	stopLoad()
	<-loaded

	// A user stop shows as 2 on the source and the destination.
	if err := sup.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 30*time.Second, "status 2 after stop", func() bool {
		mfs, body = metricstest.Scrape(t, ctx, srv.URL)
		st, _ := metricstest.Value(mfs, "replicaof_syncer_status", lbl...)
		d, _ := metricstest.Value(mfs, "replicaof_destination_status")
		return st == metrics.CodeOutOfSync && d == metrics.CodeOutOfSync
	})
}
