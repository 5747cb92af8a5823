package ui_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/replicaof/replicaof/admin"
	"github.com/replicaof/replicaof/admin/ui"
)

// TestBrowserNodes: the dashboard shows the destination nodes of
// /v1/status, and hides the section when there are none.
func TestBrowserNodes(t *testing.T) {
	srv := httptest.NewServer(admin.New(admin.Config{Controller: &fakeController{},
		Extra: map[string]http.Handler{"/": ui.Handler()},
		Nodes: func() []admin.DestinationNode {
			return []admin.DestinationNode{
				{Shard: 0, Addr: "10.0.0.1:7001", Role: "primary", Up: true, Reads: 12},
				{Shard: 0, Addr: "10.0.0.1:7101", Role: "replica", Up: true, LagSeconds: 0.004, Reads: 48210},
				{Shard: 1, Addr: "10.0.0.2:7102", Role: "replica", Up: false, LagSeconds: 3.5, Stale: 2, LinkDown: 1},
			}
		}}))
	t.Cleanup(srv.Close)
	dom := runChromium(t, srv.URL+"/", 2000, "--dump-dom")
	for _, s := range []string{
		`<section id="nodes-section">`,
		`<tr data-node="10.0.0.1:7101" data-role="replica">`,
		`in rotation`, `out of rotation`, `48,210`, `stale 2 · link down 1 · errors 0`,
	} {
		if !strings.Contains(dom, s) {
			t.Errorf("rendered DOM lacks %q:\n%s", s, tail(dom, 4000))
		}
	}

	plain, _ := serve(t, "")
	dom = runChromium(t, plain.URL+"/", 2000, "--dump-dom")
	if !strings.Contains(dom, `<section id="nodes-section" hidden="">`) {
		t.Errorf("nodes section shown without nodes:\n%s", tail(dom, 4000))
	}
}
