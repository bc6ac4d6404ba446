package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgque/pgque/go/pgque"
)

// xminRotationPeriod is the queue's rotation_period in the xmin scenario:
// short, so that table switches happen during every phase.
const xminRotationPeriod = 10 * time.Second

// xminSampleEvery is how often the xmin scenario samples pgque's tables.
const xminSampleEvery = time.Second

// xminSlack is the absolute growth of dead tuples in a metadata table, in
// the second half of the held phase, that still counts as bounded.
const xminSlack = 100

// xminPhase is one phase of the xmin scenario.
type xminPhase struct {
	name               string
	from, to           time.Duration
	sent0, sent1       int64
	handled0, handled1 int64
}

func (p xminPhase) secs() float64 { return (p.to - p.from).Seconds() }

// queueSample is the queue's current table at one moment.
type queueSample struct {
	at    time.Duration
	table int
}

// runXmin runs a fixed load through three phases of env.Duration each:
// clean, then with a transaction holding the xmin horizon (REPEATABLE READ,
// idle after its first statement), then after it ended; it measures
// throughput and latency per phase and samples dead tuples and sizes of
// every table in schema pgque every second.
func runXmin(ctx context.Context, env *Env) (Result, error) {
	const queue = "bench_xmin"
	res := Result{Scenario: "xmin"}
	rate := env.Rate
	if rate <= 0 {
		rate = 1000
	}
	workers := max(env.Conns, 1)

	if err := setupQueue(ctx, env.Client, queue,
		"rotation_period", fmt.Sprintf("%d seconds", int(xminRotationPeriod.Seconds()))); err != nil {
		return res, err
	}
	clock := newLoadClock()
	rec := newLatencyRecorder(clock)
	calls := newCallTimer(clock)
	prodPool, err := openLoadPool(ctx, env.DSN, workers, nil)
	if err != nil {
		return res, err
	}
	defer prodPool.Close()
	consPool, err := openLoadPool(ctx, env.DSN, 2, calls)
	if err != nil {
		return res, err
	}
	defer consPool.Close()
	samplePool, err := openLoadPool(ctx, env.DSN, 2, nil)
	if err != nil {
		return res, err
	}
	defer samplePool.Close()
	sampleClient := pgque.New(samplePool)

	g := newTaskGroup()
	defer g.stopAll()

	// Sampler: every table of schema pgque, and the queue's current table.
	var smu sync.Mutex
	var rels []relSample
	var qs []queueSample
	g.start(ctx, "sampler", func(ctx context.Context) error {
		t := time.NewTicker(xminSampleEvery)
		defer t.Stop()
		for {
			at := clock.now()
			s, err := sampleRelations(ctx, samplePool, at)
			if err == nil {
				var qi pgque.QueueInfo
				qi, err = sampleClient.Queue(ctx, queue)
				smu.Lock()
				rels = append(rels, s)
				qs = append(qs, queueSample{at: at, table: qi.CurrentTable})
				smu.Unlock()
			}
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})

	cons := pgque.New(consPool).NewConsumer(queue, benchConsumer,
		pgque.WithTicker(pgque.WithTickInterval(benchTickInterval)),
		pgque.WithPollInterval(benchPollInterval))
	cons.Handle("*", rec.handled)
	g.start(ctx, "consumer", runConsumer(cons))
	prod := &rateProducer{
		client: pgque.New(prodPool), queue: queue, rate: float64(rate), workers: workers,
		event: pgque.Event{Type: "bench", Payload: loadPayload(env.PayloadSize)},
		clock: clock, onCommit: rec.committed,
	}
	prodTask := g.start(ctx, "producer", prod.run)

	env.Logf("xmin: %d events/s over %d connections, rotation_period %v; phases clean, held, after of %v each",
		rate, workers, xminRotationPeriod, env.Duration)
	if err := g.wait(ctx, latencyWarmup, 0, nil); err != nil {
		return res, err
	}

	var phases []xminPhase
	var holdXmin, holdAge string
	for _, name := range []string{"clean", "held", "after"} {
		ph := xminPhase{name: name, from: clock.now(), sent0: prod.sent.Load(), handled0: rec.handledN.Load()}
		var hold *pgx.Conn
		var holdTx pgx.Tx
		if name == "held" {
			hold, err = pgx.Connect(ctx, env.DSN)
			if err != nil {
				return res, fmt.Errorf("held transaction: %w", err)
			}
			defer hold.Close(context.WithoutCancel(ctx))
			holdTx, err = hold.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
			if err == nil {
				_, err = holdTx.Exec(ctx, `SELECT 1`) // takes the snapshot, which holds xmin until the end
			}
			if err == nil {
				err = samplePool.QueryRow(ctx, `SELECT coalesce(backend_xmin::text, '(none)') FROM pg_stat_activity WHERE pid = $1`,
					hold.PgConn().PID()).Scan(&holdXmin)
			}
			if err != nil {
				return res, fmt.Errorf("held transaction: %w", err)
			}
			env.Logf("xmin: holding a REPEATABLE READ snapshot (backend_xmin %s), idle", holdXmin)
		}
		idx := rec.completed()
		lastSent, lastHandled, lastAt := ph.sent0, ph.handled0, ph.from
		progress := func() {
			pairs, n := rec.since(idx)
			idx = n
			now, sent, handled := clock.now(), prod.sent.Load(), rec.handledN.Load()
			secs := (now - lastAt).Seconds()
			smu.Lock()
			var dead []string
			if len(rels) > 0 {
				for _, r := range rels[len(rels)-1].rels {
					if !r.event && r.dead > 0 {
						dead = append(dead, fmt.Sprintf("%s=%d", r.name, r.dead))
					}
				}
			}
			smu.Unlock()
			env.Logf("xmin: %-5s %3.0fs  sent %5.0f/s  delivered %5.0f/s  p99 %.2f ms  dead tuples: %s",
				name, (now - ph.from).Seconds(), float64(sent-lastSent)/secs, float64(handled-lastHandled)/secs,
				durMs(summarize(latenciesIn(pairs, 0, now)).p99), strings.Join(dead, " "))
			lastSent, lastHandled, lastAt = sent, handled, now
		}
		if err := g.wait(ctx, env.Duration, 5*time.Second, progress); err != nil {
			return res, err
		}
		if holdTx != nil {
			if err := samplePool.QueryRow(ctx, `SELECT coalesce(age(backend_xmin)::text, '(none)') FROM pg_stat_activity WHERE pid = $1`,
				hold.PgConn().PID()).Scan(&holdAge); err != nil {
				return res, fmt.Errorf("held transaction: %w", err)
			}
			if err := holdTx.Rollback(ctx); err != nil {
				return res, fmt.Errorf("held transaction: %w", err)
			}
			hold.Close(ctx)
			env.Logf("xmin: released the snapshot (xmin age at release: %s xids)", holdAge)
		}
		ph.to, ph.sent1, ph.handled1 = clock.now(), prod.sent.Load(), rec.handledN.Load()
		phases = append(phases, ph)
	}
	if err := prodTask.stop(); err != nil {
		return res, fmt.Errorf("producer: %w", err)
	}
	rec.drain(ctx, drainTimeout)
	undelivered := rec.pendingIn(phases[0].from, phases[len(phases)-1].to)
	g.stopAll()
	for _, t := range g.tasks {
		if t.err != nil {
			return res, fmt.Errorf("%s: %w", t.name, t.err)
		}
	}

	// Throughput and latency per phase.
	pairs, _ := rec.since(0)
	type phaseStats struct {
		sent, delivered float64
		lat             latSummary
		switches        int
	}
	stats := map[string]phaseStats{}
	for _, ph := range phases {
		st := phaseStats{
			sent:      float64(ph.sent1-ph.sent0) / ph.secs(),
			delivered: float64(ph.handled1-ph.handled0) / ph.secs(),
			lat:       summarize(latenciesIn(pairs, ph.from, ph.to)),
		}
		prev := -1
		for _, q := range qs {
			if q.at < ph.from || q.at >= ph.to {
				continue
			}
			if prev >= 0 && q.table != prev {
				st.switches++
			}
			prev = q.table
		}
		stats[ph.name] = st
		res.Add(ph.name+" sent", round2(st.sent), "events/s")
		res.Add(ph.name+" delivered", round2(st.delivered), "events/s")
		res.Add(ph.name+" p50", durMs(st.lat.p50), "ms")
		res.Add(ph.name+" p99", durMs(st.lat.p99), "ms")
		res.Add(ph.name+" table switches", float64(st.switches), "switches")
	}
	clean, held := stats["clean"], stats["held"]
	thrRatio := held.delivered / max(clean.delivered, 1e-9)
	p99Ratio := float64(held.lat.p99) / max(float64(clean.lat.p99), 1)
	res.Add("held/clean delivered", round2(thrRatio), "ratio")
	res.Add("held/clean p99", round2(p99Ratio), "ratio")
	if undelivered > 0 {
		res.Add("undelivered after drain", float64(undelivered), "events")
	}

	// Dead tuples and sizes.
	heldPh := phases[1]
	var eventDeadMax, eventSizeMax int64
	var metaNames []string
	for _, s := range rels {
		var evSize int64
		for _, r := range s.rels {
			if r.event {
				eventDeadMax = max(eventDeadMax, r.dead)
				evSize += r.size
			} else if !slices.Contains(metaNames, r.name) {
				metaNames = append(metaNames, r.name)
			}
		}
		eventSizeMax = max(eventSizeMax, evSize)
	}
	res.Add("event tables max dead tuples", float64(eventDeadMax), "tuples")
	res.Add("event tables max total size", float64(eventSizeMax/1024), "kB")

	mid, end, ok := heldSamples(rels, heldPh)
	afterEnd := lastSampleIn(rels, phases[2])
	bounded := true
	var unbounded []string
	if !ok {
		res.Notes = append(res.Notes, "The held phase was too short to take a sample in each half: dead-tuple growth not checked.")
	}
	for _, name := range metaNames {
		m, _ := mid.get(name)
		e, _ := end.get(name)
		a, _ := afterEnd.get(name)
		res.Add(name+" dead tuples held mid", float64(m.dead), "tuples")
		res.Add(name+" dead tuples held end", float64(e.dead), "tuples")
		res.Add(name+" dead tuples after end", float64(a.dead), "tuples")
		res.Add(name+" size held end", float64(e.size/1024), "kB")
		if ok && float64(e.dead) > max(1.2*float64(m.dead), float64(m.dead+xminSlack)) {
			bounded = false
			rate := float64(e.dead-m.dead) / (end.at - mid.at).Seconds()
			unbounded = append(unbounded, fmt.Sprintf("%s (%d → %d, +%.0f/s)", name, m.dead, e.dead, rate))
		}
	}

	pass := eventDeadMax == 0 && bounded && undelivered == 0 &&
		thrRatio >= 0.9 && thrRatio <= 1.1 && p99Ratio <= 1.1
	res.Check("0 dead tuples in event tables; metadata dead tuples bounded; held throughput and p99 within 10 % of clean", pass)

	res.Notes = append(res.Notes,
		fmt.Sprintf("Load: pgque.send, one event per transaction, %d events/s offered over %d connections, consumed "+
			"by a Go Consumer with its own Ticker (tick %v, maint 1 s) and LISTEN; queue rotation_period %v. "+
			"Phases of %v each after a %v warm-up: clean; held (another connection in the same database ran BEGIN "+
			"ISOLATION LEVEL REPEATABLE READ; SELECT 1 and stayed idle, backend_xmin %s, xmin age %s xids when "+
			"released by ROLLBACK); after.", rate, workers, benchTickInterval, xminRotationPeriod, env.Duration,
			latencyWarmup, holdXmin, holdAge),
		"Delivered = handler calls in the phase / its length; latency (commit return → handler) of events committed "+
			"in the phase. Target: held/clean delivered within [0.9, 1.1] and held p99 ≤ 1.1 × clean p99.",
		fmt.Sprintf("Every table of schema pgque sampled every %v: n_dead_tup from pg_stat_user_tables (after "+
			"pg_stat_clear_snapshot(); backends flush statistics at most once a second, so values lag by ~1 s) and "+
			"pg_total_relation_size. Event tables = pgque.event_<queue>_<n> (and free ones, event_free_<slot>), all others are metadata. Bounded: a "+
			"metadata table's dead tuples at the end of the held phase ≤ max(1.2 × its value at the middle, middle + %d).",
			xminSampleEvery, xminSlack),
		fmt.Sprintf("Rotation (table switches seen in get_queue_info().queue_cur_table samples): clean %d, held %d, "+
			"after %d. A read-only snapshot has no xid, so it does not lower tick snapshots' xmin and does not "+
			"stall rotation; only the vacuum horizon is held.",
			stats["clean"].switches, stats["held"].switches, stats["after"].switches),
	)
	for _, ph := range phases {
		res.Notes = append(res.Notes, fmt.Sprintf("Consumer-side calls, %s phase: %s.", ph.name, calls.report(ph.from, ph.to)))
	}
	if noCommit, dups := rec.unmatched(); noCommit > 0 || dups > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d deliveries were duplicates of events handled before, and "+
			"%d events were handled whose commit the producer never saw.", dups, noCommit))
	}
	if len(unbounded) > 0 {
		res.Notes = append(res.Notes, "Dead tuples kept growing through the held phase in: "+strings.Join(unbounded, ", ")+
			". Every UPDATE or DELETE of a metadata row leaves a version that neither HOT pruning nor vacuum may "+
			"remove while the snapshot is held, so such a table grows with the number of calls that write it "+
			"(receives, acks, ticks), i.e. with run length.")
	}
	for _, name := range metaNames {
		var mx int64
		for _, s := range rels {
			r, _ := s.get(name)
			mx = max(mx, r.dead)
		}
		if mx > 0 {
			res.Notes = append(res.Notes, seriesNote(rels, name, 30)+"; "+growthNote(rels, phases, name))
		}
	}
	if total := clock.now(); total < 3*time.Minute {
		res.Notes = append(res.Notes, fmt.Sprintf("Tick partitions are recycled (TRUNCATE) once a minute, so in a run of "+
			"%.0f s pgque.tick grows by at most a few minutes of ticks and then stays level; it never has dead tuples.",
			total.Seconds()))
	}
	res.Notes = append(res.Notes, "n_dead_tup also counts the line pointers that pruning left for vacuum to "+
		"reclaim, so even in the clean phase a table updated outside HOT (e.g. an indexed column) shows dead "+
		"tuples until autovacuum's next visit (autovacuum_naptime, 1 min by default); in short runs compare the "+
		"held growth with the clean one.")
	if eventDeadMax > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("Event tables had up to %d dead tuples: something deleted, "+
			"updated or rolled back rows there.", eventDeadMax))
	}
	if thrRatio < 0.9 || p99Ratio > 1.1 {
		res.Notes = append(res.Notes, fmt.Sprintf("Held vs clean: delivered %.0f vs %.0f events/s, p99 %.2f vs "+
			"%.2f ms (p50 %.2f vs %.2f ms). A p99 of a few ms is sensitive to noise on a shared 2-core machine; "+
			"a trend growing within the held phase (see progress lines) points at dead row versions that every "+
			"receive/ack must step over.", held.delivered, clean.delivered, durMs(held.lat.p99), durMs(clean.lat.p99),
			durMs(held.lat.p50), durMs(clean.lat.p50)))
	}
	return res, nil
}

