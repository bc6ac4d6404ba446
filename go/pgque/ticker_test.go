package pgque_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/pgque"
)

// tickerLockKey is the advisory lock key the Ticker elects its leader with
// (pgque's unexported leaderLockKey).  A bigint key k shows in pg_locks as
// classid = k >> 32, objid = k & 0xffffffff, objsubid = 1.
const tickerLockKey = 1886482291

// runTicker runs tk in a goroutine.  The returned stop cancels it, waits for
// Run to return and checks that it returned nil; it also runs at cleanup.
func runTicker(t *testing.T, tk *pgque.Ticker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Ticker.Run after cancel = %v, want nil", err)
			}
			if tk.IsLeader() {
				t.Errorf("IsLeader after Run returned = true")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// poolNamed opens a pool on the database of base whose connections carry
// application_name app, so that pg_stat_activity tells whose session is whose.
// A Ticker connects with its pool's settings, so it carries the name too.
func poolNamed(t *testing.T, base *pgxpool.Pool, app string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(base.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// leaderLockHolder returns the backend pid and application_name of the
// session that holds the Ticker's leader lock in pool's database; ok is
// false when nobody holds it.
func leaderLockHolder(ctx context.Context, pool *pgxpool.Pool) (pid int32, app string, ok bool, err error) {
	err = pool.QueryRow(ctx, `
		SELECT l.pid, a.application_name
		  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		 WHERE l.locktype = 'advisory' AND l.granted
		   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		   AND l.classid = ($1::bigint >> 32)::oid
		   AND l.objid = ($1::bigint & 4294967295)::oid
		   AND l.objsubid = 1`, int64(tickerLockKey)).Scan(&pid, &app)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", false, nil
	}
	return pid, app, err == nil, err
}

// terminateBackend kills a session from the server side, as a crash of the
// process or a network failure would end it.
func terminateBackend(t *testing.T, pool *pgxpool.Pool, pid int32) {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(context.Background(), `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
	}
}

// pollUntil calls cond every few milliseconds until it returns true; it fails
// the test when that takes longer than timeout.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// receiveSoon polls Receive until it returns messages, for at most timeout.
// Nothing but a running Ticker ticks the queue.
func receiveSoon(t *testing.T, client *pgque.Client, queue, consumer string, timeout time.Duration) []pgque.Message {
	t.Helper()
	var msgs []pgque.Message
	pollUntil(t, timeout, "a message for "+consumer, func() bool {
		var err error
		msgs, err = client.Receive(context.Background(), queue, consumer, 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(msgs) > 0
	})
	return msgs
}

// sendAndReceive checks that an event sent now reaches consumer c without
// ForceTick, i.e. that some Ticker is working.
func sendAndReceive(t *testing.T, client *pgque.Client, queue string) {
	t.Helper()
	ctx := context.Background()
	id, err := client.Send(ctx, queue, pgque.Event{Type: "ping", Payload: time.Now().UnixNano()})
	if err != nil {
		t.Fatal(err)
	}
	msgs := receiveSoon(t, client, queue, "c", 10*time.Second)
	if len(msgs) != 1 || msgs[0].MsgID != id {
		t.Fatalf("received %+v, want only event %d", msgs, id)
	}
	if ok, err := client.Ack(ctx, msgs[0].BatchID); err != nil || !ok {
		t.Fatalf("ack = %v, %v", ok, err)
	}
}

// (a) A running Ticker ticks new events: they become receivable without ForceTick.
func TestTickerDelivers(t *testing.T) {
	client := newClient(t, "q", "c")
	tk := pgque.NewTicker(client.Pool(), pgque.WithTickInterval(5*time.Millisecond))
	runTicker(t, tk)
	pollUntil(t, 10*time.Second, "the ticker to lead", tk.IsLeader)
	for range 3 {
		sendAndReceive(t, client, "q")
	}
}

// (b) Two Tickers on one database: one leads, the other waits, and the
// leader lock is held by the leader's own session.
func TestTickerOneLeader(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	a := pgque.NewTicker(poolNamed(t, client.Pool(), "ticker-a"), pgque.WithElectionInterval(10*time.Millisecond))
	b := pgque.NewTicker(poolNamed(t, client.Pool(), "ticker-b"), pgque.WithElectionInterval(10*time.Millisecond))
	runTicker(t, a)
	runTicker(t, b)
	pollUntil(t, 10*time.Second, "a leader", func() bool { return a.IsLeader() || b.IsLeader() })
	leader, want := a, "ticker-a"
	if b.IsLeader() {
		leader, want = b, "ticker-b"
	}
	// Both campaign every 10 ms; for 100 of those the leader stays the only one.
	for range 50 {
		if a.IsLeader() == b.IsLeader() || !leader.IsLeader() {
			t.Fatalf("IsLeader: a = %v, b = %v; want only %s", a.IsLeader(), b.IsLeader(), want)
		}
		_, app, ok, err := leaderLockHolder(ctx, client.Pool())
		if err != nil || !ok || app != want {
			t.Fatalf("leader lock held by %q (held: %v, err: %v), want %s", app, ok, err, want)
		}
		time.Sleep(20 * time.Millisecond) // sampling, not synchronization
	}
	sendAndReceive(t, client, "q")
}

// (c) When the leader stops, or its connection dies, another Ticker takes over.
func TestTickerTakeover(t *testing.T) {
	t.Run("leader cancelled", func(t *testing.T) {
		client := newClient(t, "q", "c")
		a := pgque.NewTicker(client.Pool())
		stopA := runTicker(t, a)
		pollUntil(t, 10*time.Second, "ticker A to lead", a.IsLeader)
		b := pgque.NewTicker(client.Pool(), pgque.WithElectionInterval(100*time.Millisecond))
		runTicker(t, b)
		if b.IsLeader() {
			t.Fatal("B leads while A does")
		}
		stopA() // Run returns nil and A is no longer leader (checked by stop)
		pollUntil(t, 5*time.Second, "ticker B to take over", b.IsLeader)
		sendAndReceive(t, client, "q")
	})

	t.Run("leader connection killed", func(t *testing.T) {
		ctx := context.Background()
		client := newClient(t, "q", "c")
		a := pgque.NewTicker(poolNamed(t, client.Pool(), "ticker-a"))
		runTicker(t, a)
		pollUntil(t, 10*time.Second, "ticker A to lead", a.IsLeader)
		b := pgque.NewTicker(poolNamed(t, client.Pool(), "ticker-b"), pgque.WithElectionInterval(100*time.Millisecond))
		runTicker(t, b)

		// Kill A's session.  A notices, reconnects after a backoff and
		// campaigns again, so it may win the lock back before B does; that is
		// correct too, and then its new session is killed as well.
		kills := 0
		killed := map[int32]bool{}
		pollUntil(t, 20*time.Second, "ticker B to take over", func() bool {
			pid, app, ok, err := leaderLockHolder(ctx, client.Pool())
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case ok && app == "ticker-a" && !killed[pid]:
				if kills == 10 {
					t.Fatal("ticker A won the election back 10 times in a row")
				}
				terminateBackend(t, client.Pool(), pid)
				killed[pid] = true
				kills++
			case ok && app == "ticker-b":
				return b.IsLeader() && !a.IsLeader()
			}
			return false
		})
		if kills == 0 {
			t.Fatal("B led before A's connection was killed")
		}
		sendAndReceive(t, client, "q")
	})
}

// A lone Ticker whose connection dies reconnects and leads again.
func TestTickerReconnects(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	tk := pgque.NewTicker(poolNamed(t, client.Pool(), "ticker-a"))
	runTicker(t, tk)
	pollUntil(t, 10*time.Second, "the ticker to lead", tk.IsLeader)
	pid, _, ok, err := leaderLockHolder(ctx, client.Pool())
	if err != nil || !ok {
		t.Fatalf("leader lock holder: %v, %v", ok, err)
	}
	terminateBackend(t, client.Pool(), pid)
	pollUntil(t, 10*time.Second, "a new session to hold the leader lock", func() bool {
		p, _, ok, err := leaderLockHolder(ctx, client.Pool())
		if err != nil {
			t.Fatal(err)
		}
		return ok && p != pid
	})
	pollUntil(t, 10*time.Second, "the ticker to lead again", tk.IsLeader)
	sendAndReceive(t, client, "q")
}

// (d) The Ticker also runs maintenance: a nacked message due at once comes
// back, as a retry, with nothing else driving the queue.
func TestTickerRunsMaint(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	if err := client.SetQueueConfig(ctx, "q", "retry_backoff_base", "0"); err != nil {
		t.Fatal(err)
	}
	runTicker(t, pgque.NewTicker(client.Pool(), pgque.WithMaintInterval(50*time.Millisecond)))
	id, err := client.Send(ctx, "q", pgque.Event{Type: "job", Payload: "x"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := receiveSoon(t, client, "q", "c", 10*time.Second)
	if len(msgs) != 1 || msgs[0].MsgID != id || msgs[0].RetryCount != nil {
		t.Fatalf("first delivery: %+v, want event %d with no retry count", msgs, id)
	}
	if out, err := client.Nack(ctx, msgs[0].BatchID, msgs[0], 0, "failed"); err != nil || out != pgque.OutcomeRetry {
		t.Fatalf("nack = %q, %v; want retry", out, err)
	}
	if ok, err := client.Ack(ctx, msgs[0].BatchID); err != nil || !ok {
		t.Fatalf("ack = %v, %v", ok, err)
	}
	msgs = receiveSoon(t, client, "q", "c", 10*time.Second)
	if len(msgs) != 1 || msgs[0].MsgID != id || msgs[0].RetryCount == nil || *msgs[0].RetryCount != 1 {
		t.Fatalf("redelivery: %+v, want event %d with retry count 1", msgs, id)
	}
	if ok, err := client.Ack(ctx, msgs[0].BatchID); err != nil || !ok {
		t.Fatalf("ack = %v, %v", ok, err)
	}
}

// A replayed dead letter is delivered by the running Ticker too.
func TestTickerDeliversReplayedDeadLetter(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	if err := client.SetQueueConfig(ctx, "q", "max_retries", "0"); err != nil {
		t.Fatal(err)
	}
	runTicker(t, pgque.NewTicker(client.Pool(), pgque.WithMaintInterval(50*time.Millisecond)))
	id, err := client.Send(ctx, "q", pgque.Event{Type: "job", Payload: "x"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := receiveSoon(t, client, "q", "c", 10*time.Second)
	if out, err := client.Nack(ctx, msgs[0].BatchID, msgs[0], 0, "broken"); err != nil || out != pgque.OutcomeDead {
		t.Fatalf("nack = %q, %v; want dead", out, err)
	}
	if ok, err := client.Ack(ctx, msgs[0].BatchID); err != nil || !ok {
		t.Fatalf("ack = %v, %v", ok, err)
	}
	dls, err := client.DeadLetters(ctx, "q", 10)
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters = %+v, %v", dls, err)
	}
	if _, err := client.ReplayDeadLetter(ctx, dls[0].ID); err != nil {
		t.Fatal(err)
	}
	msgs = receiveSoon(t, client, "q", "c", 10*time.Second)
	if len(msgs) != 1 || msgs[0].MsgID != id || msgs[0].RetryCount != nil {
		t.Fatalf("replay: %+v, want event %d as a first delivery", msgs, id)
	}
}

// (e) Run rejects intervals that are not positive, at once.
func TestTickerInvalidIntervals(t *testing.T) {
	client := newClient(t, "q")
	for name, opt := range map[string]pgque.TickerOption{
		"zero tick interval":      pgque.WithTickInterval(0),
		"negative tick interval":  pgque.WithTickInterval(-time.Millisecond),
		"zero maint interval":     pgque.WithMaintInterval(0),
		"negative maint interval": pgque.WithMaintInterval(-time.Second),
		"zero election interval":  pgque.WithElectionInterval(0),
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		tk := pgque.NewTicker(client.Pool(), opt)
		if err := tk.Run(ctx); !errors.Is(err, pgque.ErrInvalidArgument) || ctx.Err() != nil {
			t.Errorf("%s: Run = %v, want ErrInvalidArgument at once", name, err)
		}
		if err := client.RunTicker(ctx, opt); !errors.Is(err, pgque.ErrInvalidArgument) || ctx.Err() != nil {
			t.Errorf("%s: RunTicker = %v, want ErrInvalidArgument at once", name, err)
		}
		cancel()
	}
}
