package pgque_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// txKinds runs f in a pgx transaction and in a database/sql one (SQLTx),
// rolling each back at the end.
func txKinds(t *testing.T, client *pgque.Client, f func(t *testing.T, tx pgque.DBTX)) {
	ctx := context.Background()
	t.Run("pgx", func(t *testing.T) {
		tx, err := client.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck
		f(t, tx)
	})
	t.Run("database/sql", func(t *testing.T) {
		tx, err := sqlDB(t, client).BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback() //nolint:errcheck
		f(t, pgque.SQLTx(tx))
	})
}

// must fails the test on err.
func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// Every call's Tx form runs in the caller's transaction: it sees what the
// transaction did, and what it does is undone by a rollback.
func TestTxForms(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "base", "c")
	if _, err := client.Pool().Exec(ctx, `CREATE ROLE tx_role`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = client.Pool().Exec(ctx, `DROP ROLE tx_role`) })
	txKinds(t, client, func(t *testing.T, tx pgque.DBTX) {
		if !must[bool](t, "create queue")(client.CreateQueueTx(ctx, tx, "q")) {
			t.Fatal("CreateQueueTx: not created")
		}
		if err := client.SetQueueConfigTx(ctx, tx, "q", "max_retries", "0"); err != nil {
			t.Fatal(err)
		}
		must[bool](t, "subscribe")(client.SubscribeTx(ctx, tx, "q", "c"))
		ids := must[[]int64](t, "send batch")(client.SendBatchTx(ctx, tx, "q", []pgque.Event{{Type: "a", Payload: 1}, {Type: "b", Payload: 2}}))
		delayed := must[int64](t, "send")(client.SendTx(ctx, tx, "q", pgque.Event{Type: "d", Payload: 3}, pgque.WithDelay(time.Hour)))
		if !must[bool](t, "cancel")(client.CancelScheduledTx(ctx, tx, "q", delayed)) {
			t.Error("CancelScheduledTx: not cancelled")
		}
		must[bool](t, "pause")(client.PauseQueueTx(ctx, tx, "q"))
		q := must[pgque.QueueInfo](t, "queue")(client.QueueTx(ctx, tx, "q"))
		if q.MaxRetries != 0 || !q.Paused || q.Consumers != 1 || q.RotationPeriod != 2*time.Hour {
			t.Errorf("QueueTx sees %+v", q)
		}
		if qs := must[[]pgque.QueueInfo](t, "queues")(client.QueuesTx(ctx, tx)); len(qs) != 2 {
			t.Errorf("QueuesTx: %d queues, want 2", len(qs))
		}
		must[bool](t, "resume")(client.ResumeQueueTx(ctx, tx, "q"))
		must[int64](t, "force tick")(client.ForceTickTx(ctx, tx, "q"))
		must[int](t, "tick")(client.TickTx(ctx, tx))
		must[[]pgque.PeekedMessage](t, "peek")(client.PeekTx(ctx, tx, "q", "c", 10))
		if cs := must[[]pgque.ConsumerInfo](t, "consumers")(client.ConsumersTx(ctx, tx, "q")); len(cs) != 1 || cs[0].Name != "c" {
			t.Errorf("ConsumersTx: %+v", cs)
		}
		must[pgque.ConsumerInfo](t, "consumer")(client.ConsumerTx(ctx, tx, "q", "c"))
		must[[]pgque.WorkerInfo](t, "workers")(client.WorkersTx(ctx, tx, "q", "c"))
		must[[]pgque.TableInfo](t, "tables")(client.TablesTx(ctx, tx))
		must[[]pgque.DeadLetter](t, "dead letters")(client.DeadLettersTx(ctx, tx, "q", 10))
		must[int](t, "purge")(client.PurgeDeadLettersTx(ctx, tx, "q", time.Hour))
		must[time.Time](t, "create schedule")(client.CreateScheduleTx(ctx, tx, pgque.Schedule{Name: "s", Queue: "q", Type: "t", Payload: 1, Every: time.Minute}))
		if ss := must[[]pgque.ScheduleInfo](t, "schedules")(client.SchedulesTx(ctx, tx)); len(ss) != 1 {
			t.Errorf("SchedulesTx: %+v", ss)
		}
		if err := client.DropQueueScheduleTx(ctx, tx, "q", "s"); err != nil {
			t.Fatal(err)
		}
		must[time.Time](t, "create schedule")(client.CreateScheduleTx(ctx, tx, pgque.Schedule{Name: "s2", Queue: "q", Type: "t", Payload: 1, Every: time.Minute}))
		if err := client.DropScheduleTx(ctx, tx, "s2"); err != nil {
			t.Fatal(err)
		}
		must[int](t, "maint")(client.MaintTx(ctx, tx))
		if must[bool](t, "unregister worker")(client.UnregisterWorkerTx(ctx, tx, "q", "c", "w")) ||
			must[bool](t, "release worker")(client.ReleaseWorkerTx(ctx, tx, "q", "c", "w")) {
			t.Error("a worker that does not exist was unregistered or released")
		}

		must[bool](t, "grant")(client.GrantAccessTx(ctx, tx, "tx_role", pgque.PrivilegeSend, pgque.Scope{Queue: "q"}))
		if a := must[[]pgque.AccessGrant](t, "access")(client.AccessTx(ctx, tx)); len(a) != 1 {
			t.Errorf("AccessTx: %+v", a)
		}
		must[bool](t, "revoke")(client.RevokeAccessTx(ctx, tx, "tx_role", pgque.PrivilegeSend, pgque.Scope{Queue: "q"}))
		must[bool](t, "unsubscribe")(client.UnsubscribeTx(ctx, tx, "base", "c"))
		if err := client.DropQueueTx(ctx, tx, "base", true); err != nil {
			t.Fatal(err)
		}
		evs := must[[]pgque.SentEvent](t, "find")(client.FindEventsTx(ctx, tx, "q", pgque.FindOptions{}))
		if len(evs) != 2 || evs[1].MsgID != ids[0] { // the delayed one was cancelled
			t.Errorf("FindEventsTx: %+v", evs)
		}
	})
	// Errors come as from the plain calls (and abort the transaction).
	txKinds(t, client, func(t *testing.T, tx pgque.DBTX) {
		if _, err := client.ReplayDeadLetterTx(ctx, tx, 424242); !errors.Is(err, pgque.ErrDeadLetterNotFound) {
			t.Errorf("ReplayDeadLetterTx of an unknown id: %v", err)
		}
	})
	txKinds(t, client, func(t *testing.T, tx pgque.DBTX) {
		if ok, err := client.HeartbeatTx(ctx, tx, 424242, time.Minute); ok || (err != nil && !errors.Is(err, pgque.ErrBatchNotFound)) {
			t.Errorf("HeartbeatTx of an unknown piece: %v, %v", ok, err)
		}
	})
	// Both transactions were rolled back: nothing of them is left.
	qs, err := client.Queues(ctx)
	if err != nil || len(qs) != 1 || qs[0].Name != "base" || qs[0].Consumers != 1 {
		t.Errorf("after the rollbacks: %+v, %v; want only base, with its consumer", qs, err)
	}
	if ss, err := client.Schedules(ctx); err != nil || len(ss) != 0 {
		t.Errorf("schedules after the rollbacks: %+v, %v", ss, err)
	}
}

