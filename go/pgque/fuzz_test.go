package pgque_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// FuzzSDK calls the SDK's calls, and so every SQL function behind them,
// with arguments made of the fuzzer's input: names, types, payloads, counts,
// durations and times, with NUL bytes, invalid UTF-8, huge and negative
// values among them.  Properties: a call fails only with one of the SDK's
// sentinel errors (never a raw PostgreSQL error such as 22xxx or XX000, an
// encoding error of pgx, a hang or a panic), and no call loses or
// duplicates an event: after each input a checking consumer of the queue
// receives every event whose send returned, once, and never one whose
// transaction rolled back.
//
// `go test` runs the seeds (f.Add and testdata/fuzz/FuzzSDK); to fuzz:
//
//	make gotest GOTEST_FLAGS="-run XXX -fuzz FuzzSDK -fuzztime 4m" GOTEST_PKGS=./go/pgque/
func FuzzSDK(f *testing.F) {
	// One database per process (each fuzzing worker has its own server):
	// a database per input would make each input cost a CREATE DATABASE.
	fz := newSDKFuzz(f)

	f.Add(uint8(0x40), "", "t", []byte(`{"a":1}`), int64(0), int64(0), int64(0))
	f.Add(uint8(0x41), "", "t", []byte(`1`), int64(31), int64(time.Hour), int64(1<<62))
	f.Add(uint8(0x42), "", "t\x00", []byte(`[1,2,3]`), int64(3), int64(0), int64(0))
	f.Add(uint8(0x43), "", "t", []byte(`null`), int64(1), int64(0), int64(0))
	f.Add(uint8(0xc5), "", "", []byte(nil), int64(3000000000), int64(0), int64(0))
	f.Add(uint8(0xc6), "", "w\xff", []byte(nil), int64(10), int64(-1), int64(0))
	f.Add(uint8(0x09), "", "", []byte(nil), int64(1), int64(1<<62), int64(1))
	f.Add(uint8(0x12), "fq2", "rotation_period", []byte("300000 years"), int64(0), int64(0), int64(0))
	f.Add(uint8(0x58), "s1", "t", []byte(`{}`), int64(0), int64(-time.Second), int64(-1<<62))
	f.Add(uint8(0x1c), "nobody", "send", []byte("acme"), int64(0), int64(0), int64(0))
	f.Fuzz(func(t *testing.T, op uint8, name, s string, payload []byte, n, d, ts int64) {
		fz.run(t, op, name, s, payload, n, d, ts)
	})
}

// sdkFuzz is the state FuzzSDK keeps across the inputs of one process: the
// ids of the events the checking consumer must, may and must never see.
//
// An input that fails does not end the process: the fuzzer runs variants
// of it for up to -fuzzminimizetime (a minute) to minimize it, and it
// minimizes every input that found new coverage the same way, dropping
// the variants that fail.  Those runs are not counted in its "execs", so
// the queue then sees a minute of sends and drains while the count
// stands still.  A failed input leaves its state half done (a piece
// handed out but not acknowledged, ids recorded as sent but not checked),
// and the next input must not be judged by it, or the fuzzer reports a
// failure of the input it was minimizing to (a "delivered twice" or
// "events lost" about ids that input never sent) that no run of it alone
// reproduces: an input that finds the previous one unfinished resyncs
// first.
type sdkFuzz struct {
	client         *pgque.Client
	queue, checker string
	mustSee        map[int64]bool // sent and committed at once, not yet seen
	maySee         map[int64]bool // delayed: seen at most once, when due
	never          map[int64]bool // sent in a transaction that rolled back
	seen           map[int64]bool // received by the checker
	unfinished     bool           // an input started and did not pass its check
}

// newSDKFuzz makes a database with the checked queue, its checker and
// consumer "c".
func newSDKFuzz(tb testing.TB) *sdkFuzz {
	ctx := context.Background()
	client := pgque.New(srv.NewPool(tb))
	const queue, checker = "fq", "chk"
	if _, err := client.CreateQueue(ctx, queue); err != nil {
		tb.Fatal(err)
	}
	for _, c := range []string{checker, "c"} {
		if _, err := client.Subscribe(ctx, queue, c); err != nil {
			tb.Fatal(err)
		}
	}
	return &sdkFuzz{client: client, queue: queue, checker: checker,
		mustSee: map[int64]bool{}, maySee: map[int64]bool{}, never: map[int64]bool{}, seen: map[int64]bool{}}
}

