// Package server is pgque's HTTP API: REST/JSON endpoints over a
// *pgque.Client, a Server-Sent Events stream per consumer, Prometheus
// metrics and health checks.  `pgque serve` runs it; docs/http.md describes
// the endpoints.  The wire types are those of package pgquehttp.
//
// Requests pass guard first: the checks against web pages (guard.go) and,
// with Options.Tokens, authentication; each endpoint then checks its scope
// on its queue (auth.go).
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgque/pgque/go/internal/dashboard"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// Options configures a Server.  Zero fields take the defaults shown.
type Options struct {
	// Logger receives request failures, stream and ticker events (default: none).
	Logger *slog.Logger
	// RequestTimeout bounds the reading of a request, its database work,
	// and each write to a stream (default 30 s); streams last.
	RequestTimeout time.Duration
	// MaxBodyBytes caps a request body (default 1 MiB).
	MaxBodyBytes int64
	// MaxBatch caps the events of one batch send and the messages of one
	// receive, stream piece or dead-letter listing (default 1000).
	MaxBatch int
	// PollInterval is how often an idle stream asks for messages when no
	// notification came (default 1 s).
	PollInterval time.Duration
	// HeartbeatInterval is how often an idle stream writes a comment so that
	// proxies keep it open (default 15 s).
	HeartbeatInterval time.Duration
	// ScrapeTimeout bounds the queries of one /metrics scrape (default 5 s).
	ScrapeTimeout time.Duration
	// Ticker, when set, is the ticker this process runs (see RunTicker);
	// /readyz and /metrics report on it.
	Ticker *pgque.Ticker

	// Tokens, when set, are the bearer tokens requests must carry (all but
	// /healthz and /readyz); each endpoint needs a scope (docs/http.md).
	// Nil: no authentication.
	Tokens *Tokens
	// AllowedOrigins are the origins ("https://app.example.com") whose web
	// pages may call the API (CORS).  Requests of pages of other origins
	// are refused; requests without Origin (programs) are not concerned.
	AllowedOrigins []string
	// AllowedHosts are the names or addresses a request's Host header may
	// give, besides loopback ones (localhost, 127.0.0.0/8, ::1), which are
	// always accepted: the other names of a server that listens on
	// loopback would let a page rebind its own name to it.
	AllowedHosts []string
	// AnyHost accepts any Host header: for a server reachable beyond
	// loopback under names not listed in AllowedHosts.
	AnyHost bool
	// MetricsListener, when set, is where Serve serves /metrics, without a
	// token; the main listener then has no /metrics.
	MetricsListener net.Listener
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.RequestTimeout, 30*time.Second)
	def(&o.PollInterval, time.Second)
	def(&o.HeartbeatInterval, 15*time.Second)
	def(&o.ScrapeTimeout, 5*time.Second)
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1000
	}
}

// Server serves pgque's HTTP API.  It is an http.Handler; Serve runs it on a
// listener with graceful shutdown.  Close it when done.
type Server struct {
	client *pgque.Client
	opts   Options
	log    *slog.Logger
	mux    *http.ServeMux

	pieces   *pieceOwners
	acks     *ackSignals
	workers  *workerPool
	registry *prometheus.Registry
	metrics  *httpMetrics

	allowedHosts   map[string]bool
	allowedOrigins map[string]bool

	// tickerRunning is set while RunTicker runs the ticker.
	tickerRunning atomic.Bool

	// closing ends streams; background goroutines (the LISTEN connection)
	// stop with it.
	closing context.Context
	close   context.CancelFunc
	wg      sync.WaitGroup
}

// New returns a Server over client.  The client stays the caller's.
func New(client *pgque.Client, opts Options) *Server {
	opts.setDefaults()
	s := &Server{
		client:   client,
		opts:     opts,
		log:      opts.Logger,
		mux:      http.NewServeMux(),
		pieces:   newPieceOwners(),
		acks:     newAckSignals(),
		workers:  newWorkerPool(),
		registry: prometheus.NewRegistry(),
	}
	s.allowedHosts, s.allowedOrigins = map[string]bool{}, map[string]bool{}
	for _, h := range opts.AllowedHosts {
		s.allowedHosts[hostName(h)] = true
	}
	for _, o := range opts.AllowedOrigins {
		s.allowedOrigins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	s.closing, s.close = context.WithCancel(context.Background())
	s.metrics = newHTTPMetrics(s.registry)
	s.registry.MustRegister(newCollector(s))
	s.routes()
	return s
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	route := pattern
	if route == "" {
		route = unmatchedRoute
	}
	if pattern != healthRoute && pattern != readyRoute {
		// Probes pass: they reveal nothing, and kubelets and load
		// balancers send the Host and no token they like.
		var answered bool
		var err error
		// The dashboard's page and assets hold no data: no token, but the
		// Host and Origin checks all the same.
		auth := pattern != dashboard.PageRoute && pattern != dashboard.AssetsRoute
		if r, answered, err = s.guard(w, r, pattern, auth); answered {
			return
		}
		if err != nil {
			s.instrument(route, s.errors(func(http.ResponseWriter, *http.Request) error { return err })).ServeHTTP(w, r)
			return
		}
	}
	if clean := cleanPath(r.URL.Path); clean != r.URL.Path {
		// The mux would redirect to the clean path with an HTML body; the
		// API's paths are canonical, and every answer is JSON.
		s.instrument(unmatchedRoute, s.errors(func(http.ResponseWriter, *http.Request) error {
			return &apiError{code: pgquehttp.CodeNotFound,
				msg: fmt.Sprintf("no endpoint %s %s: not a canonical path (%s is)", r.Method, r.URL.Path, clean)}
		})).ServeHTTP(w, r)
		return
	}
	if pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	// No endpoint: answer the mux's 404 or 405 in JSON rather than plain text.
	s.instrument(unmatchedRoute, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probe := &statusProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		e := &apiError{code: pgquehttp.CodeNotFound,
			msg: fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path)}
		switch probe.code {
		case http.StatusNotFound:
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", probe.header.Get("Allow"))
			e.code, e.msg = pgquehttp.CodeMethodNotAllowed,
				fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, probe.header.Get("Allow"))
		default:
			h.ServeHTTP(w, r)
			return
		}
		s.writeError(w, r, e)
	})).ServeHTTP(w, r)
}

