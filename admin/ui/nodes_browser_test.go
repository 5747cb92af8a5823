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

	// A cluster destination: its kind, the masters' slots, a replica the
	// proxy does not read from.
	cl := httptest.NewServer(admin.New(admin.Config{Controller: &fakeController{},
		Extra:           map[string]http.Handler{"/": ui.Handler()},
		DestinationKind: "cluster",
		Nodes: func() []admin.DestinationNode {
			return []admin.DestinationNode{
				{Shard: 0, Addr: "10.0.0.1:7001", Role: "primary", Up: true, Slots: "0-8191", ID: "a1"},
				{Shard: 1, Addr: "10.0.0.2:7002", Role: "primary", Up: true, Slots: "8192-16383", ID: "b2"},
				{Shard: 1, Addr: "10.0.0.3:7003", Role: "replica", ID: "c3", Unread: true},
			}
		}}))
	t.Cleanup(cl.Close)
	dom = runChromium(t, cl.URL+"/", 2000, "--dump-dom")
	for _, s := range []string{
		`(Redis Cluster)`, `<td class="slots">8192-16383</td>`, `not read`,
	} {
		if !strings.Contains(dom, s) {
			t.Errorf("rendered cluster DOM lacks %q:\n%s", s, tail(dom, 4000))
		}
	}

	plain, _ := serve(t, "")
	dom = runChromium(t, plain.URL+"/", 2000, "--dump-dom")
	if !strings.Contains(dom, `<section id="nodes-section" hidden="">`) {
		t.Errorf("nodes section shown without nodes:\n%s", tail(dom, 4000))
	}
}
