package admin

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// AdminUser is the user name of the internal admin password in source
// URLs (proxy.AdminUser).
const AdminUser = "admin"

// AdminPassword is the deployment's internal admin password
// (*adminpw.Store fits). Both methods may be called concurrently.
type AdminPassword interface {
	// Password returns the current password.
	Password() string
	// Rotate replaces it, closes the connections that used the old one,
	// and returns the new one.
	Rotate() (string, error)
}

// SourceURLBody is the JSON of GET /v1/source-url and POST
// /v1/admin-password/rotate: the URL another replicaof deployment adds as
// a source to replicate from this one's proxy, password included.
type SourceURLBody struct {
	URL string `json:"url"`
}

// errNoAdminPassword answers the source-URL endpoints of a handler whose
// Config has no AdminPassword.
var errNoAdminPassword = errors.New("this server has no internal admin password (replication through the proxy is off)")

// proxyURL returns Config.ProxyURL's answer.
func (h *Handler) proxyURL() (*url.URL, error) {
	if h.cfg.ProxyURL == nil {
		return nil, errors.New("admin: Config.ProxyURL is not set")
	}
	return h.cfg.ProxyURL()
}

// sourceURL is base with admin:<pw> as user info.
func sourceURL(base *url.URL, pw string) string {
	u := *base
	u.User = url.UserPassword(AdminUser, pw)
	return u.String()
}

// sourceBase is the proxy URL a source URL is made of, or false once it
// answered w why there is none.
func (h *Handler) sourceBase(w http.ResponseWriter) (*url.URL, bool) {
	if h.cfg.AdminPassword == nil {
		writeError(w, http.StatusNotFound, errNoAdminPassword)
		return nil, false
	}
	base, err := h.proxyURL()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return nil, false
	}
	return base, true
}

func (h *Handler) getSourceURL(w http.ResponseWriter, r *http.Request) {
	base, ok := h.sourceBase(w)
	if !ok {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, SourceURLBody{URL: sourceURL(base, h.cfg.AdminPassword.Password())})
}

func (h *Handler) rotatePassword(w http.ResponseWriter, r *http.Request) {
	// The URL's base comes first: a rotation whose new URL cannot be
	// told locks every replica out for nothing.
	base, ok := h.sourceBase(w)
	if !ok {
		return
	}
	pw, err := h.cfg.AdminPassword.Rotate()
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("rotating the admin password: %w", err))
		return
	}
	h.cfg.Logger.Info("admin request", "action", "rotate admin password", "remote", r.RemoteAddr)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, SourceURLBody{URL: sourceURL(base, pw)})
}

// ListenURL returns the URL, without user info, at which other deployments
// reach a proxy configured to listen on listen (proxy.listen, "host:port")
// and listening on bound (its listener's address, whose port differs from
// listen's for port 0): "redis://host:port", or "rediss://…" with tls. The
// host is listen's as written (a TLS certificate names it), except that an
// unspecified one ("", 0.0.0.0, ::) is replaced by hostname() (os.Hostname
// in serve). A unix socket has no such URL.
func ListenURL(listen string, bound net.Addr, tls bool, hostname func() (string, error)) (*url.URL, error) {
	if strings.HasPrefix(listen, "unix:") || bound == nil || !strings.HasPrefix(bound.Network(), "tcp") {
		return nil, fmt.Errorf("the proxy listens on %s, not TCP: other deployments cannot replicate from it", listen)
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("proxy listen address %q: %w", listen, err)
	}
	_, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return nil, fmt.Errorf("proxy address %s: %w", bound, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		name, err := hostname()
		if err != nil {
			return nil, fmt.Errorf("the proxy listens on every address and the host name is unknown: %w", err)
		}
		if name == "" || strings.ContainsAny(name, "/@?#[]% ") {
			return nil, fmt.Errorf("the proxy listens on every address and the host name %q cannot be used in a URL", name)
		}
		host = name
	}
	u := &url.URL{Scheme: "redis", Host: net.JoinHostPort(host, port)}
	if tls {
		u.Scheme = "rediss"
	}
	return u, nil
}
