package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgque/pgque/go/internal/dashboard"
	"github.com/pgque/pgque/go/internal/wire"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// streamRoute is the Server-Sent Events endpoint.
const streamRoute = "GET /v1/queues/{queue}/consumers/{consumer}/stream"

// handlerFunc is an endpoint: it answers, or returns the error to answer with.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// Routes of the probes, which need no token.
const (
	healthRoute = "GET /healthz"
	readyRoute  = "GET /readyz"
)

func (s *Server) routes() {
	// need is the scope the endpoint needs: on the queue of the path, or,
	// for paths without one, on some queue (the endpoint checks the queue
	// once it knows it, or filters what it lists).
	api := func(pattern string, need Scope, h handlerFunc) {
		s.mux.Handle(pattern, s.instrument(pattern, s.endpoint(scoped(pattern, need, h))))
	}
	page := dashboard.Handler()
	for _, pattern := range []string{dashboard.PageRoute, dashboard.AssetsRoute} {
		s.mux.Handle(pattern, s.instrument(pattern, page))
	}
	api("GET /v1/queues", ScopeInspect, s.listQueues)
	api("POST /v1/queues", ScopeAdmin, s.createQueue)
	api("GET /v1/queues/{queue}", ScopeInspect, s.getQueue)
	api("PATCH /v1/queues/{queue}", ScopeAdmin, s.updateQueue)
	api("DELETE /v1/queues/{queue}", ScopeAdmin, s.deleteQueue)
	api("POST /v1/queues/{queue}/pause", ScopeAdmin, s.pauseQueue)
	api("POST /v1/queues/{queue}/resume", ScopeAdmin, s.resumeQueue)

	api("POST /v1/queues/{queue}/events", ScopeWrite, s.send)
	api("POST /v1/queues/{queue}/events/batch", ScopeWrite, s.sendBatch)

	api("GET /v1/queues/{queue}/consumers", ScopeInspect, s.listConsumers)
	api("GET /v1/queues/{queue}/consumers/{consumer}", ScopeInspect, s.getConsumer)
	api("PUT /v1/queues/{queue}/consumers/{consumer}", ScopeRead, s.subscribe)
	api("DELETE /v1/queues/{queue}/consumers/{consumer}", ScopeRead, s.unsubscribe)
	api("POST /v1/queues/{queue}/consumers/{consumer}/receive", ScopeRead, s.receive)
	api("POST /v1/consumers/{consumer}/receive", ScopeRead, s.receiveFirst)
	api("GET /v1/queues/{queue}/consumers/{consumer}/peek", ScopeRead, s.peek)
	api("GET /v1/queues/{queue}/consumers/{consumer}/workers", ScopeRead, s.listWorkers)
	api("DELETE /v1/queues/{queue}/consumers/{consumer}/workers/{worker}", ScopeRead, s.unregisterWorker)
	// Streams are not bounded by the request timeout.
	s.mux.Handle(streamRoute, s.instrument(streamRoute, s.errors(scoped(streamRoute, ScopeRead, s.stream))))

	api("POST /v1/batches/{batch}/ack", ScopeRead, s.ack)
	api("POST /v1/batches/{batch}/nack", ScopeRead, s.nack)
	api("POST /v1/batches/{batch}/heartbeat", ScopeRead, s.heartbeat)

	api("GET /v1/queues/{queue}/messages", ScopeRead, s.listMessages)
	api("GET /v1/queues/{queue}/messages/{id}", ScopeRead, s.messageStatus)
	api("POST /v1/queues/{queue}/messages/{id}/cancel", ScopeWrite, s.cancel)
	api("GET /v1/queues/{queue}/dead-letters", ScopeAdmin, s.listDeadLetters)
	api("DELETE /v1/queues/{queue}/dead-letters", ScopeAdmin, s.purgeDeadLetters)
	api("POST /v1/dead-letters/{id}/replay", ScopeAdmin, s.replayDeadLetter)

	api("GET /v1/schedules", ScopeInspect, s.listSchedules)
	api("POST /v1/schedules", ScopeAdmin, s.createSchedule)
	api("GET /v1/schedules/{schedule}", ScopeInspect, s.getSchedule)
	api("DELETE /v1/schedules/{schedule}", ScopeAdmin, s.deleteSchedule)

	s.mux.Handle(healthRoute, s.instrument(healthRoute, http.HandlerFunc(s.healthz)))
	s.mux.Handle(readyRoute, s.instrument(readyRoute, http.HandlerFunc(s.readyz)))
	if s.opts.MetricsListener == nil {
		// Every queue shows in the metrics.
		metrics := s.metricsHandler()
		s.mux.Handle("GET /metrics", s.instrument("GET /metrics", s.errors(func(w http.ResponseWriter, r *http.Request) error {
			if err := authorizeAll(r, ScopeInspect, "/metrics"); err != nil {
				return err
			}
			metrics.ServeHTTP(w, r)
			return nil
		})))
	}
}

