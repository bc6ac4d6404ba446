package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgque/pgque/go/internal/server"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// multiEnv is newEnv with a second queue, "q2", c subscribed, and one
// message ticked in each of q and q2.
func multiEnv(t *testing.T, opts server.Options) *env {
	t.Helper()
	ctx := context.Background()
	e := newEnv(t, opts)
	if _, err := e.sdk.CreateQueue(ctx, "q2"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sdk.Subscribe(ctx, "q2", "c"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"q", "q2"} {
		if _, err := e.sdk.Send(ctx, q, pgque.Event{Type: q}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.sdk.ForceTick(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// The first queue in order with messages gives the piece, named on it and
// its messages; the next call, with that piece acked, reads the next queue;
// then nothing.  Each way of reading (the server's workers, the caller's,
// the single reader) goes by the same order.
func TestReceiveFirstPriority(t *testing.T) {
	for _, how := range []string{``, `, "worker": "w"`, `, "single_reader": true`} {
		t.Run(how, func(t *testing.T) {
			e := multiEnv(t, server.Options{})
			body := `{"queues": ["q2", "q"], "max": 10` + how + `}`
			for _, want := range []string{"q2", "q"} {
				var b pgquehttp.Batch
				e.decodeBody(t, "POST", "/v1/consumers/c/receive", body, 200, &b)
				if b.Queue != want || len(b.Messages) != 1 || b.Messages[0].Queue != want || b.Messages[0].Type != want {
					t.Fatalf("receive = %+v, want the piece of %s", b, want)
				}
				e.ack(t, b.BatchID)
			}
			var b pgquehttp.Batch
			e.decodeBody(t, "POST", "/v1/consumers/c/receive", body, 200, &b)
			if b.BatchID != 0 || b.Queue != "" || len(b.Messages) != 0 {
				t.Errorf("receive with nothing left = %+v", b)
			}
		})
	}
}

func TestReceiveFirstErrors(t *testing.T) {
	e := multiEnv(t, server.Options{})
	e.wantError(t, "POST", "/v1/consumers/c/receive", `{}`, 400, pgquehttp.CodeInvalidArgument, "")
	e.wantError(t, "POST", "/v1/consumers/c/receive", `{"queues": ["q"], "max": 0}`, 400, pgquehttp.CodeInvalidArgument, "")
	e.wantError(t, "POST", "/v1/consumers/c/receive", `{"queues": ["q"], "single_reader": true, "worker": "w"}`,
		400, pgquehttp.CodeInvalidArgument, "")
	// An empty queue before a missing one: the missing one's error, named.
	e.ack(t, receivedPiece(t, e, `{"queues": ["q"]}`))
	e.wantError(t, "POST", "/v1/consumers/c/receive", `{"queues": ["q", "missing"]}`, 404, pgquehttp.CodeQueueNotFound, "PQ001")
}

// receivedPiece receives with body and returns the piece's id.
func receivedPiece(t *testing.T, e *env, body string) int64 {
	t.Helper()
	var b pgquehttp.Batch
	e.decodeBody(t, "POST", "/v1/consumers/c/receive", body, 200, &b)
	if len(b.Messages) == 0 {
		t.Fatalf("receive %s: nothing", body)
	}
	return b.BatchID
}

// A token that may read some queues only may not name others, even after
// queues that have messages; what it may read it receives.
func TestReceiveFirstTokens(t *testing.T) {
	e := multiEnv(t, server.Options{Tokens: testTokens(t)})
	ctx := context.Background()
	if _, err := e.sdk.CreateQueue(ctx, "acme.orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sdk.Subscribe(ctx, "acme.orders", "c"); err != nil {
		t.Fatal(err)
	}
	recv := "/v1/consumers/c/receive"
	e.check(t, "POST", recv, `{"queues": ["acme.orders", "q"]}`, bearer(acmeToken), 403, "forbidden")
	e.check(t, "POST", recv, `{"queues": ["q"]}`, bearer(writerToken), 403, "forbidden")
	e.check(t, "POST", recv, `{"queues": ["acme.orders"]}`, bearer(acmeToken), 200, "")
	// Had a refused receive taken q's message, its worker would hold it.
	for _, q := range []string{"q", "q2"} {
		text := e.check(t, "POST", recv, `{"queues": ["`+q+`"]}`, bearer(readerToken), 200, "")
		if want := `"queue":"` + q + `"`; !strings.Contains(text, want) {
			t.Errorf("reader's receive of %s = %s, want %s", q, text, want)
		}
	}
}
