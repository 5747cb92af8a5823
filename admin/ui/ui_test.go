package ui_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/replicaof/replicaof/admin/ui"
)

func TestHandler(t *testing.T) {
	h := ui.Handler()
	for _, c := range []struct {
		method, path string
		code         int
		ctype, has   string
	}{
		{"GET", "/", 200, "text/html", `<script src="dashboard.js">`},
		{"GET", "/index.html", 200, "text/html", "<table id=\"sources\">"},
		{"GET", "/dashboard.js", 200, "text/javascript", "/v1/status"},
		{"GET", "/dashboard.css", 200, "text/css", ".badge"},
		{"GET", "/favicon.svg", 200, "image/svg+xml", "<svg"},
		{"HEAD", "/", 200, "text/html", ""},
		{"GET", "/v1/nope", 404, "", ""},
		{"GET", "/assets/index.html", 404, "", ""},
		{"POST", "/", 405, "", ""},
	} {
		t.Run(c.method+c.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(c.method, c.path, nil))
			if w.Code != c.code {
				t.Fatalf("code %d, want %d", w.Code, c.code)
			}
			if ct := w.Header().Get("Content-Type"); c.ctype != "" && !strings.HasPrefix(ct, c.ctype) {
				t.Errorf("Content-Type %q, want %q", ct, c.ctype)
			}
			if !strings.Contains(w.Body.String(), c.has) {
				t.Errorf("body lacks %q", c.has)
			}
			if c.method == "HEAD" && w.Body.Len() != 0 {
				t.Error("HEAD has a body")
			}
		})
	}
}

// TestNoExternalResources keeps the page self-contained: nothing is loaded
// from another origin at run time.
func TestNoExternalResources(t *testing.T) {
	for _, p := range []string{"/", "/dashboard.js", "/dashboard.css"} {
		w := httptest.NewRecorder()
		ui.Handler().ServeHTTP(w, httptest.NewRequest("GET", p, nil))
		body := w.Body.String()
		for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
			if i := strings.Index(body, bad); i >= 0 && !strings.HasPrefix(body[i:], "http://www.w3.org/2000/svg") {
				t.Errorf("%s refers to %q: …%s…", p, bad, body[max(0, i-30):min(len(body), i+40)])
			}
		}
	}
}

var _ http.Handler = ui.Handler()
