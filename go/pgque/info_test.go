package pgque_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/pgque"
)

// The info calls report real values: pending events go to 0 once consumed,
// a nack shows as a pending retry and then a dead letter, an open batch has
// an age, and the insert-only tables have no dead tuples.
func TestInfoValues(t *testing.T) {
	ctx := context.Background()
	dsn, err := srv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One connection, so that a single forced report brings all of this
	// test's work into the statistics that Tables and Queue read.
	client, err := pgque.Connect(ctx, dsn, pgque.WithPoolConfig(func(c *pgxpool.Config) { c.MaxConns = 1 }))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for _, step := range []func() (bool, error){
		func() (bool, error) { return client.CreateQueue(ctx, "q") },
		func() (bool, error) { return client.Subscribe(ctx, "q", "c") },
	} {
		if _, err := step(); err != nil {
			t.Fatal(err)
		}
	}
	consumerQueueConfig(t, client, "q", "max_retries", "1", "retry_backoff_base", "0")
	info := func() pgque.ConsumerInfo { return pauseConsumerInfo(t, client, "q", "c") }
	tick := func() {
		t.Helper()
		if _, err := client.ForceTick(ctx, "q"); err != nil {
			t.Fatal(err)
		}
	}

	if ci := info(); ci.PendingEvents != 0 || ci.Lag != 0 || ci.BatchAge != nil || ci.RetryPending != 0 || ci.DeadLetters != 0 {
		t.Fatalf("new consumer = %+v; want nothing pending", ci)
	}
	pauseSend(t, client, "q", 5)
	if ci := info(); ci.PendingEvents != 5 || ci.Lag <= 0 {
		t.Errorf("5 events sent: pending %d, lag %v; want 5, > 0", ci.PendingEvents, ci.Lag)
	}
	tick()
	msgs, err := client.Receive(ctx, "q", "c", 2)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("Receive = %+v, %v", msgs, err)
	}
	ci := info()
	if ci.CurrentBatch == nil || *ci.CurrentBatch == msgs[0].BatchID || ci.BatchAge == nil || *ci.BatchAge < 0 ||
		*ci.BatchAge > ci.Lag || ci.PendingEvents != 5 {
		t.Errorf("batch open: %+v; want its batch (not the piece's id), an age up to the lag, 5 pending", ci)
	}
	if out, err := client.NackResult(ctx, msgs[0].BatchID, msgs[0], 0, "first failure"); err != nil || out != pgque.OutcomeRetry {
		t.Fatalf("Nack = %q, %v; want retry", out, err)
	}
	if ci := info(); ci.RetryPending != 1 || ci.DeadLetters != 0 {
		t.Errorf("after a nack: %d retries pending, %d dead letters; want 1, 0", ci.RetryPending, ci.DeadLetters)
	}
	if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
		t.Fatal(err)
	}
	rest, err := client.Receive(ctx, "q", "c", 10)
	if err != nil || len(rest) != 3 {
		t.Fatalf("Receive rest = %+v, %v", rest, err)
	}
	if err := client.Ack(ctx, rest[0].BatchID); err != nil {
		t.Fatal(err)
	}
	if ci := info(); ci.PendingEvents != 0 || ci.Lag != 0 || ci.CurrentBatch != nil || ci.BatchAge != nil {
		t.Errorf("all consumed: %+v; want nothing pending, lag 0, no batch", ci)
	}

	// The retry comes back (pending again), fails again and is dead-lettered.
	if n, err := client.Maint(ctx); err != nil || n < 1 {
		t.Fatalf("Maint = %d, %v; want the retry moved", n, err)
	}
	tick()
	if ci := info(); ci.PendingEvents != 1 || ci.RetryPending != 0 {
		t.Errorf("retry moved: pending %d, retries %d; want 1, 0", ci.PendingEvents, ci.RetryPending)
	}
	retry, err := client.Receive(ctx, "q", "c", 10)
	if err != nil || len(retry) != 1 || retry[0].MsgID != msgs[0].MsgID {
		t.Fatalf("Receive retry = %+v, %v; want message %d", retry, err, msgs[0].MsgID)
	}
	if out, err := client.NackResult(ctx, retry[0].BatchID, retry[0], 0, "second failure"); err != nil || out != pgque.OutcomeDead {
		t.Fatalf("Nack = %q, %v; want dead", out, err)
	}
	if err := client.Ack(ctx, retry[0].BatchID); err != nil {
		t.Fatal(err)
	}
	if ci := info(); ci.DeadLetters != 1 || ci.RetryPending != 0 || ci.PendingEvents != 0 {
		t.Errorf("dead-lettered: %+v; want 1 dead letter, nothing else", ci)
	}

	// A rolled-back send is the one dead tuple of the event tables.
	tx, err := client.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.SendTx(ctx, tx, "q", pgque.Event{Type: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Pool().Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		t.Fatal(err)
	}
	q, err := client.Queue(ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	if q.Paused || q.PausedAt != nil || q.EventBytes <= 0 || q.EventDeadTuples != 1 || q.EventsPerSecond <= 0 ||
		q.RetryPending != 0 || q.DeadLetters != 1 {
		t.Errorf("Queue = %+v; want running, a size, 1 dead tuple, a rate, 1 dead letter", q)
	}

	tables, err := client.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]pgque.TableInfo{}
	var names []string
	for _, ti := range tables {
		byName[ti.Name] = ti
		names = append(names, ti.Name)
		if ti.TotalBytes <= 0 || ti.Partitions < 1 {
			t.Errorf("%s: %+v; want a size and partitions", ti.Name, ti)
		}
	}
	want := []string{"pgque.queue", "pgque.consumer", "pgque.event_slot", "pgque.tick", "pgque.sub_state",
		"pgque.retry_queue", "pgque.dead_letter", "pgque.event", "pgque.delayed", "pgque.delayed_done",
		"pgque.delayed_pos", "pgque.dedup", "pgque.schedule", "pgque.acl"}
	if len(names) != len(want) {
		t.Fatalf("Tables = %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("Tables = %v, want %v", names, want)
		}
	}
	for _, name := range []string{"pgque.tick", "pgque.sub_state"} {
		if ti := byName[name]; ti.Partitions != 3 || ti.LiveTuples == 0 || ti.DeadTuples != 0 {
			t.Errorf("%s = %+v; want 3 partitions, live rows, no dead ones", name, ti)
		}
	}
	if ti := byName["pgque.event"]; ti.Partitions != 3 || ti.DeadTuples != 1 || ti.LiveTuples != 6 {
		t.Errorf("pgque.event = %+v; want 3 partitions, 6 live rows (5 events, 1 retry), 1 dead", ti)
	}
}

