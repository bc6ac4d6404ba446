package bench

// Shared machinery of the load scenarios (latency, xmin, memory): a
// fixed-rate producer, a commit-to-handler latency recorder, latency
// summaries, a sampler of pgque's tables, and a small task group that starts
// goroutines and stops them cleanly.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/pgque"
)

// benchTickInterval is the Ticker's tick interval in the load scenarios:
// pgque's default (pgque.WithTickInterval), passed explicitly so that the
// reported value is the one used.  Not tuned for the benchmark.
const benchTickInterval = pgque.DefaultTickInterval

// benchPollInterval is the consumers' poll fallback: pgque's default
// (pgque.WithPollInterval).  Wake-ups come from LISTEN/NOTIFY; a missed
// notification would show as a latency of about this much.
const benchPollInterval = time.Second

// benchConsumer is the consumer name of the load scenarios.
const benchConsumer = "bench"

// loadPayload returns a JSON object of size bytes (at least 8).
func loadPayload(size int) json.RawMessage {
	const frame = len(`{"p":""}`)
	return json.RawMessage(`{"p":"` + strings.Repeat("x", max(size-frame, 0)) + `"}`)
}

// openLoadPool opens a pool of at most conns connections on dsn, separate
// from the Env's pool so that producers, consumers and samplers do not wait
// for each other's connections.  A non-nil timer times pgque's calls on
// every connection made from the pool's configuration (which includes the
// Ticker's and the listener's of a Consumer using the pool).
func openLoadPool(ctx context.Context, dsn string, conns int, timer *callTimer) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(max(conns, 1))
	if timer != nil {
		cfg.ConnConfig.Tracer = timer
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// setupQueue creates queue, subscribes the bench consumer (so that it gets
// every event sent from now on) and applies settings (name, value pairs).
func setupQueue(ctx context.Context, client *pgque.Client, queue string, settings ...string) error {
	if _, err := client.CreateQueue(ctx, queue); err != nil {
		return err
	}
	for i := 0; i+1 < len(settings); i += 2 {
		if err := client.SetQueueConfig(ctx, queue, settings[i], settings[i+1]); err != nil {
			return err
		}
	}
	_, err := client.Subscribe(ctx, queue, benchConsumer)
	return err
}

// loadClock gives every timestamp of a scenario as a monotonic offset from
// one base, so commit and handler times compare exactly.
type loadClock struct{ base time.Time }

func newLoadClock() loadClock          { return loadClock{base: time.Now()} }
func (c loadClock) now() time.Duration { return time.Since(c.base) }

// --- tasks ---------------------------------------------------------------

// task is a goroutine of a scenario (producer, consumer, sampler, ...).
type task struct {
	name    string
	cancel  context.CancelFunc
	done    chan struct{}
	err     error
	stopped atomic.Bool
}

// stop cancels the task and waits for it; it returns the task's error.
// Calling it again returns the same error.
func (t *task) stop() error {
	t.stopped.Store(true)
	t.cancel()
	<-t.done
	return t.err
}

// taskGroup runs tasks and notices when one ends on its own, which is a
// failure of the scenario (an error, or a consumer that stopped).
type taskGroup struct {
	exited chan *task
	tasks  []*task
}

func newTaskGroup() *taskGroup { return &taskGroup{exited: make(chan *task, 64)} }

// start runs fn in a goroutine with a context of its own, derived from ctx.
func (g *taskGroup) start(ctx context.Context, name string, fn func(context.Context) error) *task {
	tctx, cancel := context.WithCancel(ctx)
	t := &task{name: name, cancel: cancel, done: make(chan struct{})}
	g.tasks = append(g.tasks, t)
	go func() {
		defer func() {
			close(t.done)
			g.exited <- t
		}()
		t.err = fn(tctx)
	}()
	return t
}

// stopAll stops every task, newest first, and waits for them.
func (g *taskGroup) stopAll() {
	for _, t := range slices.Backward(g.tasks) {
		t.stop()
	}
}

// wait waits for d, calling progress (if not nil) every progressEvery.  It
// returns early with an error when ctx ends or a task that was not stopped
// ends.
func (g *taskGroup) wait(ctx context.Context, d, progressEvery time.Duration, progress func()) error {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	var tick <-chan time.Time
	if progress != nil && progressEvery > 0 {
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case t := <-g.exited:
			if t.stopped.Load() {
				continue
			}
			if t.err != nil {
				return fmt.Errorf("%s: %w", t.name, t.err)
			}
			return fmt.Errorf("%s stopped unexpectedly", t.name)
		case <-tick:
			progress()
		case <-deadline.C:
			return nil
		}
	}
}

