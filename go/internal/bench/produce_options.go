package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgque/pgque/go/pgque"
)

// The produce-options scenario: do delayed delivery and dedup cost the
// plain event path anything, and what do their own sends cost?
//
// A Go ticker runner works throughout, as in production: every tick interval
// (pgque's default) it calls ticker(), which also runs the delayed mover
// (its idle check included).
// Conns connections, one statement per transaction (as in the produce
// scenario):
//  1. send with empty delayed and dedup stores, Duration/2;
//  2. (unmeasured) park optionsPending events a day ahead and send
//     optionsPending distinct unique keys whose events stay pending (the
//     queue's consumer never consumes);
//  3. optionsRounds rounds of Duration/4 each of: send with all that
//     pending; send_at 50 ms ahead (the mover publishes continuously);
//     send_unique with a fresh key per call (each one a new event);
//     send_unique of one key (every call finds the live event).  The options
//     are compared with the send phases of the same rounds;
//  4. (unmeasured) the stores' statistics are read and the stores emptied
//     with TRUNCATE, as their rotation would once nothing is pending;
//  5. send with empty stores again, Duration/2.
// Empty-store sends come before and after the rest, so that drift
// (checkpoints, other load) touches both sides alike; the ratio of pending
// to empty is the cost of delayed delivery and dedup to the event path.  The
// mover's idle check, one ticker() call and one send() are timed inside the
// server (no commits, no round trips), with empty and with pending stores.

// optionsPending is how many parked events and pending unique keys phase 3
// runs with.
const optionsPending = 100_000

// optionsRounds is how many times the phases with pending stores are
// repeated, in turn, so that the options are compared with send side by side.
const optionsRounds = 3

// optionsTarget is the least acceptable ratio of phase 3 to phase 1.
const optionsTarget = 0.9

