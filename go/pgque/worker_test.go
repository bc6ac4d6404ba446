package pgque_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// sendTicked sends n events in transactions of per events, ticking after
// each, and returns their ids.
func sendTicked(t *testing.T, client *pgque.Client, q string, n, per int) []int64 {
	t.Helper()
	ctx := context.Background()
	var ids []int64
	for len(ids) < n {
		evs := make([]pgque.Event, min(per, n-len(ids)))
		for i := range evs {
			evs[i] = pgque.Event{Type: "job", Payload: len(ids) + i}
		}
		got, err := client.SendBatch(ctx, q, evs)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
		if _, err := client.ForceTick(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// handled records which worker handled which message, and how often.
type handled struct {
	mu   sync.Mutex
	by   map[int64][]string
	done chan struct{}
	want int
}

func newHandled(want int) *handled {
	return &handled{by: map[int64][]string{}, done: make(chan struct{}), want: want}
}

func (h *handled) add(worker string, id int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.by[id] = append(h.by[id], worker)
	if len(h.by) == h.want {
		close(h.done)
	}
}

// shared checks that every id was handled once, and that each of names
// handled some.
func (h *handled) shared(t *testing.T, ids []int64, names ...string) {
	t.Helper()
	per := map[string]int{}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if len(h.by[id]) != 1 {
			t.Errorf("message %d handled by %v", id, h.by[id])
		}
		for _, w := range h.by[id] {
			per[w]++
		}
	}
	for _, n := range names {
		if per[n] == 0 {
			t.Errorf("handled per reader: %v; want %v to share the work", per, names)
			return
		}
	}
}

func (h *handled) wait(t *testing.T) {
	t.Helper()
	select {
	case <-h.done:
	case <-time.After(consumerTimeout):
		h.mu.Lock()
		defer h.mu.Unlock()
		t.Fatalf("%d of %d messages handled", len(h.by), h.want)
	}
}

// runWorker starts a Consumer as worker w of consumer "c" on q; stop it with
// the returned function.
func runWorker(t *testing.T, client *pgque.Client, q, w string, h pgque.HandlerFunc, opts ...pgque.Option) (stop func()) {
	t.Helper()
	opts = append([]pgque.Option{pgque.WithWorker(w), pgque.WithPollInterval(20 * time.Millisecond),
		consumerLogger(t)}, opts...)
	c := client.NewConsumer(q, "c", opts...)
	c.Handle("job", h)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Start(ctx) }()
	return func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("worker %s: %v", w, err)
		}
	}
}

// Two workers of one consumer share a backlog: every message is handled
// once, and both get some, because a worker's batch covers about its
// WithMaxMessages of the backlog.
func TestWorkersShareConsumer(t *testing.T) {
	client := newClient(t, "wq", "c")
	ids := sendTicked(t, client, "wq", 200, 10)
	h := newHandled(len(ids))
	for _, w := range []string{"w1", "w2"} {
		stop := runWorker(t, client, "wq", w, func(ctx context.Context, m pgque.Message) error {
			h.add(w, m.MsgID)
			time.Sleep(time.Millisecond) // let the other worker take windows meanwhile
			return nil
		}, pgque.WithMaxMessages(10))
		defer stop()
	}
	h.wait(t)
	h.shared(t, ids, "w1", "w2")
}