// scoped checks the request's token before h: need on the path's queue, or
// on some queue for a path without one.
func scoped(pattern string, need Scope, h handlerFunc) handlerFunc {
	byQueue := strings.Contains(pattern, "{queue}")
	return func(w http.ResponseWriter, r *http.Request) error {
		var err error
		if byQueue {
			err = authorize(r, need, r.PathValue("queue"))
		} else {
			err = authorizeAny(r, need)
		}
		if err != nil {
			return err
		}
		return h(w, r)
	}
}

// errors answers with the error h returns.
func (s *Server) errors(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// endpoint bounds the request's body and database work.
func (s *Server) endpoint(h handlerFunc) http.Handler {
	return s.errors(func(w http.ResponseWriter, r *http.Request) error {
		ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
		return h(w, r)
	})
}

// pathInt reads an integer path parameter.
// pathInt reads an id of the path: ids (of batches, messages, dead
// letters) are positive, so anything else is refused before a query.
func pathInt(r *http.Request, name string) (int64, error) {
	v, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || v < 1 {
		return 0, badRequest("%s %q is not a positive integer", name, r.PathValue(name))
	}
	return v, nil
}

// queryConsumer reads the optional consumer parameter: absent means every
// consumer, but present and empty is refused, so that an unset variable in
// a caller's URL cannot widen a request to every consumer.
func queryConsumer(r *http.Request) (string, error) {
	v, ok := r.URL.Query()["consumer"]
	if ok && v[0] == "" {
		return "", badRequest("consumer must not be empty: leave it out for every consumer")
	}
	return r.URL.Query().Get("consumer"), nil
}

// queryInt reads an optional integer query parameter in [1, max].
func queryInt(r *http.Request, name string, def, max int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || v > max {
		return 0, badRequest("%s %q is not an integer from 1 to %d", name, s, max)
	}
	return v, nil
}

// maxDelaySeconds bounds the delays and periods given in seconds: the
// engine's limit of 100 years, which PostgreSQL compares as 1,200 months of
// 30 days (beyond about 292 years they would not fit a time.Duration either).
const maxDelaySeconds = 100 * 12 * 30 * 24 * 60 * 60

// maxLeaseSeconds is the longest lease the engine accepts (pgque.MaxLease).
const maxLeaseSeconds = float64(pgque.MaxLease / time.Second)

// lease turns a request's lease_seconds into a duration; 0 (absent) is the
// SDK's default.
func lease(secs float64) (time.Duration, error) {
	if secs == 0 {
		return pgque.DefaultLease, nil
	}
	// Written so that NaN fails too.
	if !(secs > 0 && secs <= maxLeaseSeconds) || time.Duration(secs*float64(time.Second)) <= 0 {
		return 0, badRequest("lease_seconds %v is not more than 0 and at most %g", secs, maxLeaseSeconds)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// eventSDK converts the event at path (of the body) to send; the type is
// required.
func eventSDK(e pgquehttp.Event, path string) (pgque.Event, error) {
	if e.Type == "" {
		return pgque.Event{}, badRequest("%s is required", join(path, "type"))
	}
	return wire.Event(e), nil
}

func (s *Server) listQueues(w http.ResponseWriter, r *http.Request) error {
	qs, err := s.client.Queues(r.Context())
	if err != nil {
		return err
	}
	var shown []pgque.QueueInfo
	for _, q := range qs {
		if visible(r, q.Name) {
			shown = append(shown, q)
		}
	}
	return writeJSON(w, http.StatusOK, wire.Queues(shown))
}

func (s *Server) getQueue(w http.ResponseWriter, r *http.Request) error {
	q, err := s.client.Queue(r.Context(), r.PathValue("queue"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.Queue(q))
}

// configValue turns a JSON config value into set_queue_config's text.
func configValue(key string, v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	case bool:
		return strconv.FormatBool(v), nil // keep_unclaimed
	}
	return "", badRequest("config value of %q must be a string, a number or a boolean, not %s", key, jsonKind(v))
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	}
	return "an object"
}

// setConfig applies cfg in tx, in a stable order so errors are reproducible.
func (s *Server) setConfig(ctx context.Context, tx pgx.Tx, queue string, cfg pgquehttp.Config) error {
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := configValue(k, cfg[k])
		if err != nil {
			return err
		}
		if err := s.client.SetQueueConfigTx(ctx, tx, queue, k, v); err != nil {
			return err
		}
	}
	return nil
}

// inTx runs fn in a transaction, so that a queue is created or reconfigured
// entirely or not at all.
func (s *Server) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.client.Pool(), fn)
}