// sentinels are the errors an SDK call may fail with.
var sentinels = []error{pgque.ErrQueueNotFound, pgque.ErrQueueExists, pgque.ErrConsumerNotFound,
	pgque.ErrBatchNotFound, pgque.ErrMessageNotFound, pgque.ErrInvalidArgument, pgque.ErrQueueHasConsumers,
	pgque.ErrDeadLetterNotFound, pgque.ErrWrongTransactionMode, pgque.ErrNotScheduled, pgque.ErrScheduleExists,
	pgque.ErrScheduleNotFound, pgque.ErrConsumerBusy, pgque.ErrWorkerBusy, pgque.ErrNotAPiece,
	pgque.ErrTakenOver, pgque.ErrPermissionDenied}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func (fz *sdkFuzz) run(t testing.TB, op uint8, name, s string, payload []byte, n, d, ts int64) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if fz.unfinished {
		fz.resync(ctx, t)
	}
	fz.unfinished = true
	c := fz.client
	// Bit 6 of op sends to the checked queue, bit 7 names consumer "c";
	// else the fuzzer's name is used.  Calls that could stop the checker
	// (drop, pause, config, unsubscribe) never get the checked queue or
	// the checker.
	queue, consumer := name, s
	if op&0x40 != 0 {
		queue = fz.queue
	}
	if op&0x80 != 0 {
		consumer = "c"
	}
	if consumer == fz.checker {
		consumer += "_"
	}
	own := name
	if own == fz.queue {
		own += "_"
	}
	dur, count := time.Duration(d), int(n)
	at := time.Unix(0, ts)
	if n&32 != 0 {
		at = time.Unix(ts, 0) // far beyond what pgx can encode, either way
	}
	ev := pgque.Event{Type: s, Payload: json.RawMessage(payload)}
	if n&64 != 0 {
		ev.Payload = string(payload) // marshalled to a JSON string
	}
	if n&128 != 0 {
		x := name
		ev.Extra1, ev.Extra4 = &x, &s
	}
	sent := func(id int64, delayed bool) {
		if delayed || fz.maySee[id] {
			fz.maySee[id] = true
		} else if queue == fz.queue {
			fz.mustSee[id] = true
		}
	}
	var err error
	switch op & 0x3f % 30 {
	case 0:
		var id int64
		if id, err = c.Send(ctx, queue, ev); err == nil {
			sent(id, false)
		}
	case 1:
		var opts []pgque.SendOption
		delayed := false
		if n&1 != 0 {
			opts, delayed = append(opts, pgque.WithRunAt(at)), true
		}
		if n&2 != 0 {
			opts, delayed = append(opts, pgque.WithDelay(dur)), true
		}
		if n&4 != 0 {
			opts = append(opts, pgque.WithUniqueKey(name))
		}
		if n&8 != 0 {
			opts = append(opts, pgque.WithUniqueTTL(dur))
		}
		if n&16 != 0 {
			opts = append(opts, pgque.WithMaxRetries(int(n>>8)))
		}
		var id int64
		if id, err = c.Send(ctx, queue, ev, opts...); err == nil {
			// With a key, the id may be that of a delayed event sent before.
			sent(id, delayed || n&4 != 0)
		}
	case 2:
		evs := make([]pgque.Event, n&63)
		for i := range evs {
			evs[i] = ev
			if i%3 == 1 {
				evs[i].Type = s + fmt.Sprint(i)
			}
		}
		var ids []int64
		if ids, err = c.SendBatch(ctx, queue, evs); err == nil {
			if len(ids) != len(evs) {
				t.Fatalf("SendBatch of %d events returned %d ids", len(evs), len(ids))
			}
			for _, id := range ids {
				sent(id, false)
			}
		}
	case 3:
		tx, terr := c.Pool().Begin(ctx)
		if terr != nil {
			t.Fatal(terr)
		}
		// A no-op once committed; after a failure, the connection goes
		// back to the pool without an open transaction holding locks.
		defer tx.Rollback(context.Background())
		id, serr := c.SendTx(ctx, tx, queue, ev)
		err = serr
		if serr != nil || n&1 != 0 {
			if rerr := tx.Rollback(ctx); rerr != nil {
				t.Fatal(rerr)
			}
			if serr == nil {
				fz.never[id] = true
			}
		} else if cerr := tx.Commit(ctx); cerr != nil {
			t.Fatal(cerr)
		} else {
			sent(id, false)
		}
	case 4:
		_, err = c.CancelScheduled(ctx, queue, n)
	case 5:
		_, err = c.Receive(ctx, queue, consumer, count)
	case 6:
		_, err = c.ReceiveAsWorker(ctx, queue, consumer, s, count, dur)
	case 7:
		_, err = c.Heartbeat(ctx, n, dur)
	case 8:
		err = c.Ack(ctx, n)
	case 9:
		err = c.Nack(ctx, n, pgque.Message{MsgID: ts, BatchID: n}, int(d), s)
	case 10:
		_, err = c.Workers(ctx, queue, consumer)
	case 11:
		_, err = c.UnregisterWorker(ctx, queue, consumer, s)
	case 12:
		_, err = c.ReleaseWorker(ctx, queue, consumer, s)
	case 13:
		if _, err = c.Peek(ctx, queue, consumer, count); err == nil || isSentinel(err) {
			_, err = c.FindEvents(ctx, queue, pgque.FindOptions{Type: s, Max: count})
		}
	case 14:
		if n&1 == 0 {
			_, err = c.PauseQueue(ctx, own)
		} else {
			_, err = c.ResumeQueue(ctx, own)
		}
	case 15:
		_, err = c.CreateQueue(ctx, own)
	case 16:
		err = c.DropQueue(ctx, own, n&1 != 0)
	case 17:
		err = c.SetQueueConfig(ctx, own, s, string(payload))
	case 18:
		_, err = c.Subscribe(ctx, queue, consumer)
	case 19:
		_, err = c.Unsubscribe(ctx, queue, consumer)
	case 20:
		_, err = c.ForceTick(ctx, queue)
	case 21:
		if n&1 == 0 {
			_, err = c.Tick(ctx)
		} else {
			_, err = c.Maint(ctx)
		}
	case 22:
		sc := pgque.Schedule{Name: name, Queue: queue, Type: s, Payload: json.RawMessage(payload), Every: dur}
		if n&1 != 0 {
			sc.Every, sc.Cron = 0, string(payload)
			sc.Payload = nil
		}
		if n&2 != 0 {
			sc.TimeZone = s
		}
		if n&4 != 0 {
			sc.StartAt = at
		}
		_, err = c.CreateSchedule(ctx, sc)
	case 23:
		if n&1 == 0 {
			err = c.DropSchedule(ctx, name)
		} else {
			err = c.DropQueueSchedule(ctx, queue, s)
		}
	case 24:
		switch n & 7 {
		case 0:
			_, err = c.Schedules(ctx)
		case 1:
			_, err = c.Queues(ctx)
		case 2:
			_, err = c.Queue(ctx, queue)
		case 3:
			_, err = c.Consumers(ctx, queue)
		case 4:
			_, err = c.Consumer(ctx, queue, consumer)
		default:
			_, err = c.Tables(ctx)
		}
	case 25:
		_, err = c.DeadLetters(ctx, queue, count)
	case 26:
		if n&1 == 0 {
			_, err = c.ReplayDeadLetter(ctx, ts)
		} else {
			_, err = c.PurgeDeadLetters(ctx, own, dur)
		}
	case 27:
		scope := pgque.Scope{Namespace: string(payload), Queue: queue}
		switch n & 3 {
		case 0:
			_, err = c.GrantAccess(ctx, s, pgque.Privilege(name), scope)
		case 1:
			_, err = c.RevokeAccess(ctx, s, pgque.Privilege(name), scope)
		default:
			_, err = c.Access(ctx)
		}
	case 28:
		var nc *pgque.Client
		if nc, err = c.WithNamespace(name); err == nil {
			_, err = nc.Send(ctx, s, ev)
		}
	case 29:
		var id int64
		if id, err = c.Send(ctx, queue, ev, pgque.WithRunAt(at)); err == nil {
			sent(id, true)
		}
		if _, cerr := c.CancelScheduled(ctx, queue, id); err == nil && cerr != nil && !isSentinel(cerr) {
			err = cerr
		}
	}
	if err != nil && !isSentinel(err) {
		t.Fatalf("op %d: an error that is none of the SDK's sentinels: %v (%T)", op&0x3f%30, err, errors.Unwrap(err))
	}
	fz.check(ctx, t)
	fz.unfinished = false
}