// Receiving, acking and nacking in a transaction take effect with it: a
// rollback hands the same messages out again, unacknowledged and not
// retried; a commit finishes them.  Through database/sql the messages are
// read as through pgx.
func TestReceiveAckNackTx(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c", "w")
	ids := must[[]int64](t, "send")(client.SendBatch(ctx, "q", []pgque.Event{
		{Type: "a", Payload: map[string]int{"n": 1}, Extra1: ptr("x")},
		{Type: "b", Payload: json.RawMessage(`[1, 2]`), Extra4: ptr("y")},
		{Type: "a", Payload: nil}}))
	must[int64](t, "tick")(client.ForceTick(ctx, "q"))
	check := func(t *testing.T, what string, msgs []pgque.Message) {
		t.Helper()
		if len(msgs) != 3 || msgs[0].MsgID != ids[0] || msgs[2].MsgID != ids[2] {
			t.Fatalf("%s: %+v, want ids %v", what, msgs, ids)
		}
		m0, m1 := msgs[0], msgs[1]
		if m0.Type != "a" || m0.Payload != `{"n":1}` || *m0.Extra1 != "x" || m0.Extra4 != nil || m0.RetryCount != nil ||
			m1.Type != "b" || m1.Payload != `[1, 2]` || *m1.Extra4 != "y" || msgs[2].Payload != "" ||
			m0.BatchID == 0 || m0.CreatedAt.IsZero() {
			t.Errorf("%s: %+v, %+v, %+v", what, m0, m1, msgs[2])
		}
	}
	txKinds(t, client, func(t *testing.T, tx pgque.DBTX) {
		// A piece this big is read straight from the event tables outside a
		// transaction; inside one, the caller's planner settings stay.
		msgs := must[[]pgque.Message](t, "receive")(client.ReceiveTx(ctx, tx, "q", "c", 5000))
		check(t, "ReceiveTx", msgs)
		var seqscan string
		if err := tx.QueryRow(ctx, `SHOW enable_seqscan`).Scan(&seqscan); err != nil || seqscan != "on" {
			t.Errorf("enable_seqscan in the caller's transaction = %q, %v", seqscan, err)
		}
		if out := must[pgque.Outcome](t, "nack")(client.NackResultTx(ctx, tx, msgs[0].BatchID, msgs[0], 60, "why")); out != pgque.OutcomeRetry {
			t.Errorf("NackResultTx = %q", out)
		}
		if err := client.NackTx(ctx, tx, msgs[1].BatchID, msgs[1], 0, ""); err != nil {
			t.Fatal(err)
		}
		if !must[bool](t, "ack")(client.AckResultTx(ctx, tx, msgs[0].BatchID)) {
			t.Error("AckResultTx: nothing acknowledged")
		}
		if err := client.AckTx(ctx, tx, msgs[0].BatchID); err != nil {
			t.Fatal(err)
		}
		check(t, "ReceiveAsWorkerTx", must[[]pgque.Message](t, "receive as worker")(
			client.ReceiveAsWorkerTx(ctx, tx, "q", "w", "w1", 10, time.Minute)))
		if ws := must[[]pgque.WorkerInfo](t, "workers")(client.WorkersTx(ctx, tx, "q", "w")); len(ws) != 1 || ws[0].BatchID == nil {
			t.Errorf("WorkersTx after ReceiveAsWorkerTx: %+v", ws)
		}
	})
	// Both were rolled back: the messages come again, first time, and no
	// worker was made.
	msgs := must[[]pgque.Message](t, "receive")(client.Receive(ctx, "q", "c", 10))
	check(t, "after the rollbacks", msgs)
	if ws := must[[]pgque.WorkerInfo](t, "workers")(client.Workers(ctx, "q", "w")); len(ws) != 0 {
		t.Errorf("workers after the rollbacks: %+v", ws)
	}
	// Committed: the piece is finished and its nacked message retried.
	tx, err := client.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if err := client.NackTx(ctx, tx, msgs[0].BatchID, msgs[0], 0, ""); err != nil {
		t.Fatal(err)
	}
	if err := client.AckTx(ctx, tx, msgs[0].BatchID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := client.AckResult(ctx, msgs[0].BatchID); ok || err != nil {
		t.Errorf("AckResult after the committed AckTx = %v, %v; want false", ok, err)
	}
	c := must[pgque.ConsumerInfo](t, "consumer")(client.Consumer(ctx, "q", "c"))
	if c.RetryPending != 1 || c.CurrentBatch != nil {
		t.Errorf("after the commit: %+v; want one retry pending, no batch open", c)
	}
}
