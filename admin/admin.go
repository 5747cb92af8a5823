package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/syncer"
)

// Controller is what the admin API reads and drives: the supervisor.
type Controller interface {
	Status() syncer.Status
	Sources() []config.Source
	Stop(ctx context.Context) error
	Restart(ctx context.Context) error
	SetSources(ctx context.Context, srcs []config.Source) error
}

// Config configures the handler.
type Config struct {
	Controller Controller
	// Token, when set, is required as a bearer token on /v1.
	Token string
	// OnSourcesChanged is called after PUT /v1/sources succeeded, e.g. to
	// persist the list; nil does nothing.
	OnSourcesChanged func([]config.Source) error
	Logger           *slog.Logger
	// Extra handlers mounted beside /v1 (e.g. "/metrics", "/").
	Extra map[string]http.Handler
	// AdminPassword, when set, serves GET /v1/source-url and POST
	// /v1/admin-password/rotate; nil answers both 404.
	AdminPassword AdminPassword
	// ProxyURL returns where other deployments reach the proxy, without
	// user info ("redis://host:port", "rediss://…" with TLS; ListenURL
	// builds it). The source URL is it with admin:<password>. Needed
	// with AdminPassword.
	ProxyURL func() (*url.URL, error)
	// Nodes, when set, reports the destination nodes as the proxy sees
	// them; GET /v1/status then carries them as destination_nodes.
	Nodes func() []DestinationNode
	// DestinationKind, when set, is GET /v1/status's destination_kind:
	// "shards" (standalone shards) or "cluster" (a Redis Cluster).
	DestinationKind string
}

// DestinationNode is one destination node in GET /v1/status: a shard's
// primary, or a replica the proxy reads from (proxy.read_from).
type DestinationNode struct {
	Shard int    `json:"shard"`
	Addr  string `json:"addr"`
	Role  string `json:"role"` // primary or replica
	// Up: the primary answered its last check; a replica is in read
	// rotation.
	Up bool `json:"up"`
	// LagSeconds is a replica's lag as the proxy measures it.
	LagSeconds float64 `json:"lag_seconds"`
	Reads      int64   `json:"reads"`
	// Stale, LinkDown and Errors count a replica's exits from rotation:
	// lag over proxy.max_replica_lag, master link down, failed check or
	// read.
	Stale    int64 `json:"stale"`
	LinkDown int64 `json:"link_down"`
	Errors   int64 `json:"errors"`
	// Slots are a primary's slot ranges ("0-5460,10923"); ID is a
	// cluster node's ID.
	Slots string `json:"slots,omitempty"`
	ID    string `json:"id,omitempty"`
	// Unread marks a cluster replica the proxy neither reads from nor
	// checks (proxy.read_from primary): listed for the topology only,
	// its up says nothing.
	Unread bool `json:"unread,omitempty"`
}

// Handler is the admin HTTP handler.
type Handler struct {
	cfg Config
	mux *http.ServeMux
}