// resync drains the checker after an input that failed, without judging
// what comes: a piece of that input handed out and not acknowledged comes
// again, and ids it recorded as sent are either delivered now or were the
// failure it reported.  Only what later inputs send is checked again.
func (fz *sdkFuzz) resync(ctx context.Context, t testing.TB) {
	c := fz.client
	if _, err := c.ForceTick(ctx, fz.queue); err != nil {
		t.Fatalf("resync after a failed input: force tick: %v", err)
	}
	for pieces := 0; ; pieces++ {
		msgs, err := c.Receive(ctx, fz.queue, fz.checker, 1000)
		if err != nil {
			t.Fatalf("resync after a failed input: receive: %v", err)
		}
		if len(msgs) == 0 {
			break
		}
		if pieces == 1000 {
			t.Fatalf("resync after a failed input: still receiving after %d pieces", pieces)
		}
		if err := c.Ack(ctx, msgs[0].BatchID); err != nil {
			t.Fatalf("resync after a failed input: ack: %v", err)
		}
		for _, m := range msgs {
			fz.seen[m.MsgID] = true
		}
	}
	clear(fz.mustSee)
}

// check ticks the queue and drains the checker: every event whose send
// returned is seen once, a delayed one at most once, a rolled-back one
// never.
func (fz *sdkFuzz) check(ctx context.Context, t testing.TB) {
	c := fz.client
	if _, err := c.ForceTick(ctx, fz.queue); err != nil {
		t.Fatalf("force tick: %v", err)
	}
	// Bounded: a drain that goes on is a failure of its own, not a hang.
	pieces, got := 0, 0
	for ; ; pieces++ {
		msgs, err := c.Receive(ctx, fz.queue, fz.checker, 1000)
		if err != nil {
			t.Fatalf("checker receive (piece %d, %d messages so far): %v", pieces, got, err)
		}
		if len(msgs) == 0 {
			break
		}
		if pieces == 1000 {
			t.Fatalf("checker still receiving after %d pieces, %d messages (last ids %d..%d)",
				pieces, got, msgs[0].MsgID, msgs[len(msgs)-1].MsgID)
		}
		got += len(msgs)
		for _, m := range msgs {
			switch {
			case fz.seen[m.MsgID]:
				t.Fatalf("event %d delivered twice to the checker", m.MsgID)
			case fz.never[m.MsgID]:
				t.Fatalf("event %d of a rolled-back transaction delivered", m.MsgID)
			}
		}
		if ok, err := c.AckResult(ctx, msgs[0].BatchID); err != nil || !ok {
			t.Fatalf("checker ack: %v, %v", ok, err)
		}
		// Seen once acknowledged: a piece whose ack did not happen (the
		// input failed) comes again, and is no duplicate.
		for _, m := range msgs {
			fz.seen[m.MsgID] = true
			// Checked once: the loss check below then costs what this
			// input sent, not everything sent since the process began.
			delete(fz.mustSee, m.MsgID)
		}
	}
	var lost []string
	for id := range fz.mustSee {
		if !fz.seen[id] {
			lost = append(lost, fmt.Sprint(id))
		}
	}
	if len(lost) > 0 {
		t.Fatalf("events lost (sent, never delivered to the checker): %s", strings.Join(lost, ", "))
	}
}

