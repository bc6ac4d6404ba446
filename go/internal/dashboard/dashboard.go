// Package dashboard is the web page `pgque serve` serves at /: queues,
// consumers and workers, dead letters, jobs and schedules, over the server's
// own HTTP API, with the operator's token.  Its files are embedded: it
// needs no network, no CDN, no build step.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed assets
var assets embed.FS

// Routes are the patterns Handler serves: the page, and its script and
// style sheet under /ui/.
const (
	PageRoute   = "GET /{$}"
	AssetsRoute = "GET /ui/"
)

// csp allows the page its own script, style and API only: no inline
// script, no other origin, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the page and its assets.  They hold no data, so they need
// no token; the API calls the page makes carry the token the operator
// types in.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded directory is part of the build
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == "/" {
			http.ServeFileFS(w, r, sub, "index.html")
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/ui/")
		if name == "" || strings.HasSuffix(name, "/") || name == "index.html" {
			http.NotFound(w, r) // no listings; the page lives at / only
			return
		}
		http.ServeFileFS(w, r, sub, name)
	})
}