// New builds the handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /v1/status", h.status)
	h.mux.HandleFunc("POST /v1/sync/stop", h.control(cfg.Controller.Stop, "stop"))
	h.mux.HandleFunc("POST /v1/sync/restart", h.control(cfg.Controller.Restart, "restart"))
	h.mux.HandleFunc("GET /v1/sources", h.getSources)
	h.mux.HandleFunc("PUT /v1/sources", h.putSources)
	h.mux.HandleFunc("POST /v1/sources", h.addSources)
	h.mux.HandleFunc("DELETE /v1/sources/{name}", h.removeSource)
	h.mux.HandleFunc("GET /v1/source-url", h.getSourceURL)
	h.mux.HandleFunc("POST /v1/admin-password/rotate", h.rotatePassword)
	for pattern, eh := range cfg.Extra {
		h.mux.Handle(pattern, eh)
	}
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Token != "" && len(r.URL.Path) >= 4 && r.URL.Path[:4] == "/v1/" {
		want := "Bearer " + h.cfg.Token
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="replicaof"`)
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token"))
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Nodes == nil && h.cfg.DestinationKind == "" {
		writeJSON(w, http.StatusOK, h.cfg.Controller.Status())
		return
	}
	st := StatusView{Status: h.cfg.Controller.Status(), DestinationKind: h.cfg.DestinationKind}
	if h.cfg.Nodes != nil {
		st.DestinationNodes = h.cfg.Nodes()
	}
	writeJSON(w, http.StatusOK, st)
}

// StatusView is the body of GET /v1/status: the supervisor's status, the
// destination's kind and its nodes as the proxy sees them (both absent
// when the handler was not given them).
type StatusView struct {
	syncer.Status
	DestinationKind  string            `json:"destination_kind,omitempty"`
	DestinationNodes []DestinationNode `json:"destination_nodes,omitempty"`
}

func (h *Handler) control(fn func(context.Context) error, what string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		if err := fn(ctx); err != nil {
			writeControlError(w, err)
			return
		}
		h.cfg.Logger.Info("admin request", "action", what, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, h.cfg.Controller.Status())
	}
}

// SourcesBody is the JSON of GET and PUT /v1/sources: each source in its
// string form ("name: redis://…"); GET shows passwords as ***.
type SourcesBody struct {
	Sources []string `json:"sources"`
}

func (h *Handler) getSources(w http.ResponseWriter, r *http.Request) {
	var body SourcesBody
	for _, s := range h.cfg.Controller.Sources() {
		body.Sources = append(body.Sources, s.String())
	}
	writeJSON(w, http.StatusOK, body)
}

// maxBody bounds a PUT body: 32 sources fit in far less.
const maxBody = 1 << 20

func (h *Handler) putSources(w http.ResponseWriter, r *http.Request) {
	body, ok := readSources(w, r)
	if !ok {
		return
	}
	srcs, err := ParseSources(body.Sources)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	keepSettings(srcs, h.cfg.Controller.Sources())
	h.setSources(w, r, srcs, "set sources")
}

// keepSettings gives each source in string form the TLS files and the
// compression level of the current source of the same name and address,
// which the string form cannot carry: after rotate-password on the other
// deployment, `sources set "a: rediss://admin:<new>@host:port"` changes
// the password and keeps the rest.
func keepSettings(srcs, current []config.Source) {
	for i := range srcs {
		for _, c := range current {
			if c.Name != srcs[i].Name || c.Addr() != srcs[i].Addr() || c.TLS != srcs[i].TLS {
				continue
			}
			if srcs[i].TLSFiles == nil {
				srcs[i].TLSFiles = c.TLSFiles
			}
			if srcs[i].Compression == 0 {
				srcs[i].Compression = c.Compression
			}
		}
	}
}

// addSources appends sources (POST /v1/sources): the server keeps the
// current passwords, which GET never shows.
func (h *Handler) addSources(w http.ResponseWriter, r *http.Request) {
	body, ok := readSources(w, r)
	if !ok {
		return
	}
	added, err := ParseSources(body.Sources)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	// Existing sources keep everything (passwords, TLS files, compression).
	h.setSources(w, r, append(h.cfg.Controller.Sources(), added...), "add sources")
}

func (h *Handler) removeSource(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var list []config.Source
	found := false
	for _, s := range h.cfg.Controller.Sources() {
		if s.Name == name {
			found = true
			continue
		}
		list = append(list, s)
	}
	if !found {
		writeError(w, http.StatusNotFound, fmt.Errorf("no source named %q", name))
		return
	}
	h.setSources(w, r, list, "remove source")
}

func readSources(w http.ResponseWriter, r *http.Request) (SourcesBody, bool) {
	var body SourcesBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
		return body, false
	}
	return body, true
}

func (h *Handler) setSources(w http.ResponseWriter, r *http.Request, srcs []config.Source, what string) {
	if err := CheckSources(srcs); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := h.cfg.Controller.SetSources(ctx, srcs); err != nil {
		writeControlError(w, err)
		return
	}
	if h.cfg.OnSourcesChanged != nil {
		if err := h.cfg.OnSourcesChanged(srcs); err != nil {
			h.cfg.Logger.Error("saving sources", "error", err)
		}
	}
	h.cfg.Logger.Info("admin request", "action", what, "count", len(srcs), "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, h.cfg.Controller.Status())
}

// ParseSources parses a source list in string form and checks it as the
// config file would (CheckSources).
func ParseSources(list []string) ([]config.Source, error) {
	if len(list) > config.MaxSources {
		return nil, fmt.Errorf("%d sources: %w", len(list), config.ErrTooManySources)
	}
	srcs := make([]config.Source, 0, len(list))
	for i, s := range list {
		src, err := config.ParseSource(s)
		if err != nil {
			return nil, fmt.Errorf("sources[%d]: %w", i, err)
		}
		srcs = append(srcs, src)
	}
	return srcs, CheckSources(srcs)
}

// CheckSources enforces at most config.MaxSources, unique names and unique
// addresses.
func CheckSources(srcs []config.Source) error {
	if len(srcs) > config.MaxSources {
		return fmt.Errorf("%d sources: %w", len(srcs), config.ErrTooManySources)
	}
	names := map[string]bool{}
	addrs := map[string]bool{}
	for i, src := range srcs {
		if names[src.Name] {
			return fmt.Errorf("sources[%d]: duplicate name %q", i, src.Name)
		}
		if addrs[src.Addr()] {
			return fmt.Errorf("sources[%d]: duplicate address %s", i, src.Addr())
		}
		names[src.Name], addrs[src.Addr()] = true, true
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeControlError answers a failed control call: 409 naming the active
// instance on a standby, else 503.
func writeControlError(w http.ResponseWriter, err error) {
	var sb *syncer.StandbyError
	if errors.As(err, &sb) {
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error(), "active": sb.Active})
		return
	}
	writeError(w, http.StatusServiceUnavailable, err)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
