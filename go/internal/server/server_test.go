package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pgque/pgque/go/internal/server"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgque/pgquetest"
	"github.com/pgque/pgque/go/pgquehttp"
)

var pg *pgquetest.Server

func TestMain(m *testing.M) {
	var err error
	pg, err = pgquetest.Start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	pg.Cleanup()
	os.Exit(code)
}

// env is a server on a fresh database with queue "q" and consumer "c".
type env struct {
	sdk  *pgque.Client
	srv  *server.Server
	http *httptest.Server
	logs *logBuffer // the server's log; nil when the test gave a Logger
}

// A poll interval this long means deliveries must come from NOTIFY or acks.
const noPoll = time.Hour

func newEnv(t *testing.T, opts server.Options) *env {
	t.Helper()
	ctx := context.Background()
	sdk := pgque.New(pg.NewPool(t))
	if _, err := sdk.CreateQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.Subscribe(ctx, "q", "c"); err != nil {
		t.Fatal(err)
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = noPoll
	}
	var logs *logBuffer
	if opts.Logger == nil {
		// The server's log, shown when the test fails.
		logs = &logBuffer{}
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv := server.New(sdk, opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close() // ends streams, which httptest's Close waits for
		hs.Close()
		if logs != nil && t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &env{sdk: sdk, srv: srv, http: hs, logs: logs}
}

// logBuffer collects a server's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// streamClient reads streams; its timeout turns a stream that never
// delivers into a failure rather than a hung test.
var streamClient = &http.Client{Timeout: 2 * time.Minute}

// call sends a request with a raw body, declared JSON when there is one,
// and returns status, body and headers.
func (e *env) call(t *testing.T, method, path, body string) (int, string, http.Header) {
	t.Helper()
	var header map[string]string
	if body != "" {
		header = map[string]string{"Content-Type": "application/json"}
	}
	return e.callWith(t, method, path, body, header)
}

// callWith is call with the given headers ("Host" sets the request's host).
func (e *env) callWith(t *testing.T, method, path, body string, header map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	// A stream opened by mistake ends with the client's timeout.
	resp, err := streamClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// wantError checks an error response.
func (e *env) wantError(t *testing.T, method, path, body string, status int, code, sqlstate string) {
	t.Helper()
	got, text, h := e.call(t, method, path, body)
	var eb pgquehttp.ErrorBody
	if err := json.Unmarshal([]byte(text), &eb); err != nil {
		t.Fatalf("%s %s: body %q: %v", method, path, text, err)
	}
	if got != status || eb.Error.Code != code || eb.Error.SQLState != sqlstate || eb.Error.Message == "" {
		t.Errorf("%s %s %s: got %d %+v, want %d %s %s", method, path, body, got, eb.Error, status, code, sqlstate)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
}

func TestErrorStatuses(t *testing.T) {
	e := newEnv(t, server.Options{MaxBodyBytes: 1000, MaxBatch: 5})
	ctx := context.Background()
	if _, err := e.sdk.CreateQueue(ctx, "empty"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path, body string
		status             int
		code, sqlstate     string
	}{
		{"GET", "/v1/queues/nope", "", 404, "queue_not_found", "PQ001"},
		{"GET", "/v1//queues", "", 404, "not_found", ""},
		{"POST", "/v1/queues/../queues", `{"name": "x"}`, 404, "not_found", ""},
		{"PATCH", "/v1/queues/nope", `{"max_retries": 1}`, 404, "queue_not_found", "PQ001"},
		{"DELETE", "/v1/queues/nope", "", 404, "queue_not_found", "PQ001"},
		{"POST", "/v1/queues/nope/events", `{"type":"t"}`, 404, "queue_not_found", "PQ001"},
		{"GET", "/v1/queues/nope/consumers", "", 404, "queue_not_found", "PQ001"},
		{"GET", "/v1/queues/q/consumers/nobody", "", 404, "consumer_not_found", "PQ003"},
		{"DELETE", "/v1/queues/q/consumers/nobody", "", 404, "consumer_not_found", "PQ003"},
		{"POST", "/v1/queues/q/consumers/nobody/receive", "", 404, "consumer_not_found", "PQ003"},
		{"GET", "/v1/queues/q/consumers/nobody/stream", "", 404, "consumer_not_found", "PQ003"},
		{"GET", "/v1/queues/nope/consumers/c/stream", "", 404, "queue_not_found", "PQ001"},
		{"POST", "/v1/batches/999999/nack", `{"msg_id": 1}`, 404, "batch_not_found", "PQ004"},
		{"POST", "/v1/dead-letters/999999/replay", "", 404, "dead_letter_not_found", "PQ008"},
		{"GET", "/v1/queues/nope/dead-letters", "", 404, "queue_not_found", "PQ001"},
		{"DELETE", "/v1/queues/nope/dead-letters", "", 404, "queue_not_found", "PQ001"},
		{"POST", "/v1/queues", `{"name": "q"}`, 409, "queue_exists", "PQ002"},
		{"DELETE", "/v1/queues/q", "", 409, "queue_has_consumers", "PQ007"},
		{"POST", "/v1/queues", `{"name": "bad name!"}`, 400, "invalid_argument", "PQ006"},
		{"POST", "/v1/queues", `{"name": "x", "config": {"max_retries": -1}}`, 400, "invalid_argument", "PQ006"},
		{"POST", "/v1/queues", `{"name": "x", "config": {"max_retries": [1]}}`, 400, "invalid_argument", ""},
		{"POST", "/v1/queues", `{"name": "x", "config": {"max_retries": true}}`, 400, "invalid_argument", "PQ006"},
		{"POST", "/v1/queues", `{"name": "x", "config": {"keep_unclaimed": "maybe"}}`, 400, "invalid_argument", "PQ006"},
		{"PATCH", "/v1/queues/q", `{}`, 400, "invalid_argument", ""},
		{"PATCH", "/v1/queues/q", `{"no_such_setting": "1"}`, 400, "invalid_argument", "PQ006"},
		{"POST", "/v1/queues", `{"name": "x"`, 400, "malformed_json", ""},
		{"POST", "/v1/queues", `{"name": "x", "nmae": "y"}`, 400, "malformed_json", ""},
		{"POST", "/v1/queues", `{"name": "x"} {}`, 400, "malformed_json", ""},
		{"POST", "/v1/queues", ``, 400, "malformed_json", ""},
		{"POST", "/v1/queues/q/events", `{"type": "t", "payload": {"a": ` + strings.Repeat("1", 1000) + `}}`, 413, "body_too_large", ""},
		{"POST", "/v1/queues/q/events", `{"type": ""}`, 400, "invalid_argument", ""},
		{"POST", "/v1/queues/q/events", `{"payload": 1}`, 400, "invalid_argument", ""},
		{"POST", "/v1/queues/q/events/batch", `{"events": [{"type": "t"}, {}]}`, 400, "invalid_argument", ""},
		{"POST", "/v1/queues/q/events/batch", `{"events": []}`, 400, "invalid_argument", ""},
		{"POST", "/v1/queues/q/events/batch", `{"events": [{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"},{"type":"t"}]}`, 400, "invalid_argument", ""},
		{"POST", "/v1/queues/q/consumers/c/receive", `{"max": 6}`, 400, "invalid_argument", ""},
		{"POST", "/v1/queues/q/consumers/c/receive", `{"max": 0}`, 400, "invalid_argument", ""},
		{"POST", "/v1/queues/q/consumers/c/receive", `{"single_reader": true, "worker": "w"}`, 400, "invalid_argument", ""},
		{"POST", "/v1/queues/q/consumers/c/receive", `{"single_reader": true, "lease_seconds": 10}`, 400, "invalid_argument", ""},
		{"POST", "/v1/queues/q/consumers/c/receive", `{"lease_seconds": 86401}`, 400, "invalid_argument", ""},
		{"POST", "/v1/queues/nope/consumers/c/receive", "", 404, "queue_not_found", "PQ001"},
		{"GET", "/v1/queues/q/consumers/c/stream?max=x", "", 400, "invalid_argument", ""},
		{"GET", "/v1/queues/q/consumers/c/stream?single_reader=maybe", "", 400, "invalid_argument", ""},
		{"GET", "/v1/queues/q/consumers/c/stream?single_reader=true&worker=w", "", 400, "invalid_argument", ""},
		{"GET", "/v1/queues/q/consumers/c/stream?lease_seconds=x", "", 400, "invalid_argument", ""},
		{"GET", "/v1/queues/q/consumers/c/stream?lease_seconds=86401", "", 400, "invalid_argument", ""},
		{"GET", "/v1/queues/q/consumers/c/stream?worker=bad%20name", "", 400, "invalid_argument", "PQ006"},
		{"GET", "/v1/queues/q/consumers/c/peek?max=0", "", 400, "invalid_argument", ""},
		{"GET", "/v1/queues/q/consumers/c/peek?max=6", "", 400, "invalid_argument", ""},
		{"GET", "/v1/queues/q/consumers/nobody/peek", "", 404, "consumer_not_found", "PQ003"},
		{"GET", "/v1/queues/nope/consumers/c/peek", "", 404, "queue_not_found", "PQ001"},
		{"DELETE", "/v1/queues/q/consumers/c/workers/w?release=maybe", "", 400, "invalid_argument", ""},
		{"GET", "/v1/queues/q/dead-letters?limit=0", "", 400, "invalid_argument", ""},
		{"DELETE", "/v1/queues/q/dead-letters?older_than=yesterday", "", 400, "invalid_argument", ""},
		{"DELETE", "/v1/queues/empty?force=maybe", "", 400, "invalid_argument", ""},
		{"POST", "/v1/batches/abc/ack", "", 400, "invalid_argument", ""},
		{"POST", "/v1/batches/1/nack", `{}`, 400, "invalid_argument", ""},
		{"POST", "/v1/batches/1/nack", `{"msg_id": 1, "retry_after_seconds": -1}`, 400, "invalid_argument", ""},
		{"GET", "/v1/nothing", "", 404, "not_found", ""},
		{"PUT", "/v1/queues", "", 405, "method_not_allowed", ""},
	} {
		e.wantError(t, c.method, c.path, c.body, c.status, c.code, c.sqlstate)
	}
	// Nothing was half done.
	if _, err := e.sdk.Queue(ctx, "x"); !errors.Is(err, pgque.ErrQueueNotFound) {
		t.Errorf("queue x after failed creations: %v", err)
	}
	_, _, h := e.call(t, "PUT", "/v1/queues", "")
	if allow := h.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("405 Allow: %q", allow)
	}
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct{ id, event, data string }

// sse reads a raw event stream.
type sse struct {
	resp *http.Response
	r    *bufio.Reader
	// comments counts comment lines (heartbeats) seen.
	comments int
}

func (e *env) openStream(t *testing.T, path, lastID string) *sse {
	t.Helper()
	req, err := http.NewRequest("GET", e.http.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := streamClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	s := &sse{resp: resp, r: bufio.NewReader(resp.Body)}
	t.Cleanup(func() { resp.Body.Close() })
	return s
}

// next returns the next event (retry-only blocks are skipped); io.EOF at the end.
func (s *sse) next(t *testing.T) (sseEvent, error) {
	t.Helper()
	var ev sseEvent
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.event != "" {
				return ev, nil
			}
		case strings.HasPrefix(line, ":"):
			s.comments++
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		}
	}
}

func (s *sse) batch(t *testing.T) (string, pgquehttp.Batch) {
	t.Helper()
	ev, err := s.next(t)
	if err != nil {
		t.Fatal(err)
	}
	if ev.event != "batch" {
		t.Fatalf("event %+v, want a batch", ev)
	}
	var b pgquehttp.Batch
	if err := json.Unmarshal([]byte(ev.data), &b); err != nil {
		t.Fatal(err)
	}
	return ev.id, b
}

func msgIDs(b pgquehttp.Batch) []int64 {
	var ids []int64
	for _, m := range b.Messages {
		ids = append(ids, m.MsgID)
	}
	return ids
}

func (e *env) sendTick(t *testing.T, n int) []int64 {
	t.Helper()
	ctx := context.Background()
	evs := make([]pgque.Event, n)
	for i := range evs {
		evs[i] = pgque.Event{Type: "t", Payload: map[string]int{"i": i}}
	}
	ids, err := e.sdk.SendBatch(ctx, "q", evs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sdk.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	return ids
}

func (e *env) ack(t *testing.T, batch int64) {
	t.Helper()
	if status, body, _ := e.call(t, "POST", fmt.Sprintf("/v1/batches/%d/ack", batch), ""); status != 200 || !strings.Contains(body, `"acked":true`) {
		t.Fatalf("ack %d: %d %s", batch, status, body)
	}
}

// The stream pushes messages as ticks notify them, one piece per ack, and
// a piece not acknowledged goes to the next stream of the consumer, with
// the same event id.
func TestStreamDelivery(t *testing.T) {
	e := newEnv(t, server.Options{})
	s := e.openStream(t, "/v1/queues/q/consumers/c/stream?max=2", "")

	// Sent after the stream opened: only the tick's NOTIFY can wake it.
	ids := e.sendTick(t, 3)
	id1, b1 := s.batch(t)
	if got := msgIDs(b1); len(got) != 2 || got[0] != ids[0] || got[1] != ids[1] || b1.Redelivered {
		t.Fatalf("first piece %v (redelivered %v), sent %v", got, b1.Redelivered, ids)
	}
	if id1 != fmt.Sprintf("%d-%d", ids[0], ids[1]) || b1.Worker == "" || b1.BatchID != b1.Messages[0].BatchID {
		t.Errorf("event id %q, worker %q, batch %d", id1, b1.Worker, b1.BatchID)
	}
	// A tick while the piece waits for its ack sends nothing again; only
	// the ack brings the next piece.
	extra := e.sendTick(t, 1)
	e.ack(t, b1.BatchID)
	_, b2 := s.batch(t)
	if got := msgIDs(b2); len(got) != 1 || got[0] != ids[2] || b2.BatchID == b1.BatchID || b2.Worker != b1.Worker {
		t.Fatalf("second piece %v (piece %d, worker %q)", got, b2.BatchID, b2.Worker)
	}
	e.ack(t, b2.BatchID)
	id3, b3 := s.batch(t)
	if got := msgIDs(b3); len(got) != 1 || got[0] != extra[0] || id3 != fmt.Sprintf("%d-%d", extra[0], extra[0]) {
		t.Fatalf("third piece %s %v, want %v", id3, got, extra)
	}
	s.resp.Body.Close()

	// Not acknowledged: the next stream gets the same messages under the
	// same event id, marked as redelivered since the client says it saw
	// them.
	s2 := e.openStream(t, "/v1/queues/q/consumers/c/stream?max=2", id3)
	id4, b4 := s2.batch(t)
	if id4 != id3 || !b4.Redelivered || len(b4.Messages) != 1 || b4.Messages[0].MsgID != extra[0] {
		t.Fatalf("after reconnecting: %s %+v, want %s again", id4, b4, id3)
	}
	s2.resp.Body.Close()
	// Without a Last-Event-ID it is not marked.
	s3 := e.openStream(t, "/v1/queues/q/consumers/c/stream?max=2", "")
	id5, b5 := s3.batch(t)
	if id5 != id3 || b5.Redelivered {
		t.Fatalf("third stream: %s %+v", id5, b5)
	}
	e.ack(t, b5.BatchID)
	ids2 := e.sendTick(t, 1)
	_, b6 := s3.batch(t)
	if got := msgIDs(b6); len(got) != 1 || got[0] != ids2[0] {
		t.Fatalf("after ack and a new tick: %v, want %v", got, ids2)
	}
	// The streams' worker names were reused: a handful of workers at most.
	var workers struct{ Workers []pgquehttp.Worker }
	e.decodeBody(t, "GET", "/v1/queues/q/consumers/c/workers", "", 200, &workers)
	if len(workers.Workers) > 3 {
		t.Errorf("workers after three streams: %+v", workers.Workers)
	}
}

// An ack that bypasses the server (SDK or SQL) is noticed by polling.
func TestStreamPollFallback(t *testing.T) {
	e := newEnv(t, server.Options{PollInterval: 50 * time.Millisecond})
	ids := e.sendTick(t, 2)
	s := e.openStream(t, "/v1/queues/q/consumers/c/stream?max=1", "")
	_, b := s.batch(t)
	if msgIDs(b)[0] != ids[0] {
		t.Fatalf("first: %v", msgIDs(b))
	}
	if err := e.sdk.Ack(context.Background(), b.BatchID); err != nil {
		t.Fatal(err)
	}
	_, b = s.batch(t)
	if msgIDs(b)[0] != ids[1] {
		t.Fatalf("second: %v", msgIDs(b))
	}
}

func TestStreamHeartbeat(t *testing.T) {
	e := newEnv(t, server.Options{HeartbeatInterval: 20 * time.Millisecond})
	s := e.openStream(t, "/v1/queues/q/consumers/c/stream", "")
	// Nothing to deliver: only heartbeats come.  Three end the wait.
	beats := make(chan int, 1)
	go func() {
		n := 0
		for n < 3 {
			line, err := s.r.ReadString('\n')
			if err != nil {
				break
			}
			if line == ": heartbeat\n" {
				n++
			}
		}
		beats <- n
	}()
	select {
	case n := <-beats:
		if n < 3 {
			t.Errorf("stream ended after %d heartbeats", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fewer than 3 heartbeats in 10 s at a 20 ms interval")
	}
}

func TestStreamEnds(t *testing.T) {
	e := newEnv(t, server.Options{PollInterval: 50 * time.Millisecond})
	s := e.openStream(t, "/v1/queues/q/consumers/c/stream", "")
	// The subscription goes away: the stream reports it and ends.
	if _, err := e.sdk.Unsubscribe(context.Background(), "q", "c"); err != nil {
		t.Fatal(err)
	}
	ev, err := s.next(t)
	if err != nil || ev.event != "error" || !strings.Contains(ev.data, `"consumer_not_found"`) {
		t.Fatalf("after unsubscribe: %+v, %v", ev, err)
	}
	if _, err := s.next(t); err != io.EOF {
		t.Fatalf("after the error event: %v, want EOF", err)
	}

	// Closing the server ends open streams.
	if _, err := e.sdk.Subscribe(context.Background(), "q", "c"); err != nil {
		t.Fatal(err)
	}
	s = e.openStream(t, "/v1/queues/q/consumers/c/stream", "")
	e.srv.Close()
	if _, err := s.next(t); err != io.EOF {
		t.Fatalf("after Close: %v, want EOF", err)
	}
}

// scrape returns the metric families of /metrics.
func (e *env) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(e.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// value returns the value of the metric with the given labels; ok false when absent.
func value(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		for k, v := range labels {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		}
	}
	return 0, false
}

// wantMetric checks the value of a metric.
func wantMetric(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels map[string]string, w float64) {
	t.Helper()
	if v, ok := value(mfs, name, labels); !ok || v != w {
		t.Errorf("%s%v = %v (present %v), want %v", name, labels, v, ok, w)
	}
}

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, server.Options{})
	qc := map[string]string{"queue": "q", "consumer": "c"}
	q := map[string]string{"queue": "q"}
	mfs := e.scrape(t)
	wantMetric(t, mfs, "pgque_scrape_success", nil, 1)
	wantMetric(t, mfs, "pgque_consumer_pending_events", qc, 0)
	wantMetric(t, mfs, "pgque_queue_events_total", q, 0)
	wantMetric(t, mfs, "pgque_ticker_running", nil, 0)

	e.sendTick(t, 3)
	mfs = e.scrape(t)
	wantMetric(t, mfs, "pgque_consumer_pending_events", qc, 3)
	wantMetric(t, mfs, "pgque_queue_events_total", q, 3)
	wantMetric(t, mfs, "pgque_queue_paused", q, 0)
	if v, ok := value(mfs, "pgque_queue_event_bytes", q); !ok || v <= 0 {
		t.Errorf("queue event bytes %v %v", v, ok)
	}
	// Nothing was rolled back, so no dead rows; live ones come from
	// statistics flushed asynchronously: present is all that is certain.
	wantMetric(t, mfs, "pgque_queue_event_dead_tuples", q, 0)
	wantMetric(t, mfs, "pgque_table_dead_tuples", map[string]string{"table": "pgque.event"}, 0)
	if _, ok := value(mfs, "pgque_table_live_tuples", map[string]string{"table": "pgque.tick"}); !ok {
		t.Error("no live tuples of pgque.tick")
	}
	if v, ok := value(mfs, "pgque_table_bytes", map[string]string{"table": "pgque.event"}); !ok || v <= 0 {
		t.Errorf("event tables' bytes %v %v", v, ok)
	}
	if v, ok := value(mfs, "pgque_queue_last_tick_age_seconds", q); !ok || v < 0 || v > 60 {
		t.Errorf("last tick age %v %v", v, ok)
	}
	if mfs["pgque_http_requests_total"] == nil {
		t.Error("no HTTP request counts")
	}

	// Consuming through the API brings pending down; a dead letter shows.
	if status, body, _ := e.call(t, "PATCH", "/v1/queues/q", `{"max_retries": 0}`); status != 200 || !strings.Contains(body, `"max_retries":0`) {
		t.Fatalf("patch: %d %s", status, body)
	}
	status, body, _ := e.call(t, "POST", "/v1/queues/q/consumers/c/receive", `{"max": 10, "single_reader": true}`)
	var b pgquehttp.Batch
	if status != 200 || json.Unmarshal([]byte(body), &b) != nil || len(b.Messages) != 3 {
		t.Fatalf("receive: %d %s", status, body)
	}
	if v, ok := value(e.scrape(t), "pgque_consumer_batch_age_seconds", qc); !ok || v < 0 || v > 60 {
		t.Errorf("batch age %v %v", v, ok)
	}
	status, body, _ = e.call(t, "POST", fmt.Sprintf("/v1/batches/%d/nack", b.BatchID),
		fmt.Sprintf(`{"msg_id": %d, "reason": "broken"}`, b.Messages[0].MsgID))
	if status != 200 || !strings.Contains(body, `"dead"`) {
		t.Fatalf("nack: %d %s", status, body)
	}
	e.ack(t, b.BatchID)
	if _, err := e.sdk.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	mfs = e.scrape(t)
	wantMetric(t, mfs, "pgque_consumer_pending_events", qc, 0)
	wantMetric(t, mfs, "pgque_consumer_dead_letters", qc, 1)
	wantMetric(t, mfs, "pgque_queue_dead_letters", q, 1)
	wantMetric(t, mfs, "pgque_http_requests_total", map[string]string{"route": "POST /v1/batches/{batch}/nack", "code": "200"}, 1)
	if _, ok := value(mfs, "pgque_consumer_batch_age_seconds", qc); ok {
		t.Error("batch age without an open batch")
	}
	wantMetric(t, mfs, "pgque_queue_unclaimed_events", q, 0)

	// A queue without consumers keeps its events for the first one.
	if _, err := e.sdk.CreateQueue(ctx, "lonely"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := e.sdk.Send(ctx, "lonely", pgque.Event{Type: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	lonely := map[string]string{"queue": "lonely"}
	wantMetric(t, e.scrape(t), "pgque_queue_unclaimed_events", lonely, 2)
	var lq pgquehttp.Queue
	e.decodeBody(t, "GET", "/v1/queues/lonely", "", 200, &lq)
	if !lq.KeepUnclaimed || lq.UnclaimedEvents != 2 || lq.UnclaimedSince == nil {
		t.Errorf("queue with unclaimed events %+v", lq)
	}
	e.decodeBody(t, "PATCH", "/v1/queues/lonely", `{"keep_unclaimed": false}`, 200, &lq)
	if lq.KeepUnclaimed || lq.UnclaimedEvents != 0 || lq.UnclaimedSince != nil {
		t.Errorf("queue with keep_unclaimed off %+v", lq)
	}
	wantMetric(t, e.scrape(t), "pgque_queue_unclaimed_events", lonely, 0)
}

// A queue whose ticks fail shows in /metrics and in its JSON while the
// other queues tick; both clear once it ticks again.
func TestMetricsMaintenanceErrors(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, server.Options{})
	if _, err := e.sdk.CreateQueue(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	// A superuser's trigger refuses the ticks of queue q only.
	if _, err := e.sdk.Pool().Exec(ctx, `
		CREATE FUNCTION public.refuse_tick() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
		    IF NEW.tick_queue = (SELECT queue_id FROM pgque.queue WHERE queue_name = 'q') THEN
		        RAISE EXCEPTION 'no ticks today' USING ERRCODE = 'XX042';
		    END IF;
		    RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_tick BEFORE INSERT ON pgque.tick FOR EACH ROW EXECUTE FUNCTION public.refuse_tick()`); err != nil {
		t.Fatal(err)
	}
	q, other := map[string]string{"queue": "q"}, map[string]string{"queue": "other"}
	mfs := e.scrape(t)
	wantMetric(t, mfs, "pgque_queue_maintenance_errors", q, 0)
	if _, ok := value(mfs, "pgque_queue_maintenance_last_error_timestamp_seconds", q); ok {
		t.Error("last error timestamp before any failure")
	}

	for _, name := range []string{"q", "other"} {
		if err := e.sdk.SetQueueConfig(ctx, name, "ticker_max_count", "1"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.sdk.Send(ctx, name, pgque.Event{Type: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := e.sdk.Tick(ctx); err != nil || n != 1 {
		t.Fatalf("Tick with q failing = %d, %v; want 1 (other)", n, err)
	}
	mfs = e.scrape(t)
	wantMetric(t, mfs, "pgque_queue_maintenance_errors", q, 1)
	wantMetric(t, mfs, "pgque_queue_maintenance_errors", other, 0)
	at, ok := value(mfs, "pgque_queue_maintenance_last_error_timestamp_seconds", q)
	if now := float64(time.Now().Unix()); !ok || at < now-60 || at > now+60 {
		t.Errorf("last error timestamp %v (present %v); want about now", at, ok)
	}
	var jq pgquehttp.Queue
	e.decodeBody(t, "GET", "/v1/queues/q", "", 200, &jq)
	if f := jq.LastError; jq.Errors != 1 || f == nil || f.Step != "tick" || f.SQLState != "XX042" || f.Message != "no ticks today" {
		t.Errorf("GET /v1/queues/q: errors %d, last_error %+v", jq.Errors, f)
	}
	var list struct{ Queues []pgquehttp.Queue }
	e.decodeBody(t, "GET", "/v1/queues", "", 200, &list)
	if len(list.Queues) != 2 {
		t.Errorf("GET /v1/queues: %d queues, want 2", len(list.Queues))
	}
	for _, l := range list.Queues {
		if want := map[string]int64{"q": 1}[l.Name]; l.Errors != want || (l.LastError != nil) != (want > 0) {
			t.Errorf("GET /v1/queues: %s has errors %d, last_error %+v; want %d", l.Name, l.Errors, l.LastError, want)
		}
	}

	if _, err := e.sdk.Pool().Exec(ctx, `DROP TRIGGER refuse_tick ON pgque.tick`); err != nil {
		t.Fatal(err)
	}
	if n, err := e.sdk.Tick(ctx); err != nil || n != 1 {
		t.Fatalf("Tick after the fix = %d, %v; want 1 (q)", n, err)
	}
	mfs = e.scrape(t)
	wantMetric(t, mfs, "pgque_queue_maintenance_errors", q, 0)
	if _, ok := value(mfs, "pgque_queue_maintenance_last_error_timestamp_seconds", q); ok {
		t.Error("last error timestamp after the fix")
	}
	e.decodeBody(t, "GET", "/v1/queues/q", "", 200, &jq)
	if jq.Errors != 0 || jq.LastError != nil {
		t.Errorf("GET /v1/queues/q after the fix: errors %d, last_error %+v", jq.Errors, jq.LastError)
	}
}

// Paused queues and cooperative workers show; a role with pgque_reader
// only can scrape.
func TestMetricsPauseWorkersRoles(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, server.Options{})
	qc := map[string]string{"queue": "q", "consumer": "c"}
	mfs := e.scrape(t)
	wantMetric(t, mfs, "pgque_consumer_workers", qc, 0)
	wantMetric(t, mfs, "pgque_consumer_worker_batches", qc, 0)
	if _, err := e.sdk.PauseQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	wantMetric(t, e.scrape(t), "pgque_queue_paused", map[string]string{"queue": "q"}, 1)
	if _, err := e.sdk.ResumeQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}

	e.sendTick(t, 1)
	msgs, err := e.sdk.ReceiveAsWorker(ctx, "q", "c", "a", 10, time.Minute)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive as worker: %v %v", msgs, err)
	}
	// Nothing left for b, which is not made a worker for nothing.
	if msgs, err := e.sdk.ReceiveAsWorker(ctx, "q", "c", "b", 10, time.Minute); err != nil || len(msgs) != 0 {
		t.Fatalf("receive as worker b: %v %v", msgs, err)
	}
	if _, err := e.sdk.Heartbeat(ctx, msgs[0].BatchID, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// Wait until the database sees a's 1 ms lease as run out.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ws, err := e.sdk.Workers(ctx, "q", "c")
		if err != nil {
			t.Fatal(err)
		}
		if ws[0].LeaseLeft != nil && *ws[0].LeaseLeft < 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease never ran out: %+v", ws)
		}
	}
	mfs = e.scrape(t)
	wantMetric(t, mfs, "pgque_consumer_workers", qc, 1)
	wantMetric(t, mfs, "pgque_consumer_worker_batches", qc, 1)
	wantMetric(t, mfs, "pgque_consumer_worker_leases_expired", qc, 1)

	// A login role with pgque_reader only: no access to pgque's tables.
	role := fmt.Sprintf("metrics_%d", time.Now().UnixNano())
	if _, err := e.sdk.Pool().Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN IN ROLE pgque_reader", role)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = e.sdk.Pool().Exec(ctx, "DROP ROLE "+role) })
	cfg := e.sdk.Pool().Config().Copy()
	cfg.ConnConfig.User = role
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(pgque.New(pool), server.Options{PollInterval: noPoll})
	hs := httptest.NewServer(srv)
	defer func() {
		srv.Close()
		hs.Close()
		pool.Close()
	}()
	reader := &env{sdk: pgque.New(pool), srv: srv, http: hs}
	mfs = reader.scrape(t)
	wantMetric(t, mfs, "pgque_scrape_success", nil, 1)
	wantMetric(t, mfs, "pgque_consumer_workers", qc, 1)
	wantMetric(t, mfs, "pgque_consumer_worker_leases_expired", qc, 1)
	wantMetric(t, mfs, "pgque_queue_unclaimed_events", map[string]string{"queue": "q"}, 0)
	if v, ok := value(mfs, "pgque_queue_event_bytes", map[string]string{"queue": "q"}); !ok || v <= 0 {
		t.Errorf("queue event bytes as a reader: %v %v", v, ok)
	}
	if _, ok := value(mfs, "pgque_table_bytes", map[string]string{"table": "pgque.queue"}); !ok {
		t.Error("no table bytes as a reader")
	}
	// The event counter comes from get_queue_info too (it read pgque's
	// catalog, closed to a reader, before).
	if v, ok := value(mfs, "pgque_queue_events_total", map[string]string{"queue": "q"}); !ok || v <= 0 {
		t.Errorf("event counter as a reader: %v %v", v, ok)
	}
}

func post(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// unreachablePool is a pool on a port where nothing listens.
func unreachablePool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@"+addr+"/x?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestHealth(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	ticker := pgque.NewTicker(pool)
	srv := server.New(pgque.New(pool), server.Options{Ticker: ticker})
	defer srv.Close()
	get := func(h http.Handler, path string) (int, pgquehttp.Health) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		var out pgquehttp.Health
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s: %q: %v", path, rec.Body.String(), err)
		}
		return rec.Code, out
	}
	if code, h := get(srv, "/healthz"); code != 200 || h.Status != "ok" {
		t.Errorf("healthz: %d %+v", code, h)
	}
	// A configured ticker that does not run makes the server unready.
	if code, h := get(srv, "/readyz"); code != 503 || h.Checks["ticker"] != "stopped" || h.Checks["database"] != "ok" {
		t.Errorf("readyz, ticker stopped: %d %+v", code, h)
	}
	tctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.RunTicker(tctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !ticker.IsLeader() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling a state the ticker exposes no event for
	}
	if code, h := get(srv, "/readyz"); code != 200 || h.Status != "ready" || h.Checks["ticker"] != "leader" || h.Checks["pgque"] == "" {
		t.Errorf("readyz, ticker leading: %d %+v", code, h)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// The database is unreachable.
	// Requests of httptest.NewRequest come for example.com.
	down := server.New(pgque.New(unreachablePool(t)), server.Options{AllowedHosts: []string{"example.com"}})
	defer down.Close()
	if code, h := get(down, "/readyz"); code != 503 || h.Checks["database"] != "unreachable" {
		t.Errorf("readyz, database down: %d %+v", code, h)
	}
	if code, _ := get(down, "/healthz"); code != 200 {
		t.Errorf("healthz, database down: %d", code)
	}
	rec := httptest.NewRecorder()
	down.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/queues", nil))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"unavailable"`) {
		t.Errorf("queues, database down: %d %s", rec.Code, rec.Body.String())
	}
	// pgque is not installed.
	plain := pg.NewPool(t)
	if _, err := plain.Exec(ctx, `DROP EXTENSION IF EXISTS pgque CASCADE; DROP SCHEMA IF EXISTS pgque CASCADE`); err != nil {
		t.Fatal(err)
	}
	bare := server.New(pgque.New(plain), server.Options{})
	defer bare.Close()
	if code, h := get(bare, "/readyz"); code != 503 || h.Checks["database"] != "ok" || h.Checks["pgque"] == "" {
		t.Errorf("readyz, pgque missing: %d %+v", code, h)
	}
	mfsRec := httptest.NewRecorder()
	down.ServeHTTP(mfsRec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(mfsRec.Body.String(), "pgque_scrape_success 0") {
		t.Errorf("metrics, database down: no pgque_scrape_success 0")
	}
}

// Serve serves until its context ends, then shuts down streams and all.
func TestServe(t *testing.T) {
	pool := pg.NewPool(t)
	sdk := pgque.New(pool)
	if _, err := sdk.CreateQueue(context.Background(), "q"); err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.Subscribe(context.Background(), "q", "c"); err != nil {
		t.Fatal(err)
	}
	srv := server.New(sdk, server.Options{Ticker: pgque.NewTicker(pool), PollInterval: noPoll,
		RequestTimeout: 500 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()

	// With the ticker running, a sent event reaches the stream without a forced tick.
	resp, err := http.Get(base + "/v1/queues/q/consumers/c/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s := &sse{resp: resp, r: bufio.NewReader(resp.Body)}
	id, err := sdk.Send(context.Background(), "q", pgque.Event{Type: "t"})
	if err != nil {
		t.Fatal(err)
	}
	_, b := s.batch(t)
	if len(b.Messages) != 1 || b.Messages[0].MsgID != id {
		t.Fatalf("stream got %+v", b)
	}
	// The stream outlives the server's read timeout (the request timeout).
	time.Sleep(time.Second) // what is tested is time passing
	if status, body := post(t, base+fmt.Sprintf("/v1/batches/%d/ack", b.BatchID)); status != 200 {
		t.Fatalf("ack: %d %s", status, body)
	}
	id, err = sdk.Send(context.Background(), "q", pgque.Event{Type: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, b := s.batch(t); len(b.Messages) != 1 || b.Messages[0].MsgID != id {
		t.Fatalf("stream after a second got %+v", b)
	}
	cancel()
	if _, err := s.next(t); err != io.EOF {
		t.Errorf("stream after shutdown: %v, want EOF", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
}

// The shared LISTEN connection comes back after it is lost, and streams
// get what was ticked meanwhile.
func TestStreamListenerReconnects(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, server.Options{})
	s := e.openStream(t, "/v1/queues/q/consumers/c/stream", "")
	// The listener's backend, once it listens.
	listenerPID := func() int {
		t.Helper()
		var pid int
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			err := e.sdk.Pool().QueryRow(ctx, `SELECT pid FROM pg_stat_activity
			    WHERE application_name = 'pgque-listener' AND query LIKE 'LISTEN%'`).Scan(&pid)
			if err == nil {
				return pid
			}
			time.Sleep(10 * time.Millisecond) // the server's state is only visible in pg_stat_activity
		}
		t.Fatal("no listening connection")
		return 0
	}
	old := listenerPID()
	if _, err := e.sdk.Pool().Exec(ctx, `SELECT pg_terminate_backend($1)`, old); err != nil {
		t.Fatal(err)
	}
	// Ticked while the connection is down: delivered once it is back.
	ids := e.sendTick(t, 1)
	_, b := s.batch(t)
	if got := msgIDs(b); len(got) != 1 || got[0] != ids[0] {
		t.Fatalf("after reconnecting: %v, want %v", got, ids)
	}
	if pid := listenerPID(); pid == old {
		t.Fatalf("listener still on backend %d", pid)
	}
	e.ack(t, b.BatchID)
	// And notifications wake streams again.
	ids = e.sendTick(t, 1)
	_, b = s.batch(t)
	if got := msgIDs(b); len(got) != 1 || got[0] != ids[0] {
		t.Fatalf("notified after reconnecting: %v, want %v", got, ids)
	}
}

// One LISTEN connection serves the streams of every queue: a stream of a
// second queue, opened while the connection waits, is woken by its ticks.
func TestStreamsShareListener(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, server.Options{})
	s1 := e.openStream(t, "/v1/queues/q/consumers/c/stream", "")
	ids := e.sendTick(t, 1)
	if _, b := s1.batch(t); msgIDs(b)[0] != ids[0] {
		t.Fatalf("q: %v", msgIDs(b))
	}
	if _, err := e.sdk.CreateQueue(ctx, "q2"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sdk.Subscribe(ctx, "q2", "c"); err != nil {
		t.Fatal(err)
	}
	s2 := e.openStream(t, "/v1/queues/q2/consumers/c/stream", "")
	id, err := e.sdk.Send(ctx, "q2", pgque.Event{Type: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sdk.ForceTick(ctx, "q2"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, b := s2.batch(t); len(b.Messages) != 1 || b.Messages[0].MsgID != id {
		t.Fatalf("q2: %+v", b)
	}
	// Without the listener's interrupt the new channel would wait for its
	// health check, a minute away.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("q2's stream woke after %v", d)
	}
	var listeners int
	if err := e.sdk.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
	    WHERE application_name = 'pgque-listener'`).Scan(&listeners); err != nil || listeners != 1 {
		t.Errorf("%d listening connections (%v), want 1", listeners, err)
	}
}

// decodeBody checks the status of an answer and decodes its body into v.
func (e *env) decodeBody(t *testing.T, method, path, body string, status int, v any) {
	t.Helper()
	got, text, _ := e.call(t, method, path, body)
	if got != status {
		t.Fatalf("%s %s %s: %d %s, want %d", method, path, body, got, text, status)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(text), v); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, path, text, err)
		}
	}
}

func TestPause(t *testing.T) {
	e := newEnv(t, server.Options{})
	var pr pgquehttp.PauseResponse
	e.decodeBody(t, "POST", "/v1/queues/q/pause", "", 200, &pr)
	if !pr.Changed {
		t.Error("pause: not changed")
	}
	e.decodeBody(t, "POST", "/v1/queues/q/pause", "", 200, &pr)
	if pr.Changed {
		t.Error("pause again: changed")
	}
	var q pgquehttp.Queue
	e.decodeBody(t, "GET", "/v1/queues/q", "", 200, &q)
	if !q.Paused || q.PausedAt == nil || time.Since(*q.PausedAt) > time.Minute || q.EventBytes <= 0 {
		t.Errorf("paused queue %+v", q)
	}
	// Paused: a tick delivers nothing.
	e.sendTick(t, 2)
	var b pgquehttp.Batch
	e.decodeBody(t, "POST", "/v1/queues/q/consumers/c/receive", "", 200, &b)
	if len(b.Messages) != 0 {
		t.Errorf("received while paused: %+v", b)
	}
	e.decodeBody(t, "POST", "/v1/queues/q/resume", "", 200, &pr)
	if !pr.Changed {
		t.Error("resume: not changed")
	}
	e.decodeBody(t, "POST", "/v1/queues/q/resume", "", 200, &pr)
	if pr.Changed {
		t.Error("resume again: changed")
	}
	e.decodeBody(t, "GET", "/v1/queues/q", "", 200, &q)
	if q.Paused || q.PausedAt != nil {
		t.Errorf("resumed queue %+v", q)
	}
	b = pgquehttp.Batch{}
	e.decodeBody(t, "POST", "/v1/queues/q/consumers/c/receive", `{"single_reader": true}`, 200, &b)
	if len(b.Messages) != 2 || b.Worker != "" {
		t.Fatalf("received after resuming: %+v", b)
	}
	var c pgquehttp.Consumer
	e.decodeBody(t, "GET", "/v1/queues/q/consumers/c", "", 200, &c)
	if c.BatchAgeSeconds == nil || *c.BatchAgeSeconds < 0 || *c.BatchAgeSeconds > 60 {
		t.Errorf("consumer with a batch: %+v", c)
	}
	e.ack(t, b.BatchID)
	e.decodeBody(t, "GET", "/v1/queues/q/consumers/c", "", 200, &c)
	if c.BatchAgeSeconds != nil {
		t.Errorf("consumer without a batch: batch age %v", *c.BatchAgeSeconds)
	}
	e.wantError(t, "POST", "/v1/queues/nope/pause", "", 404, "queue_not_found", "PQ001")
	e.wantError(t, "POST", "/v1/queues/nope/resume", "", 404, "queue_not_found", "PQ001")
	e.wantError(t, "GET", "/v1/queues/q/pause", "", 405, "method_not_allowed", "")
}

func TestWorkers(t *testing.T) {
	e := newEnv(t, server.Options{})
	ids := e.sendTick(t, 4)
	var workers struct{ Workers []pgquehttp.Worker }
	e.decodeBody(t, "GET", "/v1/queues/q/consumers/c/workers", "", 200, &workers)
	if len(workers.Workers) != 0 {
		t.Errorf("workers before any: %+v", workers)
	}
	// Each worker gets a window of its own: w1 the first two messages, w2
	// the rest of the tick.
	var b1, b2 pgquehttp.Batch
	e.decodeBody(t, "POST", "/v1/queues/q/consumers/c/receive", `{"max": 2, "worker": "w1", "lease_seconds": 60}`, 200, &b1)
	if len(b1.Messages) != 2 || b1.Messages[0].MsgID != ids[0] || b1.Worker != "w1" {
		t.Fatalf("w1 received %+v", b1)
	}
	e.sendTick(t, 1)
	e.decodeBody(t, "POST", "/v1/queues/q/consumers/c/receive", `{"worker": "w2"}`, 200, &b2)
	if got := msgIDs(b2); len(got) != 2 || got[0] != ids[2] || got[1] != ids[3] || b2.BatchID == b1.BatchID {
		t.Fatalf("w2 received %+v (w1 has piece %d)", b2, b1.BatchID)
	}
	e.decodeBody(t, "GET", "/v1/queues/q/consumers/c/workers", "", 200, &workers)
	ws := workers.Workers
	// A worker's batch id is its window's, not the id of the piece handed out.
	if len(ws) != 2 || ws[0].Name != "w1" || ws[0].BatchID == nil || *ws[0].BatchID == b1.BatchID ||
		ws[0].LeaseLeftSeconds == nil || *ws[0].LeaseLeftSeconds < 50 || *ws[0].LeaseLeftSeconds > 60 ||
		ws[1].Name != "w2" || ws[1].BatchID == nil || *ws[1].LeaseLeftSeconds > 30 || ws[1].LastSeenSeconds < 0 {
		t.Errorf("workers %+v", ws)
	}

	var hb pgquehttp.HeartbeatResponse
	e.decodeBody(t, "POST", fmt.Sprintf("/v1/batches/%d/heartbeat", b2.BatchID), `{"lease_seconds": 120}`, 200, &hb)
	if !hb.Held {
		t.Error("heartbeat: not held")
	}
	e.decodeBody(t, "GET", "/v1/queues/q/consumers/c/workers", "", 200, &workers)
	if l := workers.Workers[1].LeaseLeftSeconds; l == nil || *l < 100 {
		t.Errorf("lease after the heartbeat: %v", l)
	}
	// A worker holding a batch stays; a plain receive and workers do not mix.
	e.wantError(t, "DELETE", "/v1/queues/q/consumers/c/workers/w2", "", 409, "worker_busy", "PQ026")
	e.ack(t, b2.BatchID)
	e.decodeBody(t, "POST", fmt.Sprintf("/v1/batches/%d/heartbeat", b2.BatchID), "", 200, &hb)
	if hb.Held {
		t.Error("heartbeat of a finished batch: held")
	}
	e.decodeBody(t, "DELETE", "/v1/queues/q/consumers/c/workers/w2", "", 204, nil)
	e.wantError(t, "DELETE", "/v1/queues/q/consumers/c/workers/w2", "", 404, "worker_not_found", "")
	e.ack(t, b1.BatchID)

	e.sendTick(t, 1)
	var plain pgquehttp.Batch
	e.decodeBody(t, "POST", "/v1/queues/q/consumers/c/receive", `{"single_reader": true}`, 200, &plain)
	if len(plain.Messages) != 2 || plain.Worker != "" {
		t.Fatalf("single reader's receive %+v", plain)
	}
	e.wantError(t, "POST", "/v1/queues/q/consumers/c/receive", `{"worker": "w1"}`, 409, "consumer_busy", "PQ025")
	e.wantError(t, "POST", "/v1/queues/q/consumers/c/receive", "", 409, "consumer_busy", "PQ025")

	for _, c := range []struct {
		method, path, body string
		status             int
		code, sqlstate     string
	}{
		{"POST", "/v1/queues/q/consumers/c/receive", `{"single_reader": true, "lease_seconds": 10}`, 400, "invalid_argument", ""},
		{"POST", "/v1/queues/q/consumers/c/receive", `{"worker": "w", "lease_seconds": -1}`, 400, "invalid_argument", ""},
		{"POST", "/v1/queues/q/consumers/c/receive", `{"worker": "w", "lease_seconds": 1e300}`, 400, "invalid_argument", ""},
		{"POST", "/v1/queues/q/consumers/c/receive", `{"worker": "w", "lease_seconds": 86400.5}`, 400, "invalid_argument", ""},
		{"POST", "/v1/queues/q/consumers/c/receive", `{"worker": "bad name!"}`, 400, "invalid_argument", "PQ006"},
		{"POST", "/v1/batches/1/heartbeat", `{"lease_seconds": 0.0000000001}`, 400, "invalid_argument", ""},
		{"POST", "/v1/batches/1/heartbeat", `{"lease_seconds": 86401}`, 400, "invalid_argument", ""},
		{"POST", "/v1/batches/x/heartbeat", "", 400, "invalid_argument", ""},
		{"GET", "/v1/queues/q/consumers/nobody/workers", "", 404, "consumer_not_found", "PQ003"},
		{"GET", "/v1/queues/nope/consumers/c/workers", "", 404, "queue_not_found", "PQ001"},
		{"DELETE", "/v1/queues/q/consumers/nobody/workers/w", "", 404, "consumer_not_found", "PQ003"},
		{"DELETE", "/v1/queues/q/consumers/c/workers/nobody?release=true", "", 404, "worker_not_found", ""},
	} {
		e.wantError(t, c.method, c.path, c.body, c.status, c.code, c.sqlstate)
	}
}

func TestSchedules(t *testing.T) {
	e := newEnv(t, server.Options{})
	var list struct{ Schedules []pgquehttp.Schedule }
	e.decodeBody(t, "GET", "/v1/schedules", "", 200, &list)
	if len(list.Schedules) != 0 {
		t.Errorf("schedules before any: %+v", list)
	}
	var sc pgquehttp.Schedule
	status, body, h := e.call(t, "POST", "/v1/schedules",
		`{"name": "ping", "queue": "q", "type": "ping", "payload": {"n": 1}, "every_seconds": 60}`)
	if status != 201 || json.Unmarshal([]byte(body), &sc) != nil || h.Get("Location") != "/v1/schedules/ping?queue=q" {
		t.Fatalf("create: %d %s %v", status, body, h)
	}
	if sc.Name != "ping" || sc.Queue != "q" || sc.Type != "ping" || string(sc.Payload) != `{"n":1}` ||
		sc.EverySeconds == nil || *sc.EverySeconds != 60 || sc.Cron != nil || sc.TimeZone != "UTC" ||
		time.Until(sc.NextRun) < 50*time.Second || sc.Runs != 0 || sc.LastRun != nil {
		t.Errorf("created %+v", sc)
	}
	e.decodeBody(t, "POST", "/v1/schedules",
		`{"name": "nightly", "queue": "q", "type": "report", "cron": "0 3 * * *", "time_zone": "Europe/Berlin"}`, 201, &sc)
	if sc.Cron == nil || *sc.Cron != "0 3 * * *" || sc.EverySeconds != nil || sc.TimeZone != "Europe/Berlin" ||
		string(sc.Payload) != "null" || sc.NextRun.In(mustLocation(t, "Europe/Berlin")).Hour() != 3 {
		t.Errorf("cron schedule %+v", sc)
	}
	e.decodeBody(t, "GET", "/v1/schedules", "", 200, &list)
	if len(list.Schedules) != 2 || list.Schedules[0].Name != "nightly" || list.Schedules[1].Name != "ping" {
		t.Errorf("schedules %+v", list)
	}
	e.decodeBody(t, "GET", "/v1/schedules/ping", "", 200, &sc)
	if sc.Name != "ping" {
		t.Errorf("get %+v", sc)
	}
	for _, c := range []struct {
		method, path, body string
		status             int
		code, sqlstate     string
	}{
		{"POST", "/v1/schedules", `{"name": "ping", "queue": "q", "type": "t", "every_seconds": 5}`, 409, "schedule_exists", "PQ015"},
		{"POST", "/v1/schedules", `{"name": "x", "queue": "nope", "type": "t", "every_seconds": 5}`, 404, "queue_not_found", "PQ001"},
		{"POST", "/v1/schedules", `{"name": "x", "queue": "q", "type": "t", "cron": "61 * * * *"}`, 400, "invalid_argument", "PQ006"},
		{"POST", "/v1/schedules", `{"name": "x", "queue": "q", "type": "t", "every_seconds": 5, "time_zone": "Mars/Olympus"}`, 400, "invalid_argument", "PQ006"},
		{"POST", "/v1/schedules", `{"name": "x", "queue": "q", "type": "t"}`, 400, "invalid_argument", ""},
		{"POST", "/v1/schedules", `{"name": "x", "queue": "q", "type": "t", "every_seconds": 5, "cron": "@daily"}`, 400, "invalid_argument", ""},
		{"POST", "/v1/schedules", `{"name": "x", "queue": "q", "type": "t", "every_seconds": -5}`, 400, "invalid_argument", ""},
		{"POST", "/v1/schedules", `{"name": "x", "queue": "q", "type": "t", "every_seconds": 9000000000000}`, 400, "invalid_argument", ""},
		{"POST", "/v1/schedules", `{"name": "x", "queue": "q", "every_seconds": 5}`, 400, "invalid_argument", ""},
		{"POST", "/v1/schedules", `{"name": "x", "queue": "q", "type": "t", "every": 5}`, 400, "malformed_json", ""},
		{"GET", "/v1/schedules/nope", "", 404, "schedule_not_found", "PQ016"},
		{"DELETE", "/v1/schedules/nope", "", 404, "schedule_not_found", "PQ016"},
	} {
		e.wantError(t, c.method, c.path, c.body, c.status, c.code, c.sqlstate)
	}
	e.decodeBody(t, "DELETE", "/v1/schedules/ping", "", 204, nil)
	e.wantError(t, "GET", "/v1/schedules/ping", "", 404, "schedule_not_found", "PQ016")
	e.decodeBody(t, "GET", "/v1/schedules", "", 200, &list)
	if len(list.Schedules) != 1 || list.Schedules[0].Name != "nightly" {
		t.Errorf("schedules after the drop %+v", list)
	}
}

func mustLocation(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// GET /v1/queues/{queue}/messages/{id} through the typed client: where a
// message stands for each consumer, and the errors of a bad id or queue.
func TestMessageStatusRoute(t *testing.T) {
	e := newEnv(t, server.Options{})
	ctx := context.Background()
	if _, err := e.sdk.CreateQueue(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"a", "b"} {
		if _, err := e.sdk.Subscribe(ctx, "jobs", c); err != nil {
			t.Fatal(err)
		}
	}
	id, err := e.sdk.Send(ctx, "jobs", pgque.Event{Type: "t", Payload: map[string]int{"n": 1}})
	if err != nil {
		t.Fatal(err)
	}
	hc, err := pgquehttp.NewClient(e.http.URL)
	if err != nil {
		t.Fatal(err)
	}
	st, err := hc.MessageStatus(ctx, "jobs", id)
	if err != nil || st.MsgID != id || len(st.Consumers) != 2 || st.Consumers[0].Consumer != "a" ||
		st.Consumers[0].State != "not_ticked" || st.Consumers[0].Message == nil ||
		string(st.Consumers[0].Message.Payload) != `{"n":1}` {
		t.Fatalf("MessageStatus = %+v, %v", st, err)
	}
	list, err := hc.ListMessages(ctx, "jobs", "pending", pgquehttp.ListOptions{Consumer: "b", Type: "t",
		Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour)})
	if err != nil || len(list) != 0 { // not ticked yet: nothing is pending
		t.Fatalf("ListMessages before a tick = %+v, %v", list, err)
	}
	if _, err := e.sdk.ForceTick(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	if list, err = hc.ListMessages(ctx, "jobs", "pending", pgquehttp.ListOptions{Consumer: "b"}); err != nil ||
		len(list) != 1 || list[0].MsgID != id || list[0].State != "pending" {
		t.Errorf("ListMessages after a tick = %+v, %v", list, err)
	}
	e.wantError(t, "GET", "/v1/queues/jobs/messages?state=pending", "", 400, "invalid_argument", "PQ006")
	e.wantError(t, "GET", "/v1/queues/jobs/messages?state=dead&since=yesterday", "", 400, "invalid_argument", "")
	e.wantError(t, "GET", "/v1/queues/jobs/messages?state=dead&after=-3", "", 400, "invalid_argument", "")
	cr, err := hc.Cancel(ctx, "jobs", id, "a")
	if err != nil || cr.MsgID != id || len(cr.Consumers) != 1 || cr.Consumers[0].Outcome != "cancelled" {
		t.Errorf("Cancel = %+v, %v", cr, err)
	}
	if list, err = hc.ListMessages(ctx, "jobs", "pending", pgquehttp.ListOptions{Consumer: "a"}); err != nil || len(list) != 0 {
		t.Errorf("pending for a after the cancel = %+v, %v", list, err)
	}
	e.wantError(t, "POST", "/v1/queues/jobs/messages/1/cancel?consumer=nobody", "", 404, "consumer_not_found", "PQ003")
	e.wantError(t, "GET", "/v1/queues/nope/messages/1", "", 404, "queue_not_found", "PQ001")
	e.wantError(t, "GET", "/v1/queues/jobs/messages/x", "", 400, "invalid_argument", "")
	// ids are positive; an empty consumer is refused, never read as "every
	// consumer": the message stays pending for b
	e.wantError(t, "GET", "/v1/queues/jobs/messages/0", "", 400, "invalid_argument", "")
	e.wantError(t, "GET", "/v1/queues/jobs/messages/-1", "", 400, "invalid_argument", "")
	e.wantError(t, "POST", "/v1/queues/jobs/messages/-1/cancel", "", 400, "invalid_argument", "")
	e.wantError(t, "POST", "/v1/queues/jobs/messages/1/cancel?consumer=", "", 400, "invalid_argument", "")
	e.wantError(t, "GET", "/v1/queues/jobs/messages?state=pending&consumer=", "", 400, "invalid_argument", "")
	if list, err = hc.ListMessages(ctx, "jobs", "pending", pgquehttp.ListOptions{Consumer: "b"}); err != nil ||
		len(list) != 1 || list[0].MsgID != id {
		t.Errorf("pending for b after the refused cancels = %+v, %v", list, err)
	}
}