// runConsumer is a task function running c until its context ends.
func runConsumer(c *pgque.Consumer) func(context.Context) error {
	return func(ctx context.Context) error {
		err := c.Start(ctx)
		if err == nil && ctx.Err() == nil {
			return errors.New("Start returned before its context ended")
		}
		return err
	}
}

// --- fixed-rate producer ---------------------------------------------------

// rateProducer sends one event per transaction (pgque.send in autocommit)
// at a fixed offered rate, spread over several connections.  Each worker
// follows an absolute schedule (start + k/rate), so slow sends do not make
// the rate drift; a worker that falls more than a second behind drops the
// slots it missed instead of bursting to catch up (counted in missed).
type rateProducer struct {
	client *pgque.Client // its pool should have at least workers connections
	queue  string
	// queues, when set, replaces queue: the sends go round-robin over them,
	// and onCommit gets each event's spreadKey instead of its id.
	queues   []string
	rate     float64 // events/s, all workers together
	workers  int
	event    pgque.Event
	clock    loadClock
	onCommit func(id int64, at time.Duration) // right after the commit returned

	sent   atomic.Int64
	missed atomic.Int64
	turn   atomic.Int64 // sends started, for queues
}

// sendTimeout bounds one send of the fixed-rate producer.
const sendTimeout = 30 * time.Second

// run sends until ctx ends, letting sends in flight finish; it returns the
// first send error, if any.
func (p *rateProducer) run(ctx context.Context) error {
	workers := max(p.workers, 1)
	step := time.Duration(float64(time.Second) * float64(workers) / p.rate)
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for w := range workers {
		wg.Go(func() {
			next := start.Add(time.Duration(float64(time.Second) * float64(w) / p.rate))
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for {
				if d := time.Until(next); d > 0 {
					timer.Reset(d)
					select {
					case <-ctx.Done():
						return
					case <-timer.C:
					}
				} else if ctx.Err() != nil {
					return
				}
				// Not cancelled with ctx: a send that committed must be
				// recorded, or its delivery would look like a duplicate.
				sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
				queue, qi := p.queue, 0
				if len(p.queues) > 0 {
					qi = int((p.turn.Add(1) - 1) % int64(len(p.queues)))
					queue = p.queues[qi]
				}
				id, err := p.client.Send(sctx, queue, p.event)
				scancel()
				at := p.clock.now()
				if err != nil {
					once.Do(func() { firstErr = err })
					cancel()
					return
				}
				if len(p.queues) > 0 {
					id = spreadKey(id, qi, len(p.queues))
				}
				p.sent.Add(1)
				if p.onCommit != nil {
					p.onCommit(id, at)
				}
				next = next.Add(step)
				if late := time.Since(next); late > time.Second {
					n := late / step
					p.missed.Add(int64(n))
					next = next.Add(n * step)
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// --- latency recording -----------------------------------------------------

// latPair is one event's commit time (as the producer saw its commit
// return) and the time its handler ran.
type latPair struct{ commit, handled time.Duration }

func (p latPair) latency() time.Duration { return max(p.handled-p.commit, 0) }

// latencyRecorder pairs commit and handler times by event id.  Either may
// come first: a tick, a NOTIFY and a receive can beat the producer's own
// goroutine after its commit, so a handler time without a commit time is
// kept until the commit is recorded.
type latencyRecorder struct {
	clock loadClock

	mu      sync.Mutex
	commits map[int64]time.Duration // committed, not handled yet
	early   map[int64]time.Duration // handled before the commit was recorded (or duplicates)
	pairs   []latPair               // in the order they were completed
	early1  int                     // pairs completed by committed(): handler ran first
	seen    idSet                   // ids handled so far
	dups    int                     // deliveries of an id handled before

	handledN atomic.Int64
}

func newLatencyRecorder(c loadClock) *latencyRecorder {
	return &latencyRecorder{clock: c, commits: map[int64]time.Duration{}, early: map[int64]time.Duration{}}
}

func (r *latencyRecorder) committed(id int64, at time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.early[id]; ok {
		delete(r.early, id)
		r.pairs = append(r.pairs, latPair{commit: at, handled: h})
		r.early1++
		return
	}
	r.commits[id] = at
}

// handled is the handler: it records that msg reached it now.
func (r *latencyRecorder) handled(_ context.Context, msg pgque.Message) error {
	at := r.clock.now()
	r.handledN.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.seen.add(msg.MsgID) {
		r.dups++
		return nil
	}
	if c, ok := r.commits[msg.MsgID]; ok {
		delete(r.commits, msg.MsgID)
		r.pairs = append(r.pairs, latPair{commit: c, handled: at})
		return nil
	}
	r.early[msg.MsgID] = at
	return nil
}

// pending returns how many committed events were not handled yet.
func (r *latencyRecorder) pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.commits)
}

// pendingIn counts the committed, unhandled events committed in [from, to).
func (r *latencyRecorder) pendingIn(from, to time.Duration) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.commits {
		if c >= from && c < to {
			n++
		}
	}
	return n
}

// unmatched returns how many events were handled whose commit was never
// recorded, and how many deliveries were duplicates.
func (r *latencyRecorder) unmatched() (noCommit, dups int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.early), r.dups
}

// idSet is a set of non-negative event ids (dense: they come from one
// sequence), one bit each.
type idSet struct{ bits []uint64 }

// add adds id and reports whether it was new.
func (s *idSet) add(id int64) bool {
	if id < 0 {
		return true
	}
	w, b := int(id/64), uint(id%64)
	if w >= len(s.bits) {
		s.bits = append(s.bits, make([]uint64, max(w+1, 2*len(s.bits))-len(s.bits))...)
	}
	if s.bits[w]&(1<<b) != 0 {
		return false
	}
	s.bits[w] |= 1 << b
	return true
}

// completed returns how many pairs were completed so far.
func (r *latencyRecorder) completed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pairs)
}

