package pgque_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/pgque"
)

// TestStress is the concurrency test that proves no loss and no duplicate
// under adversity.  Producers send in transactions of random
// size, a fifth of them rolled back, some at REPEATABLE READ, some held open
// across a table switch, plus send_batch calls; two Tickers race for the
// leadership while their sessions are killed and their leaders restarted,
// and two more sessions tick, force ticks and run maintenance beside them;
// tables rotate every 50 ms; three consumers receive with random sizes
// (c0, c2 and two of the workers read straight from the event tables, see
// Client.Receive), and
// "crash" now and then with a batch received but not acknowledged, then
// restart under the same name; a fourth consumer is read by three
// cooperative workers with a 100 ms lease, which crash the same way and stay
// down past their lease, so that the others take their batches over.  A duplicate is reported as soon as it is
// received; the test stops at the first failure.  A fifth consumer is
// shared by three Consumers with default options (replicas), each stopped
// and started again every few hundred milliseconds, some stops cutting a
// piece short.
//
// Every event carries a unique id in its payload.  Producers record an id as
// committed only once the commit (or send_batch) returned, and as rolled
// back once the rollback did.  At the end, for every consumer:
//   - every committed event was acknowledged exactly once: none is missing
//     (loss), none came again after it was acknowledged (duplicate);
//   - no event outside the committed set was ever received (rolled back, or
//     never sent);
//   - the only other receptions are of batches the consumer abandoned (or a
//     worker lost to another when its lease ran out), which at-least-once
//     delivery hands out again;
//   - nothing is left to receive after a final maintenance and tick.
//
// A loss shows as a consumer that never catches up: the drain times out and
// the missing ids are reported.
func TestStress(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test skipped in -short mode")
	}
	const (
		queue        = "stress"
		producers    = 4
		maxEvents    = 8000             // ids handed out, committed or not
		produceFor   = 6 * time.Second  // or until maxEvents
		drainTimeout = 30 * time.Second // failure bound for catching up
		rotation     = "50 milliseconds"
		rogues       = 2 // sessions ticking and running maint() beside the Tickers
	)
	consumerNames := []string{"c0", "c1", "c2", "cw"}
	workerNames := map[string][]string{"cw": {"w0", "w1", "w2"}} // the others read plainly
	const lease = 100 * time.Millisecond
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	ctx := context.Background()
	dsn, err := srv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 24
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	client := pgque.New(pool)
	if _, err := client.CreateQueue(ctx, queue); err != nil {
		t.Fatal(err)
	}
	if err := client.SetQueueConfig(ctx, queue, "rotation_period", rotation); err != nil {
		t.Fatal(err)
	}
	for _, name := range append(consumerNames, replicaName) {
		if _, err := client.Subscribe(ctx, queue, name); err != nil {
			t.Fatal(err)
		}
	}
	queueGen := func() int64 {
		t.Helper()
		var gen int64
		if err := pool.QueryRow(ctx, `SELECT queue_gen FROM pgque.queue WHERE queue_name = $1`, queue).Scan(&gen); err != nil {
			t.Fatal(err)
		}
		return gen
	}
	logGen := func() int64 {
		t.Helper()
		var gen int64
		if err := pool.QueryRow(ctx, `SELECT coalesce(pg_sequence_last_value('pgque.log_gen'), 0)`).Scan(&gen); err != nil {
			t.Fatal(err)
		}
		return gen
	}
	genBefore, logGenBefore := queueGen(), logGen()
	infoBefore, err := client.Queue(ctx, queue)
	if err != nil {
		t.Fatal(err)
	}

	// fail records a failure from any goroutine; goroutines stop on it.
	var failed atomic.Bool
	failedCh := make(chan struct{})
	var failOnce sync.Once
	fail := func(format string, args ...any) {
		failed.Store(true)
		failOnce.Do(func() { close(failedCh) })
		t.Errorf(format, args...)
	}

	// Background chaos: racing Tickers, killed and restarted; rogue
	// sessions ticking and running maintenance beside them.  Everything in
	// the background is stopped and waited for even when the test ends early.
	chaosCtx, stopChaos := context.WithCancel(ctx)
	var chaos sync.WaitGroup
	defer func() { stopChaos(); chaos.Wait() }()
	var kills, restarts, rogueCalls atomic.Int64
	type tickerSlot struct {
		current atomic.Pointer[pgque.Ticker]
		restart chan struct{}
	}
	slots := make([]*tickerSlot, 2)
	tickersCtx, stopTickers := context.WithCancel(ctx)
	var tickers sync.WaitGroup
	defer func() { stopTickers(); tickers.Wait() }()
	for i := range slots {
		slot := &tickerSlot{restart: make(chan struct{}, 1)}
		slots[i] = slot
		tpool := poolNamed(t, pool, fmt.Sprintf("stress-ticker-%d", i))
		tickers.Add(1)
		go func() {
			defer tickers.Done()
			for {
				tk := pgque.NewTicker(tpool, pgque.WithTickInterval(time.Millisecond),
					pgque.WithMaintInterval(20*time.Millisecond), pgque.WithElectionInterval(10*time.Millisecond))
				slot.current.Store(tk)
				runCtx, cancel := context.WithCancel(tickersCtx)
				done := make(chan error, 1)
				go func() { done <- tk.Run(runCtx) }()
				stopping := false
				select {
				case <-tickersCtx.Done():
					stopping = true
				case <-slot.restart:
					restarts.Add(1)
				}
				cancel()
				if err := <-done; err != nil {
					fail("Ticker.Run = %v", err)
				}
				if stopping {
					return
				}
			}
		}()
	}
	chaos.Add(1)
	go func() { // kill the leader's session, or restart the leading Ticker
		defer chaos.Done()
		tick := time.NewTicker(150 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-chaosCtx.Done():
				return
			case <-tick.C:
			}
			if n%2 == 0 {
				for i, slot := range slots {
					if tk := slot.current.Load(); tk == nil || !tk.IsLeader() {
						continue
					}
					if _, err := pool.Exec(chaosCtx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
					                                   WHERE datname = current_database() AND application_name = $1`,
						fmt.Sprintf("stress-ticker-%d", i)); err == nil {
						kills.Add(1)
					} else if chaosCtx.Err() == nil {
						fail("killing the leader's session: %v", err)
					}
					break
				}
				continue
			}
			for _, slot := range slots {
				if tk := slot.current.Load(); tk != nil && tk.IsLeader() {
					select {
					case slot.restart <- struct{}{}:
					default:
					}
					break
				}
			}
		}
	}()
	for range rogues { // rogue tickers: ticker(), force_tick(), maint() and log rotations beside the leader
		chaos.Add(1)
		go func() {
			defer chaos.Done()
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-chaosCtx.Done():
					return
				case <-tick.C:
				}
				var err error
				switch {
				case n%3 == 0:
					_, err = client.ForceTick(chaosCtx, queue)
				case n%20 == 19:
					_, err = client.Maint(chaosCtx)
				case n%20 == 9:
					// Recycle the tick and consumer-state partitions far more
					// often than maint() does, while consumers move.
					_, err = pool.Exec(chaosCtx, `SELECT pgque.maint_rotate_logs('10 milliseconds')`)
				default:
					_, err = client.Tick(chaosCtx)
				}
				if err != nil {
					if chaosCtx.Err() == nil {
						// A deadlock's detail names the locks and statements.
						var pgErr *pgconn.PgError
						if errors.As(err, &pgErr) && pgErr.Detail != "" {
							err = fmt.Errorf("%w (detail: %s)", err, pgErr.Detail)
						}
						fail("rogue ticker: %v", err)
					}
					return
				}
				rogueCalls.Add(1)
			}
		}()
	}

	// Consumers.
	var producersDone atomic.Bool
	var committedCount atomic.Int64 // final once producersDone
	consumersCtx, stopConsumers := context.WithCancel(ctx)
	var consumersWG sync.WaitGroup
	defer func() { stopConsumers(); consumersWG.Wait() }()
	consumers := make([]*stressGroup, len(consumerNames))
	for i, name := range consumerNames {
		g := &stressGroup{name: name, acked: map[int64]int{}, ackedAt: map[int64]int{}, abandoned: map[int64]int{},
			abandonedBy: map[int64]string{}, workers: workerNames[name]}
		consumers[i] = g
		readers := g.workers
		if len(readers) == 0 {
			readers = []string{""}
		}
		for j, worker := range readers {
			// Every other reader takes its pieces straight from the event
			// tables (receive_query), whatever their size.
			rc := client
			if (i+j)%2 == 0 {
				rc = pgque.New(pool)
				pgque.SetDirectMin(rc, 1)
			}
			sc := &stressConsumer{
				name: name, worker: worker, lease: lease, queue: queue, client: rc, g: g,
				rng:  rand.New(rand.NewPCG(seed, uint64(100+10*i+j))),
				fail: fail,
				caughtUp: func(distinctAcked int) bool {
					return producersDone.Load() && int64(distinctAcked) >= committedCount.Load()
				},
			}
			lconn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := lconn.Exec(ctx, `LISTEN pgque_`+queue); err != nil {
				t.Fatal(err)
			}
			consumersWG.Add(1)
			go func() {
				defer consumersWG.Done()
				defer lconn.Close(context.Background())
				sc.run(consumersCtx, lconn)
			}()
		}
	}

	// Replicas: Consumers with default options sharing one consumer name,
	// stopped and started again all along.
	replicas := &stressReplicas{handled: map[int64][]stressHandling{}, cut: map[int64]bool{}, lost: map[int64]bool{},
		last: map[int64]bool{}}
	for r := range stressReplicaCount {
		consumersWG.Add(1)
		go func() {
			defer consumersWG.Done()
			replicas.run(consumersCtx, t, client, queue, rand.New(rand.NewPCG(seed, uint64(200+r))), func() bool {
				if !producersDone.Load() || int64(replicas.settled()) < committedCount.Load() {
					return false
				}
				// Also what settled cannot see (an ack that failed): run
				// until the consumer has nothing left.  A window that a
				// stopped replica still holds after this shows in the check
				// after the drain.
				left, err := client.Peek(consumersCtx, queue, replicaName, 1)
				return err == nil && len(left) == 0
			})
		}()
	}

	// Producers.
	ledger := &stressLedger{committed: map[int64]bool{}, rolledBack: map[int64]bool{}}
	var nextID atomic.Int64
	var batches, txs, rollbacks, repeatableReads, spanned, longTxs atomic.Int64
	produceUntil := time.Now().Add(produceFor)
	var producersWG sync.WaitGroup
	for p := range producers {
		producersWG.Add(1)
		go func() {
			defer producersWG.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(p)))
			newEvents := func(n int) ([]pgque.Event, []int64) {
				evs := make([]pgque.Event, n)
				ids := make([]int64, n)
				for i := range evs {
					ids[i] = nextID.Add(1)
					evs[i] = pgque.Event{Type: "stress", Payload: stressPayload{ID: ids[i]}}
				}
				return evs, ids
			}
			for !failed.Load() && time.Now().Before(produceUntil) && nextID.Load() < maxEvents {
				n := 1 + rng.IntN(20)
				if rng.IntN(4) == 0 { // send_batch, committed at once
					evs, ids := newEvents(n)
					if rng.IntN(3) == 0 { // mixed types and extras: the per-event path
						for i := range evs {
							if i%2 == 1 {
								evs[i].Type, evs[i].Extra1 = "stress.other", ptr("x")
							}
						}
					}
					if _, err := client.SendBatch(ctx, queue, evs); err != nil {
						fail("SendBatch: %v", err)
						return
					}
					ledger.record(ids, true)
					batches.Add(1)
					continue
				}
				// A transaction of n events, sometimes at REPEATABLE READ,
				// sometimes held open until the queue switched tables.
				opts := pgx.TxOptions{}
				if rng.IntN(4) == 0 {
					opts.IsoLevel = pgx.RepeatableRead
					repeatableReads.Add(1)
				}
				long := p < 2 && rng.IntN(5) == 0
				if long {
					n = max(n, 2)
					longTxs.Add(1)
				}
				tx, err := pool.BeginTx(ctx, opts)
				if err != nil {
					fail("begin: %v", err)
					return
				}
				evs, ids := newEvents(n)
				for i, ev := range evs {
					if long && i == n/2 {
						if waitForSwitch(ctx, client, queue, time.Second) {
							spanned.Add(1)
						}
					}
					if _, err := client.SendTx(ctx, tx, queue, ev); err != nil {
						fail("SendTx: %v", err)
						tx.Rollback(ctx) //nolint:errcheck
						return
					}
				}
				if rng.IntN(5) == 0 {
					if err := tx.Rollback(ctx); err != nil {
						fail("rollback: %v", err)
						return
					}
					ledger.record(ids, false)
					rollbacks.Add(1)
				} else {
					if err := tx.Commit(ctx); err != nil {
						fail("commit: %v", err)
						return
					}
					ledger.record(ids, true)
				}
				txs.Add(1)
			}
		}()
	}
	producersWG.Wait()
	committedCount.Store(int64(len(ledger.committed)))
	producersDone.Store(true)
	// The chaos goes on, while the consumers drain, until the rotations it
	// is there for happened: a fast run may produce its events first.
	for until := time.Now().Add(drainTimeout); !failed.Load() && time.Now().Before(until) &&
		(queueGen()-genBefore < 3 || logGen()-logGenBefore < 3); {
		time.Sleep(10 * time.Millisecond)
	}
	stopChaos()
	chaos.Wait()
	t.Logf("produced: %d ids, %d committed, %d rolled back; %d transactions (%d rolled back, %d at REPEATABLE READ, %d long of which %d spanned a table switch), %d SendBatch calls",
		nextID.Load(), len(ledger.committed), len(ledger.rolledBack), txs.Load(), rollbacks.Load(),
		repeatableReads.Load(), longTxs.Load(), spanned.Load(), batches.Load())
	t.Logf("chaos: %d leader sessions killed, %d leader Tickers restarted, %d rogue ticker/maint calls",
		kills.Load(), restarts.Load(), rogueCalls.Load())

	// Drain: the Tickers keep running until every consumer caught up.
	drained := make(chan struct{})
	go func() { consumersWG.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-failedCh:
		stopConsumers()
		<-drained
	case <-time.After(drainTimeout):
		fail("consumers did not catch up within %v of the end of production", drainTimeout)
		stopConsumers()
		<-drained
	}
	stopTickers()
	tickers.Wait()
	genAfter := queueGen()
	infoAfter, err := client.Queue(ctx, queue)
	if err != nil {
		t.Fatal(err)
	}

	// Nothing is left for anyone: after maintenance (which would move
	// retries, if any) and a tick, every consumer receives nothing.
	for range 2 {
		if _, err := client.Maint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.ForceTick(ctx, queue); err != nil {
		t.Fatal(err)
	}
	for _, sc := range consumers {
		var msgs []pgque.Message
		if len(sc.workers) > 0 {
			msgs, err = client.ReceiveAsWorker(ctx, queue, sc.name, "final", 1000, time.Minute)
		} else {
			msgs, err = client.Receive(ctx, queue, sc.name, 1000)
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) > 0 {
			var eg []string
			for _, m := range msgs[:min(len(msgs), 10)] {
				eg = append(eg, describeMsg(ledger, m))
			}
			fail("%s: %d messages received after catching up, e.g. %s", sc.name, len(msgs), strings.Join(eg, "; "))
		}
	}

	// The verdict.
	for _, sc := range consumers {
		t.Logf("%s: %d receives, %d batches abandoned (%d messages), %d restarts, %d lost acks, %d messages taken over",
			sc.name, sc.receives, sc.abandons, sumCounts(sc.abandoned), sc.restarts, sc.lostAcks, sc.takeovers)
		var missing, dup, foreign []int64
		for id := range ledger.committed {
			switch n := sc.acked[id]; {
			case n == 0:
				missing = append(missing, id)
			case n > 1:
				dup = append(dup, id)
			}
		}
		for _, m := range []map[int64]int{sc.acked, sc.abandoned} {
			for id := range m {
				if !ledger.committed[id] && !slices.Contains(foreign, id) {
					foreign = append(foreign, id)
				}
			}
		}
		report := func(what string, ids []int64, describe func(int64) string) {
			if len(ids) == 0 {
				return
			}
			slices.Sort(ids)
			var eg []string
			for _, id := range ids[:min(len(ids), 10)] {
				eg = append(eg, describe(id))
			}
			fail("%s: %d %s, e.g. %s", sc.name, len(ids), what, strings.Join(eg, "; "))
		}
		report("committed events never acknowledged (lost)", missing, func(id int64) string {
			return fmt.Sprintf("%d (abandoned %d times)", id, sc.abandoned[id])
		})
		report("events delivered again after being acknowledged (duplicates)", dup, func(id int64) string {
			return fmt.Sprintf("%d (acked %d times, abandoned %d times)", id, sc.acked[id], sc.abandoned[id])
		})
		report("events received that were not committed", foreign, func(id int64) string {
			return describeEvent(ledger, id)
		})
		if sc.abandons == 0 && !failed.Load() {
			t.Errorf("%s never abandoned a batch: the test did not exercise redelivery", sc.name)
		}
		if len(sc.workers) > 0 && sc.takeovers == 0 && !failed.Load() {
			t.Errorf("%s: no worker got messages another one had abandoned: the test did not exercise takeover", sc.name)
		}
	}

	replicas.verdict(t, fail, ledger)
	if msgs, err := client.Peek(ctx, queue, replicaName, 10); err != nil || len(msgs) > 0 {
		fail("%s: %d messages left after catching up (%v), e.g. %+v", replicaName, len(msgs), err, msgs)
	}

	// The adversity really happened.
	if failed.Load() {
		return
	}
	if genAfter-genBefore < 3 {
		t.Errorf("queue generation went from %d to %d; want at least 3 table switches (every table reused)", genBefore, genAfter)
	}
	if logSwitches := logGen() - logGenBefore; logSwitches < 3 {
		t.Errorf("%d tick/consumer-state log rotations; want at least 3 (every partition recycled)", logSwitches)
	}
	if !infoAfter.SwitchTime.After(infoBefore.SwitchTime) {
		t.Errorf("Queue().SwitchTime did not move (%v, then %v)", infoBefore.SwitchTime, infoAfter.SwitchTime)
	}
	if len(ledger.rolledBack) == 0 || len(ledger.committed) == 0 {
		t.Errorf("%d committed, %d rolled back; want both", len(ledger.committed), len(ledger.rolledBack))
	}
	if kills.Load() == 0 || restarts.Load() == 0 {
		t.Errorf("%d leader sessions killed and %d leaders restarted; want both", kills.Load(), restarts.Load())
	}
	t.Logf("rotation: %d table switches (generation %d to %d), %d log rotations",
		genAfter-genBefore, genBefore, genAfter, logGen()-logGenBefore)
}

type stressPayload struct {
	ID int64 `json:"id"`
}

// stressLedger is what the producers know for sure.
type stressLedger struct {
	mu         sync.Mutex
	committed  map[int64]bool
	rolledBack map[int64]bool
}

func (l *stressLedger) record(ids []int64, committed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		if committed {
			l.committed[id] = true
		} else {
			l.rolledBack[id] = true
		}
	}
}

// describeMsg says what the ledger knows of a received message's event.
func describeMsg(l *stressLedger, m pgque.Message) string {
	var p stressPayload
	if err := json.Unmarshal([]byte(m.Payload), &p); err != nil {
		return fmt.Sprintf("message %d with a foreign payload", m.MsgID)
	}
	return describeEvent(l, p.ID)
}

// describeEvent says what the ledger knows of an event id.
func describeEvent(l *stressLedger, id int64) string {
	switch {
	case l.committed[id]:
		return fmt.Sprintf("committed event %d", id)
	case l.rolledBack[id]:
		return fmt.Sprintf("rolled-back event %d", id)
	default:
		return fmt.Sprintf("event %d, never sent", id)
	}
}

func sumCounts(m map[int64]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// waitForSwitch waits until the queue switches tables (its SwitchTime
// moves), for at most d, and reports whether it did.  A producer calls it
// with its transaction open, so that the transaction spans the switch.
func waitForSwitch(ctx context.Context, client *pgque.Client, queue string, d time.Duration) bool {
	before, err := client.Queue(ctx, queue)
	if err != nil {
		return false
	}
	deadline := time.Now().Add(d)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		<-tick.C
		now, err := client.Queue(ctx, queue)
		if err != nil {
			return false
		}
		if !now.SwitchTime.Equal(before.SwitchTime) {
			return true
		}
	}
	return false
}

// stressGroup is what the readers of one consumer name received: one plain
// reader, or cooperative workers, which share it under mu.
type stressGroup struct {
	name    string
	workers []string // worker names; none: read plainly

	mu          sync.Mutex
	acked       map[int64]int    // event id -> deliveries acknowledged
	ackedAt     map[int64]int    // event id -> ackSeq just after its first ack returned
	ackSeq      int              // counts acks that returned, in the order they did
	abandoned   map[int64]int    // event id -> deliveries abandoned (or lost with a lease)
	abandonedBy map[int64]string // event id -> the worker that last abandoned it

	receives, abandons, restarts, lostAcks, takeovers int // counts for the log
}

// stressConsumer is one reader of a consumer name (or one worker of it).  It
// receives and acknowledges with random batch sizes, and crashes now and
// then: it abandons a batch it received without acking it and starts over
// under the same name, as a restarted process would.  A crashed worker stays
// down for two leases, so that another worker takes its batch over.
type stressConsumer struct {
	name, worker, queue string
	lease               time.Duration
	client              *pgque.Client
	g                   *stressGroup
	rng                 *rand.Rand
	fail                func(format string, args ...any)
	caughtUp            func(distinctAcked int) bool
}

// run consumes until the consumer caught up with everything committed, or
// ctx ends.  Between empty receives it waits for the queue's NOTIFY on
// lconn, or 20 ms.
func (sc *stressConsumer) run(ctx context.Context, lconn *pgx.Conn) {
	who := sc.name
	if sc.worker != "" {
		who += "/" + sc.worker
	}
	g := sc.g
	for {
		// One life of the consumer process: a random number of batch
		// pieces acknowledged, then a crash with one received and not acked.
		life := sc.rng.IntN(30)
		for handled := 0; ; {
			if ctx.Err() != nil {
				return
			}
			maxMsgs := 1 + sc.rng.IntN(50)
			var msgs []pgque.Message
			var err error
			g.mu.Lock()
			acksBefore := g.ackSeq
			g.mu.Unlock()
			if sc.worker != "" {
				msgs, err = sc.client.ReceiveAsWorker(ctx, sc.queue, sc.name, sc.worker, maxMsgs, sc.lease)
			} else {
				msgs, err = sc.client.Receive(ctx, sc.queue, sc.name, maxMsgs)
			}
			if err != nil {
				if ctx.Err() == nil {
					sc.fail("%s: receive: %v", who, err)
				}
				return
			}
			if len(msgs) == 0 {
				g.mu.Lock()
				done := sc.caughtUp(len(g.acked))
				g.mu.Unlock()
				if done {
					return
				}
				wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
				_, err := lconn.WaitForNotification(wctx)
				cancel()
				if err != nil && wctx.Err() == nil {
					sc.fail("%s: wait for notification: %v", who, err)
					return
				}
				continue
			}
			ids := make([]int64, len(msgs))
			for i, m := range msgs {
				var p stressPayload
				if err := json.Unmarshal([]byte(m.Payload), &p); err != nil || p.ID == 0 {
					sc.fail("%s: message %d has payload %s", who, m.MsgID, m.Payload)
					return
				}
				if m.BatchID != msgs[0].BatchID || m.RetryCount != nil {
					sc.fail("%s: message %+v in a piece of batch %d", who, m, msgs[0].BatchID)
					return
				}
				ids[i] = p.ID
			}
			if len(msgs) > maxMsgs {
				sc.fail("%s: receive(max %d) returned %d messages", who, maxMsgs, len(msgs))
				return
			}
			g.mu.Lock()
			g.receives++
			for _, id := range ids {
				// Handed out after its ack returned: a duplicate.  A worker's
				// receive may overlap another worker's takeover and ack of
				// the same rows (its lease ran out while its receive was under
				// way); its own ack then fails, or the verdict sees two acks.
				if g.acked[id] > 0 && (sc.worker == "" || g.ackedAt[id] <= acksBefore) {
					g.mu.Unlock()
					sc.fail("%s: event %d delivered again after it was acknowledged", who, id)
					return
				}
				if by := g.abandonedBy[id]; by != "" && by != sc.worker {
					g.takeovers++
					delete(g.abandonedBy, id)
				}
			}
			g.mu.Unlock()
			if handled == life { // crash
				g.mu.Lock()
				for _, id := range ids {
					g.abandoned[id]++
					g.abandonedBy[id] = sc.worker
				}
				g.abandons++
				g.mu.Unlock()
				break
			}
			ok, err := sc.client.AckResult(ctx, msgs[0].BatchID)
			lost := sc.worker != "" && errors.Is(err, pgque.ErrTakenOver)
			if (err != nil && !lost) || (!ok && !lost) {
				if ctx.Err() == nil {
					sc.fail("%s: ack(%d) = %v, %v; want true, or ErrTakenOver for a worker", who, msgs[0].BatchID, ok, err)
				}
				return
			}
			g.mu.Lock()
			if ok {
				g.ackSeq++
				for _, id := range ids {
					if g.acked[id]++; g.acked[id] == 1 {
						g.ackedAt[id] = g.ackSeq
					}
				}
			} else {
				// The lease ran out meanwhile and another worker has the
				// batch now: these messages are delivered again there.
				for _, id := range ids {
					g.abandoned[id]++
					g.abandonedBy[id] = sc.worker
				}
				g.lostAcks++
			}
			g.mu.Unlock()
			handled++
		}
		g.mu.Lock()
		g.restarts++
		g.mu.Unlock()
		if sc.worker != "" {
			// Down for longer than the lease: the others may take over.
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * sc.lease):
			}
		}
	}
}

// The replicas: Consumers with default options (each run a cooperative
// worker of its own) sharing consumer replicaName.
const (
	replicaName        = "cr"
	stressReplicaCount = 3
)

// stressHandling is one handling of an event by a replica.
type stressHandling struct {
	run   int   // which run of a replica
	piece int64 // Message.BatchID
}

// stressReplicas is what the replicas handled.  A piece counts as not
// acknowledged (its events may come again) when a handler of it saw its
// context cancelled (a stop cut it short, or the batch was taken over),
// when its Consumer logged that it could not acknowledge it or lost it, or
// when it was the last piece of a run.
type stressReplicas struct {
	mu      sync.Mutex
	runs    int
	handled map[int64][]stressHandling // event id -> handlings, in order
	cut     map[int64]bool             // pieces a handler of which was cancelled
	lost    map[int64]bool             // pieces logged as not acknowledged
	last    map[int64]bool             // the last piece of each run
	stops   int
}

// settled counts the events last handled in a piece that was neither cut
// short nor logged as not acknowledged: handled, and acknowledged.  Until
// every committed event is, the replicas go on, since an event handled in
// a piece cut short comes again to whoever runs next.
func (r *stressReplicas) settled() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, hs := range r.handled {
		if p := hs[len(hs)-1].piece; !r.cut[p] && !r.lost[p] {
			n++
		}
	}
	return n
}

// run starts one replica again and again, for random lives, some ending
// with a shutdown timeout that cuts the piece in hand short, until done.
func (r *stressReplicas) run(ctx context.Context, t *testing.T, client *pgque.Client, queue string, rng *rand.Rand,
	done func() bool) {
	for ctx.Err() == nil && !done() {
		r.mu.Lock()
		r.runs++
		run := r.runs
		r.mu.Unlock()
		lastPiece := int64(0)
		opts := []pgque.Option{pgque.WithLogger(slog.New(stressLogTap{r}))}
		if rng.IntN(2) == 0 {
			opts = append(opts, pgque.WithShutdownTimeout(time.Millisecond))
		}
		lifetime := time.Duration(100+rng.IntN(700)) * time.Millisecond
		// The handler's own generator: it runs while this goroutine waits.
		hrng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		c := client.NewConsumer(queue, replicaName, opts...)
		c.Handle("*", func(hctx context.Context, m pgque.Message) error {
			var p stressPayload
			if err := json.Unmarshal([]byte(m.Payload), &p); err != nil {
				return err
			}
			if hrng.IntN(20) == 0 {
				time.Sleep(time.Duration(hrng.IntN(5)) * time.Millisecond)
			}
			// The handling and whether it was cut short are recorded
			// together, so that settled never counts an event of a piece
			// about to be marked cut.
			r.mu.Lock()
			defer r.mu.Unlock()
			r.handled[p.ID] = append(r.handled[p.ID], stressHandling{run: run, piece: m.BatchID})
			lastPiece = m.BatchID
			if hctx.Err() != nil {
				r.cut[m.BatchID] = true
				return hctx.Err()
			}
			return nil
		})
		life, stop := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- c.Start(life) }()
		timer := time.NewTimer(lifetime)
		for stopped := false; !stopped; {
			select {
			case <-timer.C:
				stopped = true
			case <-ctx.Done():
				stopped = true
			case <-time.After(20 * time.Millisecond):
				stopped = done()
			}
		}
		timer.Stop()
		stop()
		if err := <-errc; err != nil {
			t.Errorf("replica run %d: %v", run, err)
			return
		}
		r.mu.Lock()
		r.last[lastPiece] = true
		r.stops++
		r.mu.Unlock()
	}
}

// verdict checks what the replicas handled: every committed event at least
// once, nothing else, and again only for events whose earlier handling was
// in a piece that was not acknowledged.
func (r *stressReplicas) verdict(t *testing.T, fail func(string, ...any), l *stressLedger) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var missing, foreign, unexplained []int64
	dups := 0
	for id := range l.committed {
		if len(r.handled[id]) == 0 {
			missing = append(missing, id)
		}
	}
	for id, hs := range r.handled {
		if !l.committed[id] {
			foreign = append(foreign, id)
		}
		for _, h := range hs[:len(hs)-1] {
			dups++
			if !r.cut[h.piece] && !r.lost[h.piece] && !r.last[h.piece] {
				unexplained = append(unexplained, id)
			}
		}
	}
	t.Logf("%s: %d runs of %d replicas, %d handlings again of %d events, %d pieces cut short, %d logged lost",
		replicaName, r.runs, stressReplicaCount, dups, len(r.handled), len(r.cut), len(r.lost))
	for what, ids := range map[string][]int64{
		"committed events never handled (lost)":                         missing,
		"events handled that were not committed":                        foreign,
		"events handled again after a piece that had been acknowledged": unexplained,
	} {
		if len(ids) > 0 {
			slices.Sort(ids)
			fail("%s: %d %s, e.g. %v", replicaName, len(ids), what, ids[:min(len(ids), 10)])
		}
	}
	if r.stops < stressReplicaCount {
		t.Errorf("%s: %d replica stops; the test did not exercise them", replicaName, r.stops)
	}
}

// stressLogTap records the pieces a replica's Consumer logged as not
// acknowledged (lost to another worker, or an ack that failed).
type stressLogTap struct{ r *stressReplicas }

func (stressLogTap) Enabled(context.Context, slog.Level) bool { return true }

func (h stressLogTap) Handle(_ context.Context, rec slog.Record) error {
	if !strings.Contains(rec.Message, "taken over") && !strings.Contains(rec.Message, "acknowledge") &&
		!strings.Contains(rec.Message, "delivered again") {
		return nil
	}
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "batch_id" {
			h.r.mu.Lock()
			h.r.lost[a.Value.Int64()] = true
			h.r.mu.Unlock()
		}
		return true
	})
	return nil
}

func (h stressLogTap) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h stressLogTap) WithGroup(string) slog.Handler      { return h }
