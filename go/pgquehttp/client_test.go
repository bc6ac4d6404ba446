package pgquehttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

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

// Tokens of the servers of newAPI.
const (
	adminToken = "admin-token-0123456789"
	acmeToken  = "acme-token-0123456789" // reads and writes namespace acme only
)

// newAPI serves a fresh database over HTTP, with tokens, and returns a
// client of it with the admin token and the SDK client of the database (to
// tick by hand).
func newAPI(t testing.TB) (*pgquehttp.Client, *pgque.Client) {
	t.Helper()
	c, sdk, _ := newAPIURL(t)
	return c, sdk
}

// newAPIURL is newAPI that also returns the server's URL.
func newAPIURL(t testing.TB) (*pgquehttp.Client, *pgque.Client, string) {
	t.Helper()
	tokens, err := server.ParseTokens(strings.NewReader(adminToken + " admin\n" + acmeToken + " read:acme.* write:acme.*\n"))
	if err != nil {
		t.Fatal(err)
	}
	sdk := pgque.New(pg.NewPool(t))
	srv := server.New(sdk, server.Options{PollInterval: time.Hour, Tokens: tokens})
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	c, err := pgquehttp.NewClient(hs.URL+"/", pgquehttp.WithToken(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	return c, sdk, hs.URL
}

// The token goes with every request, streams included; errors of
// authentication and scope are *Error with their codes.
func TestClientToken(t *testing.T) {
	ctx := context.Background()
	admin, _, url := newAPIURL(t)
	for _, q := range []string{"acme.orders", "other"} {
		must(admin.CreateQueue(ctx, q, nil)).ok(t)
		must(admin.Subscribe(ctx, q, "c")).ok(t)
	}
	anon, err := pgquehttp.NewClient(url)
	if err != nil {
		t.Fatal(err)
	}
	var he *pgquehttp.Error
	if _, err := anon.Queues(ctx); !errors.As(err, &he) || he.Status != 401 || he.Code != pgquehttp.CodeUnauthenticated {
		t.Errorf("without a token: %v", err)
	}
	if _, err := anon.Stream(ctx, "acme.orders", "c", pgquehttp.StreamOptions{}); !errors.As(err, &he) || he.Status != 401 {
		t.Errorf("stream without a token: %v", err)
	}
	acme, err := pgquehttp.NewClient(url, pgquehttp.WithToken(acmeToken))
	if err != nil {
		t.Fatal(err)
	}
	qs := must(acme.Queues(ctx)).ok(t)
	if len(qs) != 1 || qs[0].Name != "acme.orders" {
		t.Errorf("acme's queues: %+v", qs)
	}
	if _, err := acme.Send(ctx, "other", pgquehttp.Event{Type: "t"}); !errors.As(err, &he) || he.Status != 403 || he.Code != pgquehttp.CodeForbidden {
		t.Errorf("acme sending to other: %v", err)
	}
	if _, err := acme.Stream(ctx, "other", "c", pgquehttp.StreamOptions{}); !errors.As(err, &he) || he.Status != 403 {
		t.Errorf("acme's stream of other: %v", err)
	}
	if _, err := acme.CreateQueue(ctx, "acme.more", nil); !errors.As(err, &he) || he.Status != 403 {
		t.Errorf("acme creating a queue: %v", err)
	}
	must(acme.Send(ctx, "acme.orders", pgquehttp.Event{Type: "t"})).ok(t)
	st := must(acme.Stream(ctx, "acme.orders", "c", pgquehttp.StreamOptions{})).ok(t)
	st.Close()
}

// result holds what a call returned; must(c.X(...)).ok(t) fails the test
// on an error and returns the value.
type result[T any] struct {
	v   T
	err error
}

func must[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) ok(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

func TestClientQueuesAndConsumers(t *testing.T) {
	ctx := context.Background()
	c, _ := newAPI(t)

	q := must(c.CreateQueue(ctx, "orders", pgquehttp.Config{"max_retries": 2, "ticker_max_lag": "2 seconds"})).ok(t)
	if q.Name != "orders" || q.MaxRetries != 2 || q.TickerMaxLagSeconds != 2 || q.Tables != 3 ||
		!q.KeepUnclaimed || q.UnclaimedEvents != 0 || q.UnclaimedSince == nil {
		t.Errorf("created %+v", q)
	}

	if _, err := c.CreateQueue(ctx, "orders", nil); !errors.Is(err, pgque.ErrQueueExists) {
		t.Errorf("create again: %v", err)
	}
	var he *pgquehttp.Error
	if _, err := c.CreateQueue(ctx, "x", pgquehttp.Config{"max_retries": "many"}); !errors.As(err, &he) ||
		he.Status != 400 || he.SQLState != "PQ006" || !errors.Is(err, pgque.ErrInvalidArgument) {
		t.Errorf("bad config: %v", err)
	}
	q = must(c.UpdateQueue(ctx, "orders", pgquehttp.Config{"retry_backoff_base": 3, "rotation_period": "1 hour"})).ok(t)
	if q.RetryBackoffBaseSeconds != 3 || q.RotationPeriodSeconds != 3600 || q.MaxRetries != 2 {
		t.Errorf("updated %+v", q)
	}
	if q = must(c.Queue(ctx, "orders")).ok(t); q.RetryBackoffBaseSeconds != 3 {
		t.Errorf("get %+v", q)
	}
	if _, err := c.Queue(ctx, "nope"); !errors.Is(err, pgque.ErrQueueNotFound) || !errors.As(err, &he) || he.Status != 404 {
		t.Errorf("unknown queue: %v", err)
	}
	must(c.CreateQueue(ctx, "other", nil)).ok(t)
	// Sent while nobody subscribed: kept for the first consumer.
	must(c.Send(ctx, "other", pgquehttp.Event{Type: "early"})).ok(t)
	if q = must(c.Queue(ctx, "other")).ok(t); q.UnclaimedEvents != 1 || q.UnclaimedSince == nil {
		t.Errorf("unclaimed events %+v, want 1", q)
	}
	if q = must(c.UpdateQueue(ctx, "other", pgquehttp.Config{"keep_unclaimed": false})).ok(t); q.KeepUnclaimed ||
		q.UnclaimedEvents != 0 {
		t.Errorf("keep_unclaimed off: %+v", q)
	}
	qs := must(c.Queues(ctx)).ok(t)
	if len(qs) != 2 || qs[0].Name != "orders" || qs[1].Name != "other" {
		t.Errorf("queues %+v", qs)
	}

	if created := must(c.Subscribe(ctx, "orders", "billing")).ok(t); !created {
		t.Error("subscribe: not created")
	}
	if q = must(c.Queue(ctx, "orders")).ok(t); q.UnclaimedEvents != 0 || q.UnclaimedSince != nil {
		t.Errorf("unclaimed after the first subscribe: %+v", q)
	}
	if created := must(c.Subscribe(ctx, "orders", "billing")).ok(t); created {
		t.Error("subscribe again: created")
	}
	must(c.Subscribe(ctx, "orders", "shipping")).ok(t)
	cs := must(c.Consumers(ctx, "orders")).ok(t)
	if len(cs) != 2 || cs[0].Name != "billing" || cs[1].Name != "shipping" || cs[0].Queue != "orders" {
		t.Errorf("consumers %+v", cs)
	}
	if ci := must(c.Consumer(ctx, "orders", "shipping")).ok(t); ci.Name != "shipping" || ci.PendingEvents != 0 {
		t.Errorf("consumer %+v", ci)
	}
	if _, err := c.Consumer(ctx, "orders", "nobody"); !errors.Is(err, pgque.ErrConsumerNotFound) {
		t.Errorf("unknown consumer: %v", err)
	}
	if err := c.DeleteQueue(ctx, "orders", false); !errors.Is(err, pgque.ErrQueueHasConsumers) || !errors.As(err, &he) || he.Status != 409 {
		t.Errorf("delete with consumers: %v", err)
	}
	if err := c.Unsubscribe(ctx, "orders", "shipping"); err != nil {
		t.Fatal(err)
	}
	if err := c.Unsubscribe(ctx, "orders", "shipping"); !errors.Is(err, pgque.ErrConsumerNotFound) {
		t.Errorf("unsubscribe again: %v", err)
	}
	if err := c.DeleteQueue(ctx, "orders", true); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteQueue(ctx, "other", false); err != nil {
		t.Fatal(err)
	}
	if qs := must(c.Queues(ctx)).ok(t); len(qs) != 0 {
		t.Errorf("queues after deleting: %+v", qs)
	}
	if err := c.Ready(ctx); err != nil {
		t.Errorf("ready: %v", err)
	}
}

func TestClientEvents(t *testing.T) {
	ctx := context.Background()
	c, sdk := newAPI(t)
	must(c.CreateQueue(ctx, "q", pgquehttp.Config{"max_retries": 1})).ok(t)
	must(c.Subscribe(ctx, "q", "c")).ok(t)

	x := "x"
	id := must(c.Send(ctx, "q", pgquehttp.Event{Type: "one", Payload: json.RawMessage(`{"n": 1}`), Extra1: &x})).ok(t)
	ids := must(c.SendBatch(ctx, "q", []pgquehttp.Event{{Type: "two"}, {Type: "three", Payload: json.RawMessage(`"s"`)}})).ok(t)
	if len(ids) != 2 || ids[0] <= id || ids[1] <= ids[0] {
		t.Fatalf("ids %d then %v", id, ids)
	}
	// Raw text sent through SQL comes as a JSON string.
	var rawID int64
	if err := sdk.Pool().QueryRow(ctx, `SELECT pgque.send('q', 'raw', 'not json')`).Scan(&rawID); err != nil {
		t.Fatal(err)
	}
	if b := must(c.Receive(ctx, "q", "c", 10)).ok(t); b.BatchID != 0 || len(b.Messages) != 0 {
		t.Fatalf("before a tick: %+v", b)
	}
	must(sdk.ForceTick(ctx, "q")).ok(t)
	b := must(c.Receive(ctx, "q", "c", 10)).ok(t)
	if len(b.Messages) != 4 || b.BatchID == 0 || b.Worker == "" {
		t.Fatalf("received %+v", b)
	}
	// Nobody else gets them while they are held.
	if other := must(c.Receive(ctx, "q", "c", 10)).ok(t); len(other.Messages) != 0 || other.Worker == b.Worker {
		t.Fatalf("a second caller got %+v", other)
	}
	m := b.Messages
	if m[0].MsgID != id || m[0].Type != "one" || string(m[0].Payload) != `{"n":1}` || *m[0].Extra1 != "x" ||
		m[0].RetryCount != nil || m[0].BatchID != b.BatchID || m[0].CreatedAt.IsZero() {
		t.Errorf("first %+v", m[0])
	}
	if m[1].Payload != nil && string(m[1].Payload) != "null" || string(m[2].Payload) != `"s"` || string(m[3].Payload) != `"not json"` {
		t.Errorf("payloads %s %s %s", m[1].Payload, m[2].Payload, m[3].Payload)
	}

	// Retried once (max_retries 1), then dead.
	if out := must(c.Nack(ctx, b.BatchID, m[1].MsgID, time.Second, "flaky")).ok(t); out != pgquehttp.OutcomeRetry {
		t.Errorf("first nack: %s", out)
	}
	if _, err := c.Nack(ctx, b.BatchID, 123456, 0, ""); !errors.Is(err, pgque.ErrMessageNotFound) {
		t.Errorf("nack of a message not in the batch: %v", err)
	}
	if !must(c.Ack(ctx, b.BatchID)).ok(t) {
		t.Error("ack: false")
	}
	if must(c.Ack(ctx, b.BatchID)).ok(t) {
		t.Error("ack again: true")
	}
	if _, err := c.Nack(ctx, b.BatchID, m[1].MsgID, 0, ""); !errors.Is(err, pgque.ErrBatchNotFound) {
		t.Errorf("nack after ack: %v", err)
	}
	// The retry is due after 1 s; maintenance moves it back, a tick delivers it.
	var retried pgquehttp.Batch
	deadline := time.Now().Add(20 * time.Second)
	for len(retried.Messages) == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond) // the retry delay is wall-clock time
		must(sdk.Maint(ctx)).ok(t)
		must(sdk.ForceTick(ctx, "q")).ok(t)
		retried = must(c.Receive(ctx, "q", "c", 10)).ok(t)
	}
	if len(retried.Messages) != 1 || retried.Messages[0].MsgID != m[1].MsgID || *retried.Messages[0].RetryCount != 1 {
		t.Fatalf("retry %+v", retried)
	}
	if out := must(c.Nack(ctx, retried.BatchID, m[1].MsgID, 0, "still broken")).ok(t); out != pgquehttp.OutcomeDead {
		t.Errorf("second nack: %s", out)
	}
	must(c.Ack(ctx, retried.BatchID)).ok(t)

	dls := must(c.DeadLetters(ctx, "q", 0)).ok(t)
	if len(dls) != 1 || dls[0].Consumer != "c" || *dls[0].Reason != "still broken" || dls[0].Message.MsgID != m[1].MsgID {
		t.Fatalf("dead letters %+v", dls)
	}
	if ci := must(c.Consumer(ctx, "q", "c")).ok(t); ci.DeadLetters != 1 {
		t.Errorf("consumer dead letters %d", ci.DeadLetters)
	}
	if got := must(c.ReplayDeadLetter(ctx, dls[0].ID)).ok(t); got != m[1].MsgID {
		t.Errorf("replayed %d", got)
	}
	if _, err := c.ReplayDeadLetter(ctx, dls[0].ID); !errors.Is(err, pgque.ErrDeadLetterNotFound) {
		t.Errorf("replay again: %v", err)
	}
	must(sdk.ForceTick(ctx, "q")).ok(t)
	replayed := must(c.Receive(ctx, "q", "c", 10)).ok(t)
	if len(replayed.Messages) != 1 || replayed.Messages[0].MsgID != m[1].MsgID || replayed.Messages[0].RetryCount != nil {
		t.Fatalf("replayed %+v", replayed)
	}
	// With no retries left it is dead at once, then purged.
	must(c.UpdateQueue(ctx, "q", pgquehttp.Config{"max_retries": 0})).ok(t)
	if out := must(c.Nack(ctx, replayed.BatchID, m[1].MsgID, 0, "a")).ok(t); out != pgquehttp.OutcomeDead {
		t.Errorf("nack with max_retries 0: %s", out)
	}
	must(c.Ack(ctx, replayed.BatchID)).ok(t)
	if n := must(c.PurgeDeadLetters(ctx, "q", time.Hour)).ok(t); n != 0 {
		t.Errorf("purged %d younger than an hour", n)
	}
	if n := must(c.PurgeDeadLetters(ctx, "q", 0)).ok(t); n != 1 {
		t.Errorf("purged %d, want 1", n)
	}
	if dls := must(c.DeadLetters(ctx, "q", 10)).ok(t); len(dls) != 0 {
		t.Errorf("dead letters after purge: %+v", dls)
	}
}

func TestClientStream(t *testing.T) {
	ctx := context.Background()
	c, sdk := newAPI(t)
	must(c.CreateQueue(ctx, "q", nil)).ok(t)
	must(c.Subscribe(ctx, "q", "c")).ok(t)
	if _, err := c.Stream(ctx, "q", "nobody", pgquehttp.StreamOptions{}); !errors.Is(err, pgque.ErrConsumerNotFound) {
		t.Fatalf("stream of an unknown consumer: %v", err)
	}
	s := must(c.Stream(ctx, "q", "c", pgquehttp.StreamOptions{Max: 1})).ok(t)
	ids := must(c.SendBatch(ctx, "q", []pgquehttp.Event{{Type: "a"}, {Type: "b"}})).ok(t)
	must(sdk.ForceTick(ctx, "q")).ok(t)
	b := must(s.Next()).ok(t)
	if len(b.Messages) != 1 || b.Messages[0].MsgID != ids[0] {
		t.Fatalf("first %+v", b)
	}
	last := s.LastEventID()
	if b.Worker == "" || last != fmt.Sprintf("%d-%d", ids[0], ids[0]) {
		t.Errorf("worker %q, event id %q", b.Worker, last)
	}
	s.Close()
	// Once the server noticed, it released the stream's worker: its lease is
	// over.  (A stream opened before would get the next message first.)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ws := must(c.Workers(ctx, "q", "c")).ok(t)
		if len(ws) == 1 && ws[0].LeaseLeftSeconds != nil && *ws[0].LeaseLeftSeconds <= 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the closed stream's worker was not released: %+v", ws)
		}
		time.Sleep(10 * time.Millisecond) // the disconnect has no event to wait for
	}

	// Reconnecting without acking: the same piece again, flagged.
	s = must(c.Stream(ctx, "q", "c", pgquehttp.StreamOptions{Max: 1, LastEventID: last})).ok(t)
	defer s.Close()
	b = must(s.Next()).ok(t)
	if len(b.Messages) != 1 || b.Messages[0].MsgID != ids[0] || !b.Redelivered || s.LastEventID() != last {
		t.Fatalf("after reconnecting %+v (id %s, was %s)", b, s.LastEventID(), last)
	}
	must(c.Ack(ctx, b.BatchID)).ok(t)
	b = must(s.Next()).ok(t)
	if len(b.Messages) != 1 || b.Messages[0].MsgID != ids[1] || b.Redelivered {
		t.Fatalf("second %+v", b)
	}
	// The subscription goes away: Next reports it.
	must(c.Ack(ctx, b.BatchID)).ok(t)
	if err := c.Unsubscribe(ctx, "q", "c"); err != nil {
		t.Fatal(err)
	}
	must(sdk.ForceTick(ctx, "q")).ok(t) // its NOTIFY wakes the stream
	if _, err := s.Next(); !errors.Is(err, pgque.ErrConsumerNotFound) {
		t.Errorf("after unsubscribing: %v", err)
	}
	if _, err := s.Next(); err != io.EOF {
		t.Errorf("after the error: %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	if _, err := pgquehttp.NewClient("localhost:8080"); err == nil {
		t.Error("base URL without scheme accepted")
	}
	// An answer that is not the API's (a proxy's, say) is still an *Error.
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer hs.Close()
	c := must(pgquehttp.NewClient(hs.URL)).ok(t)
	var he *pgquehttp.Error
	if _, err := c.Queues(context.Background()); !errors.As(err, &he) || he.Status != 502 || he.Message != "bad gateway" {
		t.Errorf("proxy error: %v", err)
	}
	if _, err := c.Nack(context.Background(), 1, 1, -time.Second, ""); !errors.Is(err, pgque.ErrInvalidArgument) {
		t.Errorf("negative retry delay: %v", err)
	}

	// A server whose database is down is not ready.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	pool := must(pgxpool.New(context.Background(), "postgres://x@"+addr+"/x?sslmode=disable&connect_timeout=2")).ok(t)
	defer pool.Close()
	srv := server.New(pgque.New(pool), server.Options{})
	defer srv.Close()
	down := httptest.NewServer(srv)
	defer down.Close()
	c = must(pgquehttp.NewClient(down.URL)).ok(t)
	err = c.Ready(context.Background())
	if !errors.As(err, &he) || he.Status != 503 || he.Code != pgquehttp.CodeUnavailable ||
		!strings.Contains(he.Message, "database unreachable") {
		t.Errorf("ready with the database down: %v", err)
	}
	if _, err := c.Queues(context.Background()); !errors.As(err, &he) || he.Status != 503 || he.Code != pgquehttp.CodeUnavailable {
		t.Errorf("queues with the database down: %v", err)
	}
}