// since returns the pairs completed since index i, and the new index.
func (r *latencyRecorder) since(i int) ([]latPair, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pairs[min(i, len(r.pairs)):]), len(r.pairs)
}

// drain waits until every committed event was handled, or timeout.
func (r *latencyRecorder) drain(ctx context.Context, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for r.pending() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

// latenciesIn returns the latencies of the pairs committed in [from, to).
func latenciesIn(pairs []latPair, from, to time.Duration) []time.Duration {
	var ds []time.Duration
	for _, p := range pairs {
		if p.commit >= from && p.commit < to {
			ds = append(ds, p.latency())
		}
	}
	return ds
}

// latSummary summarizes latencies.
type latSummary struct {
	n                       int
	mean, p50, p95, p99, mx time.Duration
}

func summarize(ds []time.Duration) latSummary {
	if len(ds) == 0 {
		return latSummary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return latSummary{
		n:    len(s),
		mean: sum / time.Duration(len(s)),
		p50:  durQuantile(s, 0.50),
		p95:  durQuantile(s, 0.95),
		p99:  durQuantile(s, 0.99),
		mx:   s[len(s)-1],
	}
}

func (s latSummary) String() string {
	return fmt.Sprintf("p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms (n=%d)",
		durMs(s.p50), durMs(s.p95), durMs(s.p99), durMs(s.mx), s.n)
}

// addTo adds the summary's p50, p95, p99 and max to res, in milliseconds,
// each named prefix plus the statistic.
func (s latSummary) addTo(res *Result, prefix string) {
	res.Add(prefix+"p50", durMs(s.p50), "ms")
	res.Add(prefix+"p95", durMs(s.p95), "ms")
	res.Add(prefix+"p99", durMs(s.p99), "ms")
	res.Add(prefix+"max", durMs(s.mx), "ms")
}

// durQuantile returns the nearest-rank q-quantile of sorted durations.
func durQuantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// durMs returns d in milliseconds, rounded to microseconds.
func durMs(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// round2 rounds to two decimals (for ratios and rates in metrics).
func round2(x float64) float64 { return math.Round(x*100) / 100 }

// --- NOTIFY log ------------------------------------------------------------

// notifyLog records when the queue's tick notifications arrive, on a
// connection of its own, to split latency into commit → NOTIFY (waiting for
// the next ticker() call, the tick transaction, notification delivery) and
// NOTIFY → handler (the consumer's receive round trip and dispatch).
type notifyLog struct {
	mu sync.Mutex
	at []time.Duration // in arrival order, so sorted
}

// listenTicks LISTENs on queue's channel before returning, then logs
// notifications in a task until the task is stopped.
func listenTicks(ctx context.Context, g *taskGroup, dsn, queue string, clock loadClock) (*notifyLog, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{"pgque_" + queue}.Sanitize()); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	l := &notifyLog{}
	g.start(ctx, "notification listener", func(ctx context.Context) error {
		defer conn.Close(context.WithoutCancel(ctx))
		for {
			_, err := conn.WaitForNotification(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				return err
			}
			at := clock.now()
			l.mu.Lock()
			l.at = append(l.at, at)
			l.mu.Unlock()
		}
	})
	return l, nil
}

// split returns, for the pairs whose commit was followed by a notification
// no later than their handler, the two parts of their latency: commit → the
// first NOTIFY after it, and that NOTIFY → handler.  It is approximate: the
// first notification after a commit may come from a tick whose snapshot
// was taken just before the commit, in which case the wait for the next one
// is counted in the second part.
func (l *notifyLog) split(pairs []latPair) (toNotify, toHandler []time.Duration) {
	l.mu.Lock()
	at := slices.Clone(l.at)
	l.mu.Unlock()
	for _, p := range pairs {
		i := sort.Search(len(at), func(i int) bool { return at[i] >= p.commit })
		if i == len(at) || at[i] > p.handled {
			continue
		}
		toNotify = append(toNotify, at[i]-p.commit)
		toHandler = append(toHandler, p.handled-at[i])
	}
	return toNotify, toHandler
}

// count returns how many notifications arrived in [from, to).
func (l *notifyLog) count(from, to time.Duration) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.at {
		if a >= from && a < to {
			n++
		}
	}
	return n
}

// --- table statistics ------------------------------------------------------

// relStat is one table of schema pgque at one moment.
type relStat struct {
	name  string
	event bool  // an event table (pgque.event_<queue id>_<n>, pgque.event_free_<slot>)
	dead  int64 // pg_stat_user_tables.n_dead_tup
	live  int64 // pg_stat_user_tables.n_live_tup
	size  int64 // pg_total_relation_size: heap, indexes, TOAST
	vacs  int64 // vacuum_count + autovacuum_count
	upd   int64 // n_tup_upd
	hot   int64 // n_tup_hot_upd
	del   int64 // n_tup_del
}

// relSample is every table of schema pgque at one moment.
type relSample struct {
	at   time.Duration
	rels []relStat
}

func (s relSample) get(name string) (relStat, bool) {
	for _, r := range s.rels {
		if r.name == name {
			return r, true
		}
	}
	return relStat{}, false
}

// relStatsSQL lists the tables of schema pgque that have storage (not a
// partitioned parent).  Event tables are pgque.event_<queue id>_<n> (the
// partitions of pgque.event, or stand-alone tables in older engines) and
// free partitions kept for reuse, pgque.event_free_<slot>.
const relStatsSQL = `
SELECT c.relname::text,
       c.relname ~ '^event_([0-9]+_[0-9]+|free_[0-9]+)$',
       coalesce(s.n_dead_tup, 0),
       coalesce(s.n_live_tup, 0),
       pg_total_relation_size(c.oid),
       coalesce(s.vacuum_count + s.autovacuum_count, 0),
       coalesce(s.n_tup_upd, 0),
       coalesce(s.n_tup_hot_upd, 0),
       coalesce(s.n_tup_del, 0)
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 WHERE n.nspname = 'pgque' AND c.relkind = 'r'
 ORDER BY c.relname`

// sampleRelations reads the statistics of every table in schema pgque.
// The statistics are what backends have flushed so far: in PostgreSQL 15 a
// backend flushes its counters at the end of a transaction at most once a
// second, so they lag by about a second.  pg_stat_clear_snapshot() drops
// any cached statistics snapshot first.
func sampleRelations(ctx context.Context, pool *pgxpool.Pool, at time.Duration) (relSample, error) {
	s := relSample{at: at}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, relStatsSQL)
		if err != nil {
			return err
		}
		s.rels, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (relStat, error) {
			var r relStat
			err := row.Scan(&r.name, &r.event, &r.dead, &r.live, &r.size, &r.vacs, &r.upd, &r.hot, &r.del)
			return r, err
		})
		return err
	})
	return s, err
}

