package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pgque/pgque/go/internal/server"
	"github.com/pgque/pgque/go/pgquehttp"
)

// raw sends a request with the given headers and returns status and body.
func (e *env) raw(t *testing.T, method, path, body string, header map[string]string) (int, string) {
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
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
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
