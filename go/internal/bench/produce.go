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
// without their index.  When the server has PgQ (the pgq extension, Debian's
// postgresql-15-pgq3), its insert_event is measured too, the peer pgque is to
// beat.  Phases alternate, baseline first, each Duration/2 long, twice
// (B P Q B P Q, or B P B P without PgQ) after a short unmeasured warm-up of
// each, so drift (checkpoints, other load) touches every side alike.

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
	peer     string // SQL of PgQ doing the same; args from pgqArgs
	baseArgs []any
	pgqArgs  []any
	target   float64 // × INSERT
	peerGoal float64 // × PgQ; 0: reported, not a target
	what     string  // "send" or "send_batch"
}

// pgqQueue is the PgQ queue the produce scenarios insert into.
const pgqQueue = "bench_pgq"

func runProduce(ctx context.Context, env *Env) (Result, error) {
	p := env.Payload()
	return produce(ctx, env, "produce", produceSpec{
		perStmt:  1,
		unit:     "tx/s",
		baseline: `INSERT INTO bench_plain (ev_type, ev_data) VALUES ($1, $2)`,
		pgque:    `SELECT pgque.send($1::text, $2::text, $3::text)`,
		peer:     `SELECT pgq.insert_event($1::text, $2::text, $3::text)`,
		baseArgs: []any{produceEventType, p},
		pgqArgs:  []any{produceQueue, produceEventType, p},
		target:   0.8,
		peerGoal: 1.0,
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
		// PgQ has no batch call: one statement inserting each event.
		peer:     `SELECT count(pgq.insert_event($1::text, $2::text, p)) FROM unnest($3::text[]) AS u(p)`,
		baseArgs: []any{produceEventType, ps},
		pgqArgs:  []any{produceQueue, produceEventType, ps},
		target:   0.7,
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

	exec := func(sql string, args []any) func(context.Context, *pgx.Conn) error {
		return func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, sql, args...)
			return err
		}
	}
	type side struct {
		label string
		op    func(context.Context, *pgx.Conn) error
	}
	sides := []side{{"INSERT", exec(sp.baseline, sp.baseArgs)}, {sp.what, exec(sp.pgque, sp.pgqArgs)}}
	peerArgs := append([]any{pgqQueue}, sp.pgqArgs[1:]...)
	pgqNote, err := setupPgQ(ctx, env)
	if err != nil {
		return res, err
	}
	if pgqNote == "" {
		sides = append(sides, side{"PgQ insert_event", exec(sp.peer, peerArgs)})
	}

	warm := min(time.Second, env.Duration/4)
	phases := 2 * len(sides)
	env.Logf("%d connections, %d-byte payloads, %d event(s) per statement; warm-up %v, then %d phases of %v",
		conns, env.PayloadSize, sp.perStmt, warm, phases, env.Duration/2)
	for _, sd := range sides {
		if _, _, err := producePhase(ctx, cs, warm, sd.op); err != nil {
			return res, fmt.Errorf("%s: %w", sd.label, err)
		}
	}

	stmts := make([]int64, len(sides))         // baseline, pgque, PgQ
	spent := make([]time.Duration, len(sides)) // wall time
	for i := range phases {
		k := i % len(sides)
		n, d, err := producePhase(ctx, cs, env.Duration/2, sides[k].op)
		if err != nil {
			return res, fmt.Errorf("%s: %w", sides[k].label, err)
		}
		stmts[k] += n
		spent[k] += d
		env.Logf("phase %d/%d %-17s %9.0f %s", i+1, phases, sides[k].label, float64(n*int64(sp.perStmt))/d.Seconds(), sp.unit)
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
	target := fmt.Sprintf("%s >= %.1f x INSERT", sp.what, sp.target)
	ok := ratio >= sp.target
	if len(sides) == 3 {
		peer := rate(2)
		res.Add("PgQ insert_event", peer, sp.unit)
		res.Add("ratio vs PgQ", p/peer, "x")
		res.Add("PgQ vs INSERT", peer/b, "x")
		if sp.peerGoal > 0 {
			target += fmt.Sprintf(", >= %.1f x PgQ", sp.peerGoal)
			ok = ok && p/peer >= sp.peerGoal
		}
	} else {
		res.Notes = append(res.Notes, pgqNote)
	}
	res.Check(target, ok)
	res.Notes = append(res.Notes, fmt.Sprintf("%d connections, one statement per transaction, %d-byte payload, "+
		"%v per side in 2 alternating phases each", conns, env.PayloadSize, spent[0].Round(time.Millisecond)))
	return res, nil
}

// setupPgQ installs PgQ in the scenario's database and creates its queue;
// it returns why it could not (the note to report), "" when it did.
func setupPgQ(ctx context.Context, env *Env) (string, error) {
	var available bool
	if err := env.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgq')`).Scan(&available); err != nil {
		return "", err
	}
	if !available {
		return "PgQ not measured: the server has no pgq extension (Debian: apt-get install postgresql-15-pgq3; make bench installs it when it can)", nil
	}
	if _, err := env.Pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pgq`); err != nil {
		return fmt.Sprintf("PgQ not measured: CREATE EXTENSION pgq: %v", err), nil
	}
	if _, err := env.Pool.Exec(ctx, `SELECT pgq.create_queue($1)`, pgqQueue); err != nil {
		return "", fmt.Errorf("pgq.create_queue: %w", err)
	}
	return "", nil
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