// seriesNote renders one table's dead tuples over the samples, thinned to
// at most points values, for the notes.
func seriesNote(samples []relSample, name string, points int) string {
	step := max(1, (len(samples)+points-1)/points)
	var b strings.Builder
	fmt.Fprintf(&b, "%s dead tuples every %d sample(s):", name, step)
	for i := 0; i < len(samples); i += step {
		r, _ := samples[i].get(name)
		fmt.Fprintf(&b, " %d", r.dead)
	}
	return b.String()
}

// --- call timing -------------------------------------------------------------

// callTimer is a pgx tracer that times pgque's calls by kind: the Ticker's
// ticker() and maint(), the consumer's receive (with rows, or empty) and
// ack, and send.  Each call is kept with the time it ended.
type callTimer struct {
	clock loadClock
	mu    sync.Mutex
	calls map[string][]timedCall
}

type timedCall struct{ end, took time.Duration }

type callStartKey struct{}

type callStart struct {
	sql string
	at  time.Duration
}

// Kinds of calls, in the order they are reported.
var callKinds = []string{"send", "ticker()", "receive", "empty receive", "ack", "maint()"}

func newCallTimer(c loadClock) *callTimer {
	return &callTimer{clock: c, calls: map[string][]timedCall{}}
}

func (t *callTimer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, callStartKey{}, callStart{sql: d.SQL, at: t.clock.now()})
}

