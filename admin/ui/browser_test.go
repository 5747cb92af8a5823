package ui_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicaof/replicaof/admin"
	"github.com/replicaof/replicaof/admin/ui"
	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/syncer"
)

var update = flag.Bool("update", false, "rewrite docs/dashboard.png from the headless browser's screenshot")

// chromiumHint is what the browser tests say when Chromium is missing.
const chromiumHint = "chromium not found: run scripts/ensure-chromium.sh (as root it installs Debian's chromium), " +
	"or `sudo apt-get install -y chromium`, or set CHROMIUM to the binary"

// chromium returns the browser binary or fails t: the browser tests never
// skip.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal(chromiumHint)
	return ""
}

// fakeController is an in-memory admin.Controller with three sources in
// the three states; the synced source's lag moves with every Status call
// so the chart has a line to draw.
type fakeController struct {
	mu    sync.Mutex
	calls int
	ops   []string
}

func (f *fakeController) Status() syncer.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	now := time.Now().UTC()
	lag := int64(4 + 3*math.Sin(float64(f.calls)/2))
	return syncer.Status{Status: syncer.StateStopped, Sources: []syncer.SourceStatus{
		{UID: 1, Name: "orders", URI: "redis://:***@10.0.0.5:12000", Status: syncer.StatusInSync, SyncState: syncer.StateSynced,
			Progress: 100, RDBSize: 52 << 20, RDBTransferred: 52 << 20, KeysLoaded: 1_250_000, LagMS: lag,
			LastUpdate: now.Add(-300 * time.Millisecond).Format(time.RFC3339Nano), FullSyncs: 1},
		{UID: 2, Name: "carts", URI: "rediss://:***@10.0.0.6:6379", Status: syncer.StatusSyncing, SyncState: syncer.StateSyncing,
			Phase: syncer.PhaseLoading, Progress: 42, RDBSize: 210 << 20, RDBTransferred: 88 << 20, KeysLoaded: 310_442, LagMS: 0},
		{UID: 4, Name: "events", URI: "redis://10.0.0.8:6379", Status: syncer.StatusSyncing, SyncState: syncer.StateSyncing,
			Phase: syncer.PhaseWaiting, RDBSize: -1},
		{UID: 3, Name: "sessions", URI: "redis://10.0.0.7:6379", Status: syncer.StatusOutOfSync, SyncState: syncer.StateStopped,
			LastUpdate: now.Add(-95 * time.Second).Format(time.RFC3339Nano),
			LastError:  "source sessions: NOAUTH Authentication required", LastErrorTime: now.Add(-90 * time.Second).Format(time.RFC3339Nano)},
	}}
}
func (f *fakeController) Sources() []config.Source { return nil }
func (f *fakeController) op(s string) error {
	f.mu.Lock()
	f.ops = append(f.ops, s)
	f.mu.Unlock()
	return nil
}
func (f *fakeController) Stop(context.Context) error                        { return f.op("stop") }
func (f *fakeController) Restart(context.Context) error                     { return f.op("restart") }
func (f *fakeController) SetSources(context.Context, []config.Source) error { return f.op("set") }

func serve(t *testing.T, token string) (*httptest.Server, *fakeController) {
	t.Helper()
	fc := &fakeController{}
	srv := httptest.NewServer(admin.New(admin.Config{Controller: fc, Token: token,
		Extra: map[string]http.Handler{"/": ui.Handler()}}))
	t.Cleanup(srv.Close)
	return srv, fc
}

// runChromium runs headless Chromium on url with extra flags and returns
// its standard output (the DOM with --dump-dom).
func runChromium(t *testing.T, url string, budgetMS int, extra ...string) string {
	t.Helper()
	bin := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), fmt.Sprintf("--virtual-time-budget=%d", budgetMS),
	}, extra...)
	args = append(args, url)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, tail(stderr.String(), 2000))
	}
	return stdout.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

var rowRE = regexp.MustCompile(`(?s)<tr data-source="([^"]*)" data-status="([^"]*)">(.*?)</tr>`)

func TestBrowserDashboard(t *testing.T) {
	srv, fc := serve(t, "")
	dom := runChromium(t, srv.URL+"/", 3000, "--dump-dom")

	want := map[string]string{"orders": "synced", "carts": "syncing", "sessions": "stopped", "events": "syncing"}
	rows := map[string]string{}
	for _, m := range rowRE.FindAllStringSubmatch(dom, -1) {
		rows[m[1]] = m[3]
		if want[m[1]] != m[2] {
			t.Errorf("row %s has status %q, want %q", m[1], m[2], want[m[1]])
		}
	}
	for name, st := range want {
		row, ok := rows[name]
		if !ok {
			t.Errorf("no row for source %s in the rendered DOM:\n%s", name, tail(dom, 4000))
			continue
		}
		if !strings.Contains(row, `<span class="badge `+st+`">`+st+`</span>`) {
			t.Errorf("row %s lacks the %s badge: %s", name, st, row)
		}
	}
	for _, s := range []string{
		`redis://:***@10.0.0.5:12000`, // redacted URL as given
		`role="progressbar"`, `42%`,   // the syncing source's bar
		`NOAUTH Authentication required`, // last error
		`<span class="badge stopped" id="aggregate-badge">stopped</span>`, `4 sources`,
		`<polyline`, // the lag chart has drawn a line
	} {
		if !strings.Contains(dom, s) {
			t.Errorf("rendered DOM lacks %q", s)
		}
	}
	if ev := rows["events"]; !strings.Contains(ev, "waiting for snapshot") || strings.Contains(ev, "progressbar") {
		t.Errorf("a source waiting for its snapshot shows a bar or no phase: %s", ev)
	}
	if !strings.Contains(dom, `<form id="token-form" class="token" hidden="">`) {
		t.Error("token form shown though no token is configured")
	}
	if strings.Contains(dom, "waiting for /v1/status") {
		t.Error("the page never rendered a status")
	}
	fc.mu.Lock()
	calls := fc.calls
	fc.mu.Unlock()
	if calls < 2 {
		t.Errorf("the page polled /v1/status %d times in 3 s of virtual time, want ≥ 2", calls)
	}
}

// TestBrowserAsksForToken: with a token configured and none given, the
// page shows the token form and no data.
func TestBrowserAsksForToken(t *testing.T) {
	srv, fc := serve(t, "s3cret")
	dom := runChromium(t, srv.URL+"/", 2000, "--dump-dom")
	if !regexp.MustCompile(`<form id="token-form" class="token">`).MatchString(dom) {
		t.Errorf("token form hidden or missing:\n%s", tail(dom, 3000))
	}
	if strings.Contains(dom, `data-source="orders"`) {
		t.Error("sources shown without a token")
	}
	if fc.calls != 0 {
		t.Errorf("Status read %d times without a token", fc.calls)
	}
}

// TestBrowserScreenshot renders the page at 1280×800; with -update it
// rewrites docs/dashboard.png, which the README shows.
func TestBrowserScreenshot(t *testing.T) {
	srv, _ := serve(t, "")
	shot := filepath.Join(t.TempDir(), "dashboard.png")
	runChromium(t, srv.URL+"/", 45000, "--screenshot="+shot, "--window-size=1280,800")
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10_000 || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot is not a plausible PNG (%d bytes)", len(b))
	}
	if *update {
		dst := filepath.Join("..", "..", "docs", "dashboard.png")
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", dst, len(b))
	}
}
