package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// The produce scenarios (docs/benchmarks.md, rows 1 and 2): Conns connections
// insert as fast as they can, each statement its own transaction
// (autocommit, so every one waits for its WAL flush, as a real producer's
// would).  The baseline inserts the same rows into bench_plain, a table of
// the event tables' shape and storage options, with an id from a sequence but
// without their index.  Phases alternate, baseline first, each Duration/2
// long, twice (B P B P) after a short unmeasured warm-up of both, so drift
// (checkpoints, other load) touches both sides alike.

const (
	produceQueue     = "bench"
	produceEventType = "bench"
	produceBatch     = 100
)

// produceSpec describes one produce scenario.
type produceSpec struct {
	perStmt  int    // events per statement
	unit     string // what a statement is called in the report ("tx", "stmt")
	baseline string // SQL of the baseline; args from baseArgs
	pgque    string // SQL of pgque; args from pgqueArgs
	baseArgs []any
	pgqArgs  []any
	target   float64
	what     string // "send" or "send_batch"
}

func runProduce(ctx context.Context, env *Env) (Result, error) {
	p := env.Payload()
	return produce(ctx, env, "produce", produceSpec{
		perStmt:  1,
		unit:     "tx/s",
		baseline: `INSERT INTO bench_plain (ev_type, ev_data) VALUES ($1, $2)`,
		pgque:    `SELECT pgque.send($1::text, $2::text, $3::text)`,
		baseArgs: []any{produceEventType, p},
		pgqArgs:  []any{produceQueue, produceEventType, p},
		target:   0.9,
		what:     "send",
	})
}

func runProduceBatch(ctx context.Context, env *Env) (Result, error) {
	ps := make([]string, produceBatch)
	for i := range ps {
		ps[i] = env.Payload()
	}
	return produce(ctx, env, "produce-batch", produceSpec{
		perStmt:  produceBatch,
		unit:     "events/s",
		baseline: `INSERT INTO bench_plain (ev_type, ev_data) SELECT $1, p FROM unnest($2::text[]) AS u(p)`,
		pgque:    `SELECT pgque.send_batch($1::text, $2::text, $3::text[])`,
		baseArgs: []any{produceEventType, ps},
		pgqArgs:  []any{produceQueue, produceEventType, ps},
		target:   0.8,
		what:     fmt.Sprintf("send_batch of %d", produceBatch),
	})
}

// setupPlainTable creates bench_plain: the columns, defaults and storage
// options of an event table, with an id from a sequence,
// and no index.
func setupPlainTable(ctx context.Context, env *Env) error {
	_, err := env.Pool.Exec(ctx, `
		CREATE SEQUENCE bench_plain_seq;
		CREATE TABLE bench_plain (
		    ev_id     bigint      NOT NULL DEFAULT nextval('bench_plain_seq'),
		    ev_time   timestamptz NOT NULL DEFAULT now(),
		    ev_txid   xid8        NOT NULL DEFAULT pg_current_xact_id(),
		    ev_owner  int,
		    ev_retry  int,
		    ev_type   text,
		    ev_data   text,
		    ev_extra1 text,
		    ev_extra2 text,
		    ev_extra3 text,
		    ev_extra4 text
		) WITH (fillfactor = 100, autovacuum_enabled = false, toast.autovacuum_enabled = false)`)
	return err
}

func produce(ctx context.Context, env *Env, name string, sp produceSpec) (Result, error) {
	res := Result{Scenario: name}
	if err := setupPlainTable(ctx, env); err != nil {
		return res, fmt.Errorf("create bench_plain: %w", err)
	}
	if _, err := env.Client.CreateQueue(ctx, produceQueue); err != nil {
		return res, err
	}
	conns := max(env.Conns, 1)
	cs, err := produceConns(ctx, env.DSN, conns)
	if err != nil {
		return res, err
	}
	defer closeConns(ctx, cs)

	base := func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, sp.baseline, sp.baseArgs...)
		return err
	}
	pgq := func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, sp.pgque, sp.pgqArgs...)
		return err
	}

	warm := min(time.Second, env.Duration/4)
	env.Logf("%d connections, %d-byte payloads, %d event(s) per statement; warm-up %v, then 4 phases of %v",
		conns, env.PayloadSize, sp.perStmt, warm, env.Duration/2)
	for _, f := range []func(context.Context, *pgx.Conn) error{base, pgq} {
		if _, _, err := producePhase(ctx, cs, warm, f); err != nil {
			return res, err
		}
	}

	var stmts [2]int64         // baseline, pgque
	var spent [2]time.Duration // wall time
	for i := 0; i < 4; i++ {
		side, f, label := i%2, base, "INSERT"
		if side == 1 {
			f, label = pgq, sp.what
		}
		n, d, err := producePhase(ctx, cs, env.Duration/2, f)
		if err != nil {
			return res, fmt.Errorf("%s: %w", label, err)
		}
		stmts[side] += n
		spent[side] += d
		env.Logf("phase %d/4 %-17s %9.0f %s", i+1, label, float64(n*int64(sp.perStmt))/d.Seconds(), sp.unit)
	}

	rate := func(side int) float64 { return float64(stmts[side]*int64(sp.perStmt)) / spent[side].Seconds() }
	// Mean time of one statement, as one connection waits for it.
	lat := func(side int) float64 {
		return (spent[side].Seconds() * float64(conns) / float64(stmts[side])) * 1000
	}
	b, p := rate(0), rate(1)
	ratio := p / b
	res.Add("baseline INSERT", b, sp.unit)
	res.Add(sp.what, p, sp.unit)
	res.Add("ratio", ratio, "x")
	res.Add("baseline statement time", lat(0), "ms")
	res.Add(sp.what+" statement time", lat(1), "ms")
	res.Check(fmt.Sprintf("%s >= %.1f x INSERT", sp.what, sp.target), ratio >= sp.target)
	res.Notes = append(res.Notes, fmt.Sprintf("%d connections, one statement per transaction, %d-byte payload, "+
		"%v per side in 2 alternating phases each", conns, env.PayloadSize, spent[0].Round(time.Millisecond)))
	return res, nil
}

// produceConns opens n connections of their own (not the pool's).
func produceConns(ctx context.Context, dsn string, n int) ([]*pgx.Conn, error) {
	cs := make([]*pgx.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			for _, c := range cs {
				c.Close(ctx)
			}
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// closeConns closes connections opened by produceConns, even when ctx is done.
func closeConns(ctx context.Context, cs []*pgx.Conn) {
	for _, c := range cs {
		c.Close(context.WithoutCancel(ctx))
	}
}

// producePhase runs op in a loop on every connection at once for d, and returns how
// many calls completed and the wall time from start until the last one ended.
func producePhase(ctx context.Context, cs []*pgx.Conn, d time.Duration, op func(context.Context, *pgx.Conn) error) (int64, time.Duration, error) {
	var (
		n        atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	deadline := start.Add(d)
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := op(ctx, c); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return n.Load(), elapsed, firstErr
}