func TestClientPauseWorkersSchedules(t *testing.T) {
	ctx := context.Background()
	c, sdk := newAPI(t)
	must(c.CreateQueue(ctx, "q", nil)).ok(t)
	must(c.Subscribe(ctx, "q", "c")).ok(t)

	if !must(c.PauseQueue(ctx, "q")).ok(t) || must(c.PauseQueue(ctx, "q")).ok(t) {
		t.Error("pause: changed twice, or not at all")
	}
	if q := must(c.Queue(ctx, "q")).ok(t); !q.Paused || q.PausedAt == nil {
		t.Errorf("paused %+v", q)
	}
	if !must(c.ResumeQueue(ctx, "q")).ok(t) || must(c.ResumeQueue(ctx, "q")).ok(t) {
		t.Error("resume: changed twice, or not at all")
	}
	if _, err := c.PauseQueue(ctx, "nope"); !errors.Is(err, pgque.ErrQueueNotFound) {
		t.Errorf("pause an unknown queue: %v", err)
	}

	id := must(c.Send(ctx, "q", pgquehttp.Event{Type: "t"})).ok(t)
	must(sdk.ForceTick(ctx, "q")).ok(t)
	b := must(c.ReceiveAsWorker(ctx, "q", "c", "w1", 10, time.Minute)).ok(t)
	if len(b.Messages) != 1 || b.Messages[0].MsgID != id {
		t.Fatalf("worker received %+v", b)
	}
	ws := must(c.Workers(ctx, "q", "c")).ok(t)
	if len(ws) != 1 || ws[0].Name != "w1" || ws[0].BatchID == nil || *ws[0].BatchID == b.BatchID ||
		ws[0].LeaseLeftSeconds == nil || *ws[0].LeaseLeftSeconds <= 30 {
		t.Fatalf("workers %+v", ws)
	}
	// The worker's batch id is not a piece.
	var he *pgquehttp.Error
	if _, err := c.Ack(ctx, *ws[0].BatchID); !errors.Is(err, pgque.ErrNotAPiece) || !errors.As(err, &he) ||
		he.Status != 400 || he.Code != pgquehttp.CodeNotAPiece || he.SQLState != "PQ027" {
		t.Errorf("ack of a batch id: %v", err)
	}
	if _, err := c.Heartbeat(ctx, *ws[0].BatchID, 0); !errors.Is(err, pgque.ErrNotAPiece) {
		t.Errorf("heartbeat of a batch id: %v", err)
	}
	// Peek shows where the message is, and takes nothing.
	pk := must(c.Peek(ctx, "q", "c", 0)).ok(t)
	if len(pk) != 1 || pk[0].MsgID != id || pk[0].Worker != "w1" || pk[0].BatchID != *ws[0].BatchID {
		t.Errorf("peek %+v", pk)
	}
	if !must(c.Heartbeat(ctx, b.BatchID, 0)).ok(t) {
		t.Error("heartbeat: not held")
	}
	if ws = must(c.Workers(ctx, "q", "c")).ok(t); *ws[0].LeaseLeftSeconds > 30 {
		t.Errorf("lease after a default heartbeat: %v", *ws[0].LeaseLeftSeconds)
	}
	if err := c.UnregisterWorker(ctx, "q", "c", "w1"); !errors.Is(err, pgque.ErrWorkerBusy) {
		t.Errorf("unregister a busy worker: %v", err)
	}
	if b := must(c.Receive(ctx, "q", "c", 10)).ok(t); len(b.Messages) != 0 {
		t.Errorf("another caller got w1's messages: %+v", b)
	}
	if b := must(c.ReceiveSingleReader(ctx, "q", "c", 10)).ok(t); len(b.Messages) != 0 || b.Worker != "" {
		t.Errorf("a single reader got w1's messages: %+v", b)
	}
	must(c.Ack(ctx, b.BatchID)).ok(t)
	if must(c.Heartbeat(ctx, b.BatchID, time.Second)).ok(t) {
		t.Error("heartbeat of a finished batch: held")
	}
	if err := c.UnregisterWorker(ctx, "q", "c", "w1"); err != nil {
		t.Fatal(err)
	}
	if err := c.UnregisterWorker(ctx, "q", "c", "w1"); !errors.As(err, &he) || he.Code != pgquehttp.CodeWorkerNotFound || he.Status != 404 {
		t.Errorf("unregister again: %v", err)
	}
	// Released, a worker's batch goes to the next caller at once.
	id = must(c.Send(ctx, "q", pgquehttp.Event{Type: "t"})).ok(t)
	must(sdk.ForceTick(ctx, "q")).ok(t)
	if b = must(c.ReceiveAsWorker(ctx, "q", "c", "w2", 10, time.Hour)).ok(t); len(b.Messages) != 1 {
		t.Fatalf("w2 received %+v", b)
	}
	if err := c.ReleaseWorker(ctx, "q", "c", "w2"); err != nil {
		t.Fatal(err)
	}
	if b = must(c.Receive(ctx, "q", "c", 10)).ok(t); len(b.Messages) != 1 || b.Messages[0].MsgID != id {
		t.Fatalf("after the release: %+v", b)
	}
	must(c.Ack(ctx, b.BatchID)).ok(t)
	if err := c.ReleaseWorker(ctx, "q", "nobody", "w2"); !errors.Is(err, pgque.ErrConsumerNotFound) {
		t.Errorf("release a worker of an unknown consumer: %v", err)
	}
	if _, err := c.ReceiveAsWorker(ctx, "q", "c", "", 10, 0); !errors.Is(err, pgque.ErrInvalidArgument) {
		t.Errorf("receive as a worker without a name: %v", err)
	}
	if _, err := c.Workers(ctx, "q", "nobody"); !errors.Is(err, pgque.ErrConsumerNotFound) {
		t.Errorf("workers of an unknown consumer: %v", err)
	}

	start := time.Date(2020, 1, 1, 0, 15, 0, 0, time.UTC)
	sc := must(c.CreateSchedule(ctx, pgquehttp.CreateScheduleRequest{Name: "sync", Queue: "q", Type: "sync",
		Payload: json.RawMessage(`"full"`), EverySeconds: 3600, StartAt: &start})).ok(t)
	if sc.Name != "sync" || *sc.EverySeconds != 3600 || string(sc.Payload) != `"full"` ||
		sc.NextRun.Minute() != 15 || sc.NextRun.Before(time.Now()) {
		t.Errorf("created %+v", sc)
	}
	if _, err := c.CreateSchedule(ctx, pgquehttp.CreateScheduleRequest{Name: "sync", Queue: "q", Type: "x",
		Cron: "@daily"}); !errors.Is(err, pgque.ErrScheduleExists) {
		t.Errorf("create again: %v", err)
	}
	must(c.CreateSchedule(ctx, pgquehttp.CreateScheduleRequest{Name: "daily", Queue: "q", Type: "x", Cron: "@daily"})).ok(t)
	if ss := must(c.Schedules(ctx)).ok(t); len(ss) != 2 || ss[0].Name != "daily" || *ss[0].Cron != "@daily" || ss[1].Name != "sync" {
		t.Errorf("schedules %+v", ss)
	}
	if got := must(c.Schedule(ctx, "sync")).ok(t); got.Runs != 0 || got.Queue != "q" {
		t.Errorf("schedule %+v", got)
	}
	if err := c.DropSchedule(ctx, "sync"); err != nil {
		t.Fatal(err)
	}
	if err := c.DropSchedule(ctx, "sync"); !errors.Is(err, pgque.ErrScheduleNotFound) {
		t.Errorf("drop again: %v", err)
	}
	if _, err := c.Schedule(ctx, "sync"); !errors.Is(err, pgque.ErrScheduleNotFound) {
		t.Errorf("get a dropped schedule: %v", err)
	}
}

