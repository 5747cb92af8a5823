package ui

import (
	"embed"
	"net/http"
)

//go:embed assets
var assets embed.FS

// files maps the paths the dashboard serves to their asset and type.
var files = map[string]struct{ name, ctype string }{
	"/":              {"assets/index.html", "text/html; charset=utf-8"},
	"/index.html":    {"assets/index.html", "text/html; charset=utf-8"},
	"/dashboard.js":  {"assets/dashboard.js", "text/javascript; charset=utf-8"},
	"/dashboard.css": {"assets/dashboard.css", "text/css; charset=utf-8"},
	"/favicon.svg":   {"assets/favicon.svg", "image/svg+xml"},
}

// Handler serves the dashboard at "/" (mount it there); every other path
// is 404. It is safe for concurrent use and holds no state.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		b, err := assets.ReadFile(f.name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.ctype)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(b)
	})
}
