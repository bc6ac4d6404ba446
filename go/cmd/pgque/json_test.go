package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/pgque/pgque/go/internal/server"
	"github.com/pgque/pgque/go/pgque"
)

// TestJSONMatchesHTTP holds the CLI's --json to the HTTP API's bodies: for
// every object both show, the CLI's output and the server's answer, on
// one database, have the same keys everywhere and, where nothing moved
// between the two, the same values.
func TestJSONMatchesHTTP(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	sdk, err := pgque.Connect(ctx, c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	srv := server.New(sdk, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(srv)
	defer func() {
		srv.Close()
		hs.Close()
	}()
	h := &httpCaller{t: t, base: hs.URL}

	// Queues: created by each, shown by the other.
	same(t, "queue create", c.ok("queue", "create", "q", "--json"), h.do("GET", "/v1/queues/q", ""))
	created := h.do("POST", "/v1/queues", `{"name": "q2"}`)
	same(t, "queue config", c.ok("queue", "config", "q2", "--json"), created)
	same(t, "subscribe", c.ok("subscribe", "q", "c", "--json"), h.do("PUT", "/v1/queues/q/consumers/c2", ""))

	// Two events alike, then payloads of the other kinds (NULL, text sent
	// through SQL, an array) and every extra.
	like(t, "send", c.ok("send", "q", "-t", "a", `{"n": 1}`, "--extra1", "x", "--json"),
		h.do("POST", "/v1/queues/q/events/batch", `{"events": [{"type": "a", "payload": {"n": 2}, "extra1": "y"}]}`))
	c.ok("send", "q", "-t", "b", "null")
	c.sql(`SELECT pgque.send('q', 'c', 'plain text')`)
	c.ok("send", "q", "-t", "d", `[1, "two"]`, "--extra1", "1", "--extra2", "2", "--extra3", "3", "--extra4", "")
	c.sql(`SELECT pgque.force_tick('q')`)

	same(t, "queues", c.ok("queues", "--json"), h.do("GET", "/v1/queues", ""))
	same(t, "consumers", c.ok("consumers", "q", "--json"), h.do("GET", "/v1/queues/q/consumers", ""))
	same(t, "peek", c.ok("peek", "q", "c", "--json"), h.do("GET", "/v1/queues/q/consumers/c/peek", ""))
	// A single reader is handed the same messages again, as a new piece.
	same(t, "receive --single-reader", c.ok("receive", "q", "c", "--single-reader", "--json"),
		h.do("POST", "/v1/queues/q/consumers/c/receive", `{"single_reader": true}`), "batch_id")

	// Several queues in priority: q2 has nothing, so q's piece, as a single
	// reader again; as workers, each gets one of the same two messages.
	c.ok("subscribe", "q2", "c")
	c.ok("subscribe", "q2", "c2")
	same(t, "receive from several queues", c.ok("receive", "q2,q", "c", "--single-reader", "--json"),
		h.do("POST", "/v1/consumers/c/receive", `{"queues": ["q2", "q"], "single_reader": true}`), "batch_id")

	// Workers of c2 compete: each gets one of the two events alike.
	cliPiece := c.ok("receive", "q", "c2", "--worker", "w1", "--max", "1", "--json")
	httpPiece := h.do("POST", "/v1/queues/q/consumers/c2/receive", `{"worker": "w2", "max": 1}`)
	like(t, "receive --worker", cliPiece, httpPiece)
	same(t, "peek of workers", c.ok("peek", "q", "c2", "--json"), h.do("GET", "/v1/queues/q/consumers/c2/peek", ""))
	same(t, "workers", c.ok("workers", "q", "c2", "--json"), h.do("GET", "/v1/queues/q/consumers/c2/workers", ""))
	same(t, "ack", c.ok("ack", batchID(t, cliPiece), "--json"), h.do("POST", "/v1/batches/"+batchID(t, httpPiece)+"/ack", ""))

	// Nacks of one piece: two retries, then (max_retries 0) two dead letters.
	piece := batchID(t, h.do("POST", "/v1/queues/q/consumers/c/receive", `{"single_reader": true}`))
	same(t, "nack", c.ok("nack", piece, "1", "--json"), h.do("POST", "/v1/batches/"+piece+"/nack", `{"msg_id": 2}`))
	c.ok("queue", "config", "q", "max_retries=0")
	same(t, "nack, dead", c.ok("nack", piece, "3", "--reason", "r", "--json"),
		h.do("POST", "/v1/batches/"+piece+"/nack", `{"msg_id": 4, "reason": "r"}`))
	h.do("POST", "/v1/batches/"+piece+"/ack", "")
	same(t, "dlq list", c.ok("dlq", "list", "q", "--json"), h.do("GET", "/v1/queues/q/dead-letters", ""))
	var replayed []json.RawMessage
	if err := json.Unmarshal([]byte(c.ok("dlq", "replay", "1", "--json")), &replayed); err != nil || len(replayed) != 1 {
		t.Fatalf("dlq replay: %v, %d replayed", err, len(replayed))
	}
	like(t, "dlq replay", string(replayed[0]), h.do("POST", "/v1/dead-letters/2/replay", ""))
	same(t, "dlq purge", c.ok("dlq", "purge", "q", "--all", "--json"), h.do("DELETE", "/v1/queues/q/dead-letters", ""))

	same(t, "pause and resume", c.ok("queue", "pause", "q", "--json"), h.do("POST", "/v1/queues/q/resume", ""))

	// Schedules: created by each, shown by the other.
	same(t, "schedule create", c.ok("schedule", "create", "s1", "q", "-t", "x", "--every", "1h", `{"k": 1}`, "--json"),
		h.do("GET", "/v1/schedules/s1", ""))
	h.do("POST", "/v1/schedules", `{"name": "s2", "queue": "q", "type": "y", "cron": "@daily", "time_zone": "Europe/Berlin"}`)
	same(t, "schedules", c.ok("schedules", "--json"), h.do("GET", "/v1/schedules", ""))
}

// httpCaller calls the test's server.
type httpCaller struct {
	t    *testing.T
	base string
}

// do sends a request, which must succeed, and returns the body.
func (h *httpCaller) do(method, path, body string) string {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode >= 300 {
		h.t.Fatalf("%s %s: %d %v\n%s", method, path, resp.StatusCode, err, b)
	}
	return string(b)
}

// batchID is the batch_id of a receive's body.
func batchID(t *testing.T, body string) string {
	t.Helper()
	var b struct {
		BatchID int64 `json:"batch_id"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil || b.BatchID == 0 {
		t.Fatalf("no piece in %s (%v)", body, err)
	}
	return fmt.Sprint(b.BatchID)
}

// moving are the values that change from one call to the next (times
// since something, rates, estimates): compared by kind only.
var moving = map[string]bool{
	"lag_seconds": true, "last_seen_seconds": true, "ticker_lag_seconds": true, "events_per_second": true,
	"lease_left_seconds": true, "batch_age_seconds": true, "event_bytes": true, "event_dead_tuples": true,
}

// same checks that the CLI's and the server's JSON have the same keys
// everywhere and the same values, but for those of moving and of also.
func same(t *testing.T, what, cli, http string, also ...string) {
	t.Helper()
	skip := map[string]bool{}
	for k := range moving {
		skip[k] = true
	}
	for _, k := range also {
		skip[k] = true
	}
	compareJSON(t, what, cli, http, skip, false)
}

// like checks that the CLI's and the server's JSON have the same keys
// everywhere and values of the same kinds: the two describe different
// objects of one type.
func like(t *testing.T, what, cli, http string) {
	t.Helper()
	compareJSON(t, what, cli, http, nil, true)
}

func compareJSON(t *testing.T, what, cli, http string, skip map[string]bool, kindsOnly bool) {
	t.Helper()
	a, err := decodeJSON(cli)
	if err != nil {
		t.Fatalf("%s: CLI: %v\n%s", what, err, cli)
	}
	b, err := decodeJSON(http)
	if err != nil {
		t.Fatalf("%s: HTTP: %v\n%s", what, err, http)
	}
	if diffs := jsonDiffs("", a, b, skip, kindsOnly); len(diffs) > 0 {
		t.Errorf("%s: the CLI's --json and the HTTP API differ:\n  %s\nCLI:  %s\nHTTP: %s",
			what, strings.Join(diffs, "\n  "), compact([]byte(cli)), compact([]byte(http)))
	}
}

func decodeJSON(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// kind names a decoded JSON value's kind.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case json.Number:
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

// jsonDiffs lists where a and b differ, by path: keys one has and the
// other lacks, array lengths, kinds, and values (unless kindsOnly, or
// under a key of skip).
func jsonDiffs(path string, a, b any, skip map[string]bool, kindsOnly bool) []string {
	if kind(a) != kind(b) {
		return []string{fmt.Sprintf("%s: %s in the CLI, %s over HTTP", path, kind(a), kind(b))}
	}
	var diffs []string
	switch a := a.(type) {
	case map[string]any:
		b := b.(map[string]any)
		keys := map[string]bool{}
		for k := range a {
			keys[k] = true
		}
		for k := range b {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			av, inA := a[k]
			bv, inB := b[k]
			switch {
			case !inA:
				diffs = append(diffs, fmt.Sprintf("%s.%s: only over HTTP", path, k))
			case !inB:
				diffs = append(diffs, fmt.Sprintf("%s.%s: only in the CLI", path, k))
			default:
				diffs = append(diffs, jsonDiffs(path+"."+k, av, bv, skip, kindsOnly || skip[k])...)
			}
		}
	case []any:
		b := b.([]any)
		if len(a) != len(b) {
			return []string{fmt.Sprintf("%s: %d items in the CLI, %d over HTTP", path, len(a), len(b))}
		}
		for i := range a {
			diffs = append(diffs, jsonDiffs(fmt.Sprintf("%s[%d]", path, i), a[i], b[i], skip, kindsOnly)...)
		}
	default:
		if !kindsOnly && a != b {
			diffs = append(diffs, fmt.Sprintf("%s: %v in the CLI, %v over HTTP", path, a, b))
		}
	}
	return diffs
}

// TestJSONDiffs checks the comparison itself: it must see what drifts.
func TestJSONDiffs(t *testing.T) {
	for _, tc := range []struct {
		a, b      string
		kindsOnly bool
		want      string
	}{
		{`{"name": "q", "n": 1}`, `{"name": "q", "n": 1}`, false, ""},
		{`{"consumer": "c"}`, `{"name": "c"}`, false, ".consumer: only in the CLI; .name: only over HTTP"},
		{`{"p": {"a": 1}}`, `{"p": "{\"a\":1}"}`, true, ".p: object in the CLI, string over HTTP"},
		{`[1, 2]`, `[1]`, true, ": 2 items in the CLI, 1 over HTTP"},
		{`{"n": 1, "lag_seconds": 1.5}`, `{"n": 2, "lag_seconds": 2}`, false, ".n: 1 in the CLI, 2 over HTTP"},
		{`{"n": 1}`, `{"n": 2}`, true, ""},
		{`{"x": null}`, `{"x": 0}`, true, ".x: null in the CLI, number over HTTP"},
	} {
		a, _ := decodeJSON(tc.a)
		b, _ := decodeJSON(tc.b)
		if got := strings.Join(jsonDiffs("", a, b, moving, tc.kindsOnly), "; "); got != tc.want {
			t.Errorf("%s vs %s: %q, want %q", tc.a, tc.b, got, tc.want)
		}
	}
}
