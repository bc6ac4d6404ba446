package server

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/pgque/pgque/go/pgquehttp"
)

// The checks of every request before it reaches an endpoint, against web
// pages (docs/http.md, "Browser protections").  A page can make a browser
// send requests to any address, the loopback one included: POSTs of the
// "simple" content types without asking the server first (no CORS
// preflight), and, by DNS rebinding (its own name made to resolve to
// 127.0.0.1), requests the browser takes for same-origin ones, whose answers
// it may read.  So: a body must be declared JSON, which a page cannot do
// without a preflight; a request a page made on another origin (Origin, or
// Sec-Fetch-Site without it) is refused unless that origin is allowed; and
// the Host must be one the server answers to.

// checkHost refuses a request whose Host is not this server's (DNS
// rebinding): unless opts.AnyHost, only loopback names and addresses and
// opts.AllowedHosts.
func (s *Server) checkHost(r *http.Request) error {
	if s.opts.AnyHost || r.Host == "" {
		return nil // without a Host header it is not a browser's request
	}
	host := hostName(r.Host)
	if isLoopbackName(host) || s.allowedHosts[host] {
		return nil
	}
	return forbidden("Host %q is not a name this server answers to (loopback names, and those of --allow-host)", r.Host)
}

// hostName is the lower-cased name or address of a Host header, without
// port, brackets or trailing dot.
func hostName(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// isLoopbackName reports whether host can only mean this machine:
// browsers resolve localhost (and *.localhost) themselves, so no DNS
// answer of an attacker can rebind them.
func isLoopbackName(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkOrigin refuses a request a page of another origin made, unless that
// origin is allowed; for an allowed one it adds the CORS headers, and
// answers a preflight (reporting true when it did).
func (s *Server) checkOrigin(w http.ResponseWriter, r *http.Request) (bool, error) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		// Without Origin (a no-cors request such as an image) a browser
		// still says where the request comes from.
		if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
			return false, forbidden("requests made by pages of other sites are refused (Sec-Fetch-Site %s)", site)
		}
		return false, nil // not a browser's, or the user's own navigation
	}
	o := strings.ToLower(origin)
	if !s.allowedOrigins[o] {
		if u, err := url.Parse(o); err == nil && u.Host != "" && u.Host == strings.ToLower(r.Host) {
			return false, nil // same origin
		}
		return false, forbidden("requests from origin %q are refused (allow it with --allow-origin)", origin)
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", "Location")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true, nil
	}
	return false, nil
}

// checkContentType requires a body (or a declared content type) to be
// JSON: a page can send text/plain, form data and multipart anywhere
// without a preflight, never application/json.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if r.ContentLength == 0 && ct == "" {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/json" {
		return nil
	}
	return &apiError{code: pgquehttp.CodeUnsupportedMediaType,
		msg: "a request body must be JSON, sent with Content-Type: application/json"}
}

// checkPath refuses a path PostgreSQL's text cannot hold, naming the
// segment at fault by the wildcard of pattern it fills ("consumer"),
// when it fills one.
func checkPath(r *http.Request, pattern string) error {
	if textFault(r.URL.Path) == "" {
		return nil
	}
	route := pattern
	if _, p, ok := strings.Cut(pattern, " "); ok {
		route = p // without the method
	}
	wildcards := strings.Split(route, "/")
	// As the mux matches: segments of the escaped path, each unescaped.
	for i, seg := range strings.Split(r.URL.EscapedPath(), "/") {
		v, err := url.PathUnescape(seg)
		if err != nil || textFault(v) == "" {
			continue
		}
		if i < len(wildcards) && strings.HasPrefix(wildcards[i], "{") {
			return checkText(fmt.Sprintf("%s %.100q in the path", strings.Trim(wildcards[i], "{}."), v), v)
		}
		break
	}
	return checkText("the path", r.URL.Path)
}

// checkText refuses NUL characters and invalid UTF-8, which no name or
// value of PostgreSQL's text can hold.
func checkText(what, v string) error {
	if why := textFault(v); why != "" {
		return badRequest("%s %s", what, why)
	}
	return nil
}

// textFault says why PostgreSQL's text cannot hold v; "" when it can.
func textFault(v string) string {
	switch {
	case !utf8.ValidString(v):
		return "is not valid UTF-8"
	case strings.IndexByte(v, 0) >= 0:
		return "holds a NUL character"
	}
	return ""
}
