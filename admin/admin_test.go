package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/syncer"
)

// memController is an in-memory Controller recording what it was asked.
type memController struct {
	mu      sync.Mutex
	sources []config.Source
	calls   []string
}

func (m *memController) Status() syncer.Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := syncer.Status{Status: syncer.StateSynced}
	for i, s := range m.sources {
		st.Sources = append(st.Sources, syncer.SourceStatus{UID: i + 1, Name: s.Name, URI: s.Redacted(), SyncState: syncer.StateSynced})
	}
	return st
}
func (m *memController) Sources() []config.Source {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]config.Source(nil), m.sources...)
}
func (m *memController) record(c string) error {
	m.mu.Lock()
	m.calls = append(m.calls, c)
	m.mu.Unlock()
	return nil
}
func (m *memController) Stop(context.Context) error    { return m.record("stop") }
func (m *memController) Restart(context.Context) error { return m.record("restart") }
func (m *memController) SetSources(_ context.Context, s []config.Source) error {
	m.mu.Lock()
	m.sources = s
	m.mu.Unlock()
	return m.record("set")
}

func do(t *testing.T, h http.Handler, method, path, body, token string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestAPI(t *testing.T) {
	src, _ := config.ParseSource("orders: redis://admin:s3cret@127.0.0.1:7000")
	c := &memController{sources: []config.Source{src}}
	var saved []config.Source
	h := New(Config{Controller: c, OnSourcesChanged: func(s []config.Source) error { saved = s; return nil }})

	w := do(t, h, "GET", "/v1/status", "", "")
	var st syncer.Status
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &st) != nil || len(st.Sources) != 1 || st.Sources[0].Name != "orders" {
		t.Fatalf("status: %d %s", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), "s3cret") {
		t.Fatal("status shows a password")
	}
	if w := do(t, h, "GET", "/v1/sources", "", ""); strings.Contains(w.Body.String(), "s3cret") || !strings.Contains(w.Body.String(), "***") {
		t.Fatalf("sources not redacted: %s", w.Body)
	}
	for _, p := range []string{"/v1/sync/stop", "/v1/sync/restart"} {
		if w := do(t, h, "POST", p, "", ""); w.Code != 200 {
			t.Fatalf("%s: %d %s", p, w.Code, w.Body)
		}
	}
	if w := do(t, h, "GET", "/v1/sync/stop", "", ""); w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET stop: %d", w.Code)
	}
	w = do(t, h, "PUT", "/v1/sources", `{"sources":["a: redis://127.0.0.1:1","redis://:p%40ss@127.0.0.1:2"]}`, "")
	if w.Code != 200 || len(saved) != 2 || string(saved[1].Password) != "p@ss" {
		t.Fatalf("put: %d %s saved=%v", w.Code, w.Body, saved)
	}
	w = do(t, h, "POST", "/v1/sources", `{"sources":["c: redis://127.0.0.1:3"]}`, "")
	if w.Code != 200 || len(c.Sources()) != 3 || string(c.Sources()[1].Password) != "p@ss" {
		t.Fatalf("add: %d %s", w.Code, w.Body)
	}
	if w := do(t, h, "POST", "/v1/sources", `{"sources":["c: redis://127.0.0.1:4"]}`, ""); w.Code != http.StatusBadRequest {
		t.Fatalf("add duplicate name: %d", w.Code)
	}
	w = do(t, h, "DELETE", "/v1/sources/a", "", "")
	if w.Code != 200 || len(c.Sources()) != 2 || string(c.Sources()[0].Password) != "p@ss" {
		t.Fatalf("remove: %d %s", w.Code, w.Body)
	}
	if w := do(t, h, "DELETE", "/v1/sources/nope", "", ""); w.Code != http.StatusNotFound {
		t.Fatalf("remove unknown: %d", w.Code)
	}
	if got := strings.Join(c.calls, ","); got != "stop,restart,set,set,set" {
		t.Fatalf("calls %s", got)
	}
	for name, body := range map[string]string{
		"bad url":   `{"sources":["http://x"]}`,
		"duplicate": `{"sources":["a: redis://127.0.0.1:1","a: redis://127.0.0.1:2"]}`,
		"same addr": `{"sources":["redis://127.0.0.1:1","b: redis://127.0.0.1:1"]}`,
		"unknown":   `{"sourcez":[]}`,
		"not json":  `{`,
		"too many":  `{"sources":[` + strings.Repeat(`"redis://127.0.0.1:1",`, 32) + `"redis://127.0.0.1:2"]}`,
	} {
		if w := do(t, h, "PUT", "/v1/sources", body, ""); w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
		}
	}
}