// guard runs the checks every request passes before its endpoint: Host,
// Origin (answering a CORS preflight: answered), the path's and query's
// encoding, the body's content type, and, with auth, the token.  pattern
// is the route the request matched, if any.  It returns the request
// carrying the token.
func (s *Server) guard(w http.ResponseWriter, r *http.Request, pattern string, auth bool) (*http.Request, bool, error) {
	if err := s.checkHost(r); err != nil {
		return r, false, err
	}
	if answered, err := s.checkOrigin(w, r); answered || err != nil {
		return r, answered, err
	}
	if err := checkPath(r, pattern); err != nil {
		return r, false, err
	}
	for k, vs := range r.URL.Query() {
		if err := checkText("the name of a query parameter", k); err != nil {
			return r, false, err
		}
		for _, v := range vs {
			if err := checkText(fmt.Sprintf("query parameter %q", k), v); err != nil {
				return r, false, err
			}
		}
	}
	if err := checkContentType(r); err != nil {
		return r, false, err
	}
	if !auth {
		return r, false, nil
	}
	r, err := s.authenticate(r)
	return r, false, err
}

// metricsOnly serves the separate metrics listener: /metrics, without a
// token, behind the Host and Origin checks.
func (s *Server) metricsOnly() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.instrument("GET /metrics", s.metricsHandler()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, answered, err := s.guard(w, r, "", false)
		if answered {
			return
		}
		if _, pattern := mux.Handler(r); err == nil && pattern == "" {
			err = &apiError{code: pgquehttp.CodeNotFound,
				msg: fmt.Sprintf("no endpoint %s %s: this listener serves GET /metrics only", r.Method, r.URL.Path)}
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// cleanPath is p as http.ServeMux wants it (and redirects to otherwise):
// rooted, without "." and ".." elements or repeated slashes, keeping a
// trailing slash.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// unmatchedRoute labels the metrics of requests that matched no endpoint.
const unmatchedRoute = "unmatched"

// statusProbe records what a handler answers, discarding the body.
type statusProbe struct {
	header http.Header
	code   int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(code int)        { p.code = code }

// Close ends open streams and stops the LISTEN connection.  The Server must
// not serve requests afterwards.
func (s *Server) Close() {
	s.close()
	s.wg.Wait()
}

// RunTicker runs opts.Ticker until ctx ends; /readyz fails while it does
// not run.  It returns nil at once when no Ticker was configured.
func (s *Server) RunTicker(ctx context.Context) error {
	if s.opts.Ticker == nil {
		return nil
	}
	s.tickerRunning.Store(true)
	defer s.tickerRunning.Store(false)
	return s.opts.Ticker.Run(ctx)
}

// shutdownTimeout bounds how long Serve waits for requests in flight.
const shutdownTimeout = 10 * time.Second

// Serve serves on ln, and runs the ticker (if configured), until ctx ends;
// then it ends the streams, lets requests in flight finish (for up to 10 s),
// stops the ticker and returns nil.  It returns an error when serving fails.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		// Covers reading the request only: net/http lifts the deadline
		// once it is read, so streams outlive it.
		ReadTimeout: s.opts.RequestTimeout,
		// No WriteTimeout: streams last; they set write deadlines per event.
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	// Shutdown waits for idle connections, and a stream never is idle.
	hs.RegisterOnShutdown(s.close)

	tickCtx, stopTicker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopTicker()
	var tickerErr chan error // nil without a ticker: never ready
	if s.opts.Ticker != nil {
		tickerErr = make(chan error, 1)
		go func() { tickerErr <- s.RunTicker(tickCtx) }()
	}

	served := make(chan error, 2)
	go func() { served <- hs.Serve(ln) }()
	var ms *http.Server
	if s.opts.MetricsListener != nil {
		ms = &http.Server{
			Handler:           s.metricsOnly(),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       s.opts.RequestTimeout,
			WriteTimeout:      s.opts.ScrapeTimeout + s.opts.RequestTimeout,
			ErrorLog:          hs.ErrorLog,
			BaseContext:       hs.BaseContext,
		}
		go func() { served <- ms.Serve(s.opts.MetricsListener) }()
	}

	var err error
	tickerDone := false
	select {
	case err = <-served:
	case err = <-tickerErr:
		// Run returns before tickCtx ends only for what retrying cannot
		// fix: a bad configuration, no pgque, a role without the rights.
		tickerDone = true
	case <-ctx.Done():
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if serr := hs.Shutdown(sctx); serr != nil && err == nil {
		err = fmt.Errorf("pgque serve: shutdown: %w", serr)
	}
	if ms != nil {
		if serr := ms.Shutdown(sctx); serr != nil && err == nil {
			err = fmt.Errorf("pgque serve: shutdown of the metrics listener: %w", serr)
		}
	}
	stopTicker()
	if tickerErr != nil && !tickerDone {
		if terr := <-tickerErr; terr != nil && err == nil {
			err = terr
		}
	}
	s.Close()
	return err
}
