package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgque/pgque/go/internal/server"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// receive calls the receive endpoint with body and decodes the piece.
func (e *env) receive(t *testing.T, body string) pgquehttp.Batch {
	t.Helper()
	var b pgquehttp.Batch
	e.decodeBody(t, "POST", "/v1/queues/q/consumers/c/receive", body, 200, &b)
	return b
}

// workers lists the consumer's workers.
func (e *env) workers(t *testing.T) []pgquehttp.Worker {
	t.Helper()
	var out struct{ Workers []pgquehttp.Worker }
	e.decodeBody(t, "GET", "/v1/queues/q/consumers/c/workers", "", 200, &out)
	return out.Workers
}

// Receives without a worker name compete: callers holding pieces at the
// same time get different messages, and together every message once.
func TestReceiveCompetes(t *testing.T) {
	e := newEnv(t, server.Options{})
	ids := e.sendTick(t, 6)
	a := e.receive(t, `{"max": 3}`)
	b := e.receive(t, `{"max": 3}`)
	if a.Worker == "" || b.Worker == "" || a.Worker == b.Worker {
		t.Fatalf("workers %q and %q", a.Worker, b.Worker)
	}
	if got := append(msgIDs(a), msgIDs(b)...); fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("two callers got %v and %v, sent %v", msgIDs(a), msgIDs(b), ids)
	}
	if c := e.receive(t, `{"max": 3}`); len(c.Messages) != 0 || c.BatchID != 0 {
		t.Fatalf("a third caller got %+v while both pieces are held", c)
	}
	e.ack(t, a.BatchID)
	e.ack(t, b.BatchID)

	// Many at once, each acking what it got: every message exactly once.
	const n = 200
	evs := make([]pgque.Event, n)
	for i := range evs {
		evs[i] = pgque.Event{Type: "t"}
	}
	ctx := context.Background()
	for i := 0; i < n; i += 50 {
		if _, err := e.sdk.SendBatch(ctx, "q", evs[i:i+50]); err != nil {
			t.Fatal(err)
		}
		if _, err := e.sdk.ForceTick(ctx, "q"); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	names := map[string]bool{}
	// post returns the body of a 200 answer; it runs outside the test's goroutine.
	post := func(path, body string) (string, error) {
		resp, err := http.Post(e.http.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
		return string(b), err
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				body, err := post("/v1/queues/q/consumers/c/receive", `{"max": 7}`)
				var p pgquehttp.Batch
				if err == nil {
					err = json.Unmarshal([]byte(body), &p)
				}
				if err != nil {
					t.Errorf("receive: %v", err)
					return
				}
				if len(p.Messages) == 0 {
					return
				}
				mu.Lock()
				for _, m := range p.Messages {
					seen[m.MsgID]++
				}
				names[p.Worker] = true
				mu.Unlock()
				if body, err := post(fmt.Sprintf("/v1/batches/%d/ack", p.BatchID), ""); err != nil ||
					!strings.Contains(body, `"acked":true`) {
					t.Errorf("ack %d: %s %v", p.BatchID, body, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d distinct messages received, sent %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("message %d received %d times", id, k)
		}
	}
	if len(names) > 3 || len(e.workers(t)) > 3 {
		t.Errorf("worker names used %v; workers %+v", names, e.workers(t))
	}
}

// A name goes back to the pool when its piece is acknowledged, or when its
// lease is over: receives do not pile up worker rows.
func TestReceiveReusesWorkers(t *testing.T) {
	e := newEnv(t, server.Options{})
	var name string
	for i := range 50 {
		ids := e.sendTick(t, 1)
		p := e.receive(t, "")
		if len(p.Messages) != 1 || p.Messages[0].MsgID != ids[0] {
			t.Fatalf("round %d: %+v, want %v", i, p, ids)
		}
		if name == "" {
			name = p.Worker
		} else if p.Worker != name {
			t.Fatalf("round %d: worker %q, was %q", i, p.Worker, name)
		}
		e.ack(t, p.BatchID)
	}
	if ws := e.workers(t); len(ws) > 2 {
		t.Errorf("after 50 receives and acks: workers %+v", ws)
	}
	// An empty receive makes no worker, and an explicit worker name of
	// this server's form is refused.
	if p := e.receive(t, ""); len(p.Messages) != 0 || p.Worker != name {
		t.Errorf("empty receive: %+v", p)
	}
	e.wantError(t, "POST", "/v1/queues/q/consumers/c/receive", `{"worker": "`+name+`"}`, 400, "invalid_argument", "")
	e.wantError(t, "GET", "/v1/queues/q/consumers/c/stream?worker="+name, "", 400, "invalid_argument", "")

	// Not acknowledged: its name is another caller's only once its lease is
	// over, and the messages come again under it.
	ids := e.sendTick(t, 2)
	p := e.receive(t, `{"max": 2, "lease_seconds": 0.2}`)
	if len(p.Messages) != 2 || p.Worker != name {
		t.Fatalf("receive with a short lease: %+v", p)
	}
	if other := e.receive(t, ""); len(other.Messages) != 0 || other.Worker == name {
		t.Fatalf("while the piece is held: %+v", other)
	}
	time.Sleep(1500 * time.Millisecond) // what is tested is a lease running out
	again := e.receive(t, `{"max": 2}`)
	if got := msgIDs(again); len(got) != 2 || got[0] != ids[0] || again.BatchID == p.BatchID {
		t.Fatalf("after the lease: %+v, want %v again", again, ids)
	}
	e.ack(t, again.BatchID)
	// The late ack of the first piece acknowledges nothing: the batch is
	// finished (or, had another name taken it over, taken_over).
	if status, body, _ := e.call(t, "POST", fmt.Sprintf("/v1/batches/%d/ack", p.BatchID), ""); !(status == 200 &&
		strings.Contains(body, `"acked":false`) || status == 409 && strings.Contains(body, `"taken_over"`)) {
		t.Errorf("late ack of a piece acknowledged again: %d %s", status, body)
	}
	if ws := e.workers(t); len(ws) > 2 {
		t.Errorf("workers %+v", ws)
	}

	// Released through the API, a worker's batch goes to the next caller at
	// once.
	ids = e.sendTick(t, 1)
	p = e.receive(t, `{"worker": "mine", "lease_seconds": 600}`)
	if len(p.Messages) != 1 || p.Worker != "mine" {
		t.Fatalf("explicit worker: %+v", p)
	}
	e.decodeBody(t, "DELETE", "/v1/queues/q/consumers/c/workers/mine?release=true", "", 204, nil)
	if got := msgIDs(e.receive(t, "")); len(got) != 1 || got[0] != ids[0] {
		t.Fatalf("after the release: %v, want %v", got, ids)
	}
}

// PQ027: ack, nack and heartbeat take piece ids, not batch ids.  PQ028: a
// piece whose batch another worker took over is not acknowledged.
func TestPieceErrors(t *testing.T) {
	e := newEnv(t, server.Options{})
	e.sendTick(t, 1)
	p := e.receive(t, `{"worker": "w1"}`)
	ws := e.workers(t)
	if len(p.Messages) != 1 || len(ws) != 1 || ws[0].BatchID == nil || *ws[0].BatchID == p.BatchID {
		t.Fatalf("piece %+v, workers %+v", p, ws)
	}
	batch := *ws[0].BatchID
	e.wantError(t, "POST", fmt.Sprintf("/v1/batches/%d/ack", batch), "", 400, "not_a_piece", "PQ027")
	e.wantError(t, "POST", fmt.Sprintf("/v1/batches/%d/heartbeat", batch), "", 400, "not_a_piece", "PQ027")
	e.wantError(t, "POST", fmt.Sprintf("/v1/batches/%d/nack", batch), fmt.Sprintf(`{"msg_id": %d}`, p.Messages[0].MsgID),
		400, "not_a_piece", "PQ027")
	e.ack(t, p.BatchID)

	e.sendTick(t, 1)
	p = e.receive(t, `{"worker": "w1", "lease_seconds": 0.1}`)
	if len(p.Messages) != 1 {
		t.Fatalf("w1 received %+v", p)
	}
	time.Sleep(300 * time.Millisecond) // what is tested is a lease running out
	q := e.receive(t, "")
	if len(q.Messages) != 1 || q.Messages[0].MsgID != p.Messages[0].MsgID {
		t.Fatalf("after w1's lease: %+v, want its message", q)
	}
	e.wantError(t, "POST", fmt.Sprintf("/v1/batches/%d/ack", p.BatchID), "", 409, "taken_over", "PQ028")
	e.wantError(t, "POST", fmt.Sprintf("/v1/batches/%d/nack", p.BatchID), fmt.Sprintf(`{"msg_id": %d}`, p.Messages[0].MsgID),
		409, "taken_over", "PQ028")
	var hb pgquehttp.HeartbeatResponse
	e.decodeBody(t, "POST", fmt.Sprintf("/v1/batches/%d/heartbeat", p.BatchID), "", 200, &hb)
	if hb.Held {
		t.Error("heartbeat of a piece taken over: held")
	}
	e.ack(t, q.BatchID)
}

// Peek shows what the consumer has not acknowledged, with where it is, and
// moves nothing.
func TestPeek(t *testing.T) {
	e := newEnv(t, server.Options{})
	var pk pgquehttp.PeekResponse
	e.decodeBody(t, "GET", "/v1/queues/q/consumers/c/peek", "", 200, &pk)
	if pk.Messages == nil || len(pk.Messages) != 0 {
		t.Errorf("peek of nothing: %+v", pk)
	}
	ids := e.sendTick(t, 3)
	e.decodeBody(t, "GET", "/v1/queues/q/consumers/c/peek", "", 200, &pk)
	if len(pk.Messages) != 3 || pk.Messages[0].MsgID != ids[0] || pk.Messages[0].BatchID != 0 || pk.Messages[0].Worker != "" ||
		pk.Messages[0].Type != "t" || string(pk.Messages[0].Payload) != `{"i":0}` {
		t.Fatalf("peek before receiving: %+v", pk)
	}
	p := e.receive(t, `{"max": 1}`)
	if len(p.Messages) != 1 || p.Messages[0].MsgID != ids[0] {
		t.Fatalf("received %+v", p)
	}
	ws := e.workers(t)
	for range 2 { // twice: the first peek took nothing
		_, body, _ := e.call(t, "GET", "/v1/queues/q/consumers/c/peek?max=2", "")
		pk = pgquehttp.PeekResponse{}
		if err := json.Unmarshal([]byte(body), &pk); err != nil {
			t.Fatal(err)
		}
		m := pk.Messages
		if len(m) != 2 || m[0].MsgID != ids[0] || m[0].Worker != p.Worker || len(ws) != 1 || ws[0].BatchID == nil ||
			m[0].BatchID != *ws[0].BatchID || m[1].MsgID != ids[1] || m[1].BatchID != 0 || m[1].Worker != "" {
			t.Fatalf("peek with a piece handed out: %s (workers %+v)", body, ws)
		}
		if strings.Contains(body, `"worker":""`) {
			t.Errorf("empty worker in %s", body)
		}
	}
	e.ack(t, p.BatchID)
	if got := msgIDs(e.receive(t, "")); len(got) != 2 || got[0] != ids[1] {
		t.Fatalf("after peeking: %v", got)
	}
}

// A stream holding a piece not acknowledged hands it to another stream as
// soon as it ends, not once its lease ran out.
func TestStreamHandsOver(t *testing.T) {
	e := newEnv(t, server.Options{})
	s1 := e.openStream(t, "/v1/queues/q/consumers/c/stream?max=2", "")
	ids := e.sendTick(t, 2)
	id1, b1 := s1.batch(t)
	s2 := e.openStream(t, "/v1/queues/q/consumers/c/stream?max=2", "")
	if got := msgIDs(b1); len(got) != 2 || got[0] != ids[0] {
		t.Fatalf("first stream: %v", got)
	}
	// s2 has nothing (its first receive came before its headers): s1 holds
	// the messages, until it ends.
	s1.resp.Body.Close()
	start := time.Now()
	id2, b2 := s2.batch(t)
	if id2 != id1 || fmt.Sprint(msgIDs(b2)) != fmt.Sprint(ids) || b2.Worker == "" {
		t.Fatalf("second stream: %s %+v, want %s", id2, b2, id1)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("handed over after %v", d)
	}
	e.ack(t, b2.BatchID)
}

// Streams compete like receives; a stream renews its piece's lease while
// the client is connected; a piece it loses (acknowledged elsewhere, or
// taken over) is reported by a "lost" event.
func TestStreamWorkers(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, server.Options{})
	s1 := e.openStream(t, "/v1/queues/q/consumers/c/stream?max=1&lease_seconds=0.9", "")
	s2 := e.openStream(t, "/v1/queues/q/consumers/c/stream?max=1&worker=mine", "")
	ids := e.sendTick(t, 2)
	_, b1 := s1.batch(t)
	_, b2 := s2.batch(t)
	if len(b1.Messages) != 1 || len(b2.Messages) != 1 || b1.Messages[0].MsgID == b2.Messages[0].MsgID ||
		b2.Worker != "mine" || b1.Worker == "mine" {
		t.Fatalf("streams got %+v and %+v, sent %v", b1, b2, ids)
	}
	time.Sleep(1500 * time.Millisecond) // what is tested is time passing: more than s1's lease
	for _, w := range e.workers(t) {
		if w.Name == b1.Worker && (w.LeaseLeftSeconds == nil || *w.LeaseLeftSeconds <= 0) {
			t.Errorf("s1's lease ran out while it was connected: %+v", w)
		}
	}
	// Acknowledged through the SDK: s1's next renewal finds its batch gone.
	if err := e.sdk.Ack(ctx, b1.BatchID); err != nil {
		t.Fatal(err)
	}
	ev, err := s1.next(t)
	if err != nil || ev.event != "lost" || ev.id != "" {
		t.Fatalf("after an ack elsewhere: %+v, %v", ev, err)
	}
	var lost pgquehttp.Batch
	if err := json.Unmarshal([]byte(ev.data), &lost); err != nil || !lost.Lost || lost.BatchID != b1.BatchID {
		t.Fatalf("lost event %s: %v", ev.data, err)
	}
	more := e.sendTick(t, 1)
	if _, b := s1.batch(t); len(b.Messages) != 1 || b.Messages[0].MsgID != more[0] {
		t.Fatalf("after the lost piece: %+v", b)
	}
	e.ack(t, b2.BatchID)

	// A single reader's stream reads the consumer's own batch.
	s1.resp.Body.Close()
	s2.resp.Body.Close()
	single := e.openStream(t, "/v1/queues/q/consumers/c/stream?single_reader=true", "")
	_, b := single.batch(t)
	if len(b.Messages) != 1 || b.Messages[0].MsgID != more[0] || b.Worker != "" {
		t.Fatalf("single reader's stream: %+v", b)
	}
}