// A worker stopped in the middle of a batch (no ack, no more heartbeats, as
// when its process dies) loses the batch when its lease runs out: another
// worker gets the same messages, and nothing is lost.
func TestWorkerTakeoverAfterCrash(t *testing.T) {
	client := newClient(t, "wq", "c")
	ids := sendTicked(t, client, "wq", 5, 5)
	const lease = 300 * time.Millisecond

	started := make(chan pgque.Message, len(ids))
	stopA := runWorker(t, client, "wq", "a", func(ctx context.Context, m pgque.Message) error {
		started <- m
		<-ctx.Done() // hangs until the shutdown timeout cuts it off
		return ctx.Err()
	}, pgque.WithLease(lease), pgque.WithShutdownTimeout(time.Millisecond))
	var first pgque.Message
	select {
	case first = <-started:
	case <-time.After(consumerTimeout):
		t.Fatal("worker a got nothing")
	}
	stopA() // a "dies" holding its batch, unacknowledged

	h := newHandled(len(ids))
	stopB := runWorker(t, client, "wq", "b", func(ctx context.Context, m pgque.Message) error {
		h.add("b", m.MsgID)
		return nil
	}, pgque.WithLease(lease))
	defer stopB()
	h.wait(t)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if len(h.by[id]) != 1 {
			t.Errorf("message %d handled by b %d times", id, len(h.by[id]))
		}
	}
	ws, err := client.Workers(context.Background(), "wq", "c")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.Name == "a" && w.BatchID != nil {
			t.Errorf("worker a still holds batch %d, taken over from it (first message %d)", *w.BatchID, first.MsgID)
		}
	}
}

// A handler slower than the lease keeps its batch: the consumer heartbeats.
func TestWorkerHeartbeatKeepsBatch(t *testing.T) {
	client := newClient(t, "wq", "c")
	ids := sendTicked(t, client, "wq", 2, 2)
	const lease = 150 * time.Millisecond
	h := newHandled(len(ids))
	release := make(chan struct{})
	entered := make(chan struct{}, len(ids))
	stopA := runWorker(t, client, "wq", "a", func(ctx context.Context, m pgque.Message) error {
		entered <- struct{}{}
		<-release
		h.add("a", m.MsgID)
		return nil
	}, pgque.WithLease(lease))
	defer stopA()
	select {
	case <-entered: // a holds the batch
	case <-time.After(consumerTimeout):
		t.Fatal("worker a got nothing")
	}
	stopB := runWorker(t, client, "wq", "b", func(ctx context.Context, m pgque.Message) error {
		h.add("b", m.MsgID)
		return nil
	}, pgque.WithLease(lease))
	defer stopB()
	// Hold a's batch for several leases: b polls all along and must not get it.
	time.Sleep(4 * lease)
	close(release)
	h.wait(t)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if got := h.by[id]; len(got) != 1 || got[0] != "a" {
			t.Errorf("message %d handled by %v, want a once", id, got)
		}
	}
}

