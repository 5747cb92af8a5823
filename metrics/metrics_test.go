package metrics

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/replicaof/replicaof/metrics/metricstest"
	"github.com/replicaof/replicaof/syncer"
)

// memSource is an in-memory Source counting its Status calls.
type memSource struct {
	mu      sync.Mutex
	st      syncer.Status
	calls   int
	flushes int
}

func (m *memSource) Status() syncer.Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	st := m.st
	st.Sources = append([]syncer.SourceStatus(nil), m.st.Sources...)
	return st
}

func (m *memSource) Flushes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.flushes
}

func (m *memSource) set(f func(*syncer.Status)) {
	m.mu.Lock()
	f(&m.st)
	m.mu.Unlock()
}

// scrape fetches h's /metrics and parses the text format.
func scrape(t testing.TB, p *Provider) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	w := httptest.NewRecorder()
	p.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != 200 {
		t.Fatalf("/metrics: %d %s", w.Code, w.Body)
	}
	body := w.Body.String()
	mfs, err := metricstest.Parse(body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return mfs, body
}

func TestSyncerSeries(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	src := &memSource{flushes: 2, st: syncer.Status{Status: syncer.StateSyncing, Sources: []syncer.SourceStatus{
		{UID: 1, Name: "orders", URI: "redis://:***@127.0.0.1:7000", SyncState: syncer.StateSynced, Progress: 100,
			RDBSize: 1000, RDBTransferred: 1000, KeysLoaded: 42, LagMS: 1500, LastUpdate: now.Format(time.RFC3339Nano),
			FullSyncs: 1, PartialSyncs: 3, Retries: 4, SourceOffset: 9000, AppliedOffset: 8990,
			Kind: syncer.KindReplicaof, Links: 3, BytesReceived: 5000, WireBytes: 2500, CrossShardEmulated: 7,
			UnsupportedKeys: map[string]int64{"module ReJSON-RL (encver 3)": 7}, DroppedCommands: 11},
		{UID: 2, Name: "carts", URI: "redis://127.0.0.1:7001", SyncState: syncer.StateSyncing, Progress: 50,
			RDBSize: -1, RDBTransferred: 77, LastError: "boom", LastErrorTime: now.Format(time.RFC3339Nano)},
		{UID: 3, Name: "users", URI: "redis://127.0.0.1:7002", SyncState: syncer.StateStopped, LagMS: -1},
	}}}
	p, err := New(Config{Source: src, NoRuntime: true, Version: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())

	mfs, body := scrape(t, p)
	if src.calls != 1 {
		t.Errorf("Status called %d times in one scrape, want 1", src.calls)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"replicaof_syncer_status", []string{"source=orders", "uid=1"}, 0},
		{"replicaof_syncer_status", []string{"source=carts", "uid=2"}, 1},
		{"replicaof_syncer_status", []string{"source=users", "uid=3"}, 2},
		{"replicaof_syncer_lag_seconds", []string{"source=orders"}, 1.5},
		{"replicaof_syncer_lag_seconds", []string{"source=users"}, 0},
		{"replicaof_syncer_snapshot_size_bytes", []string{"source=orders"}, 1000},
		{"replicaof_syncer_snapshot_transferred_bytes", []string{"source=carts"}, 77},
		{"replicaof_syncer_snapshot_progress_ratio", []string{"source=carts"}, 0.5},
		{"replicaof_syncer_keys_loaded", []string{"source=orders"}, 42},
		{"replicaof_syncer_source_offset_bytes", []string{"source=orders"}, 9000},
		{"replicaof_syncer_applied_offset_bytes", []string{"source=orders"}, 8990},
		{"replicaof_syncer_full_syncs_total", []string{"source=orders"}, 1},
		{"replicaof_syncer_partial_syncs_total", []string{"source=orders"}, 3},
		{"replicaof_syncer_retries_total", []string{"source=orders"}, 4},
		{"replicaof_syncer_errors_total", []string{"source=carts"}, 1},
		{"replicaof_syncer_errors_total", []string{"source=orders"}, 0},
		{"replicaof_syncer_last_update_timestamp_seconds", []string{"source=orders"}, float64(now.Unix())},
		{"replicaof_syncer_last_error_timestamp_seconds", []string{"source=carts"}, float64(now.Unix())},
		{"replicaof_syncer_source_info", []string{"source=orders", "uri=redis://:***@127.0.0.1:7000"}, 1},
		{"replicaof_syncer_received_bytes_total", []string{"source=orders"}, 5000},
		{"replicaof_syncer_wire_bytes_total", []string{"source=orders"}, 2500},
		{"replicaof_syncer_links", []string{"source=orders"}, 3},
		{"replicaof_syncer_cross_shard_emulated_total", []string{"source=orders"}, 7},
		{"replicaof_syncer_source_info", []string{"source=orders", "kind=replicaof"}, 1},
		{"replicaof_syncer_unsupported_keys", []string{"source=orders", "type=module ReJSON-RL (encver 3)"}, 7},
		{"replicaof_syncer_dropped_commands", []string{"source=orders"}, 11},
		{"replicaof_syncer_dropped_commands", []string{"source=carts"}, 0},
		{"replicaof_destination_status", nil, 1},
		{"replicaof_destination_flushes_total", nil, 2},
	} {
		if got := metricstest.Need(t, mfs, body, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, ok := metricstest.Value(mfs, "replicaof_syncer_snapshot_size_bytes", "source=carts"); ok {
		t.Error("snapshot size exported while unknown (-1)")
	}
	if !strings.Contains(body, `service_version="v1.2.3"`) {
		t.Errorf("target_info lacks the version:\n%s", body)
	}

	// A new error counts once, however many scrapes see it.
	later := now.Add(time.Second).Format(time.RFC3339Nano)
	src.set(func(st *syncer.Status) { st.Sources[1].LastErrorTime = later })
	scrape(t, p)
	mfs, body = scrape(t, p)
	if got := metricstest.Need(t, mfs, body, "replicaof_syncer_errors_total", "source=carts"); got != 2 {
		t.Errorf("errors_total = %v after a second error, want 2", got)
	}
	if src.calls != 3 {
		t.Errorf("Status called %d times in 3 scrapes", src.calls)
	}
}

func TestNoSource(t *testing.T) {
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	mfs, body := scrape(t, p)
	if _, ok := mfs["replicaof_syncer_status"]; ok {
		t.Errorf("syncer series without a source:\n%s", body)
	}
	if _, ok := mfs["go_goroutines"]; !ok {
		t.Errorf("no Go runtime series")
	}
}

func TestObservers(t *testing.T) {
	p, err := New(Config{NoRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	po, so := p.Proxy(), p.Shards()
	po.ConnOpened()
	po.ConnOpened()
	po.ConnClosed()
	po.Command("GET", time.Millisecond, false)
	po.Command("get", 2*time.Millisecond, false)
	po.Command("GET", time.Millisecond, true)
	po.Command("bad\r\ncommand", time.Millisecond, true)
	so.Pipeline(0, 3, time.Millisecond, false)
	so.Pipeline(1, 1, time.Millisecond, true)
	so.ShardUp(1, false)
	so.ShardUp(0, true)
	so.Applied("orders", 2, 10)
	so.Applied("orders", 2, 5)
	so.Pipeline(-1, 1, time.Millisecond, false)

	mfs, body := scrape(t, p)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"replicaof_proxy_connections", nil, 1},
		{"replicaof_proxy_connections_accepted_total", nil, 2},
		{"replicaof_proxy_commands_total", []string{"command=get", "result=ok"}, 2},
		{"replicaof_proxy_commands_total", []string{"command=get", "result=error"}, 1},
		{"replicaof_proxy_commands_total", []string{"command=other", "result=error"}, 1},
		{"replicaof_proxy_command_duration_seconds", []string{"command=get"}, 3},
		{"replicaof_shard_pipeline_depth", []string{"shard=0"}, 1},
		{"replicaof_shard_pipeline_duration_seconds", []string{"shard=1"}, 1},
		{"replicaof_shard_pipeline_failures_total", []string{"shard=1"}, 1},
		{"replicaof_shard_up", []string{"shard=1"}, 0},
		{"replicaof_shard_up", []string{"shard=0"}, 1},
		{"replicaof_syncer_commands_applied_total", []string{"source=orders", "shard=2"}, 15},
		{"replicaof_shard_pipeline_depth", []string{"shard=other"}, 1},
	} {
		if got := metricstest.Need(t, mfs, body, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for name, f := range map[string]func(){
		"Command":  func() { po.Command("GET", time.Millisecond, false) },
		"Pipeline": func() { so.Pipeline(1, 8, time.Millisecond, true) },
		"Applied":  func() { so.Applied("orders", 2, 1) },
		"ShardUp":  func() { so.ShardUp(0, true) },
	} {
		if n := testing.AllocsPerRun(100, f); n > 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
}

func TestCommandNamesBounded(t *testing.T) {
	p, err := New(Config{NoRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	var b strings.Builder
	for i := 0; i < maxCommandNames+50; i++ {
		b.Reset()
		for n := i; ; n /= 26 {
			b.WriteByte(byte('a' + n%26))
			if n < 26 {
				break
			}
		}
		p.Proxy().Command(b.String(), 0, false)
	}
	mfs, _ := scrape(t, p)
	if n := len(mfs["replicaof_proxy_commands_total"].Metric); n > maxCommandNames+1 {
		t.Errorf("%d command series, want at most %d", n, maxCommandNames+1)
	}
}

func TestShutdown(t *testing.T) {
	src := &memSource{st: syncer.Status{Status: syncer.StateSynced}}
	p, err := New(Config{Source: src, NoRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal("second Shutdown:", err)
	}
	scrape(t, p)
	if src.calls != 0 {
		t.Errorf("Status read after Shutdown")
	}
}