// ReceiveFirst hands out the first queue's piece, named; then the next's.
func TestClientReceiveFirst(t *testing.T) {
	ctx := context.Background()
	c, sdk := newAPI(t)
	for _, q := range []string{"hi", "lo"} {
		must(c.CreateQueue(ctx, q, nil)).ok(t)
		must(c.Subscribe(ctx, q, "c")).ok(t)
		must(c.Send(ctx, q, pgquehttp.Event{Type: q})).ok(t)
		must(sdk.ForceTick(ctx, q)).ok(t)
	}
	req := pgquehttp.ReceiveFirstRequest{Queues: []string{"hi", "lo"}, ReceiveRequest: pgquehttp.ReceiveRequest{Worker: "w"}}
	for _, want := range []string{"hi", "lo"} {
		b := must(c.ReceiveFirst(ctx, "c", req)).ok(t)
		if b.Queue != want || len(b.Messages) != 1 || b.Messages[0].Queue != want || b.Worker != "w" {
			t.Fatalf("ReceiveFirst = %+v, want the piece of %s", b, want)
		}
		must(c.Ack(ctx, b.BatchID)).ok(t)
	}
	if _, err := c.ReceiveFirst(ctx, "c", pgquehttp.ReceiveFirstRequest{}); !errors.Is(err, pgque.ErrInvalidArgument) {
		t.Errorf("ReceiveFirst without queues = %v, want ErrInvalidArgument", err)
	}
}
