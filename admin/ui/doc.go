// Package ui is the admin listener's web dashboard: one page, embedded in
// the binary (plain HTML, CSS and JavaScript, nothing fetched from outside),
// that polls GET /v1/status every second and shows the aggregate status,
// one row per source (name, redacted URL, status badge, the phase while
// connecting or waiting for the snapshot, then a progress bar while it
// loads, lag, last update, last error), Stop and Restart buttons (with a
// confirmation; they POST /v1/sync/stop and /v1/sync/restart) and a chart
// of every source's lag over the last five minutes, kept in the browser.
// When the status carries destination_nodes (admin.Config.Nodes), a table
// lists them: shard, address, role, up or in/out of read rotation, a
// replica's lag, reads, and its exits from rotation.
//
// When the admin API wants a token, the page asks for it once, keeps it in
// the tab's sessionStorage and sends it as a bearer token.
//
//	admin.New(admin.Config{Controller: sup, Extra: map[string]http.Handler{"/": ui.Handler()}})
package ui
