//go:build failover

// Built only with -tags failover (make failovertest): the test needs a
// primary and a standby server of its own and half a minute, which the
// package's plain run (make gotest) should not pay for.

package pgque_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/internal/localpg"
	"github.com/pgque/pgque/go/pgque"
)

// foKind is what a failover test event is for, from its number: most are
// plain; foDelayed ones are sent with a delay; the handler fails the first
// call on a foRetried one, so that it is nacked and retried.
type foKind int

const (
	foPlain foKind = iota
	foDelayed
	foRetried
)

func foKindOf(n int64) foKind {
	switch n % 10 {
	case 3:
		return foDelayed
	case 7:
		return foRetried
	}
	return foPlain
}

// foDelivery is one handler call of the failover test.
type foDelivery struct {
	batch int64
	gen   int // the message's RetryCount, 0 on first delivery
	at    time.Time
}

// foRecord is what the failover test's consumers and producers did,
// in memory: the test process survives the database, unlike its tables.
type foRecord struct {
	pgque.NopObserver

	mu        sync.Mutex
	committed map[int64]time.Time // event number → when its send returned nil
	delivered map[string]map[int64][]foDelivery
	handled   map[string]map[int64]bool // a handler call returned nil
	failed    map[string]map[int64]bool // the first call was failed on purpose
	settled   map[string]map[[2]int64]bool
	sendErrs  atomic.Int64
}

func newFoRecord(consumers ...string) *foRecord {
	r := &foRecord{
		committed: map[int64]time.Time{},
		delivered: map[string]map[int64][]foDelivery{},
		handled:   map[string]map[int64]bool{},
		failed:    map[string]map[int64]bool{},
		settled:   map[string]map[[2]int64]bool{},
	}
	for _, c := range consumers {
		r.delivered[c] = map[int64][]foDelivery{}
		r.handled[c] = map[int64]bool{}
		r.failed[c] = map[int64]bool{}
		r.settled[c] = map[[2]int64]bool{}
	}
	return r
}

// Settled is called only once a piece's ack committed: what it names was
// acknowledged, and must not come again in the same retry generation.
func (r *foRecord) Settled(consumer string, msg pgque.Message, outcome pgque.Outcome) {
	n, err := strconv.ParseInt(msg.Payload, 10, 64)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.settled[consumer][[2]int64{msg.BatchID, n}] = true
}

// handler returns consumer's handler: it records each call and fails the
// first call on a foRetried event.
func (r *foRecord) handler(consumer string) pgque.HandlerFunc {
	return func(_ context.Context, m pgque.Message) error {
		n, err := strconv.ParseInt(m.Payload, 10, 64)
		if err != nil {
			return fmt.Errorf("payload %q: %w", m.Payload, err)
		}
		// Work that takes a while, so that the crash finds pieces handed
		// out and not yet acknowledged.
		time.Sleep(2 * time.Millisecond)
		gen := 0
		if m.RetryCount != nil {
			gen = *m.RetryCount
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.delivered[consumer][n] = append(r.delivered[consumer][n], foDelivery{batch: m.BatchID, gen: gen, at: time.Now()})
		if foKindOf(n) == foRetried && !r.failed[consumer][n] {
			r.failed[consumer][n] = true
			return errors.New("first attempt fails on purpose")
		}
		r.handled[consumer][n] = true
		return nil
	}
}

// missing returns the committed events consumer has not handled.
func (r *foRecord) missing(consumer string) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int64
	for n := range r.committed {
		if !r.handled[consumer][n] {
			out = append(out, n)
		}
	}
	return out
}