func TestWorkerCalls(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "wq", "c")
	sendTicked(t, client, "wq", 3, 3)

	msgs, err := client.ReceiveAsWorker(ctx, "wq", "c", "w1", 10, time.Minute)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("ReceiveAsWorker = %d messages, %v; want 3", len(msgs), err)
	}
	batch := msgs[0].BatchID // the piece
	if ok, err := client.Heartbeat(ctx, batch, time.Minute); !ok || err != nil {
		t.Errorf("Heartbeat = %v, %v; want true", ok, err)
	}
	ws, err := client.Workers(ctx, "wq", "c")
	if err != nil || len(ws) != 1 || ws[0].Name != "w1" || ws[0].BatchID == nil || *ws[0].BatchID == batch ||
		ws[0].LeaseLeft == nil || *ws[0].LeaseLeft <= 0 {
		t.Errorf("Workers = %+v, %v; want w1 holding a batch (not the piece's id %d)", ws, err, batch)
	}
	if _, err := client.UnregisterWorker(ctx, "wq", "c", "w1"); !errors.Is(err, pgque.ErrWorkerBusy) {
		t.Errorf("UnregisterWorker while it holds a batch: %v, want ErrWorkerBusy", err)
	}
	if ok, err := client.AckResult(ctx, batch); !ok || err != nil {
		t.Fatalf("Ack = %v, %v", ok, err)
	}
	if ok, err := client.Heartbeat(ctx, batch, time.Minute); ok || err != nil {
		t.Errorf("Heartbeat of a finished batch = %v, %v; want false", ok, err)
	}
	if ok, err := client.UnregisterWorker(ctx, "wq", "c", "w1"); !ok || err != nil {
		t.Errorf("UnregisterWorker = %v, %v; want true", ok, err)
	}

	// A late ack after a takeover fails with ErrTakenOver; a batch's id is
	// not a piece's.
	sendTicked(t, client, "wq", 2, 2)
	lost, err := client.ReceiveAsWorker(ctx, "wq", "c", "w1", 10, time.Microsecond) // its lease has run out at once
	if err != nil || len(lost) != 2 {
		t.Fatalf("ReceiveAsWorker = %d, %v", len(lost), err)
	}
	taken, err := client.ReceiveAsWorker(ctx, "wq", "c", "w2", 10, time.Minute)
	if err != nil || len(taken) != 2 || taken[0].MsgID != lost[0].MsgID {
		t.Fatalf("takeover by w2 = %+v, %v; want w1's two", taken, err)
	}
	if err := client.Ack(ctx, lost[0].BatchID); !errors.Is(err, pgque.ErrTakenOver) {
		t.Errorf("late Ack: %v, want ErrTakenOver", err)
	}
	if err := client.Nack(ctx, lost[0].BatchID, lost[0], 0, "late"); !errors.Is(err, pgque.ErrTakenOver) {
		t.Errorf("late Nack: %v, want ErrTakenOver", err)
	}
	if ok, err := client.Heartbeat(ctx, lost[0].BatchID, time.Minute); ok || err != nil {
		t.Errorf("late Heartbeat = %v, %v; want false", ok, err)
	}
	ws, err = client.Workers(ctx, "wq", "c")
	if err != nil || len(ws) != 2 || ws[1].Name != "w2" || ws[1].BatchID == nil {
		t.Fatalf("Workers = %+v, %v", ws, err)
	}
	if err := client.Ack(ctx, *ws[1].BatchID); !errors.Is(err, pgque.ErrNotAPiece) {
		t.Errorf("Ack of a batch id: %v, want ErrNotAPiece", err)
	}
	if ok, err := client.AckResult(ctx, taken[0].BatchID); !ok || err != nil {
		t.Fatalf("Ack by w2 = %v, %v", ok, err)
	}
	for _, w := range []string{"w1", "w2"} {
		if _, err := client.UnregisterWorker(ctx, "wq", "c", w); err != nil {
			t.Fatal(err)
		}
	}

	// A plain batch of the consumer keeps its workers out until finished.
	sendTicked(t, client, "wq", 1, 1)
	plain, err := client.Receive(ctx, "wq", "c", 10)
	if err != nil || len(plain) != 1 {
		t.Fatalf("Receive = %d, %v", len(plain), err)
	}
	if _, err := client.ReceiveAsWorker(ctx, "wq", "c", "w1", 10, time.Minute); !errors.Is(err, pgque.ErrConsumerBusy) {
		t.Errorf("ReceiveAsWorker during a plain batch: %v, want ErrConsumerBusy", err)
	}

	for name, err := range map[string]error{
		"bad worker name": func() error { _, err := client.ReceiveAsWorker(ctx, "wq", "c", "a/b", 10, time.Minute); return err }(),
		"zero lease":      func() error { _, err := client.ReceiveAsWorker(ctx, "wq", "c", "w1", 10, 0); return err }(),
		"heartbeat lease": func() error { _, err := client.Heartbeat(ctx, 1, -time.Second); return err }(),
		"worker option":   client.NewConsumer("wq", "c", pgque.WithWorker("w"), pgque.WithLease(0)).Start(ctx),
	} {
		if !errors.Is(err, pgque.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := client.Workers(ctx, "wq", "nobody"); !errors.Is(err, pgque.ErrConsumerNotFound) {
		t.Errorf("Workers of an unknown consumer: %v", err)
	}
}

// Consumers with the same queue and name and no options share the messages:
// 200 events are handled 200 times, once each, and both get some.
func TestConsumersShareByDefault(t *testing.T) {
	client := newClient(t, "wq", "c")
	h := newHandled(200)
	for _, name := range []string{"one", "two"} {
		c := client.NewConsumer("wq", "c", pgque.WithPollInterval(20*time.Millisecond), consumerLogger(t))
		c.Handle("job", func(ctx context.Context, m pgque.Message) error {
			h.add(name, m.MsgID)
			time.Sleep(time.Millisecond) // leave windows to the other meanwhile
			return nil
		})
		consumerRun(t, c)
	}
	ids := sendTicked(t, client, "wq", 200, 5)
	h.wait(t)
	h.shared(t, ids, "one", "two")
	consumerNoMore(t, client, "wq", "c")
}

// Of two single readers of one consumer name, one reads; when it stops,
// the other takes over and goes on where it stopped, in order.
func TestConsumerSingleReaderStandby(t *testing.T) {
	client := newClient(t, "wq", "c")
	var mu sync.Mutex
	var order []int64
	by := map[string]int{}
	got := make(chan string, 100)
	start := func(name string) *runningConsumer {
		c := client.NewConsumer("wq", "c", pgque.WithSingleReader(), pgque.WithPollInterval(20*time.Millisecond),
			consumerLogger(t))
		c.Handle("job", func(ctx context.Context, m pgque.Message) error {
			mu.Lock()
			order = append(order, m.MsgID)
			by[name]++
			mu.Unlock()
			got <- name
			return nil
		})
		return consumerRun(t, c)
	}
	first := start("first")
	second := start("second")
	ids := sendTicked(t, client, "wq", 10, 5)
	reader := ""
	for range ids {
		who := consumerAwait(t, got, consumerTimeout, "a message")
		if reader == "" {
			reader = who
		} else if who != reader {
			t.Fatalf("message handled by %s while %s reads", who, reader)
		}
	}
	// Stop the reader; the one standing by takes over.
	if reader == "first" {
		first.stop() //nolint:errcheck
	} else {
		second.stop() //nolint:errcheck
	}
	more := sendTicked(t, client, "wq", 10, 5)
	for range more {
		if who := consumerAwait(t, got, consumerTimeout, "a message after the takeover"); who == reader {
			t.Fatalf("the stopped reader %s handled a message", reader)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := append(append([]int64{}, ids...), more...)
	if len(order) != len(want) {
		t.Fatalf("handled %v; want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("handled %v; want %v, in order", order, want)
		}
	}
	if ws, err := client.Workers(context.Background(), "wq", "c"); err != nil || len(ws) != 0 {
		t.Errorf("single readers made workers: %+v, %v", ws, err)
	}
}

// A single reader stopped in the middle of a piece finishes and
// acknowledges it before the standby takes over: no message is handled
// twice, and none by the standby while the first still works.
func TestConsumerSingleReaderHandover(t *testing.T) {
	client := newClient(t, "wq", "c")
	var mu sync.Mutex
	times := map[int64]int{}
	got := make(chan string, 100)
	busy := map[string]bool{}
	start := func(name string) *runningConsumer {
		c := client.NewConsumer("wq", "c", pgque.WithSingleReader(), pgque.WithPollInterval(20*time.Millisecond),
			consumerLogger(t))
		c.Handle("job", func(ctx context.Context, m pgque.Message) error {
			mu.Lock()
			times[m.MsgID]++
			busy[name] = true
			for other, b := range busy {
				if other != name && b {
					t.Errorf("%s handles message %d while %s is handling one", name, m.MsgID, other)
				}
			}
			mu.Unlock()
			got <- name
			time.Sleep(10 * time.Millisecond)
			mu.Lock()
			busy[name] = false
			mu.Unlock()
			return nil
		})
		return consumerRun(t, c)
	}
	readers := map[string]*runningConsumer{"a": start("a"), "b": start("b")}
	ids := sendTicked(t, client, "wq", 40, 40)
	first := consumerAwait(t, got, consumerTimeout, "the first message")
	stopped := make(chan error, 1)
	go func() { stopped <- readers[first].stop() }() // mid-piece: it finishes the piece first
	for range len(ids) - 1 {
		consumerAwait(t, got, consumerTimeout, "a message")
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if times[id] != 1 {
			t.Errorf("message %d handled %d times", id, times[id])
		}
	}
}
