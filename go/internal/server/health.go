package server

import (
	"context"
	"net/http"
	"time"

	"github.com/pgque/pgque/go/pgquehttp"
)

// readyTimeout bounds the database check of /readyz.
const readyTimeout = 3 * time.Second

// healthz answers as long as the process serves HTTP.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	_ = writeJSON(w, http.StatusOK, pgquehttp.Health{Status: "ok"}) // cannot fail
}

// readyz checks that the database answers, pgque is installed, and the
// ticker runs when this process has one.  Any failure answers 503.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	checks := map[string]string{}
	ready := true
	engine, err := s.client.InstalledEngine(ctx)
	switch {
	case err == nil:
		checks["database"] = "ok"
		checks["pgque"] = engine.Version
	case s.client.Pool().Ping(ctx) == nil:
		s.log.Warn("pgque serve: readiness: pgque is not usable", "err", err)
		checks["database"] = "ok"
		checks["pgque"] = "not installed or not accessible"
		ready = false
	default:
		s.log.Warn("pgque serve: readiness: database unreachable", "err", err)
		checks["database"] = "unreachable"
		ready = false
	}
	switch {
	case s.opts.Ticker == nil:
		checks["ticker"] = "not run by this process"
	case !s.tickerRunning.Load():
		checks["ticker"] = "stopped"
		ready = false
	case s.opts.Ticker.IsLeader():
		checks["ticker"] = "leader"
	default:
		checks["ticker"] = "standby" // another process's ticker leads
	}
	if !ready {
		_ = writeJSON(w, http.StatusServiceUnavailable, pgquehttp.Health{Status: "unavailable", Checks: checks})
		return
	}
	_ = writeJSON(w, http.StatusOK, pgquehttp.Health{Status: "ready", Checks: checks}) // strings: cannot fail
}
