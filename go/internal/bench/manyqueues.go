package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/pgque"
)

// manyQueuesBase is the queue count that the periodic work at --queues
// idle queues is compared with.
const manyQueuesBase = 10

// manyQueuesLatencyQueues is how many queues the latency phase spreads its
// events over (fewer when fewer were created): one Consumer each, all on one
// Client.  Not the 1,000 of pgque's target: on 2 cores, 1,000 idle Consumers
// polling once a second saturate the server by themselves (a run with 1,000
// achieved 320 of 1,000 events/s, p50 3 s; docs/benchmarks.md).
const manyQueuesLatencyQueues = 100

// manyQueuesEdge is how many creates at each end of the creation phase are
// averaged (fewer when there are not twice as many).
const manyQueuesEdge = 100

// tickerAppName is the application_name of the scenario's Ticker, by which
// its backend is found in pg_stat_activity.
const tickerAppName = "pgque-bench-ticker"

// clockTicks is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// runManyQueues measures how pgque's periodic work and delivery scale with
// the number of idle queues, as ratios within one database: create_queue at
// the start and at the end of creating --queues queues one per transaction,
// ticker() and maint() at 10 and at --queues queues, the CPU a Ticker's
// backend uses at its default cadence, and commit → handler latency with
// events spread over many queues.
func runManyQueues(ctx context.Context, env *Env) (Result, error) {
	res := Result{Scenario: "many-queues"}
	total := max(env.Queues, manyQueuesBase+1)
	phase := min(max(env.Duration/3, 200*time.Millisecond), 3*time.Second).Round(time.Millisecond)

	conn, err := pgx.Connect(ctx, env.DSN)
	if err != nil {
		return res, err
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var creates []time.Duration
	create := func(upTo int) error {
		for len(creates) < upTo {
			name := manyQueueName(len(creates))
			start := time.Now()
			if _, err := env.Client.CreateQueue(ctx, name); err != nil {
				return fmt.Errorf("create_queue %s (queue %d): %w", name, len(creates)+1, err)
			}
			creates = append(creates, time.Since(start))
		}
		return nil
	}
	periodic := func(count int) (tick, maint callCost) {
		env.Logf("many-queues: ticker() and maint() at %d idle queues, %v each", count, phase)
		return timeCalls(ctx, conn, "SELECT pgque.ticker()", phase), timeCalls(ctx, conn, "SELECT pgque.maint()", phase)
	}

	if err := create(manyQueuesBase); err != nil {
		return res, err
	}
	tick0, maint0 := periodic(manyQueuesBase)
	env.Logf("many-queues: creating %d queues, one per transaction", total-manyQueuesBase)
	if err := create(total); err != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.Notes = append(res.Notes, fmt.Sprintf("Creation stopped after %d queues: %v; the rest of the "+
			"scenario runs with those.", len(creates), err))
	}
	n := len(creates)
	first, last := edgeMeans(creates, manyQueuesEdge)
	edge := min(manyQueuesEdge, n/2)
	res.Add("queues", float64(n), "queues")
	res.Add(fmt.Sprintf("create_queue, first %d", edge), durMs(first), "ms")
	res.Add(fmt.Sprintf("create_queue, last %d", edge), durMs(last), "ms")
	createRatio := float64(last) / float64(max(first, 1))
	res.Add("create_queue last/first", round2(createRatio), "x")

	res.Notes = append(res.Notes, "create_queue, mean ms per tenth of the creates: "+tenths(creates)+".")

	tickN, maintN := periodic(n)
	tick0.addTo(&res, fmt.Sprintf("ticker() at %d queues", manyQueuesBase))
	tickN.addTo(&res, fmt.Sprintf("ticker() at %d queues", n))
	if tick0.ok() && tickN.ok() {
		res.Add("ticker() ratio", round2(float64(tickN.mean)/float64(tick0.mean)), "x")
	}
	maint0.addTo(&res, fmt.Sprintf("maint() at %d queues", manyQueuesBase))
	maintN.addTo(&res, fmt.Sprintf("maint() at %d queues", n))
	if maint0.ok() && maintN.ok() {
		res.Add("maint() ratio", round2(float64(maintN.mean)/float64(maint0.mean)), "x")
	}
	for _, c := range []struct {
		what string
		cost callCost
	}{{fmt.Sprintf("ticker() at %d queues", manyQueuesBase), tick0}, {fmt.Sprintf("ticker() at %d queues", n), tickN},
		{fmt.Sprintf("maint() at %d queues", manyQueuesBase), maint0}, {fmt.Sprintf("maint() at %d queues", n), maintN}} {
		if c.cost.err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("%s failed after %d calls: %v", c.what, c.cost.calls, c.cost.err))
		}
	}

	g := newTaskGroup()
	defer g.stopAll()
	clock := newLoadClock()
	calls := newCallTimer(clock)
	logged := &firstLines{}
	tickerPool, err := openTickerPool(ctx, env.DSN, calls)
	if err != nil {
		return res, err
	}
	defer tickerPool.Close()
	ticker := pgque.NewTicker(tickerPool, pgque.WithTickerLogger(logged.logger()))
	g.start(ctx, "ticker", ticker.Run)

	cpu, cpuErr := tickerCPU(ctx, env, g, conn, ticker, calls, clock)
	if cpuErr != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.Notes = append(res.Notes, "Ticker CPU not measured: "+cpuErr.Error())
	} else {
		res.Add("ticker backend CPU", round4(cpu.backend), "s/s")
		res.Add("bench process CPU (Ticker alone)", round4(cpu.process), "s/s")
		res.Add("ticker() calls", round2(cpu.callsPerSec), "calls/s")
		res.Notes = append(res.Notes, fmt.Sprintf("Ticker CPU: a pgque.Ticker with default options (tick "+
			"interval %v, maint 1 s) ran %v with %d idle queues; its backend (pid %d, application_name %s) "+
			"used %.4f s of CPU per second (utime+stime from /proc), the bench process, where only the Ticker "+
			"ran, %.4f s/s. It made %.0f ticker() calls per second (%s).", pgque.DefaultTickInterval,
			env.Duration, n, cpu.pid, tickerAppName, cpu.backend, cpu.process, cpu.callsPerSec, cpu.calls))
	}

	lat, latErr := manyQueuesLatency(ctx, env, g, min(n, manyQueuesLatencyQueues), clock, logged.logger())
	if latErr != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.Notes = append(res.Notes, "Latency not measured: "+latErr.Error())
	} else {
		res.Add("latency queues", float64(lat.queues), "queues")
		res.Add("latency achieved rate", round2(lat.rate), "events/s")
		lat.s.addTo(&res, "latency ")
		if lat.undelivered > 0 {
			res.Add("latency undelivered after drain", float64(lat.undelivered), "events")
		}
		tck := summarize(calls.in("ticker()", lat.from, lat.to))
		res.Add("latency: ticker() call p50", durMs(tck.p50), "ms")
		res.Notes = append(res.Notes, lat.note)
	}
	if logged.n > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("The Ticker and the Consumers logged %d warnings or errors; "+
			"the first: %s", logged.n, logged.first))
	}

	res.Notes = append(res.Notes, fmt.Sprintf("Queues are created one per transaction through "+
		"Client.CreateQueue; the first and last %d creates are averaged. ticker() and maint() are called "+
		"back to back for %v from one connection with nothing sent, first at %d queues (before the others "+
		"are created, same database), then at %d; ms per call is the round trip as the client saw it.",
		edge, phase, manyQueuesBase, n))

	ok := tickN.ok() && tickN.mean <= 500*time.Microsecond &&
		maintN.ok() && maintN.mean <= 100*time.Millisecond &&
		cpuErr == nil && cpu.backend < 0.02 &&
		createRatio <= 1.5 &&
		latErr == nil && lat.s.n > 0 && lat.undelivered == 0 && lat.s.p99 <= 10*time.Millisecond
	res.Check(fmt.Sprintf("at %d idle queues: ticker() ≤ 0.5 ms, maint() ≤ 100 ms (10 %% of a core at 1/s), "+
		"ticker backend < 0.02 s/s; create_queue last/first ≤ 1.5; latency p99 ≤ 10 ms", n), ok)
	return res, nil
}