func (t *callTimer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	s, ok := ctx.Value(callStartKey{}).(callStart)
	if !ok || d.Err != nil {
		return
	}
	kind := callKind(s.sql, d.CommandTag)
	if kind == "" {
		return
	}
	end := t.clock.now()
	t.mu.Lock()
	t.calls[kind] = append(t.calls[kind], timedCall{end: end, took: end - s.at})
	t.mu.Unlock()
}

func callKind(sql string, tag pgconn.CommandTag) string {
	switch {
	case strings.Contains(sql, "pgque.receive("):
		if tag.RowsAffected() > 0 {
			return "receive"
		}
		return "empty receive"
	case strings.Contains(sql, "pgque.ack("):
		return "ack"
	case strings.Contains(sql, "pgque.ticker()"):
		return "ticker()"
	case strings.Contains(sql, "pgque.maint()"):
		return "maint()"
	case strings.Contains(sql, "pgque.send("):
		return "send"
	}
	return ""
}

// in returns the durations of the calls of kind that ended in [from, to).
func (t *callTimer) in(kind string, from, to time.Duration) []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ds []time.Duration
	for _, c := range t.calls[kind] {
		if c.end >= from && c.end < to {
			ds = append(ds, c.took)
		}
	}
	return ds
}

// report describes the calls that ended in [from, to): per kind, how many
// per second and how long they took.
func (t *callTimer) report(from, to time.Duration) string {
	secs := (to - from).Seconds()
	var parts []string
	for _, kind := range callKinds {
		ds := t.in(kind, from, to)
		if len(ds) == 0 {
			continue
		}
		s := summarize(ds)
		parts = append(parts, fmt.Sprintf("%s %.0f/s p50 %.2f p99 %.2f max %.2f ms",
			kind, float64(len(ds))/secs, durMs(s.p50), durMs(s.p99), durMs(s.mx)))
	}
	return strings.Join(parts, "; ")
}