// TestFuzzSDKAfterAFailedInput: the input after one that failed is judged
// by what it does alone.  Before resync, every input after a failed check
// failed too (here: the lost id stayed lost), so the fuzzer minimized the
// failure into an input that had nothing to do with it.
func TestFuzzSDKAfterAFailedInput(t *testing.T) {
	fz := newSDKFuzz(t)
	fz.mustSee[1<<40] = true // a send recorded whose event never comes
	failing := &fatalTB{TB: t}
	failing.do(func(tb testing.TB) { fz.run(tb, 0x40, "", "t", []byte(`1`), 0, 0, 0) })
	if !strings.Contains(failing.msg, "events lost") {
		t.Fatalf("the input with a lost event: %q, want its loss reported", failing.msg)
	}
	fz.run(t, 0x40, "", "t", []byte(`2`), 0, 0, 0)
	if len(fz.seen) != 2 {
		t.Fatalf("the checker saw %d events, want the 2 sent", len(fz.seen))
	}
}

// fatalTB is a testing.TB whose Fatal ends do's goroutine and is recorded,
// not reported: an input that fails, in a test that goes on.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatal(args ...any) { f.msg = fmt.Sprint(args...); runtime.Goexit() }

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// do runs fn in a goroutine of its own, which Fatal may end.
func (f *fatalTB) do(fn func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
}