// manyQueueName names the i-th queue of the scenario (from 0).
func manyQueueName(i int) string { return fmt.Sprintf("mq_%05d", i+1) }

// edgeMeans returns the mean of the first k and of the last k durations,
// with k at most half of them so that the two do not overlap.
func edgeMeans(ds []time.Duration, k int) (first, last time.Duration) {
	k = min(k, len(ds)/2)
	return summarize(ds[:k]).mean, summarize(ds[len(ds)-k:]).mean
}

// tenths renders the mean of each tenth of ds in milliseconds.
func tenths(ds []time.Duration) string {
	var parts []string
	for i := range 10 {
		part := ds[i*len(ds)/10 : (i+1)*len(ds)/10]
		if len(part) == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%.1f", durMs(summarize(part).mean)))
	}
	return strings.Join(parts, " ")
}

// callCost is what calling one statement back to back found.
type callCost struct {
	calls     int
	mean, p50 time.Duration
	err       error // the call that ended the phase early
}

func (c callCost) ok() bool { return c.err == nil && c.calls > 0 }

func (c callCost) addTo(res *Result, prefix string) {
	if !c.ok() {
		return
	}
	res.Add(prefix+", mean", durMs(c.mean), "ms")
	res.Add(prefix+", p50", durMs(c.p50), "ms")
}

