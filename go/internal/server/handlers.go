package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// streamRoute is the Server-Sent Events endpoint.
const streamRoute = "GET /v1/queues/{queue}/consumers/{consumer}/stream"

// handlerFunc is an endpoint: it answers, or returns the error to answer with.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) routes() {
	api := func(pattern string, h handlerFunc) {
		s.mux.Handle(pattern, s.instrument(pattern, s.endpoint(h)))
	}
	api("GET /v1/queues", s.listQueues)
	api("POST /v1/queues", s.createQueue)
	api("GET /v1/queues/{queue}", s.getQueue)
	api("PATCH /v1/queues/{queue}", s.updateQueue)
	api("DELETE /v1/queues/{queue}", s.deleteQueue)
	api("POST /v1/queues/{queue}/pause", s.pauseQueue)
	api("POST /v1/queues/{queue}/resume", s.resumeQueue)

	api("POST /v1/queues/{queue}/events", s.send)
	api("POST /v1/queues/{queue}/events/batch", s.sendBatch)

	api("GET /v1/queues/{queue}/consumers", s.listConsumers)
	api("GET /v1/queues/{queue}/consumers/{consumer}", s.getConsumer)
	api("PUT /v1/queues/{queue}/consumers/{consumer}", s.subscribe)
	api("DELETE /v1/queues/{queue}/consumers/{consumer}", s.unsubscribe)
	api("POST /v1/queues/{queue}/consumers/{consumer}/receive", s.receive)
	api("GET /v1/queues/{queue}/consumers/{consumer}/peek", s.peek)
	api("GET /v1/queues/{queue}/consumers/{consumer}/workers", s.listWorkers)
	api("DELETE /v1/queues/{queue}/consumers/{consumer}/workers/{worker}", s.unregisterWorker)
	// Streams are not bounded by the request timeout.
	s.mux.Handle(streamRoute, s.instrument(streamRoute, s.errors(s.stream)))

	api("POST /v1/batches/{batch}/ack", s.ack)
	api("POST /v1/batches/{batch}/nack", s.nack)
	api("POST /v1/batches/{batch}/heartbeat", s.heartbeat)

	api("GET /v1/queues/{queue}/dead-letters", s.listDeadLetters)
	api("DELETE /v1/queues/{queue}/dead-letters", s.purgeDeadLetters)
	api("POST /v1/dead-letters/{id}/replay", s.replayDeadLetter)

	api("GET /v1/schedules", s.listSchedules)
	api("POST /v1/schedules", s.createSchedule)
	api("GET /v1/schedules/{schedule}", s.getSchedule)
	api("DELETE /v1/schedules/{schedule}", s.deleteSchedule)

	s.mux.Handle("GET /healthz", s.instrument("GET /healthz", http.HandlerFunc(s.healthz)))
	s.mux.Handle("GET /readyz", s.instrument("GET /readyz", http.HandlerFunc(s.readyz)))
	s.mux.Handle("GET /metrics", s.instrument("GET /metrics", s.metricsHandler()))
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

// decode reads a JSON body into v.  Unknown fields and trailing data are
// errors, so that a misspelt field is not silently ignored.  An empty body
// leaves v alone when optional.
func decode(r *http.Request, v any, optional bool) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err // *http.MaxBytesError or a broken connection
	}
	if optional && len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return &apiError{status: http.StatusBadRequest, code: pgquehttp.CodeMalformedJSON,
			msg: "malformed JSON body: " + err.Error()}
	}
	if dec.More() {
		return &apiError{status: http.StatusBadRequest, code: pgquehttp.CodeMalformedJSON,
			msg: "malformed JSON body: data after the JSON value"}
	}
	return nil
}