func (s *Server) createQueue(w http.ResponseWriter, r *http.Request) error {
	var req pgquehttp.CreateQueueRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	if err := authorize(r, ScopeAdmin, req.Name); err != nil {
		return err
	}
	err := s.inTx(r.Context(), func(tx pgx.Tx) error {
		created, err := s.client.CreateQueueTx(r.Context(), tx, req.Name)
		if err != nil {
			return err
		}
		if !created {
			return &apiError{code: pgquehttp.CodeQueueExists, sqlstate: "PQ002",
				msg: fmt.Sprintf("pgque: queue '%s' already exists", req.Name)}
		}
		return s.setConfig(r.Context(), tx, req.Name, req.Config)
	})
	if err != nil {
		return err
	}
	q, err := s.client.Queue(r.Context(), req.Name)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/queues/"+req.Name)
	return writeJSON(w, http.StatusCreated, wire.Queue(q))
}

func (s *Server) updateQueue(w http.ResponseWriter, r *http.Request) error {
	var cfg pgquehttp.Config
	if err := decode(r, &cfg, false); err != nil {
		return err
	}
	if len(cfg) == 0 {
		return badRequest("no settings to change")
	}
	queue := r.PathValue("queue")
	if err := s.inTx(r.Context(), func(tx pgx.Tx) error { return s.setConfig(r.Context(), tx, queue, cfg) }); err != nil {
		return err
	}
	return s.getQueue(w, r)
}

// queryBool reads an optional boolean query parameter.
func queryBool(r *http.Request, name string) (bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, badRequest("%s %q is not a boolean", name, s)
	}
	return b, nil
}

func (s *Server) deleteQueue(w http.ResponseWriter, r *http.Request) error {
	force, err := queryBool(r, "force")
	if err != nil {
		return err
	}
	if err := s.client.DropQueue(r.Context(), r.PathValue("queue"), force); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// pause pauses or resumes a queue.
func (s *Server) pause(w http.ResponseWriter, r *http.Request,
	fn func(context.Context, string) (bool, error)) error {
	changed, err := fn(r.Context(), r.PathValue("queue"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, pgquehttp.PauseResponse{Changed: changed})
}

func (s *Server) pauseQueue(w http.ResponseWriter, r *http.Request) error {
	return s.pause(w, r, s.client.PauseQueue)
}

func (s *Server) resumeQueue(w http.ResponseWriter, r *http.Request) error {
	return s.pause(w, r, s.client.ResumeQueue)
}

func (s *Server) send(w http.ResponseWriter, r *http.Request) error {
	var ev pgquehttp.Event
	if err := decode(r, &ev, false); err != nil {
		return err
	}
	sev, err := eventSDK(ev, "")
	if err != nil {
		return err
	}
	id, err := s.client.Send(r.Context(), r.PathValue("queue"), sev)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, pgquehttp.SendResponse{ID: id})
}

func (s *Server) sendBatch(w http.ResponseWriter, r *http.Request) error {
	var req pgquehttp.SendBatchRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	if len(req.Events) == 0 || len(req.Events) > s.opts.MaxBatch {
		return badRequest("events must hold 1 to %d events, not %d", s.opts.MaxBatch, len(req.Events))
	}
	evs := make([]pgque.Event, len(req.Events))
	for i, e := range req.Events {
		ev, err := eventSDK(e, fmt.Sprintf("events[%d]", i))
		if err != nil {
			return err
		}
		evs[i] = ev
	}
	ids, err := s.client.SendBatch(r.Context(), r.PathValue("queue"), evs)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, pgquehttp.SendBatchResponse{IDs: ids})
}

