package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgque/pgque/go/internal/server"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// raw sends a request with the given headers and returns status and body.
func (e *env) raw(t *testing.T, method, path, body string, header map[string]string) (int, string) {
	t.Helper()
	status, text, _ := e.callWith(t, method, path, body, header)
	return status, text
}

// errorCode decodes an error answer's code ("" for none).
func errorCode(body string) string {
	var eb pgquehttp.ErrorBody
	_ = json.Unmarshal([]byte(body), &eb)
	return eb.Error.Code
}

// pending counts what consumer c of q has not acknowledged.
func (e *env) pending(t *testing.T) int {
	t.Helper()
	ms, err := e.sdk.Peek(context.Background(), "q", "c", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

// A web page can send a POST of Content-Type text/plain to any address
// without a CORS preflight.  Such a page must not be able to receive a
// consumer's messages and acknowledge them: they would be lost.
func TestCrossOriginDrain(t *testing.T) {
	e := newEnv(t, server.Options{})
	e.sendTick(t, 3)
	page := map[string]string{"Content-Type": "text/plain", "Origin": "https://evil.example"}
	status, body := e.raw(t, "POST", "/v1/queues/q/consumers/c/receive", `{"max": 10}`, page)
	if status == 200 {
		var b pgquehttp.Batch
		_ = json.Unmarshal([]byte(body), &b)
		e.raw(t, "POST", fmt.Sprintf("/v1/batches/%d/ack", b.BatchID), "", page)
	}
	if status != http.StatusUnsupportedMediaType && status != http.StatusForbidden {
		t.Errorf("cross-origin text/plain receive: %d %s", status, body)
	}
	if n := e.pending(t); n != 3 {
		t.Fatalf("after a cross-origin page's receive and ack the consumer has %d of 3 messages left", n)
	}
}

// check sends a request and checks its status and, for an error, its code.
func (e *env) check(t *testing.T, method, path, body string, header map[string]string, status int, code string) string {
	t.Helper()
	got, text := e.raw(t, method, path, body, header)
	if got != status || (code != "" && errorCode(text) != code) {
		t.Errorf("%s %s %s %v: got %d %s, want %d %s", method, path, body, header, got, text, status, code)
	}
	return text
}

var jsonBody = map[string]string{"Content-Type": "application/json"}

func TestContentTypeAndOrigin(t *testing.T) {
	e := newEnv(t, server.Options{AllowedOrigins: []string{"https://app.example"}})
	e.sendTick(t, 3)
	recv := "/v1/queues/q/consumers/c/receive"
	// Bodies must be declared JSON, whoever sends them.
	e.check(t, "POST", recv, `{"max": 10}`, map[string]string{"Content-Type": "text/plain"}, 415, "unsupported_media_type")
	e.check(t, "POST", recv, `{"max": 10}`, nil, 415, "unsupported_media_type")
	e.check(t, "POST", recv, ``, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type")
	// Pages of other origins are refused, JSON or not, and so are their
	// requests without Origin (an image, say).
	e.check(t, "POST", recv, `{"max": 10}`, map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example"}, 403, "forbidden")
	e.check(t, "POST", recv, ``, map[string]string{"Origin": "null"}, 403, "forbidden")
	e.check(t, "GET", "/v1/queues/q/consumers/c/stream", "", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "forbidden")
	e.check(t, "GET", "/v1/queues", "", map[string]string{"Origin": "https://evil.example"}, 403, "forbidden")
	if n := e.pending(t); n != 3 {
		t.Fatalf("after refused requests the consumer has %d of 3 messages left", n)
	}
	e.check(t, "POST", "/v1/queues/q/events", `{"type": "t"}`, map[string]string{"Content-Type": "application/json; charset=utf-8"}, 201, "")

	// An allowed origin gets CORS: the preflight, then the request.
	req, _ := http.NewRequest("OPTIONS", e.http.URL+recv, nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type, authorization")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ = http.NewRequest("GET", e.http.URL+"/v1/queues/q", nil)
	req.Header.Set("Origin", "https://app.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("allowed origin: %d %v", resp.StatusCode, resp.Header)
	}
	// A page of the server's own origin (served by a proxy in front) may call it.
	e.check(t, "GET", "/v1/queues/q", "", map[string]string{"Origin": e.http.URL}, 200, "")
}

// A page whose name its DNS points at 127.0.0.1 (DNS rebinding) is, for
// the browser, of the same origin as the server; its requests come with
// its own name as Host.
func TestHostRebinding(t *testing.T) {
	e := newEnv(t, server.Options{AllowedHosts: []string{"pgque.internal"}})
	e.sendTick(t, 3)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(e.http.URL, "http://"))
	recv := "/v1/queues/q/consumers/c/receive"
	for _, host := range []string{"evil.example:" + port, "evil.example", "10.0.0.1:" + port, "localhost.evil.example"} {
		e.check(t, "POST", recv, "", map[string]string{"Host": host}, 403, "forbidden")
		e.check(t, "GET", "/v1/queues", "", map[string]string{"Host": host}, 403, "forbidden")
	}
	if n := e.pending(t); n != 3 {
		t.Fatalf("after a rebound page's receive the consumer has %d of 3 messages left", n)
	}
	for _, host := range []string{"localhost:" + port, "LOCALHOST.", "127.0.0.1:" + port, "127.1.2.3", "[::1]:" + port,
		"app.localhost:" + port, "pgque.internal:" + port, "PGQUE.INTERNAL"} {
		e.check(t, "GET", "/v1/queues/q", "", map[string]string{"Host": host}, 200, "")
	}
	// Probes pass: load balancers send the Host they like.
	e.check(t, "GET", "/healthz", "", map[string]string{"Host": "evil.example"}, 200, "")

	anyHost := newEnv(t, server.Options{AnyHost: true})
	anyHost.check(t, "GET", "/v1/queues/q", "", map[string]string{"Host": "pgque.example.com"}, 200, "")
}

const (
	adminToken   = "admin-token-0123456789"
	inspectToken = "inspect-token-0123456789"
	writerToken  = "writer-token-0123456789"
	readerToken  = "reader-token-0123456789"
	acmeToken    = "acme-token-0123456789"
	acmeAdmin    = "acme-admin-token-0123456789"
)

func testTokens(t *testing.T) *server.Tokens {
	t.Helper()
	h := sha256.Sum256([]byte(inspectToken))
	ts, err := server.ParseTokens(strings.NewReader(`
# a comment, then tokens
` + adminToken + `   admin
sha256:` + hex.EncodeToString(h[:]) + ` inspect
` + writerToken + ` write
` + readerToken + ` read

` + acmeToken + ` read:acme.* write:acme.orders,solo
` + acmeAdmin + ` admin:acme.*
`))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}
}

func TestParseTokens(t *testing.T) {
	if n := testTokens(t).Len(); n != 6 {
		t.Errorf("%d tokens", n)
	}
	for _, bad := range []string{
		"",                            // no tokens
		"tiny-secret admin",           // guessable
		"admin-token-0123456789",      // no grant
		"admin-token-0123456789 root", // no such scope
		"admin-token-0123456789 read:",
		"admin-token-0123456789 read:acme.*.x",
		"admin-token-0123456789 read:a*",
		"admin-token-0123456789 read:.*",
		"sha256:abcd admin",
		"admin-token-0123456789 admin\nadmin-token-0123456789 read",
	} {
		_, err := server.ParseTokens(strings.NewReader(bad))
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "admin-token") || strings.Contains(err.Error(), "tiny-secret") {
			t.Errorf("%q: the error %q shows the token", bad, err)
		}
	}
}

func TestTokenScopes(t *testing.T) {
	e := newEnv(t, server.Options{Tokens: testTokens(t)})
	e.sendTick(t, 3)
	// No token, an unknown one, another scheme: 401, except the probes.
	for _, h := range []map[string]string{nil, bearer("not-a-token-0123456789"), {"Authorization": "Basic YTpi"}, bearer("")} {
		text := e.check(t, "GET", "/v1/queues", "", h, 401, "unauthenticated")
		if strings.Contains(text, "not-a-token") {
			t.Errorf("the answer shows the token: %s", text)
		}
		e.check(t, "POST", "/v1/queues/q/consumers/c/receive", "", h, 401, "unauthenticated")
		e.check(t, "GET", "/v1/queues/q/consumers/c/stream", "", h, 401, "unauthenticated")
		e.check(t, "GET", "/v1/nothing", "", h, 401, "unauthenticated")
		e.check(t, "GET", "/metrics", "", h, 401, "unauthenticated")
	}
	resp, err := http.Get(e.http.URL + "/v1/queues")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 without WWW-Authenticate: %v", resp.Header)
	}
	e.check(t, "GET", "/healthz", "", nil, 200, "")
	e.check(t, "GET", "/readyz", "", nil, 200, "")
	if n := e.pending(t); n != 3 {
		t.Fatalf("after requests without a token the consumer has %d of 3 messages left", n)
	}

	// Each scope, on every queue.
	send, recv := "/v1/queues/q/events", "/v1/queues/q/consumers/c/receive"
	e.check(t, "GET", "/v1/queues/q", "", bearer(inspectToken), 200, "")
	e.check(t, "GET", "/metrics", "", bearer(inspectToken), 200, "")
	e.check(t, "POST", send, `{"type": "t"}`, bearer(inspectToken), 403, "forbidden")
	e.check(t, "POST", recv, "", bearer(inspectToken), 403, "forbidden")
	e.check(t, "GET", "/v1/queues/q/consumers/c/peek", "", bearer(inspectToken), 403, "forbidden")
	e.check(t, "GET", "/v1/queues/q/consumers/c/stream", "", bearer(inspectToken), 403, "forbidden")
	e.check(t, "POST", send, `{"type": "t"}`, bearer(writerToken), 201, "")
	e.check(t, "POST", recv, "", bearer(writerToken), 403, "forbidden")
	e.check(t, "POST", "/v1/queues", `{"name": "x"}`, bearer(writerToken), 403, "forbidden")
	e.check(t, "POST", send, `{"type": "t"}`, bearer(readerToken), 403, "forbidden")
	e.check(t, "POST", "/v1/queues", `{"name": "x"}`, bearer(readerToken), 403, "forbidden")
	e.check(t, "DELETE", "/v1/queues/q/dead-letters", "", bearer(readerToken), 403, "forbidden")
	var b pgquehttp.Batch
	if err := json.Unmarshal([]byte(e.check(t, "POST", recv, "", bearer(readerToken), 200, "")), &b); err != nil || len(b.Messages) != 3 {
		t.Fatalf("reader's receive: %+v %v", b, err)
	}
	e.check(t, "POST", fmt.Sprintf("/v1/batches/%d/ack", b.BatchID), "", bearer(writerToken), 403, "forbidden")
	e.check(t, "POST", fmt.Sprintf("/v1/batches/%d/ack", b.BatchID), "", bearer(readerToken), 200, "")
	e.check(t, "POST", "/v1/queues", `{"name": "x"}`, bearer(adminToken), 201, "")
}

// names lists the values of field name of the objects under key.
func names(t *testing.T, body, key, field string) []string {
	t.Helper()
	var out map[string][]map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	var ns []string
	for _, o := range out[key] {
		ns = append(ns, fmt.Sprint(o[field]))
	}
	slices.Sort(ns)
	return ns
}

func TestTokenQueueLimits(t *testing.T) {
	e := newEnv(t, server.Options{Tokens: testTokens(t)})
	ctx := context.Background()
	for _, q := range []string{"acme.orders", "acme.jobs", "solo", "other"} {
		if _, err := e.sdk.CreateQueue(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.sdk.Subscribe(ctx, "acme.orders", "c"); err != nil {
		t.Fatal(err)
	}
	e.sendTick(t, 3)
	acme := bearer(acmeToken)

	// Lists show only what the token may see.
	if got := names(t, e.check(t, "GET", "/v1/queues", "", acme, 200, ""), "queues", "name"); !slices.Equal(got, []string{"acme.jobs", "acme.orders", "solo"}) {
		t.Errorf("acme's queues: %v", got)
	}
	for _, sc := range []struct{ name, queue string }{{"s-q", "q"}, {"s-acme", "acme.orders"}} {
		e.check(t, "POST", "/v1/schedules", fmt.Sprintf(`{"name": %q, "queue": %q, "type": "t", "every_seconds": 3600}`, sc.name, sc.queue),
			bearer(adminToken), 201, "")
	}
	if got := names(t, e.check(t, "GET", "/v1/schedules", "", acme, 200, ""), "schedules", "name"); !slices.Equal(got, []string{"s-acme"}) {
		t.Errorf("acme's schedules: %v", got)
	}
	// Another tenant's schedule is unknown, as in the engine.
	e.check(t, "GET", "/v1/schedules/s-q", "", acme, 404, "schedule_not_found")
	e.check(t, "GET", "/v1/schedules/s-acme", "", acme, 200, "")
	// Names are unique per namespace: one used in two needs ?queue= for a
	// token that sees both, and not for one that sees only its own.
	for _, q := range []string{"acme.orders", "other"} {
		e.check(t, "POST", "/v1/schedules", fmt.Sprintf(`{"name": "s-dup", "queue": %q, "type": "t", "every_seconds": 3600}`, q),
			bearer(adminToken), 201, "")
	}
	e.check(t, "GET", "/v1/schedules/s-dup", "", bearer(adminToken), 400, "invalid_argument")
	e.check(t, "DELETE", "/v1/schedules/s-dup", "", bearer(adminToken), 400, "invalid_argument")
	for _, c := range []struct {
		path, token, queue string
	}{{"/v1/schedules/s-dup?queue=other", adminToken, "other"}, {"/v1/schedules/s-dup", acmeToken, "acme.orders"}} {
		var sc pgquehttp.Schedule
		if err := json.Unmarshal([]byte(e.check(t, "GET", c.path, "", bearer(c.token), 200, "")), &sc); err != nil || sc.Queue != c.queue {
			t.Errorf("GET %s: %+v, %v; want the one on %s", c.path, sc, err, c.queue)
		}
	}
	e.check(t, "DELETE", "/v1/schedules/s-dup?queue=acme.orders", "", bearer(adminToken), 204, "")
	e.check(t, "GET", "/v1/schedules/s-dup", "", acme, 404, "schedule_not_found")
	e.check(t, "DELETE", "/v1/schedules/s-dup", "", bearer(adminToken), 204, "")

	// Other queues cannot be seen or touched.
	e.check(t, "GET", "/v1/queues/q", "", acme, 403, "forbidden")
	e.check(t, "GET", "/v1/queues/other/consumers", "", acme, 403, "forbidden")
	e.check(t, "POST", "/v1/queues/q/events", `{"type": "t"}`, acme, 403, "forbidden")
	e.check(t, "POST", "/v1/queues/acme.jobs/events", `{"type": "t"}`, acme, 403, "forbidden") // read only there
	e.check(t, "POST", "/v1/queues/q/consumers/c/receive", "", acme, 403, "forbidden")
	e.check(t, "PUT", "/v1/queues/q/consumers/mine", "", acme, 403, "forbidden")
	e.check(t, "GET", "/v1/queues/q/consumers/c/stream", "", acme, 403, "forbidden")
	e.check(t, "GET", "/metrics", "", acme, 403, "forbidden")
	if n := e.pending(t); n != 3 {
		t.Fatalf("after the acme token's requests consumer c of q has %d of 3 messages left", n)
	}
	// Nor the pieces handed out for them: their ids are sequential, easily guessed.
	var other pgquehttp.Batch
	if err := json.Unmarshal([]byte(e.check(t, "POST", "/v1/queues/q/consumers/c/receive", "", bearer(adminToken), 200, "")), &other); err != nil || len(other.Messages) != 3 {
		t.Fatalf("admin's receive: %+v %v", other, err)
	}
	piece := fmt.Sprintf("/v1/batches/%d", other.BatchID)
	e.check(t, "POST", piece+"/ack", "", acme, 403, "forbidden")
	e.check(t, "POST", piece+"/nack", fmt.Sprintf(`{"msg_id": %d}`, other.Messages[0].MsgID), acme, 403, "forbidden")
	e.check(t, "POST", piece+"/heartbeat", "", acme, 403, "forbidden")
	e.check(t, "POST", "/v1/batches/999999/ack", "", acme, 403, "forbidden")
	if n := e.pending(t); n != 3 {
		t.Fatalf("after the acme token's acks consumer c of q has %d of 3 messages left", n)
	}
	e.check(t, "POST", piece+"/ack", "", bearer(adminToken), 200, "")

	// Its own queues work, streams included, and so do its pieces.
	e.check(t, "POST", "/v1/queues/acme.orders/events", `{"type": "t"}`, acme, 201, "")
	e.check(t, "POST", "/v1/queues/solo/events", `{"type": "t"}`, acme, 201, "")
	if _, err := e.sdk.ForceTick(ctx, "acme.orders"); err != nil {
		t.Fatal(err)
	}
	var mine pgquehttp.Batch
	if err := json.Unmarshal([]byte(e.check(t, "POST", "/v1/queues/acme.orders/consumers/c/receive", "", acme, 200, "")), &mine); err != nil || len(mine.Messages) != 1 {
		t.Fatalf("acme's receive: %+v %v", mine, err)
	}
	e.check(t, "POST", fmt.Sprintf("/v1/batches/%d/heartbeat", mine.BatchID), "", acme, 200, "")
	if text := e.check(t, "POST", fmt.Sprintf("/v1/batches/%d/ack", mine.BatchID), "", acme, 200, ""); !strings.Contains(text, `"acked":true`) {
		t.Errorf("acme's ack: %s", text)
	}
	req, _ := http.NewRequest("GET", e.http.URL+"/v1/queues/acme.orders/consumers/c/stream", nil)
	req.Header.Set("Authorization", "Bearer "+acmeToken)
	resp, err := streamClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("acme's stream: %d", resp.StatusCode)
	}

	// An admin of a namespace administers it, and nothing else.
	admin := bearer(acmeAdmin)
	e.check(t, "POST", "/v1/queues", `{"name": "acme.new"}`, admin, 201, "")
	e.check(t, "POST", "/v1/queues", `{"name": "other2"}`, admin, 403, "forbidden")
	e.check(t, "PATCH", "/v1/queues/q", `{"max_retries": 1}`, admin, 403, "forbidden")
	e.check(t, "POST", "/v1/schedules", `{"name": "s2", "queue": "q", "type": "t", "every_seconds": 60}`, admin, 403, "forbidden")
	e.check(t, "DELETE", "/v1/schedules/s-q", "", admin, 404, "schedule_not_found")
	e.check(t, "DELETE", "/v1/schedules/s-acme", "", admin, 204, "")
	e.check(t, "POST", "/v1/dead-letters/1/replay", "", admin, 403, "forbidden")
	if _, err := e.sdk.Queue(ctx, "other2"); err == nil {
		t.Error("the acme admin created queue other2")
	}
}

// Values PostgreSQL's text cannot hold are the client's error.
func TestBadText(t *testing.T) {
	e := newEnv(t, server.Options{})
	e.check(t, "GET", "/v1/queues/%00", "", nil, 400, "invalid_argument")
	e.check(t, "GET", "/v1/queues/%FF", "", nil, 400, "invalid_argument")
	e.check(t, "GET", "/v1/queues/q/consumers/c/stream?worker=w%00", "", nil, 400, "invalid_argument")
	e.check(t, "POST", "/v1/queues", `{"name": "h\u0000x"}`, jsonBody, 400, "invalid_argument")
	e.check(t, "POST", "/v1/queues/q/events", `{"type": "t\u0000"}`, jsonBody, 400, "invalid_argument")
	e.check(t, "POST", "/v1/queues/q/events", "{\"type\": \"\xff\"}", jsonBody, 400, "malformed_json")
	e.check(t, "POST", "/v1/queues/q/consumers/c/receive", `{"worker": "w\u0000"}`, jsonBody, 400, "invalid_argument")
	// A malformed consumer name is PQ006, as in SQL.
	text := e.check(t, "GET", "/v1/queues/q/consumers/bad%20name", "", nil, 400, "invalid_argument")
	if !strings.Contains(text, `"sqlstate":"PQ006"`) {
		t.Errorf("bad consumer name: %s", text)
	}
	if strings.Contains(e.logs.String(), "request failed") {
		t.Errorf("the client's errors were logged as the server's:\n%s", e.logs.String())
	}
}

// Numbers out of their documented ranges are refused, rather than wrapped
// (18446744074 s of retry delay made 0.19 s) or passed on.
func TestNumberRanges(t *testing.T) {
	e := newEnv(t, server.Options{})
	e.sendTick(t, 1)
	var b pgquehttp.Batch
	if err := json.Unmarshal([]byte(e.check(t, "POST", "/v1/queues/q/consumers/c/receive", "", nil, 200, "")), &b); err != nil || len(b.Messages) != 1 {
		t.Fatalf("receive: %+v %v", b, err)
	}
	piece := fmt.Sprintf("/v1/batches/%d", b.BatchID)
	for _, c := range []struct{ method, path, body string }{
		{"POST", piece + "/nack", fmt.Sprintf(`{"msg_id": %d, "retry_after_seconds": 18446744074}`, b.Messages[0].MsgID)},
		{"POST", piece + "/nack", fmt.Sprintf(`{"msg_id": %d, "retry_after_seconds": 3110400001}`, b.Messages[0].MsgID)},
		{"POST", piece + "/nack", fmt.Sprintf(`{"msg_id": %d, "retry_after_seconds": 1e30}`, b.Messages[0].MsgID)},
		{"POST", piece + "/heartbeat", `{"lease_seconds": 1e300}`},
		{"POST", piece + "/heartbeat", `{"lease_seconds": -1}`},
		{"POST", piece + "/heartbeat", `{"lease_seconds": 1e-12}`},
		{"POST", "/v1/queues/q/consumers/c/receive", `{"max": 3000000000}`},
		{"POST", "/v1/queues/q/consumers/c/receive", `{"max": 18446744073709551616}`},
		{"POST", "/v1/queues/q/consumers/c/receive", `{"lease_seconds": 86400.5}`},
		{"GET", "/v1/queues/q/consumers/c/stream?lease_seconds=NaN", ""},
		{"GET", "/v1/queues/q/consumers/c/stream?lease_seconds=Inf", ""},
		{"GET", "/v1/queues/q/consumers/c/stream?max=3000000000", ""},
		{"GET", "/v1/queues/q/consumers/c/peek?max=99999999999999999999", ""},
		{"GET", "/v1/queues/q/dead-letters?limit=-1", ""},
		{"DELETE", "/v1/queues/q/dead-letters?older_than=9999999999h", ""},
		{"DELETE", "/v1/queues/q/dead-letters?older_than=-1s", ""},
		{"POST", "/v1/schedules", `{"name": "s", "queue": "q", "type": "t", "every_seconds": 18446744074}`},
		{"POST", "/v1/schedules", `{"name": "s", "queue": "q", "type": "t", "every_seconds": 1e30}`},
		{"POST", "/v1/batches/99999999999999999999/ack", ""},
	} {
		got, text := e.raw(t, c.method, c.path, c.body, jsonBody)
		if got != 400 {
			t.Errorf("%s %s %s: %d %s", c.method, c.path, c.body, got, text)
		}
	}
	// Nothing was retried: the message is still handed out to this piece.
	if ms, err := e.sdk.Peek(context.Background(), "q", "c", 10); err != nil || len(ms) != 1 || ms[0].RetryCount != nil {
		t.Errorf("after refused nacks: %+v %v", ms, err)
	}
	e.check(t, "POST", piece+"/nack", fmt.Sprintf(`{"msg_id": %d, "retry_after_seconds": 3110400000}`, b.Messages[0].MsgID), jsonBody, 200, "")
}

// A client that goes away while sending its body is not the server's error.
func TestInterruptedBody(t *testing.T) {
	e := newEnv(t, server.Options{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(conn, "POST /v1/queues/q/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"+
		"Content-Length: 100\r\n\r\n{\"type\": ")
	conn.Close()
	route := map[string]string{"route": "POST /v1/queues/{queue}/events", "code": "400"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v, _ := value(e.scrape(t), "pgque_http_requests_total", route); v == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the interrupted request was not answered 400")
		}
		time.Sleep(10 * time.Millisecond) // polling the counter: the server signals nothing else
	}
	if strings.Contains(e.logs.String(), "request failed") {
		t.Errorf("an interrupted body was logged as the server's error:\n%s", e.logs.String())
	}
	if ms, err := e.sdk.Peek(context.Background(), "q", "c", 10); err != nil || len(ms) != 0 {
		t.Errorf("events after an interrupted send: %+v %v", ms, err)
	}
}

// With a metrics listener /metrics is served there, without a token, and
// not on the main listener.
func TestMetricsListener(t *testing.T) {
	sdk := pgque.New(pg.NewPool(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(sdk, server.Options{Tokens: testTokens(t), MetricsListener: mln})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	get := func(url string, h map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	main, metrics := "http://"+ln.Addr().String(), "http://"+mln.Addr().String()
	if code := get(metrics+"/metrics", nil); code != 200 {
		t.Errorf("metrics listener: %d", code)
	}
	if code := get(metrics+"/v1/queues", bearer(adminToken)); code != 404 {
		t.Errorf("metrics listener, /v1/queues: %d", code)
	}
	req, _ := http.NewRequest("GET", metrics+"/metrics", nil)
	req.Host = "evil.example"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("metrics listener, rebound Host: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if code := get(main+"/metrics", bearer(adminToken)); code != 404 {
		t.Errorf("main listener /metrics: %d", code)
	}
	if code := get(main+"/v1/queues", bearer(adminToken)); code != 200 {
		t.Errorf("main listener /v1/queues: %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(metrics + "/metrics"); err == nil {
		t.Error("the metrics listener still serves after shutdown")
	}
}
