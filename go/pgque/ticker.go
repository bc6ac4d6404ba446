package pgque

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// leaderLockKey is the session advisory lock that elects one ticker per database.
const leaderLockKey = 1886482291

// Ticker runs pgque's periodic work for one database: it calls
// pgque.ticker() every tick interval, so events are ticked (and consumers
// woken by NOTIFY) within milliseconds of their commit, and pgque.maint()
// every maint interval (table rotation, retries, tick cleanup).
//
// Any number of Tickers may run against one database, in one process or
// many: they elect a leader with a session advisory lock held on a
// connection of its own, and only the leader works.  When the leader's
// process or connection dies the lock is released and another Ticker takes
// over within an election interval.
type Ticker struct {
	pool   *pgxpool.Pool
	cfg    tickerConfig
	leader atomic.Bool
}

type tickerConfig struct {
	tick, maint, election time.Duration
	log                   *slog.Logger
}

// TickerOption configures a Ticker.
type TickerOption func(*tickerConfig)

// DefaultTickInterval is how often a Ticker's leader checks for queues to
// tick unless WithTickInterval says otherwise.  Half of it is the mean
// wait between a commit and its tick: at 4 ms the end-to-end p50 at 1,000
// events/s is about 4.2 ms on a 2-core machine (4.7 at 5 ms), for 250
// cheap calls a second (docs/benchmarks.md).
const DefaultTickInterval = 4 * time.Millisecond

// WithTickInterval sets how often the leader checks for queues to tick
// (default DefaultTickInterval).  It bounds the delivery latency; each check
// is one cheap call per database.
func WithTickInterval(d time.Duration) TickerOption {
	return func(c *tickerConfig) { c.tick = d }
}

// WithMaintInterval sets how often the leader runs maintenance (default 1 s).
// Due retries are redelivered within about this long.
func WithMaintInterval(d time.Duration) TickerOption {
	return func(c *tickerConfig) { c.maint = d }
}

// WithElectionInterval sets how often a Ticker that is not the leader tries
// to become it, and so how quickly a dead leader is replaced (default 1 s).
func WithElectionInterval(d time.Duration) TickerOption {
	return func(c *tickerConfig) { c.election = d }
}

// WithTickerLogger makes the Ticker log leadership changes and errors (by
// default it logs nothing).
func WithTickerLogger(l *slog.Logger) TickerOption {
	return func(c *tickerConfig) { c.log = l }
}

// NewTicker returns a Ticker for the pool's database; Run starts it.
func NewTicker(pool *pgxpool.Pool, opts ...TickerOption) *Ticker {
	cfg := tickerConfig{
		tick:     DefaultTickInterval,
		maint:    time.Second,
		election: time.Second,
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	return &Ticker{pool: pool, cfg: cfg}
}

// RunTicker runs a Ticker for the client's database until ctx ends.
func (c *Client) RunTicker(ctx context.Context, opts ...TickerOption) error {
	return NewTicker(c.pool, opts...).Run(ctx)
}

// IsLeader reports whether this Ticker is currently the one doing the work.
func (t *Ticker) IsLeader() bool { return t.leader.Load() }

// Run works until ctx ends, then returns nil.  Connection failures are
// logged and retried with backoff; Run returns an error only for a bad
// configuration.
func (t *Ticker) Run(ctx context.Context) error {
	if t.cfg.tick <= 0 || t.cfg.maint <= 0 || t.cfg.election <= 0 {
		return fmt.Errorf("pgque: ticker: intervals must be positive: %w", ErrInvalidArgument)
	}
	backoff := newBackoff(100*time.Millisecond, 10*time.Second)
	for ctx.Err() == nil {
		connected, err := t.session(ctx)
		if ctx.Err() != nil {
			break
		}
		if connected {
			backoff.reset()
		}
		wait := backoff.next()
		t.cfg.log.Warn("pgque ticker: connection lost; retrying", "err", err, "in", wait)
		if !sleep(ctx, wait) {
			break
		}
	}
	return nil
}

// session runs on one dedicated connection: it campaigns for leadership and,
// once leader, ticks until the connection fails or ctx ends.  It reports
// whether it got connected at all.
func (t *Ticker) session(ctx context.Context) (bool, error) {
	conn, err := pgx.ConnectConfig(ctx, t.pool.Config().ConnConfig.Copy())
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		var won bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, leaderLockKey).Scan(&won); err != nil {
			return true, err
		}
		if won {
			break
		}
		if !sleep(ctx, t.cfg.election) {
			return true, ctx.Err()
		}
	}
	t.leader.Store(true)
	defer t.leader.Store(false)
	t.cfg.log.Info("pgque ticker: became leader")
	return true, t.lead(ctx, conn)
}

// lead ticks and runs maintenance, each call in its own transaction as the
// engine requires.
func (t *Ticker) lead(ctx context.Context, conn *pgx.Conn) error {
	tick := time.NewTicker(t.cfg.tick)
	defer tick.Stop()
	lastMaint, lastCheck := time.Time{}, time.Time{}
	warned := map[string]time.Time{}
	for {
		if _, err := conn.Exec(ctx, `SELECT pgque.ticker()`); err != nil {
			return fmt.Errorf("pgque ticker: ticker(): %w", err)
		}
		if time.Since(lastMaint) >= t.cfg.maint {
			if _, err := conn.Exec(ctx, `SELECT pgque.maint()`); err != nil {
				return fmt.Errorf("pgque ticker: maint(): %w", err)
			}
			lastMaint = time.Now()
		}
		if time.Since(lastCheck) >= unclaimedCheckInterval {
			if err := t.warnUnclaimed(ctx, conn, warned); err != nil {
				return fmt.Errorf("pgque ticker: queue info: %w", err)
			}
			lastCheck = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// unclaimedCheckInterval is how often the leader looks for queues that keep
// events for a consumer nobody has subscribed; unclaimedWarnInterval how
// often it warns about one of them.
const (
	unclaimedCheckInterval = time.Minute
	unclaimedWarnInterval  = 10 * time.Minute
)

// warnUnclaimed logs a warning for each queue that holds events while it has
// no consumer (they are kept for the first one, and the queue's tables cannot
// rotate meanwhile), at most once per unclaimedWarnInterval per queue.
func (t *Ticker) warnUnclaimed(ctx context.Context, conn *pgx.Conn, warned map[string]time.Time) error {
	rows, err := conn.Query(ctx, `SELECT queue_name, unclaimed_events, unclaimed_since
	                                FROM pgque.get_queue_info() WHERE unclaimed_events > 0`)
	if err != nil {
		return err
	}
	var name string
	var n int64
	var since time.Time
	_, err = pgx.ForEachRow(rows, []any{&name, &n, &since}, func() error {
		if time.Since(warned[name]) >= unclaimedWarnInterval {
			warned[name] = time.Now()
			t.cfg.log.Warn("pgque ticker: queue has events and no consumer: they are kept for the first consumer that subscribes, and its tables cannot rotate until then (subscribe one, or set keep_unclaimed off)",
				"queue", name, "unclaimed_events", n, "since", since)
		}
		return nil
	})
	return err
}

// backoff doubles a delay from min up to max.
type backoff struct{ cur, min, max time.Duration }

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
