package pgque_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgque/pgque/go/pgque"
)

// receiveWithin ticks (which also runs the delayed mover) and receives until
// the consumer gets messages or d passes; it acks what it got.
func receiveWithin(t *testing.T, client *pgque.Client, q, c string, d time.Duration) []pgque.Message {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(d)
	for {
		if _, err := client.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		msgs, err := client.Receive(ctx, q, c, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) > 0 {
			if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
				t.Fatal(err)
			}
			return msgs
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// drainNow ticks once by force and returns (and acks) everything received.
func drainNow(t *testing.T, client *pgque.Client, q, c string) []pgque.Message {
	t.Helper()
	ctx := context.Background()
	if _, err := client.ForceTick(ctx, q); err != nil {
		t.Fatal(err)
	}
	var all []pgque.Message
	for {
		msgs, err := client.Receive(ctx, q, c, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return all
		}
		all = append(all, msgs...)
		if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSendWithDelay(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "a", "b")
	const delay = 400 * time.Millisecond
	start := time.Now()
	id, err := client.Send(ctx, "q", pgque.Event{Type: "later", Payload: map[string]int{"n": 1}, Extra2: ptr("x2")},
		pgque.WithDelay(delay))
	if err != nil {
		t.Fatal(err)
	}
	if got := drainNow(t, client, "q", "a"); len(got) != 0 {
		t.Fatalf("delivered before due: %+v", got)
	}
	msgs := receiveWithin(t, client, "q", "a", 10*time.Second)
	if elapsed := time.Since(start); len(msgs) != 1 || msgs[0].MsgID != id || elapsed < delay {
		t.Fatalf("after %v: %+v, want id %d not before %v", elapsed, msgs, id, delay)
	}
	if m := msgs[0]; m.Type != "later" || string(m.Payload) != `{"n":1}` || m.Extra2 == nil || *m.Extra2 != "x2" ||
		m.RetryCount != nil {
		t.Errorf("message = %+v", m)
	}
	// Every consumer gets it, once.
	if got := drainNow(t, client, "q", "b"); len(got) != 1 || got[0].MsgID != id {
		t.Errorf("b got %+v", got)
	}
	if got := drainNow(t, client, "q", "a"); len(got) != 0 {
		t.Errorf("a got it again: %+v", got)
	}
}

func TestSendWithRunAt(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	past, err := client.Send(ctx, "q", pgque.Event{Type: "past"}, pgque.WithRunAt(time.Now().Add(-time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if got := drainNow(t, client, "q", "c"); len(got) != 1 || got[0].MsgID != past {
		t.Fatalf("a run-at time in the past sends at once: got %+v", got)
	}
	at := time.Now().Add(300 * time.Millisecond)
	id, err := client.Send(ctx, "q", pgque.Event{Type: "at"}, pgque.WithRunAt(at))
	if err != nil {
		t.Fatal(err)
	}
	msgs := receiveWithin(t, client, "q", "c", 10*time.Second)
	if len(msgs) != 1 || msgs[0].MsgID != id || time.Now().Before(at) {
		t.Fatalf("got %+v at %v, want id %d after %v", msgs, time.Now(), id, at)
	}
}

func TestSendTxDelayedRollback(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	tx, err := client.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.SendTx(ctx, tx, "q", pgque.Event{Type: "gone"}, pgque.WithDelay(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	kept, err := client.Send(ctx, "q", pgque.Event{Type: "kept"}, pgque.WithDelay(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	msgs := receiveWithin(t, client, "q", "c", 10*time.Second)
	if len(msgs) != 1 || msgs[0].MsgID != kept {
		t.Fatalf("got %+v, want only %d", msgs, kept)
	}
}

func TestCancelScheduled(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	id, err := client.Send(ctx, "q", pgque.Event{Type: "t"}, pgque.WithDelay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := client.CancelScheduled(ctx, "q", id); err != nil || !ok {
		t.Fatalf("cancel = %v, %v; want true", ok, err)
	}
	if ok, err := client.CancelScheduled(ctx, "q", id); err != nil || ok {
		t.Fatalf("second cancel = %v, %v; want false", ok, err)
	}
	soon, err := client.Send(ctx, "q", pgque.Event{Type: "t"}, pgque.WithDelay(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if msgs := receiveWithin(t, client, "q", "c", 10*time.Second); len(msgs) != 1 || msgs[0].MsgID != soon {
		t.Fatalf("got %+v, want %d", msgs, soon)
	}
	if ok, err := client.CancelScheduled(ctx, "q", soon); err != nil || ok {
		t.Errorf("cancel of a delivered event = %v, %v; want false", ok, err)
	}
	plain, err := client.Send(ctx, "q", pgque.Event{Type: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CancelScheduled(ctx, "q", plain); !errors.Is(err, pgque.ErrNotScheduled) {
		t.Errorf("cancel of a plain event: %v, want ErrNotScheduled", err)
	}
	if _, err := client.CancelScheduled(ctx, "nope", 1); !errors.Is(err, pgque.ErrQueueNotFound) {
		t.Errorf("cancel on an unknown queue: %v, want ErrQueueNotFound", err)
	}
}

func TestSendOptionErrors(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	ev := pgque.Event{Type: "t"}
	for name, opts := range map[string][]pgque.SendOption{
		"zero run-at":          {pgque.WithRunAt(time.Time{})},
		"empty key":            {pgque.WithUniqueKey("")},
		"ttl without key":      {pgque.WithUniqueTTL(time.Minute)},
		"negative ttl":         {pgque.WithUniqueKey("k"), pgque.WithUniqueTTL(-time.Second)},
		"negative max retries": {pgque.WithMaxRetries(-1)},
	} {
		if _, err := client.Send(ctx, "q", ev, opts...); !errors.Is(err, pgque.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := client.Send(ctx, "nope", ev, pgque.WithDelay(time.Hour)); !errors.Is(err, pgque.ErrQueueNotFound) {
		t.Errorf("unknown queue: %v", err)
	}
	tx, err := client.Pool().BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := client.SendTx(ctx, tx, "q", ev, pgque.WithUniqueKey("k")); !errors.Is(err, pgque.ErrWrongTransactionMode) {
		t.Errorf("unique key at REPEATABLE READ: %v, want ErrWrongTransactionMode", err)
	}
	if got := drainNow(t, client, "q", "c"); len(got) != 0 {
		t.Errorf("failed sends enqueued %+v", got)
	}
}

func TestSendUnique(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	first, err := client.Send(ctx, "q", pgque.Event{Type: "t", Payload: 1}, pgque.WithUniqueKey("k"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := client.Send(ctx, "q", pgque.Event{Type: "t", Payload: 2}, pgque.WithUniqueKey("k"))
	if err != nil || again != first {
		t.Fatalf("second send = %d, %v; want %d", again, err, first)
	}
	other, err := client.Send(ctx, "q", pgque.Event{Type: "t", Payload: 3}, pgque.WithUniqueKey("other"))
	if err != nil || other == first {
		t.Fatalf("other key = %d, %v", other, err)
	}
	got := drainNow(t, client, "q", "c")
	if len(got) != 2 || got[0].MsgID != first || string(got[0].Payload) != "1" || got[1].MsgID != other {
		t.Fatalf("got %+v", got)
	}
	// Consumed by the only consumer: the key is free again.
	next, err := client.Send(ctx, "q", pgque.Event{Type: "t", Payload: 4}, pgque.WithUniqueKey("k"))
	if err != nil || next <= first {
		t.Fatalf("after consumption = %d, %v; want a new id", next, err)
	}
	// A TTL holds the key after consumption.
	drainNow(t, client, "q", "c")
	ttl, err := client.Send(ctx, "q", pgque.Event{Type: "t"}, pgque.WithUniqueKey("t"), pgque.WithUniqueTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	drainNow(t, client, "q", "c")
	if id, err := client.Send(ctx, "q", pgque.Event{Type: "t"}, pgque.WithUniqueKey("t")); err != nil || id != ttl {
		t.Errorf("within TTL = %d, %v; want %d", id, err, ttl)
	}
	// Delayed and unique together: pending while it waits.
	d, err := client.Send(ctx, "q", pgque.Event{Type: "t"}, pgque.WithUniqueKey("d"), pgque.WithDelay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := client.Send(ctx, "q", pgque.Event{Type: "t"}, pgque.WithUniqueKey("d")); err != nil || id != d {
		t.Errorf("while delayed = %d, %v; want %d", id, err, d)
	}
}

// Many goroutines send one key at once: one event, one id for all.
func TestSendUniqueConcurrent(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	const senders = 32
	ids := make([]int64, senders)
	errs := make([]error, senders)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			ids[i], errs[i] = client.Send(ctx, "q", pgque.Event{Type: "t", Payload: i}, pgque.WithUniqueKey("same"))
		}(i)
	}
	close(start)
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("sender %d: %d, %v; sender 0 got %d", i, ids[i], errs[i], ids[0])
		}
	}
	if got := drainNow(t, client, "q", "c"); len(got) != 1 || got[0].MsgID != ids[0] {
		t.Fatalf("delivered %+v, want exactly id %d", got, ids[0])
	}
}

// Concurrent senders in transactions, half of which roll back after
// sending: whoever commits gets the id of one committed event, and exactly
// that event is delivered.
func TestSendUniqueConcurrentRollbacks(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	const senders = 16
	type result struct {
		id        int64
		committed bool
		err       error
	}
	results := make([]result, senders)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			r := &results[i]
			r.err = pgx.BeginFunc(ctx, client.Pool(), func(tx pgx.Tx) error {
				id, err := client.SendTx(ctx, tx, "q", pgque.Event{Type: "t", Payload: i}, pgque.WithUniqueKey("k"))
				if err != nil {
					return err
				}
				r.id = id
				time.Sleep(time.Duration(i%4) * time.Millisecond) // let others queue up behind us
				if i%2 == 0 {
					return errRollback
				}
				return nil
			})
			if errors.Is(r.err, errRollback) {
				r.err = nil
			} else if r.err == nil {
				r.committed = true
			}
		}(i)
	}
	close(start)
	wg.Wait()
	var winner int64
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("sender %d: %v", i, r.err)
		}
		if !r.committed {
			continue
		}
		if winner == 0 {
			winner = r.id
		}
		if r.id != winner {
			t.Fatalf("committed senders got ids %d and %d", winner, r.id)
		}
	}
	if got := drainNow(t, client, "q", "c"); len(got) != 1 || got[0].MsgID != winner {
		t.Fatalf("delivered %+v, want exactly id %d", got, winner)
	}
}

var errRollback = errors.New("roll back on purpose")

func TestWithMaxRetries(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	for param, value := range map[string]string{"max_retries": "5", "retry_backoff_base": "0"} {
		if err := client.SetQueueConfig(ctx, "q", param, value); err != nil {
			t.Fatal(err)
		}
	}
	id, err := client.Send(ctx, "q", pgque.Event{Type: "t"}, pgque.WithMaxRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	for round, want := range []pgque.Outcome{pgque.OutcomeRetry, pgque.OutcomeDead} {
		if _, err := client.Maint(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := client.ForceTick(ctx, "q"); err != nil {
			t.Fatal(err)
		}
		msgs, err := client.Receive(ctx, "q", "c", 10)
		if err != nil || len(msgs) != 1 || msgs[0].MsgID != id {
			t.Fatalf("round %d: %+v, %v", round, msgs, err)
		}
		if rc := msgs[0].RetryCount; (round == 0) != (rc == nil) || (rc != nil && *rc != round) {
			t.Errorf("round %d: retry count %v", round, rc)
		}
		if out, err := client.NackResult(ctx, msgs[0].BatchID, msgs[0], 0, fmt.Sprint("round ", round)); err != nil || out != want {
			t.Fatalf("round %d: nack = %q, %v; want %q", round, out, err, want)
		}
		if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
			t.Fatal(err)
		}
	}
}

// With the ticker runner working, a delayed event reaches the consumer
// promptly after its due time, without anyone calling Tick.
func TestDelayedWithTickerRunner(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := newClient(t, "q", "c")
	done := make(chan error, 1)
	go func() { done <- client.RunTicker(ctx, pgque.WithTickInterval(5*time.Millisecond)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	due := time.Now().Add(300 * time.Millisecond)
	id, err := client.Send(ctx, "q", pgque.Event{Type: "t"}, pgque.WithRunAt(due))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		msgs, err := client.Receive(ctx, "q", "c", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) > 0 {
			late := time.Since(due)
			if len(msgs) != 1 || msgs[0].MsgID != id || late < 0 {
				t.Fatalf("got %+v %v after due", msgs, late)
			}
			// Generous for a loaded 2-core machine; typically a few ms.
			if late > time.Second {
				t.Errorf("delivered %v after due", late)
			}
			t.Logf("delivered %v after due", late)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("not delivered")
}

// Delayed sends from many transactions, some committing after their due
// time, some rolled back, some cancelled, while the ticker runner moves and
// ticks and another goroutine keeps rotating the delayed store: every
// committed event that was not cancelled is delivered exactly once, and
// nothing else is.
func TestDelayedStress(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := newClient(t, "q", "c")
	var bg sync.WaitGroup
	bg.Add(2)
	go func() {
		defer bg.Done()
		if err := client.RunTicker(ctx, pgque.WithTickInterval(5*time.Millisecond)); err != nil {
			t.Error(err)
		}
	}()
	go func() { // rotations that carry parked events and done rows over, all the time
		defer bg.Done()
		for ctx.Err() == nil {
			if _, err := client.Pool().Exec(ctx, `SELECT pgque.maint_rotate_delayed('5 milliseconds')`); err != nil && ctx.Err() == nil {
				t.Error(err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	defer func() {
		cancel()
		bg.Wait()
	}()

	const producers, perProducer = 6, 40
	var mu sync.Mutex
	want := map[int64]bool{} // committed and not cancelled
	unwanted := map[int64]string{}
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < perProducer; i++ {
				k := p*perProducer + i
				tx, err := client.Pool().Begin(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				id, err := client.SendTx(ctx, tx, "q", pgque.Event{Type: "t", Payload: k},
					pgque.WithDelay(time.Duration(k%7)*10*time.Millisecond))
				if err != nil {
					t.Error(err)
					tx.Rollback(ctx)
					return
				}
				time.Sleep(time.Duration(k%5) * 10 * time.Millisecond) // commit late, after the due time
				if k%5 == 1 {
					tx.Rollback(ctx)
					mu.Lock()
					unwanted[id] = "rolled back"
					mu.Unlock()
					continue
				}
				if err := tx.Commit(ctx); err != nil {
					t.Error(err)
					return
				}
				delivered := true
				if k%4 == 2 {
					ok, err := client.CancelScheduled(ctx, "q", id)
					// With rotations every 5 ms the store forgets a delivered
					// event within milliseconds; the delivery check below
					// tells a forgotten event from a lost one.
					if err != nil && !errors.Is(err, pgque.ErrNotScheduled) {
						t.Error(err)
						return
					}
					delivered = !ok
				}
				mu.Lock()
				if delivered {
					want[id] = true
				} else {
					unwanted[id] = "cancelled"
				}
				mu.Unlock()
			}
		}(p)
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	got := map[int64]int{}
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		msgs, err := client.Receive(ctx, "q", "c", 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			got[m.MsgID]++
		}
		if len(msgs) > 0 {
			if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
				t.Fatal(err)
			}
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Give stragglers that should not exist a chance to show up.
	time.Sleep(200 * time.Millisecond)
	for _, m := range drainNow(t, client, "q", "c") {
		got[m.MsgID]++
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("event %d delivered %d times, want once", id, got[id])
		}
	}
	for id, n := range got {
		if why, bad := unwanted[id]; bad {
			t.Errorf("event %d (%s) delivered %d times", id, why, n)
		} else if !want[id] {
			t.Errorf("unknown event %d delivered", id)
		}
	}
	var gen int64
	if err := client.Pool().QueryRow(ctx, `SELECT pg_sequence_last_value('pgque.delayed_gen')`).Scan(&gen); err != nil {
		t.Fatal(err)
	}
	if gen < 3 {
		t.Errorf("the delayed store rotated %d times, want several", gen)
	}
	t.Logf("%d delivered, %d rolled back or cancelled, %d rotations", len(want), len(unwanted), gen)
}

// Unique sends of a few keys from many goroutines, with a TTL, while a
// consumer consumes and the dedup store keeps rotating: each key yields
// one event, and every sender of a key gets its id.
func TestSendUniqueStressWithRotation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := newClient(t, "q", "c")
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for ctx.Err() == nil {
			if _, err := client.Pool().Exec(ctx, `SELECT pgque.maint_rotate_dedup('5 milliseconds')`); err != nil && ctx.Err() == nil {
				t.Error(err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	defer func() {
		cancel()
		bg.Wait()
	}()

	const senders, perSender, keys = 8, 40, 10
	var mu sync.Mutex
	ids := map[string]map[int64]bool{}
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for i := 0; i < perSender; i++ {
				key := fmt.Sprint("k", (s*7+i)%keys)
				id, err := client.Send(ctx, "q", pgque.Event{Type: "t", Payload: key},
					pgque.WithUniqueKey(key), pgque.WithUniqueTTL(time.Hour))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if ids[key] == nil {
					ids[key] = map[int64]bool{}
				}
				ids[key][id] = true
				mu.Unlock()
				if i%10 == 0 { // consume meanwhile: the TTL, not pending, holds the keys
					drainNow(t, client, "q", "c")
				}
			}
		}(s)
	}
	wg.Wait()
	var gen int64
	if err := client.Pool().QueryRow(ctx, `SELECT pg_sequence_last_value('pgque.dedup_gen')`).Scan(&gen); err != nil {
		t.Fatal(err)
	}
	if len(ids) != keys || gen < 3 {
		t.Fatalf("%d keys sent, %d rotations", len(ids), gen)
	}
	all := map[int64]bool{}
	for key, set := range ids {
		if len(set) != 1 {
			t.Errorf("key %s got ids %v, want one", key, set)
		}
		for id := range set {
			all[id] = true
		}
	}
	var events int
	if err := client.Pool().QueryRow(ctx, `SELECT count(*) FROM pgque.event`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != keys {
		t.Errorf("%d events in the queue, want %d", events, keys)
	}
	t.Logf("%d keys, %d rotations", len(all), gen)
}
