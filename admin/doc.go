// Package admin serves the operator's HTTP API on the admin listener:
//
//	GET  /v1/status        every source's status and the aggregate (JSON)
//	POST /v1/sync/stop     stop sync for all sources; data stays
//	POST /v1/sync/restart  flush the destination and fully sync all sources
//	GET  /v1/sources       the source list (passwords redacted)
//	PUT  /v1/sources       replace the source list (restarts all sources)
//	POST /v1/sources       add sources (restarts all sources)
//	DELETE /v1/sources/{name}  remove a source (restarts all sources)
//	GET  /v1/source-url    {"url":"redis://admin:<pw>@host:port"}: this proxy as a source
//	POST /v1/admin-password/rotate  new admin password; {"url":…} with it
//
// It holds no state of its own: every answer comes from the Controller (the
// syncer's supervisor), and the source URL from Config.AdminPassword and
// Config.ProxyURL. When a token is configured, every /v1 request must
// carry `Authorization: Bearer <token>`.
//
//	srv := admin.New(admin.Config{Controller: sup, Token: "t"})
//	http.Serve(listener, srv)
package admin