// heldSamples returns the samples nearest the middle and at the end of the
// held phase, and whether both exist and differ.
func heldSamples(rels []relSample, ph xminPhase) (mid, end relSample, ok bool) {
	var in []relSample
	for _, s := range rels {
		if s.at >= ph.from && s.at < ph.to {
			in = append(in, s)
		}
	}
	if len(in) < 2 {
		return mid, end, false
	}
	target := ph.from + (ph.to-ph.from)/2
	best := 0
	for i, s := range in[:len(in)-1] {
		if (s.at - target).Abs() < (in[best].at - target).Abs() {
			best = i
		}
	}
	return in[best], in[len(in)-1], true
}

// lastSampleIn returns the last sample taken in the phase (zero if none).
func lastSampleIn(rels []relSample, ph xminPhase) relSample {
	var last relSample
	for _, s := range rels {
		if s.at >= ph.from && s.at < ph.to {
			last = s
		}
	}
	return last
}

// growthNote gives a table's dead-tuple growth per phase, and whether vacuum
// ran on it meanwhile.
func growthNote(rels []relSample, phases []xminPhase, name string) string {
	var parts []string
	for _, ph := range phases {
		var first, last relStat
		var t0, t1 time.Duration
		n := 0
		for _, s := range rels {
			if s.at < ph.from || s.at >= ph.to {
				continue
			}
			r, _ := s.get(name)
			if n == 0 {
				first, t0 = r, s.at
			}
			last, t1 = r, s.at
			n++
		}
		if n < 2 {
			continue
		}
		secs := (t1 - t0).Seconds()
		upd := last.upd - first.upd
		hot := "-"
		if upd > 0 {
			hot = fmt.Sprintf("%.0f %%", 100*float64(last.hot-first.hot)/float64(upd))
		}
		parts = append(parts, fmt.Sprintf("%s %+.0f dead/s, %.0f updates/s (HOT %s), %.0f deletes/s, size %+d kB, vacuumed %d×",
			ph.name, float64(last.dead-first.dead)/secs, float64(upd)/secs, hot, float64(last.del-first.del)/secs,
			(last.size-first.size)/1024, last.vacs-first.vacs))
	}
	return "per phase: " + strings.Join(parts, "; ")
}
