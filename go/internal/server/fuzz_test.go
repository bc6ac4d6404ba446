package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pgque/pgque/go/internal/server"
	"github.com/pgque/pgque/go/pgque"
)

// FuzzHTTP sends requests of any method, path and body to the handler, as
// a program on this machine would (Content-Type application/json, a
// loopback Host).  Properties: bad input never gets a 5xx, and every answer
// but a 204 is one complete JSON value.  Streams (which stay open) and
// /metrics (Prometheus text) are left out.
//
// `go test` runs the seeds (f.Add and testdata/fuzz/FuzzHTTP); to fuzz:
//
//	make gotest GOTEST_FLAGS="-run XXX -fuzz FuzzHTTP -fuzztime 4m" GOTEST_PKGS=./go/internal/server/
func FuzzHTTP(f *testing.F) {
	ctx := context.Background()
	// One database per process, as in the SDK's FuzzSDK.
	sdk := pgque.New(pg.NewPool(f))
	if _, err := sdk.CreateQueue(ctx, "q"); err != nil {
		f.Fatal(err)
	}
	if _, err := sdk.Subscribe(ctx, "q", "c"); err != nil {
		f.Fatal(err)
	}
	srv := server.New(sdk, server.Options{PollInterval: noPoll, MaxBatch: 50, RequestTimeout: 20 * time.Second})
	f.Cleanup(srv.Close)

	for _, s := range []struct{ method, path, body string }{
		{"GET", "/v1/queues", ""},
		{"POST", "/v1/queues", `{"name":"h\u0000x"}`},
		{"POST", "/v1/queues", `{"name":"h3","config":{"rotation_period":"300000 years"}}`},
		{"GET", "/v1/queues/%00", ""},
		{"GET", "/v1/queues/%ff", ""},
		{"PATCH", "/v1/queues/q", `{"retry_backoff_base":"1000000 years"}`},
		{"POST", "/v1/queues/q/events", `{"type":"t","payload":{"a":1}}`},
		{"POST", "/v1/queues/q/events", `{"type":"t","payload":null,"deliver_at":"294270-01-01T00:00:00Z"}`},
		{"POST", "/v1/queues/q/events/batch", `{"events":[{"type":"a"},{"type":"b\u0000"}]}`},
		{"POST", "/v1/queues/q/consumers/c/receive", `{"max":3000000000}`},
		{"POST", "/v1/queues/q/consumers/c/receive?max=-1", ""},
		{"GET", "/v1/queues/q/consumers/c/peek?max=99999999999999999999", ""},
		{"POST", "/v1/batches/1/nack", `{"msg_id":1,"retry_after_seconds":18446744074}`},
		{"POST", "/v1/batches/1/heartbeat", `{"lease_seconds":-1}`},
		{"DELETE", "/v1/queues/q/dead-letters?older_than_seconds=1e300", ""},
		{"POST", "/v1/schedules", `{"name":"s","queue":"q","type":"t","every_seconds":1,"start_at":"-infinity"}`},
		{"POST", "/v1/schedules", `{"name":"s","queue":"q","type":"t","cron":"* * * * * * *"}`},
		{"GET", "/v1/schedules/x?queue=%c3", ""},
		{"PUT", "/v1/queues/q/consumers/c\xff", ""},
		{"BREW", "/v1/queues", "{"},
		{"GET", "/v1//queues", ""},
		{"POST", "/v1/queues/../queues", `{"name":"x"}`},
	} {
		f.Add(s.method, s.path, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		// A request's target is a path from the root: anything else would
		// make another URL here (another host, for a start).
		u, err := url.Parse("http://127.0.0.1" + path)
		if err != nil || !strings.HasPrefix(path, "/") || !validMethod(method) {
			return // no HTTP server would hand this request to a handler
		}
		if p := strings.ToLower(u.Path); strings.Contains(p, "stream") || strings.HasPrefix(p, "/metrics") {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", strings.NewReader(string(body)))
		req.Method, req.URL, req.RequestURI = method, u, path
		req.Host = "127.0.0.1:8080"
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		b := rec.Body.Bytes()
		if rec.Code >= 500 {
			t.Fatalf("%s %q %q: %d %s", method, path, body, rec.Code, b)
		}
		if rec.Code != http.StatusNoContent && !json.Valid(b) {
			t.Fatalf("%s %q %q: %d, not one JSON value: %q", method, path, body, rec.Code, b)
		}
		if ctx.Err() != nil {
			t.Fatalf("%s %q %q: no answer within a minute", method, path, body)
		}
	})
}

// validMethod reports whether m is an HTTP token, as net/http requires of
// a request's method.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}