// A queue read by a plain Consumer and by two cooperative workers of
// another consumer name, fed by producers and ticked by a Ticker, all
// connected through one multi-host DSN (target_session_attrs=read-write),
// survives the crash of its primary and the promotion of its synchronous
// standby, with none of them restarted.  Every event whose send returned
// nil, before or after the failover, delayed or retried, is handled by
// each consumer name; an event comes again to a name only when its earlier
// delivery in the same retry generation was not acknowledged (the
// observer's Settled says which were); the queue rotates after the
// failover; and the listening connections are back on the new primary.
// The promoted standby's unlogged sequences, unreadable after the
// promotion, are made again by the ticker's maint().
func TestFailover(t *testing.T) {
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	// TrustTCP: the DSN names two servers and no password.
	primary, err := localpg.Start(ctx, localpg.Options{TrustTCP: true})
	if err != nil {
		t.Fatal(err)
	}
	var crashed atomic.Bool
	t.Cleanup(func() {
		// A crashed primary has no server to stop; its directory goes anyway.
		if err := primary.Stop(); err != nil && !crashed.Load() {
			t.Error(err)
		}
	})
	standby, err := primary.StartStandby(ctx, localpg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := standby.Stop(); err != nil {
			t.Error(err)
		}
	})
	admin, err := pgx.Connect(ctx, primary.DSN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `CREATE DATABASE failover`); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	dsn := fmt.Sprintf("host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres dbname=failover "+
		"target_session_attrs=read-write sslmode=disable connect_timeout=5", primary.Port, standby.Port)
	newPool := func() *pgxpool.Pool {
		t.Helper()
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		return pool
	}

	const queue = "fo"
	setup := pgque.New(newPool())
	// As plain SQL, from this build: how pgque was installed does not
	// matter to a failover, and the server's extension files may be
	// another tree's.
	if _, err := pgque.Install(ctx, setup.Pool(), pgque.WithoutExtension()); err != nil {
		t.Fatal(err)
	}
	if _, err := setup.CreateQueue(ctx, queue); err != nil {
		t.Fatal(err)
	}
	// Rotation every second, so that it happens on both sides of the failover.
	if err := setup.SetQueueConfig(ctx, queue, "rotation_period", "1 second"); err != nil {
		t.Fatal(err)
	}
	consumerNames := []string{"plain", "workers"}
	for _, c := range consumerNames {
		if _, err := setup.Subscribe(ctx, queue, c); err != nil {
			t.Fatal(err)
		}
	}

	// No restartpoint on the standby after the setup: the engine's unlogged
	// sequences, created seconds ago, are zero pages once it is promoted
	// (PostgreSQL replays their creation into buffers only), and maint()
	// must make them again (22_unlogged.sql); checked at the end.

	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	rec := newFoRecord(consumerNames...)
	runCtx, cancelAll := context.WithCancel(ctx)
	var running sync.WaitGroup
	exited := make(chan string, 8)
	run := func(what string, f func(context.Context) error) {
		running.Add(1)
		go func() {
			defer running.Done()
			err := f(runCtx)
			if runCtx.Err() == nil {
				exited <- fmt.Sprintf("%s returned by itself: %v", what, err)
			}
		}()
	}
	ticker := pgque.NewTicker(newPool(), pgque.WithTickerLogger(log.With("part", "ticker")),
		pgque.WithMaintInterval(200*time.Millisecond))
	run("ticker", ticker.Run)
	clients := 0
	startConsumer := func(name string, opts ...pgque.Option) {
		client := pgque.New(newPool()).WithObserver(rec)
		clients++
		opts = append(opts, pgque.WithRetryAfter(1), pgque.WithLogger(log.With("part", name)))
		c := client.NewConsumer(queue, name, opts...)
		c.Handle("*", rec.handler(name))
		run("consumer "+name, c.Start)
	}
	startConsumer("plain")
	startConsumer("workers", pgque.WithWorker("w1"), pgque.WithLease(2*time.Second))
	startConsumer("workers", pgque.WithWorker("w2"), pgque.WithLease(2*time.Second))

	var failedOver atomic.Bool
	var next, sentAfter atomic.Int64
	stopProducing := make(chan struct{})
	var producing sync.WaitGroup
	producer := func(id uint64, client *pgque.Client) {
		defer producing.Done()
		rng := rand.New(rand.NewPCG(seed, id))
		for {
			select {
			case <-stopProducing:
				return
			default:
			}
			var ns []int64
			var err error
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if rng.IntN(8) == 0 {
				evs := make([]pgque.Event, 1+rng.IntN(5))
				for i := range evs {
					// A batch takes no options: its delayed-kind events go at once.
					n := next.Add(1)
					ns = append(ns, n)
					evs[i] = pgque.Event{Type: "ev", Payload: n}
				}
				_, err = client.SendBatch(sctx, queue, evs)
			} else {
				n := next.Add(1)
				ns = append(ns, n)
				var opts []pgque.SendOption
				if foKindOf(n) == foDelayed {
					opts = append(opts, pgque.WithDelay(time.Duration(200+rng.IntN(1500))*time.Millisecond))
				}
				_, err = client.Send(sctx, queue, pgque.Event{Type: "ev", Payload: n}, opts...)
			}
			cancel()
			if err != nil {
				// Whether it committed is unknown, so it need not arrive.
				if rec.sendErrs.Add(1)%50 == 1 {
					log.Warn("send failed", "part", "producer", "err", err)
				}
				time.Sleep(10 * time.Millisecond) // pacing only, while the servers switch
				continue
			}
			at := time.Now()
			rec.mu.Lock()
			for _, n := range ns {
				rec.committed[n] = at
			}
			rec.mu.Unlock()
			if failedOver.Load() {
				sentAfter.Add(int64(len(ns)))
			}
			time.Sleep(time.Millisecond) // pacing only
		}
	}
	for i := range 2 {
		producing.Add(1)
		go producer(uint64(i), pgque.New(newPool()))
	}
	// Registered after the pools, so that it runs before they are closed,
	// also when the test fails early.
	stopProducers := sync.OnceFunc(func() {
		close(stopProducing)
		producing.Wait()
	})
	stopRunning := sync.OnceFunc(func() {
		cancelAll()
		running.Wait()
	})
	t.Cleanup(func() {
		stopProducers()
		stopRunning()
	})
	checkRunning := func() {
		t.Helper()
		select {
		case msg := <-exited:
			t.Fatalf("%s\nlog:\n%s", msg, tail(logs.String(), 5000))
		default:
		}
	}
	handledAll := func(least int) bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, c := range consumerNames {
			if len(rec.handled[c]) < least {
				return false
			}
		}
		return true
	}
	pollUntil(t, 30*time.Second, "deliveries before the failover", func() bool { return handledAll(300) })
	checkRunning()

	crashed.Store(true)
	if err := primary.Crash(); err != nil {
		t.Fatal(err)
	}
	crashAt := time.Now()
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	failedOver.Store(true)
	promotedAt := time.Now()
	t.Logf("primary crashed; standby promoted %v later", promotedAt.Sub(crashAt).Round(time.Millisecond))

	// Load on the new primary, delayed and retried events among it.
	deadline := time.Now().Add(60 * time.Second)
	for sentAfter.Load() < 500 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d sends committed on the new primary in 60 s; log (end):\n%s", sentAfter.Load(), tail(logs.String(), 8000))
		}
		time.Sleep(20 * time.Millisecond) // polling the producers' count
	}
	stopProducers()
	checkRunning()

	rec.mu.Lock()
	committed := len(rec.committed)
	rec.mu.Unlock()
	deadline = time.Now().Add(60 * time.Second)
	for {
		left := 0
		for _, c := range consumerNames {
			left += len(rec.missing(c))
		}
		if left == 0 {
			break
		}
		checkRunning()
		if time.Now().After(deadline) {
			for _, c := range consumerNames {
				if miss := rec.missing(c); len(miss) > 0 {
					t.Errorf("%s: %d of %d committed events never handled, e.g. %v", c, len(miss), committed, miss[:min(len(miss), 10)])
				}
			}
			t.Fatalf("log (end):\n%s", tail(logs.String(), 8000))
		}
		time.Sleep(50 * time.Millisecond) // polling the handlers' record
	}

	// Rotation goes on after the failover: the ticker's maint() on the new
	// primary switches tables.
	pollUntil(t, 30*time.Second, "a rotation after the failover", func() bool {
		info, err := setup.Queue(ctx, queue)
		return err == nil && info.SwitchTime.After(promotedAt)
	})
	// Each consumer's client listens again, on the new primary.
	pollUntil(t, 30*time.Second, "the listening connections on the new primary", func() bool {
		var n int
		err := setup.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = 'failover' AND application_name = 'pgque-listener'`).Scan(&n)
		return err == nil && n >= clients
	})
	checkRunning()
	stopRunning()

	// The promotion left the engine's unlogged sequences unreadable, and
	// maint() made them again: else nothing above would have arrived.
	if b, err := os.ReadFile(standby.LogFile()); err != nil {
		t.Error(err)
	} else if !strings.Contains(string(b), "pgque: sequence pgque.event_g0_hint could not be read") {
		t.Errorf("the promoted standby's log does not say that maint() made pgque.event_g0_hint again")
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	dups := 0
	var delayedAfter, retriedAfter int
	for _, c := range consumerNames {
		for n, ds := range rec.delivered[c] {
			if _, ok := rec.committed[n]; ok && rec.committed[n].After(promotedAt) {
				switch foKindOf(n) {
				case foDelayed:
					delayedAfter++
				case foRetried:
					if len(ds) > 1 {
						retriedAfter++
					}
				}
			}
			// A delivery again in the same retry generation is a duplicate;
			// it is allowed only when no earlier delivery of that
			// generation was acknowledged.
			for j := 1; j < len(ds); j++ {
				again := false
				for i := 0; i < j; i++ {
					if ds[i].gen != ds[j].gen {
						continue
					}
					again = true
					if rec.settled[c][[2]int64{ds[i].batch, n}] {
						t.Errorf("%s: event %d delivered again (piece %d, retry %d, at %v) after its delivery in piece %d at %v was acknowledged",
							c, n, ds[j].batch, ds[j].gen, ds[j].at.Format("15:04:05.000"), ds[i].batch, ds[i].at.Format("15:04:05.000"))
					}
				}
				if again {
					dups++
				}
			}
		}
	}
	if delayedAfter == 0 || retriedAfter == 0 {
		t.Errorf("after the failover: %d delayed and %d retried deliveries of events sent then; want some of each",
			delayedAfter, retriedAfter)
	}
	t.Logf("failover test: %d events committed (%d after the failover), %d sends failed, 0 lost; "+
		"%d deliveries again of unacknowledged work (both names); %d delayed and %d retried events sent after the failover delivered",
		committed, sentAfter.Load(), rec.sendErrs.Load(), dups, delayedAfter, retriedAfter)
	// Pieces handled across the switch are acknowledged on the new primary:
	// the consumer retries a lost ack, so they are not delivered again.
	t.Logf("acks retried across the switch: %d", strings.Count(logs.String(), "acknowledging batch failed; retrying"))
	if n := strings.Count(logs.String(), "level=ERROR"); n > 0 {
		t.Logf("%d errors logged (expected around the switch); log (end):\n%s", n, tail(logs.String(), 3000))
	}
}