// pathInt reads an integer path parameter.
func pathInt(r *http.Request, name string) (int64, error) {
	v, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil {
		return 0, badRequest("%s %q is not an integer", name, r.PathValue(name))
	}
	return v, nil
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

// seconds converts a duration for JSON.
func seconds(d time.Duration) float64 { return d.Seconds() }

// secondsOrNil converts an optional duration for JSON.
func secondsOrNil(d *time.Duration) *float64 {
	if d == nil {
		return nil
	}
	v := d.Seconds()
	return &v
}

// maxLeaseSeconds is the longest lease the engine accepts (pgque.MaxLease).
const maxLeaseSeconds = float64(pgque.MaxLease / time.Second)

// lease turns a request's lease_seconds into a duration; 0 (absent) is the
// SDK's default.
func lease(secs float64) (time.Duration, error) {
	if secs == 0 {
		return pgque.DefaultLease, nil
	}
	d := time.Duration(secs * float64(time.Second))
	if secs < 0 || secs > maxLeaseSeconds || d <= 0 {
		return 0, badRequest("lease_seconds %v is not more than 0 and at most %g", secs, maxLeaseSeconds)
	}
	return d, nil
}

func queueJSON(q pgque.QueueInfo) pgquehttp.Queue {
	return pgquehttp.Queue{
		Name: q.Name, Tables: q.Tables, CurrentTable: q.CurrentTable,
		RotationPeriodSeconds: seconds(q.RotationPeriod), SwitchTime: q.SwitchTime,
		TickerMaxCount: q.TickerMaxCount, TickerMaxLagSeconds: seconds(q.TickerMaxLag),
		TickerIdlePeriodSeconds: seconds(q.TickerIdlePeriod), MaxRetries: q.MaxRetries,
		RetryBackoffBaseSeconds: seconds(q.RetryBackoffBase), RetryBackoffCapSeconds: seconds(q.RetryBackoffCap),
		TickerLagSeconds: seconds(q.TickerLag), EventsPerSecond: q.EventsPerSecond, NewEvents: q.NewEvents,
		LastTickID: q.LastTickID, Consumers: q.Consumers, RetryPending: q.RetryPending, DeadLetters: q.DeadLetters,
		Paused: q.Paused, PausedAt: q.PausedAt, EventBytes: q.EventBytes, EventDeadTuples: q.EventDeadTuples,
		KeepUnclaimed: q.KeepUnclaimed, UnclaimedEvents: q.UnclaimedEvents, UnclaimedSince: q.UnclaimedSince,
	}
}

func consumerJSON(c pgque.ConsumerInfo) pgquehttp.Consumer {
	return pgquehttp.Consumer{
		Queue: c.Queue, Name: c.Name, LagSeconds: seconds(c.Lag), LastSeenSeconds: seconds(c.LastSeen),
		LastTick: c.LastTick, CurrentBatch: c.CurrentBatch, NextTick: c.NextTick,
		PendingEvents: c.PendingEvents, RetryPending: c.RetryPending, DeadLetters: c.DeadLetters,
		BlockingRotation: c.BlockingRotation, BatchAgeSeconds: secondsOrNil(c.BatchAge),
		WorkerBatches: c.WorkerBatches,
	}
}

// payloadJSON gives a payload as it goes out: as is, or, when sent as raw
// text through SQL, as a JSON string.
func payloadJSON(p json.RawMessage) json.RawMessage {
	if p != nil && !json.Valid(p) {
		p, _ = json.Marshal(string(p))
	}
	return p
}

// payloadSDK gives a payload as it comes in: a JSON null is a NULL
// payload, like an absent one.
func payloadSDK(p json.RawMessage) any {
	if len(p) == 0 || string(bytes.TrimSpace(p)) == "null" {
		return nil
	}
	return p
}

func messageJSON(m pgque.Message) pgquehttp.Message {
	return pgquehttp.Message{
		MsgID: m.MsgID, BatchID: m.BatchID, Type: m.Type, Payload: payloadJSON(m.Payload), RetryCount: m.RetryCount,
		CreatedAt: m.CreatedAt, Extra1: m.Extra1, Extra2: m.Extra2, Extra3: m.Extra3, Extra4: m.Extra4,
	}
}

// batchJSON is a piece handed out to worker ("" for a single reader).
func batchJSON(msgs []pgque.Message, worker string) pgquehttp.Batch {
	b := pgquehttp.Batch{Messages: make([]pgquehttp.Message, len(msgs)), Worker: worker}
	for i, m := range msgs {
		b.Messages[i] = messageJSON(m)
	}
	if len(msgs) > 0 {
		b.BatchID = msgs[0].BatchID
	}
	return b
}

// eventSDK converts an event to send; the type is required.
func eventSDK(e pgquehttp.Event) (pgque.Event, error) {
	if e.Type == "" {
		return pgque.Event{}, badRequest("event type is required")
	}
	return pgque.Event{Type: e.Type, Payload: payloadSDK(e.Payload),
		Extra1: e.Extra1, Extra2: e.Extra2, Extra3: e.Extra3, Extra4: e.Extra4}, nil
}

func (s *Server) listQueues(w http.ResponseWriter, r *http.Request) error {
	qs, err := s.client.Queues(r.Context())
	if err != nil {
		return err
	}
	out := make([]pgquehttp.Queue, len(qs))
	for i, q := range qs {
		out[i] = queueJSON(q)
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": out})
	return nil
}

func (s *Server) getQueue(w http.ResponseWriter, r *http.Request) error {
	q, err := s.client.Queue(r.Context(), r.PathValue("queue"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, queueJSON(q))
	return nil
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
func setConfig(ctx context.Context, tx pgx.Tx, queue string, cfg pgquehttp.Config) error {
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
		if _, err := tx.Exec(ctx, `SELECT pgque.set_queue_config($1, $2, $3)`, queue, k, v); err != nil {
			return engineError("pgque: set queue config", err)
		}
	}
	return nil
}

// inTx runs fn in a transaction, so that a queue is created or reconfigured
// entirely or not at all.  The SDK has no transactional variants of these
// calls, so this runs their SQL.
func (s *Server) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.client.Pool(), fn)
}

func (s *Server) createQueue(w http.ResponseWriter, r *http.Request) error {
	var req pgquehttp.CreateQueueRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	err := s.inTx(r.Context(), func(tx pgx.Tx) error {
		var created int
		if err := tx.QueryRow(r.Context(), `SELECT pgque.create_queue($1)`, req.Name).Scan(&created); err != nil {
			return engineError("pgque: create queue", err)
		}
		if created == 0 {
			return &apiError{status: http.StatusConflict, code: pgquehttp.CodeQueueExists, sqlstate: "PQ002",
				msg: fmt.Sprintf("queue %q already exists", req.Name)}
		}
		return setConfig(r.Context(), tx, req.Name, req.Config)
	})
	if err != nil {
		return err
	}
	q, err := s.client.Queue(r.Context(), req.Name)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/queues/"+req.Name)
	writeJSON(w, http.StatusCreated, queueJSON(q))
	return nil
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
	if err := s.inTx(r.Context(), func(tx pgx.Tx) error { return setConfig(r.Context(), tx, queue, cfg) }); err != nil {
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
	writeJSON(w, http.StatusOK, pgquehttp.PauseResponse{Changed: changed})
	return nil
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
	sev, err := eventSDK(ev)
	if err != nil {
		return err
	}
	id, err := s.client.Send(r.Context(), r.PathValue("queue"), sev)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, pgquehttp.SendResponse{ID: id})
	return nil
}

func (s *Server) sendBatch(w http.ResponseWriter, r *http.Request) error {
	var req pgquehttp.SendBatchRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	if len(req.Events) == 0 || len(req.Events) > s.opts.MaxBatch {
		return badRequest("a batch holds 1 to %d events, not %d", s.opts.MaxBatch, len(req.Events))
	}
	evs := make([]pgque.Event, len(req.Events))
	for i, e := range req.Events {
		ev, err := eventSDK(e)
		if err != nil {
			return badRequest("event %d: %v", i, err)
		}
		evs[i] = ev
	}
	ids, err := s.client.SendBatch(r.Context(), r.PathValue("queue"), evs)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, pgquehttp.SendBatchResponse{IDs: ids})
	return nil
}