// A queue whose ticks fail shows its failures in QueueInfo (Errors,
// LastError) while the other queues tick; they clear once it ticks again.
func TestInfoMaintenanceErrors(t *testing.T) {
	ctx := context.Background()
	dsn, err := srv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client, err := pgque.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for _, q := range []string{"good", "bad"} {
		if _, err := client.CreateQueue(ctx, q); err != nil {
			t.Fatal(err)
		}
		consumerQueueConfig(t, client, q, "ticker_max_count", "1")
	}
	// A superuser's trigger refuses the ticks of one queue only.
	if _, err := client.Pool().Exec(ctx, `
		CREATE FUNCTION public.refuse_tick() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
		    IF NEW.tick_queue = (SELECT queue_id FROM pgque.queue WHERE queue_name = 'bad') THEN
		        RAISE EXCEPTION 'no ticks today' USING ERRCODE = 'XX042';
		    END IF;
		    RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_tick BEFORE INSERT ON pgque.tick FOR EACH ROW EXECUTE FUNCTION public.refuse_tick()`); err != nil {
		t.Fatal(err)
	}
	before := map[string]int64{}
	for _, q := range []string{"good", "bad"} {
		qi, err := client.Queue(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if qi.Errors != 0 || qi.LastError != nil {
			t.Fatalf("%s before any failure: Errors %d, LastError %+v", q, qi.Errors, qi.LastError)
		}
		before[q] = qi.LastTickID
	}
	start := time.Now().Add(-time.Minute) // the database's clock may differ a little
	for i := 1; i <= 2; i++ {
		for _, q := range []string{"good", "bad"} {
			if _, err := client.Send(ctx, q, pgque.Event{Type: "t"}); err != nil {
				t.Fatal(err)
			}
		}
		n, err := client.Tick(ctx)
		if err != nil {
			t.Fatalf("Tick with a failing queue: %v", err)
		}
		if n != 1 {
			t.Errorf("Tick %d ticked %d queues; want 1 (good)", i, n)
		}
		bad, err := client.Queue(ctx, "bad")
		if err != nil {
			t.Fatal(err)
		}
		f := bad.LastError
		if bad.Errors != int64(i) || f == nil || f.Step != "tick" || f.SQLState != "XX042" ||
			f.Message != "no ticks today" || f.At.Before(start) || bad.LastTickID != before["bad"] {
			t.Errorf("bad after %d failed ticks: Errors %d, LastError %+v, last tick %d (was %d)",
				i, bad.Errors, f, bad.LastTickID, before["bad"])
		}
	}
	good, err := client.Queue(ctx, "good")
	if err != nil {
		t.Fatal(err)
	}
	if good.Errors != 0 || good.LastError != nil || good.LastTickID == before["good"] {
		t.Errorf("good beside a failing queue: Errors %d, LastError %+v, last tick %d (was %d); want ticked, no errors",
			good.Errors, good.LastError, good.LastTickID, before["good"])
	}

	if _, err := client.Pool().Exec(ctx, `DROP TRIGGER refuse_tick ON pgque.tick`); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Tick(ctx); err != nil || n != 1 {
		t.Fatalf("Tick after the fix = %d, %v; want 1 (bad)", n, err)
	}
	bad, err := client.Queue(ctx, "bad")
	if err != nil {
		t.Fatal(err)
	}
	if bad.Errors != 0 || bad.LastError != nil || bad.LastTickID == before["bad"] {
		t.Errorf("bad after the fix: Errors %d, LastError %+v; want ticked, no errors", bad.Errors, bad.LastError)
	}
}
