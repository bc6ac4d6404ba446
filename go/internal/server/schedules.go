package server

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pgque/pgque/go/internal/wire"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.client.Schedules(r.Context())
	if err != nil {
		return err
	}
	var shown []pgque.ScheduleInfo
	for _, si := range ss {
		if visible(r, si.Queue) {
			shown = append(shown, si)
		}
	}
	return writeJSON(w, http.StatusOK, wire.Schedules(shown))
}

// schedule finds one schedule, checking that the request's token has need
// on its queue.  Names are unique per namespace, so one name may be in
// several: the ?queue= parameter (or queue, when not "") says which.  Only
// schedules the token may see count, so another tenant's is as unknown as
// one that does not exist.  The engine lists them all; there are few.
func (s *Server) schedule(r *http.Request, name, queue string, need Scope) (pgquehttp.Schedule, error) {
	if queue == "" {
		queue = r.URL.Query().Get("queue")
	}
	ss, err := s.client.Schedules(r.Context())
	if err != nil {
		return pgquehttp.Schedule{}, err
	}
	var found []pgque.ScheduleInfo
	for _, si := range ss {
		if si.Name == name && (queue == "" || si.Queue == queue) && visible(r, si.Queue) {
			found = append(found, si)
		}
	}
	switch len(found) {
	case 0:
		return pgquehttp.Schedule{}, &apiError{code: pgquehttp.CodeScheduleNotFound,
			sqlstate: "PQ016", msg: fmt.Sprintf("pgque: schedule '%s' does not exist", name)}
	case 1:
		return wire.Schedule(found[0]), authorize(r, need, found[0].Queue)
	}
	queues := make([]string, len(found))
	for i, si := range found {
		queues[i] = si.Queue
	}
	return pgquehttp.Schedule{}, badRequest("schedule %q exists on each of the queues %s; pass ?queue= the one meant",
		name, strings.Join(queues, ", "))
}

func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request) error {
	sc, err := s.schedule(r, r.PathValue("schedule"), "", ScopeInspect)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sc)
}

func (s *Server) createSchedule(w http.ResponseWriter, r *http.Request) error {
	var req pgquehttp.CreateScheduleRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	if err := authorize(r, ScopeAdmin, req.Queue); err != nil {
		return err
	}
	// Checked here, as the SDK's own checks name its Go fields (Every,
	// StartAt); and so that a period too long for a time.Duration cannot wrap.
	switch {
	case req.Type == "":
		return badRequest("type is required")
	case (req.EverySeconds == 0) == (req.Cron == ""):
		return badRequest("schedule %q: set exactly one of every_seconds (from 1 to %d) and cron (a non-empty expression)",
			req.Name, maxDelaySeconds)
	case req.EverySeconds < 0 || req.EverySeconds > maxDelaySeconds:
		return badRequest("every_seconds %d is not from 1 to %d", req.EverySeconds, maxDelaySeconds)
	case req.StartAt != nil && req.Cron != "":
		return badRequest("schedule %q: start_at goes with every_seconds only", req.Name)
	}
	sc := pgque.Schedule{Name: req.Name, Queue: req.Queue, Type: req.Type, Payload: wire.InPayload(req.Payload), Cron: req.Cron,
		Every: time.Duration(req.EverySeconds) * time.Second, TimeZone: req.TimeZone}
	if req.StartAt != nil {
		sc.StartAt = *req.StartAt
	}
	if _, err := s.client.CreateSchedule(r.Context(), sc); err != nil {
		return err
	}
	out, err := s.schedule(r, req.Name, req.Queue, ScopeAdmin)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/schedules/"+url.PathEscape(req.Name)+"?queue="+url.QueryEscape(req.Queue))
	return writeJSON(w, http.StatusCreated, out)
}

func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request) error {
	sc, err := s.schedule(r, r.PathValue("schedule"), "", ScopeAdmin)
	if err != nil {
		return err
	}
	if err := s.client.DropQueueSchedule(r.Context(), sc.Queue, sc.Name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