// timeCalls runs sql on conn back to back for d, after a few calls that
// are not counted (plans, caches), and returns the cost per call.
func timeCalls(ctx context.Context, conn *pgx.Conn, sql string, d time.Duration) callCost {
	const warmup = 3
	var ds []time.Duration
	deadline := time.Now().Add(d)
	for i := 0; i < warmup || time.Now().Before(deadline); i++ {
		start := time.Now()
		if _, err := conn.Exec(ctx, sql); err != nil {
			return callCost{calls: len(ds), err: err}
		}
		if i >= warmup {
			ds = append(ds, time.Since(start))
		} else if i == warmup-1 {
			deadline = time.Now().Add(d)
		}
	}
	s := summarize(ds)
	return callCost{calls: s.n, mean: s.mean, p50: s.p50}
}

// openTickerPool opens the pool of the scenario's Ticker: its connections
// carry tickerAppName, and timer times their calls.
func openTickerPool(ctx context.Context, dsn string, timer *callTimer) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 2
	cfg.ConnConfig.RuntimeParams["application_name"] = tickerAppName
	cfg.ConnConfig.Tracer = timer
	return pgxpool.NewWithConfig(ctx, cfg)
}

// cpuUse is what the Ticker's CPU phase found.
type cpuUse struct {
	pid              int
	backend, process float64 // CPU seconds per second
	callsPerSec      float64
	calls            string // the ticker() and maint() calls, as callTimer reports them
}