func runProduceOptions(ctx context.Context, env *Env) (Result, error) {
	const queue = "bench_opts"
	res := Result{Scenario: "produce-options"}
	if err := setupQueue(ctx, env.Client, queue); err != nil {
		return res, err
	}
	conns := max(env.Conns, 1)
	cs, err := produceConns(ctx, env.DSN, conns)
	if err != nil {
		return res, err
	}
	defer closeConns(ctx, cs)

	tctx, stopTicker := context.WithCancel(ctx)
	tickerDone := make(chan error, 1)
	go func() { tickerDone <- env.Client.RunTicker(tctx, pgque.WithTickInterval(pgque.DefaultTickInterval)) }()
	defer func() {
		stopTicker()
		<-tickerDone
	}()

	p := env.Payload()
	stmt := func(sql string, args ...any) func(context.Context, *pgx.Conn) error {
		return func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, sql, args...)
			return err
		}
	}
	send := stmt(`SELECT pgque.send($1::text, $2::text, $3::text)`, queue, produceEventType, p)
	phase := func(label string, op func(context.Context, *pgx.Conn) error) (float64, error) {
		n, d, err := producePhase(ctx, cs, env.Duration/2, op)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", label, err)
		}
		rate := float64(n) / d.Seconds()
		env.Logf("%-38s %9.0f tx/s", label, rate)
		return rate, nil
	}

	warm := min(time.Second, env.Duration/4)
	if _, _, err := producePhase(ctx, cs, warm, send); err != nil {
		return res, err
	}
	idleClean, tickClean, sendClean, err := serverCosts(ctx, env, queue)
	if err != nil {
		return res, err
	}
	clean1, err := phase("send, empty stores", send)
	if err != nil {
		return res, err
	}

	env.Logf("parking %d events a day ahead and sending %d pending unique keys", optionsPending, optionsPending)
	start := time.Now()
	if _, err := env.Pool.Exec(ctx, `
		SELECT count(pgque.send_at($1::text, $2::text, $3::text, now() + interval '1 day' + i * interval '1 ms'))
		  FROM generate_series(1, $4::int) i`, queue, produceEventType, p, optionsPending); err != nil {
		return res, fmt.Errorf("park: %w", err)
	}
	if _, err := env.Pool.Exec(ctx, `
		SELECT count(pgque.send_unique($1::text, $2::text, $3::text, 'fill-' || i))
		  FROM generate_series(1, $4::int) i`, queue, produceEventType, p, optionsPending); err != nil {
		return res, fmt.Errorf("unique keys: %w", err)
	}
	env.Logf("filled in %v", time.Since(start).Round(time.Millisecond))
	pendingLabel := fmt.Sprintf("send, %dk parked + %dk keys", optionsPending/1000, optionsPending/1000)

	idleFull, tickFull, sendFull, err := serverCosts(ctx, env, queue)
	if err != nil {
		return res, err
	}
	ops := []struct {
		label string
		op    func(context.Context, *pgx.Conn) error
	}{
		{pendingLabel, send},
		{"send_at, 50 ms ahead", stmt(`SELECT pgque.send_at($1::text, $2::text, $3::text,
			clock_timestamp() + interval '50 milliseconds')`, queue, produceEventType, p)},
		{"send_unique, new key each", stmt(`SELECT pgque.send_unique($1::text, $2::text, $3::text,
			gen_random_uuid()::text)`, queue, produceEventType, p)},
		{"send_unique, one key (duplicates)", stmt(`SELECT pgque.send_unique($1::text, $2::text, $3::text,
			'the-same-key')`, queue, produceEventType, p)},
	}
	var calls [4]int64
	var spent [4]time.Duration
	for round := 1; round <= optionsRounds; round++ {
		for i, o := range ops {
			n, d, err := producePhase(ctx, cs, env.Duration/4, o.op)
			if err != nil {
				return res, fmt.Errorf("%s: %w", o.label, err)
			}
			calls[i] += n
			spent[i] += d
			env.Logf("round %d/%d %-34s %9.0f tx/s", round, optionsRounds, o.label, float64(n)/d.Seconds())
		}
	}
	rate := func(i int) float64 { return float64(calls[i]) / spent[i].Seconds() }
	full, at, uniq, dup := rate(0), rate(1), rate(2), rate(3)

	// Statistics lag by up to a second (see sampleRelations).
	time.Sleep(1500 * time.Millisecond)
	rels, err := sampleRelations(ctx, env.Pool, 0)
	if err != nil {
		return res, err
	}
	var dead, live, size [2]int64 // delayed store, dedup store
	for _, r := range rels.rels {
		i := -1
		switch {
		case strings.HasPrefix(r.name, "delayed"):
			i = 0
		case strings.HasPrefix(r.name, "dedup"):
			i = 1
		}
		if i >= 0 {
			dead[i] += r.dead
			live[i] += r.live
			size[i] += r.size
		}
	}
	var moved int64
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM pgque.delayed_done WHERE dd_moved`).Scan(&moved); err != nil {
		return res, err
	}
	if _, err := env.Pool.Exec(ctx, `TRUNCATE pgque.delayed, pgque.delayed_done, pgque.dedup`); err != nil {
		return res, fmt.Errorf("empty the stores: %w", err)
	}
	clean2, err := phase("send, empty stores", send)
	if err != nil {
		return res, err
	}
	clean := (clean1 + clean2) / 2

	ratio := full / clean
	res.Add("send, empty stores", clean, "tx/s")
	res.Add("send, pending delayed + unique", full, "tx/s")
	res.Add("ratio (pending / empty)", ratio, "x")
	res.Add("send_at", at, "tx/s")
	res.Add("send_at / send", at/full, "x")
	res.Add("send_unique, new keys", uniq, "tx/s")
	res.Add("send_unique / send", uniq/full, "x")
	res.Add("send_unique, duplicates", dup, "tx/s")
	res.Add("mover idle check, empty stores", idleClean, "µs")
	res.Add("mover idle check, pending stores", idleFull, "µs")
	res.Add("ticker() call, empty stores", tickClean, "µs")
	res.Add("ticker() call, pending stores", tickFull, "µs")
	res.Add("send() in the server, empty stores", sendClean, "µs")
	res.Add("send() in the server, pending stores", sendFull, "µs")
	res.Add("delayed events published", float64(moved), "events")
	res.Add("delayed store dead tuples", float64(dead[0]), "rows")
	res.Add("delayed store live tuples", float64(live[0]), "rows")
	res.Add("delayed store size", float64(size[0])/(1<<20), "MiB")
	res.Add("dedup store dead tuples", float64(dead[1]), "rows")
	res.Add("dedup store size", float64(size[1])/(1<<20), "MiB")
	res.Check(fmt.Sprintf("send with %d parked and %d pending keys >= %.1f x send with empty stores",
		optionsPending, optionsPending, optionsTarget), ratio >= optionsTarget)
	res.Notes = append(res.Notes,
		fmt.Sprintf("%d connections, one statement per transaction, %d-byte payload; empty-store send phases of %v "+
			"before and after, then %d rounds of %v per option with pending stores; a Go ticker runner (%v) "+
			"works throughout", conns, env.PayloadSize, env.Duration/2, optionsRounds, env.Duration/4,
			pgque.DefaultTickInterval),
		"mover idle check, ticker(queue) and send() in the server: mean of 2000 calls in one statement "+
			"(send's rolled back); "+
			"the runner keeps working meanwhile",
		"the delayed store's live tuples include done rows kept for cancel_scheduled's answer until rotation")
	return res, nil
}

// serverCosts returns the mean time in µs, measured inside the server (2000
// calls in one statement, so one round trip is spread over them), of the
// delayed mover's idle check (what ticker() adds when nothing is due), of a
// whole ticker() call, and of send(), in a transaction that is rolled back.
// Without commits and round trips this is the CPU cost alone, which the
// load of a shared machine disturbs far less than throughput.
func serverCosts(ctx context.Context, env *Env, queue string) (idle, tick, send float64, err error) {
	const calls = 2000
	timed := func(q interface {
		Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	}, sql string, args ...any) (float64, error) {
		start := time.Now()
		if _, err := q.Exec(ctx, sql, args...); err != nil {
			return 0, fmt.Errorf("time %s: %w", sql, err)
		}
		return float64(time.Since(start).Microseconds()) / calls, nil
	}
	if idle, err = timed(env.Pool, `SELECT count(pgque._delayed_tick(v.cnt, v.snap, v.exact)) FROM generate_series(1, $1::int) g, LATERAL pgque._mover_view(g > 0) v`, calls); err != nil {
		return 0, 0, 0, err
	}
	if tick, err = timed(env.Pool, `SELECT count(pgque.ticker($1::text)) FROM generate_series(1, $2::int)`, queue, calls); err != nil {
		return 0, 0, 0, err
	}
	tx, err := env.Pool.Begin(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	defer tx.Rollback(ctx)
	send, err = timed(tx, `SELECT count(pgque.send($1::text, $2::text, $3::text)) FROM generate_series(1, $4::int)`,
		queue, produceEventType, env.Payload(), calls)
	return idle, tick, send, err
}