func (s *Server) listConsumers(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.client.Consumers(r.Context(), r.PathValue("queue"))
	if err != nil {
		return err
	}
	out := make([]pgquehttp.Consumer, len(cs))
	for i, c := range cs {
		out[i] = consumerJSON(c)
	}
	writeJSON(w, http.StatusOK, map[string]any{"consumers": out})
	return nil
}

func (s *Server) getConsumer(w http.ResponseWriter, r *http.Request) error {
	queue, name := r.PathValue("queue"), r.PathValue("consumer")
	cs, err := s.client.Consumers(r.Context(), queue)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if c.Name == name {
			writeJSON(w, http.StatusOK, consumerJSON(c))
			return nil
		}
	}
	return &apiError{status: http.StatusNotFound, code: pgquehttp.CodeConsumerNotFound, sqlstate: "PQ003",
		msg: fmt.Sprintf("consumer %q is not subscribed to queue %q", name, queue)}
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
	writeJSON(w, status, pgquehttp.SubscribeResponse{Created: created})
	return nil
}

func (s *Server) unsubscribe(w http.ResponseWriter, r *http.Request) error {
	queue, name := r.PathValue("queue"), r.PathValue("consumer")
	removed, err := s.client.Unsubscribe(r.Context(), queue, name)
	if err != nil {
		return err
	}
	if !removed {
		return &apiError{status: http.StatusNotFound, code: pgquehttp.CodeConsumerNotFound, sqlstate: "PQ003",
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
	if err := s.checkMax(req.Max); err != nil {
		return err
	}
	queue, consumer := r.PathValue("queue"), r.PathValue("consumer")
	l, err := s.readAs(req.SingleReader, req.Worker, req.LeaseSeconds)
	if err != nil {
		return err
	}
	if req.SingleReader {
		msgs, err := s.client.Receive(r.Context(), queue, consumer, req.Max)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, batchJSON(msgs, ""))
		return nil
	}
	if req.Worker != "" {
		msgs, err := s.client.ReceiveAsWorker(r.Context(), queue, consumer, req.Worker, req.Max, l)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, batchJSON(msgs, req.Worker))
		return nil
	}
	key := consumerKey{queue, consumer}
	name := s.workers.take(key)
	msgs, err := s.client.ReceiveAsWorker(r.Context(), queue, consumer, name, req.Max, l)
	if err != nil || len(msgs) == 0 {
		s.workers.giveBack(key, name, err)
		if err != nil {
			return err
		}
	} else {
		// Timed from now, after the database started the lease: the name
		// is not freed before the database lets the batch go.
		s.workers.hold(key, name, msgs[0].BatchID, time.Now().Add(l))
	}
	writeJSON(w, http.StatusOK, batchJSON(msgs, name))
	return nil
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
	out := pgquehttp.PeekResponse{Messages: make([]pgquehttp.PeekedMessage, len(ms))}
	for i, m := range ms {
		out.Messages[i] = pgquehttp.PeekedMessage{Message: messageJSON(m.Message), Worker: m.Worker}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) error {
	batch, err := pathInt(r, "batch")
	if err != nil {
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
	}
	writeJSON(w, http.StatusOK, pgquehttp.HeartbeatResponse{Held: held})
	return nil
}

func (s *Server) listWorkers(w http.ResponseWriter, r *http.Request) error {
	ws, err := s.client.Workers(r.Context(), r.PathValue("queue"), r.PathValue("consumer"))
	if err != nil {
		return err
	}
	out := make([]pgquehttp.Worker, len(ws))
	for i, wi := range ws {
		out[i] = pgquehttp.Worker{Name: wi.Name, BatchID: wi.BatchID, LeaseLeftSeconds: secondsOrNil(wi.LeaseLeft),
			LastSeenSeconds: seconds(wi.LastSeen)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"workers": out})
	return nil
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
		return &apiError{status: http.StatusNotFound, code: pgquehttp.CodeWorkerNotFound,
			msg: fmt.Sprintf("consumer %q of queue %q has no worker %q", consumer, queue, worker)}
	}
	if release {
		s.workers.doneName(consumerKey{queue, consumer}, worker)
		s.listener.wake(queue) // this server's streams of the queue may take the batch over
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
	acked, err := s.client.Ack(r.Context(), batch)
	if err == nil || errors.Is(err, pgque.ErrTakenOver) {
		// Also when it acknowledged nothing (new): its caller is done with it.
		s.workers.done(batch)
		s.acks.fire(batch)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pgquehttp.AckResponse{Acked: acked})
	return nil
}

func (s *Server) nack(w http.ResponseWriter, r *http.Request) error {
	batch, err := pathInt(r, "batch")
	if err != nil {
		return err
	}
	var req pgquehttp.NackRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	if req.MsgID == 0 {
		return badRequest("msg_id is required")
	}
	out, err := s.client.Nack(r.Context(), batch, pgque.Message{MsgID: req.MsgID, BatchID: batch},
		req.RetryAfterSeconds, req.Reason)
	if errors.Is(err, pgque.ErrTakenOver) {
		s.workers.done(batch) // nothing of it is its caller's any more
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pgquehttp.NackResponse{Outcome: pgquehttp.Outcome(out)})
	return nil
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
	out := make([]pgquehttp.DeadLetter, len(ds))
	for i, d := range ds {
		out[i] = pgquehttp.DeadLetter{ID: d.ID, Consumer: d.Consumer, DeadAt: d.DeadAt, Reason: d.Reason,
			Message: messageJSON(d.Message)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": out})
	return nil
}

func (s *Server) replayDeadLetter(w http.ResponseWriter, r *http.Request) error {
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	msgID, err := s.client.ReplayDeadLetter(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pgquehttp.ReplayResponse{MsgID: msgID})
	return nil
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
	writeJSON(w, http.StatusOK, pgquehttp.PurgeResponse{Purged: n})
	return nil
}