// tickerCPU waits until ticker leads, then measures for env.Duration the
// CPU time its backend and this process use.  It needs the server's
// processes to be visible in /proc: a server on this machine.
func tickerCPU(ctx context.Context, env *Env, g *taskGroup, conn *pgx.Conn, ticker *pgque.Ticker,
	calls *callTimer, clock loadClock) (cpuUse, error) {
	var u cpuUse
	var local bool
	if err := conn.QueryRow(ctx, `SELECT coalesce(host(inet_server_addr()) IN ('127.0.0.1', '::1'), true)`).
		Scan(&local); err != nil {
		return u, err
	}
	if !local {
		return u, errors.New("the server is not on this machine (its backends' CPU time is read from /proc)")
	}
	env.Logf("many-queues: waiting for the Ticker to lead")
	for !ticker.IsLeader() {
		if err := g.wait(ctx, 10*time.Millisecond, 0, nil); err != nil {
			return u, err
		}
	}
	if err := conn.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
	                               WHERE datname = current_database() AND application_name = $1
	                               ORDER BY backend_start DESC LIMIT 1`, tickerAppName).Scan(&u.pid); err != nil {
		return u, fmt.Errorf("the Ticker's backend: %w", err)
	}
	backend := "/proc/" + strconv.Itoa(u.pid) + "/stat"
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(u.pid) + "/comm"); err != nil ||
		!strings.HasPrefix(string(b), "postgres") {
		return u, fmt.Errorf("backend %d is not a postgres process visible here (%s)", u.pid, bytes.TrimSpace(b))
	}
	env.Logf("many-queues: Ticker backend pid %d, measuring its CPU for %v", u.pid, env.Duration)
	if err := g.wait(ctx, latencyWarmup, 0, nil); err != nil {
		return u, err
	}
	from := clock.now()
	b0, err := procCPU(backend)
	if err != nil {
		return u, err
	}
	p0, err := procCPU("/proc/self/stat")
	if err != nil {
		return u, err
	}
	if err := g.wait(ctx, env.Duration, 0, nil); err != nil {
		return u, err
	}
	b1, err := procCPU(backend)
	if err != nil {
		return u, err
	}
	p1, err := procCPU("/proc/self/stat")
	if err != nil {
		return u, err
	}
	to := clock.now()
	span := (to - from).Seconds()
	u.backend = (b1 - b0).Seconds() / span
	u.process = (p1 - p0).Seconds() / span
	u.callsPerSec = float64(len(calls.in("ticker()", from, to))) / span
	u.calls = calls.report(from, to)
	return u, nil
}

// procCPU returns the user and system CPU time of the process whose stat
// file is path.
func procCPU(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime + stime from the contents of /proc/<pid>/stat:
// "pid (comm) state ppid ...", where comm may hold spaces and parentheses,
// and utime and stime are the 14th and 15th fields, in clock ticks.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q: no command name", stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is the state, the 3rd field: utime is f[11], stime f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("stat %q: too few fields", stat)
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat %q: %w", stat, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// firstLines is a log sink that counts lines and keeps the first, so that
// a thousand Consumers do not flood the progress output.
type firstLines struct {
	mu    sync.Mutex
	n     int
	first string
}

// logger logs warnings and errors to w.
func (w *firstLines) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func (w *firstLines) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == 0 {
		w.first = strings.TrimSpace(string(p))
	}
	w.n++
	return len(p), nil
}

// manyLatency is what the latency phase found.
type manyLatency struct {
	queues      int
	rate        float64
	s           latSummary
	undelivered int
	from, to    time.Duration
	note        string
}

// manyQueuesLatency subscribes a consumer on each of the first count queues,
// runs a Consumer for each (all on one Client, so one listening
// connection), and measures commit → handler latency with env.Rate events
// per second sent round-robin over the queues, while the Ticker in g runs.
func manyQueuesLatency(ctx context.Context, env *Env, g *taskGroup, count int, clock loadClock,
	log *slog.Logger) (manyLatency, error) {
	l := manyLatency{queues: count}
	rate := max(env.Rate, 1)
	workers := max(env.Conns, 1)
	queues := make([]string, count)
	env.Logf("many-queues: subscribing a consumer on %d queues", count)
	for i := range queues {
		queues[i] = manyQueueName(i)
		if _, err := env.Client.Subscribe(ctx, queues[i], benchConsumer); err != nil {
			return l, err
		}
	}
	rec := newLatencyRecorder(clock)
	prodPool, err := openLoadPool(ctx, env.DSN, workers, nil)
	if err != nil {
		return l, err
	}
	defer prodPool.Close()
	consPool, err := openLoadPool(ctx, env.DSN, 8, nil)
	if err != nil {
		return l, err
	}
	defer consPool.Close()

	client := pgque.New(consPool)
	var consumers []*task
	for i, q := range queues {
		cons := client.NewConsumer(q, benchConsumer, pgque.WithPollInterval(benchPollInterval), pgque.WithLogger(log))
		cons.Handle("*", func(ctx context.Context, msg pgque.Message) error {
			msg.MsgID = spreadKey(msg.MsgID, i, count)
			return rec.handled(ctx, msg)
		})
		consumers = append(consumers, g.start(ctx, "consumer "+q, runConsumer(cons)))
	}
	prod := &rateProducer{
		client: pgque.New(prodPool), queues: queues, rate: float64(rate), workers: workers,
		event: pgque.Event{Type: "bench", Payload: loadPayload(env.PayloadSize)},
		clock: clock, onCommit: rec.committed,
	}
	env.Logf("many-queues: latency at %d events/s over %d queues (%d Consumers), warming up %v",
		rate, count, count, latencyWarmup)
	prodTask := g.start(ctx, "producer", prod.run)
	if err := g.wait(ctx, latencyWarmup, 0, nil); err != nil {
		return l, err
	}
	l.from = clock.now()
	sent0, missed0 := prod.sent.Load(), prod.missed.Load()
	if err := g.wait(ctx, env.Duration, 0, nil); err != nil {
		return l, err
	}
	l.to = clock.now()
	sent, missed := prod.sent.Load()-sent0, prod.missed.Load()-missed0
	if err := prodTask.stop(); err != nil {
		return l, fmt.Errorf("producer: %w", err)
	}
	rec.drain(ctx, drainTimeout)
	l.undelivered = rec.pendingIn(l.from, l.to)
	for _, t := range consumers {
		if err := t.stop(); err != nil {
			return l, fmt.Errorf("%s: %w", t.name, err)
		}
	}
	pairs, _ := rec.since(0)
	l.s = summarize(latenciesIn(pairs, l.from, l.to))
	l.rate = float64(sent) / (l.to - l.from).Seconds()
	l.note = fmt.Sprintf("Latency: %d events/s offered (%d sent in the %v window after a %v warm-up, %d slots "+
		"skipped), one per transaction over %d connections, round-robin over %d queues; one Consumer per queue "+
		"(defaults, poll fallback %v), all on one Client and its one listening connection and a pool of 8; "+
		"the same Ticker. %s.", rate, sent, env.Duration, latencyWarmup, missed, workers, count,
		benchPollInterval, l.s)
	if l.undelivered > 0 {
		l.note += " Not delivered within " + drainTimeout.String() + ": " + missingEvents(rec, queues, 5) + "."
	}
	if noCommit, dups := rec.unmatched(); noCommit > 0 || dups > 0 {
		l.note += fmt.Sprintf(" %d deliveries were duplicates, %d events were handled whose commit the "+
			"producer never saw.", dups, noCommit)
	}
	return l, nil
}

// missingEvents names up to limit of the committed events rec has not seen
// handled, as queue/id.
func missingEvents(rec *latencyRecorder, queues []string, limit int) string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var names []string
	for k := range rec.commits {
		if len(names) == limit {
			names = append(names, "…")
			break
		}
		n := int64(len(queues))
		names = append(names, fmt.Sprintf("%s/%d", queues[k%n], k/n))
	}
	return strings.Join(names, ", ")
}

// spreadKey makes the id of an event of queue i (of n) unique over the n
// queues, whose ids come from sequences of their own: ids stay dense, as
// the latency recorder's set of handled ids wants.
func spreadKey(id int64, i, n int) int64 { return id*int64(n) + int64(i) }

// round4 rounds to four decimals (CPU seconds per second).
func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