func TestToken(t *testing.T) {
	h := New(Config{Controller: &memController{}, Token: "tok"})
	if w := do(t, h, "GET", "/v1/status", "", ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", w.Code)
	}
	if w := do(t, h, "GET", "/v1/status", "", "bad"); w.Code != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", w.Code)
	}
	if w := do(t, h, "GET", "/v1/status", "", "tok"); w.Code != 200 {
		t.Fatalf("good token: %d", w.Code)
	}
}

// TestPutKeepsSettings: a source set again in string form (a new
// password after rotate-password) keeps its TLS files and compression;
// another address or name starts from the string alone.
func TestPutKeepsSettings(t *testing.T) {
	src, _ := config.ParseSource("a: rediss://admin:old@127.0.0.1:7000")
	src.TLSFiles = &config.TLSFiles{CA: "ca.pem"}
	src.Compression = 6
	c := &memController{sources: []config.Source{src}}
	h := New(Config{Controller: c})
	w := do(t, h, "PUT", "/v1/sources", `{"sources":["a: rediss://admin:new@127.0.0.1:7000","b: rediss://127.0.0.1:7001"]}`, "")
	got := c.Sources()
	if w.Code != 200 || len(got) != 2 {
		t.Fatalf("put: %d %s", w.Code, w.Body)
	}
	if string(got[0].Password) != "new" || got[0].TLSFiles == nil || got[0].TLSFiles.CA != "ca.pem" || got[0].Compression != 6 {
		t.Errorf("a lost its settings: %+v", got[0])
	}
	if got[1].TLSFiles != nil || got[1].Compression != 0 {
		t.Errorf("b took settings that are not its own: %+v", got[1])
	}
	w = do(t, h, "PUT", "/v1/sources", `{"sources":["a: rediss://admin:new@127.0.0.1:7002"]}`, "")
	if got := c.Sources(); w.Code != 200 || got[0].TLSFiles != nil || got[0].Compression != 0 {
		t.Errorf("a at another address kept the old settings: %+v", got[0])
	}
}

// standbyController is a standby instance: every control call fails with
// the supervisor's StandbyError.
type standbyController struct{ memController }

func (s *standbyController) standby() error {
	return &syncer.StandbyError{Active: "http://other:8080"}
}
func (s *standbyController) Stop(context.Context) error    { return s.standby() }
func (s *standbyController) Restart(context.Context) error { return s.standby() }
func (s *standbyController) SetSources(context.Context, []config.Source) error {
	return s.standby()
}

// Mutating calls on a standby answer 409 and name the active instance.
func TestStandbyAnswersConflict(t *testing.T) {
	h := New(Config{Controller: &standbyController{}})
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/sync/stop", ""},
		{"POST", "/v1/sync/restart", ""},
		{"PUT", "/v1/sources", `{"sources":["a: redis://127.0.0.1:1"]}`},
		{"POST", "/v1/sources", `{"sources":["a: redis://127.0.0.1:1"]}`},
	} {
		w := do(t, h, c.method, c.path, c.body, "")
		var body map[string]string
		if w.Code != http.StatusConflict || json.Unmarshal(w.Body.Bytes(), &body) != nil ||
			body["active"] != "http://other:8080" || !strings.Contains(body["error"], "http://other:8080") {
			t.Errorf("%s %s: %d %s", c.method, c.path, w.Code, w.Body)
		}
	}
}