func (s *Server) listConsumers(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.client.Consumers(r.Context(), r.PathValue("queue"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.Consumers(cs))
}

func (s *Server) getConsumer(w http.ResponseWriter, r *http.Request) error {
	// The engine's errors for a bad name and an unknown queue or consumer
	// (PQ006, PQ001, PQ003), as in SQL.
	c, err := s.client.Consumer(r.Context(), r.PathValue("queue"), r.PathValue("consumer"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.Consumer(c))
}

func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) error {
	created, err := s.client.Subscribe(r.Context(), r.PathValue("queue"), r.PathValue("consumer"))
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return writeJSON(w, status, pgquehttp.SubscribeResponse{Created: created})
}

func (s *Server) unsubscribe(w http.ResponseWriter, r *http.Request) error {
	queue, name := r.PathValue("queue"), r.PathValue("consumer")
	removed, err := s.client.Unsubscribe(r.Context(), queue, name)
	if err != nil {
		return err
	}
	if !removed {
		return &apiError{code: pgquehttp.CodeConsumerNotFound, sqlstate: "PQ003",
			msg: fmt.Sprintf("consumer %q is not subscribed to queue %q", name, queue)}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// defaultMax is how many messages a receive or stream piece hands out, and
// dead letters a listing shows, when the request does not say.
func (s *Server) defaultMax() int { return min(100, s.opts.MaxBatch) }

func (s *Server) checkMax(n int) error {
	if n < 1 || n > s.opts.MaxBatch {
		return badRequest("max %d is not from 1 to %d", n, s.opts.MaxBatch)
	}
	return nil
}

// receive hands out a piece.  Without worker or single_reader it receives
// as a worker named by s.workers (see workerPool): concurrent callers
// compete, each getting different messages.
func (s *Server) receive(w http.ResponseWriter, r *http.Request) error {
	req := pgquehttp.ReceiveRequest{Max: s.defaultMax()}
	if err := decode(r, &req, true); err != nil {
		return err
	}
	l, err := s.checkReceive(req)
	if err != nil {
		return err
	}
	b, err := s.receiveFrom(r.Context(), r.PathValue("queue"), r.PathValue("consumer"), req, l)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, b)
}

// receiveFirst hands out the piece of the first queue in the request's
// order that has messages (strict priority, as pgque.Client.ReceiveFirst):
// one queue's piece per call.  The token must allow reading every queue
// named, whether or not it is reached.
func (s *Server) receiveFirst(w http.ResponseWriter, r *http.Request) error {
	req := pgquehttp.ReceiveFirstRequest{ReceiveRequest: pgquehttp.ReceiveRequest{Max: s.defaultMax()}}
	if err := decode(r, &req, false); err != nil {
		return err
	}
	if len(req.Queues) == 0 {
		return badRequest("queues: name one queue or more")
	}
	for _, q := range req.Queues {
		if err := authorize(r, ScopeRead, q); err != nil {
			return err
		}
	}
	l, err := s.checkReceive(req.ReceiveRequest)
	if err != nil {
		return err
	}
	var b pgquehttp.Batch
	for _, q := range req.Queues {
		if b, err = s.receiveFrom(r.Context(), q, r.PathValue("consumer"), req.ReceiveRequest, l); err != nil {
			return fmt.Errorf("queue %s: %w", q, err)
		}
		if len(b.Messages) > 0 {
			break
		}
	}
	return writeJSON(w, http.StatusOK, b)
}

// checkReceive checks a receive's max and how it reads; it returns the lease.
func (s *Server) checkReceive(req pgquehttp.ReceiveRequest) (time.Duration, error) {
	if err := s.checkMax(req.Max); err != nil {
		return 0, err
	}
	return s.readAs(req.SingleReader, req.Worker, req.LeaseSeconds)
}

// receiveFrom hands out a piece of queue as req says, l its lease.
func (s *Server) receiveFrom(ctx context.Context, queue, consumer string, req pgquehttp.ReceiveRequest,
	l time.Duration) (pgquehttp.Batch, error) {
	if req.SingleReader {
		msgs, err := s.client.Receive(ctx, queue, consumer, req.Max)
		if err != nil {
			return pgquehttp.Batch{}, err
		}
		s.handedOut(queue, msgs)
		return wire.Batch(msgs, ""), nil
	}
	if req.Worker != "" {
		msgs, err := s.client.ReceiveAsWorker(ctx, queue, consumer, req.Worker, req.Max, l)
		if err != nil {
			return pgquehttp.Batch{}, err
		}
		s.handedOut(queue, msgs)
		return wire.Batch(msgs, req.Worker), nil
	}
	key := consumerKey{queue, consumer}
	name := s.workers.take(key)
	msgs, err := s.client.ReceiveAsWorker(ctx, queue, consumer, name, req.Max, l)
	if err != nil || len(msgs) == 0 {
		s.workers.giveBack(key, name, err)
		if err != nil {
			return pgquehttp.Batch{}, err
		}
	} else {
		// Timed from now, after the database started the lease: the name
		// is not freed before the database lets the batch go.
		s.workers.hold(key, name, msgs[0].BatchID, time.Now().Add(l))
		s.handedOut(queue, msgs)
	}
	return wire.Batch(msgs, name), nil
}

// readAs checks how a receive or stream reads its consumer: as its single
// reader (no worker, no lease), as the worker the caller names, or, with
// neither, as a worker of s.workers.  It returns the lease (a single
// reader's heartbeats use the default).
func (s *Server) readAs(single bool, worker string, leaseSecs float64) (time.Duration, error) {
	if single {
		if worker != "" || leaseSecs != 0 {
			return 0, badRequest("single_reader goes without worker and lease_seconds: a single reader holds no lease")
		}
		return pgque.DefaultLease, nil
	}
	l, err := lease(leaseSecs)
	if err != nil {
		return 0, err
	}
	if worker != "" {
		return l, s.checkWorkerName(worker)
	}
	return l, nil
}

// checkWorkerName refuses a worker name of the form this server gives its
// own workers: sharing one with the server's callers would hand the same
// messages to both.
func (s *Server) checkWorkerName(name string) error {
	if s.workers.ours(name) {
		return badRequest("worker %q: names starting with %q are this server's own; pick another, or none",
			name, s.workers.prefix)
	}
	return nil
}

// peek lists what the consumer has not acknowledged, moving nothing.
func (s *Server) peek(w http.ResponseWriter, r *http.Request) error {
	max, err := queryInt(r, "max", s.defaultMax(), s.opts.MaxBatch)
	if err != nil {
		return err
	}
	ms, err := s.client.Peek(r.Context(), r.PathValue("queue"), r.PathValue("consumer"), max)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.Peek(ms))
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) error {
	batch, err := pathInt(r, "batch")
	if err != nil {
		return err
	}
	if err := s.authorizePiece(r, batch); err != nil {
		return err
	}
	var req pgquehttp.HeartbeatRequest
	if err := decode(r, &req, true); err != nil {
		return err
	}
	l, err := lease(req.LeaseSeconds)
	if err != nil {
		return err
	}
	held, err := s.client.Heartbeat(r.Context(), batch, l)
	if err != nil {
		return err
	}
	if held {
		s.workers.renew(batch, time.Now().Add(l))
	} else {
		s.workers.done(batch) // finished or taken over: its caller holds nothing
		s.pieces.forget(batch)
	}
	return writeJSON(w, http.StatusOK, pgquehttp.HeartbeatResponse{Held: held})
}

func (s *Server) listWorkers(w http.ResponseWriter, r *http.Request) error {
	ws, err := s.client.Workers(r.Context(), r.PathValue("queue"), r.PathValue("consumer"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.Workers(ws))
}

// unregisterWorker forgets a worker, or with ?release=true gives up the
// batch it holds to the other workers at once.
func (s *Server) unregisterWorker(w http.ResponseWriter, r *http.Request) error {
	queue, consumer, worker := r.PathValue("queue"), r.PathValue("consumer"), r.PathValue("worker")
	release, err := queryBool(r, "release")
	if err != nil {
		return err
	}
	var removed bool
	if release {
		removed, err = s.client.ReleaseWorker(r.Context(), queue, consumer, worker)
	} else {
		removed, err = s.client.UnregisterWorker(r.Context(), queue, consumer, worker)
	}
	if err != nil {
		return err
	}
	if !removed {
		return &apiError{code: pgquehttp.CodeWorkerNotFound,
			msg: fmt.Sprintf("consumer %q of queue %q has no worker %q", consumer, queue, worker)}
	}
	if release {
		s.workers.doneName(consumerKey{queue, consumer}, worker)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ack acknowledges a piece.  A piece handed out under one of the server's
// worker names frees that name, and a stream waiting for the piece's ack
// goes on.
func (s *Server) ack(w http.ResponseWriter, r *http.Request) error {
	batch, err := pathInt(r, "batch")
	if err != nil {
		return err
	}
	if err := s.authorizePiece(r, batch); err != nil {
		return err
	}
	acked, err := s.client.AckResult(r.Context(), batch)
	if err == nil || errors.Is(err, pgque.ErrTakenOver) {
		// Also when it acknowledged nothing (new): its caller is done with it.
		s.workers.done(batch)
		s.acks.fire(batch)
		s.pieces.forget(batch)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, pgquehttp.AckResponse{Acked: acked})
}

func (s *Server) nack(w http.ResponseWriter, r *http.Request) error {
	batch, err := pathInt(r, "batch")
	if err != nil {
		return err
	}
	if err := s.authorizePiece(r, batch); err != nil {
		return err
	}
	var req pgquehttp.NackRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	if req.MsgID == 0 {
		return badRequest("msg_id is required")
	}
	if req.RetryAfterSeconds < 0 || req.RetryAfterSeconds > maxDelaySeconds {
		return badRequest("retry_after_seconds %d is not from 0 to %d", req.RetryAfterSeconds, maxDelaySeconds)
	}
	out, err := s.client.NackResult(r.Context(), batch, pgque.Message{MsgID: req.MsgID, BatchID: batch},
		req.RetryAfterSeconds, req.Reason)
	if errors.Is(err, pgque.ErrTakenOver) {
		s.workers.done(batch) // nothing of it is its caller's any more
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, pgquehttp.NackResponse{Outcome: pgquehttp.Outcome(out)})
}

func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryInt(r, "limit", s.defaultMax(), s.opts.MaxBatch)
	if err != nil {
		return err
	}
	ds, err := s.client.DeadLetters(r.Context(), r.PathValue("queue"), limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.DeadLetters(ds))
}

func (s *Server) listMessages(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryInt(r, "limit", s.defaultMax(), s.opts.MaxBatch)
	if err != nil {
		return err
	}
	consumer, err := queryConsumer(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	opts := pgque.ListOptions{Consumer: consumer, Max: limit, Type: q.Get("type")}
	if a := q.Get("after"); a != "" {
		if opts.After, err = strconv.ParseInt(a, 10, 64); err != nil || opts.After < 0 {
			return badRequest("after %q is not a message id", a)
		}
	}
	for name, t := range map[string]*time.Time{"since": &opts.Since, "until": &opts.Until} {
		if v := q.Get(name); v != "" {
			if *t, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return badRequest("%s %q is not an RFC 3339 time", name, v)
			}
		}
	}
	ss, err := s.client.ListMessages(r.Context(), r.PathValue("queue"), pgque.JobState(q.Get("state")), opts)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.MessageList(ss))
}

func (s *Server) messageStatus(w http.ResponseWriter, r *http.Request) error {
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	ss, err := s.client.MessageStatus(r.Context(), r.PathValue("queue"), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.MessageStatus(id, ss))
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request) error {
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	consumer, err := queryConsumer(r)
	if err != nil {
		return err
	}
	rs, err := s.client.Cancel(r.Context(), r.PathValue("queue"), id, consumer)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.Cancel(id, rs))
}

func (s *Server) replayDeadLetter(w http.ResponseWriter, r *http.Request) error {
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	// The engine cannot tell a dead letter's queue before replaying it.
	if err := authorizeAll(r, ScopeAdmin, "replaying a dead letter by id"); err != nil {
		return err
	}
	msgID, err := s.client.ReplayDeadLetter(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, pgquehttp.ReplayResponse{ID: id, MsgID: msgID})
}

func (s *Server) purgeDeadLetters(w http.ResponseWriter, r *http.Request) error {
	var olderThan time.Duration
	if v := r.URL.Query().Get("older_than"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return badRequest("older_than %q is not a non-negative duration such as 90s or 24h", v)
		}
		olderThan = d
	}
	n, err := s.client.PurgeDeadLetters(r.Context(), r.PathValue("queue"), olderThan)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, pgquehttp.PurgeResponse{Purged: n})
}
