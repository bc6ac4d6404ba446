package pgque

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// leaseName is the leader lease (pgque.leader_lease) the Tickers of a
// database elect their leader with.
const leaseName = "ticker"

// DefaultLeaderLease is how long a Ticker's leadership lasts without a
// renewal unless WithLeaderLease says otherwise.
const DefaultLeaderLease = 3 * time.Second

// Ticker runs pgque's periodic work for one database: it calls
// pgque.ticker() every tick interval, so events are ticked (and consumers
// woken by NOTIFY) within milliseconds of their commit, and pgque.maint()
// every maint interval (table rotation, retries, tick cleanup).
//
// Any number of Tickers may run against one database, in one process or
// many: they elect a leader with a lease in the database
// (pgque.leader_lease), and only the leader works.  The leader renews its
// lease every third of it; a leader that cannot renew in time (its process
// frozen, its host stalled, its connection lost) stops ticking, and a
// standby takes over once the lease has run out, within about one lease
// (WithLeaderLease) and an election interval.  A leader that stops cleanly
// releases the lease, and a standby takes over at its next election.
//
// Errors the server answers with (an SQLSTATE: a full disk, an engine
// error) are logged with their SQLSTATE and retried on the same connection
// with backoff; only a lost connection makes the Ticker reconnect.  Waits
// between retries start at 50 ms and stay under 500 ms, so the Ticker
// works again within about half a second of the server's return.
type Ticker struct {
	pool   *pgxpool.Pool
	cfg    tickerConfig
	holder string
	leader atomic.Bool
}

type tickerConfig struct {
	tick, idle, maint, election, lease time.Duration
	log                                *slog.Logger
	obs                                Observer        // nil: none
	session                            *pgx.ConnConfig // nil: the pool's
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
// while queues tick (default DefaultTickInterval): until nothing has ticked
// for a second, then at WithIdleTickInterval.  It bounds the delivery
// latency under load; each check is one cheap call per database.
func WithTickInterval(d time.Duration) TickerOption {
	return func(c *tickerConfig) { c.tick = d }
}

// DefaultIdleTickInterval is how often a Ticker's leader checks for queues
// to tick once nothing has ticked for a second, unless
// WithIdleTickInterval says otherwise.
const DefaultIdleTickInterval = 100 * time.Millisecond

// idleAfter is how long nothing must have ticked before the leader checks
// at the idle tick interval instead of the tick interval.
const idleAfter = time.Second

// wakeChannel is the channel on which the first send into a group of queues
// that the ticker found all ticked notifies (pgque._wake).
const wakeChannel = "pgque:wake"

// WithIdleTickInterval sets how often the leader checks for queues to tick
// once nothing has ticked for a second (default DefaultIdleTickInterval).
// A send into a queue that had nothing waiting wakes it at once: the
// engine notifies channel "pgque:wake" when such a send commits, and the
// leader listens.  What no send announces waits for the next check: a
// queue's ticker_max_lag or idle tick, delayed events coming due, and a
// send that raced the ticker's last look at its queue.
func WithIdleTickInterval(d time.Duration) TickerOption {
	return func(c *tickerConfig) { c.idle = d }
}

// WithMaintInterval sets how often the leader runs maintenance (default 1 s).
// Due retries are redelivered within about this long.
func WithMaintInterval(d time.Duration) TickerOption {
	return func(c *tickerConfig) { c.maint = d }
}

// WithElectionInterval sets how often a Ticker that is not the leader tries
// to become it (default: a third of the leader lease, 1 s by default).  A
// leader that stopped is replaced within its lease and one such interval.
func WithElectionInterval(d time.Duration) TickerOption {
	return func(c *tickerConfig) { c.election = d }
}

// WithLeaderLease sets how long the leader's leadership lasts without a
// renewal (default DefaultLeaderLease; at least 1 ms and at most 1 hour).
// The leader renews every third of it, so it tolerates a stall or an
// unreachable server of up to about two thirds of it; a standby takes over
// from a leader that stopped working within about one lease.  A shorter
// lease replaces a frozen leader sooner, for more renewals (each a small
// in-place update of one row of pgque.leader).
func WithLeaderLease(d time.Duration) TickerOption {
	return func(c *tickerConfig) { c.lease = d }
}

// WithTickerLogger makes the Ticker log leadership changes and errors to l
// (by default, to slog.Default() as it is at NewTicker).
func WithTickerLogger(l *slog.Logger) TickerOption {
	return func(c *tickerConfig) { c.log = l }
}

// NewTicker returns a Ticker for the pool's database; Run starts it.
func NewTicker(pool *pgxpool.Pool, opts ...TickerOption) *Ticker {
	cfg := tickerConfig{
		tick:  DefaultTickInterval,
		idle:  DefaultIdleTickInterval,
		maint: time.Second,
		lease: DefaultLeaderLease,
		log:   slog.Default(),
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.election == 0 {
		cfg.election = cfg.lease / 3
	}
	if cfg.session == nil {
		cfg.session = pool.Config().ConnConfig
	}
	return &Ticker{pool: pool, cfg: cfg, holder: WorkerName("ticker-")}
}

// NewTicker returns a Ticker for the client's database that reports to
// the client's observer (WithObserver) and keeps its session on the
// client's direct connection (WithDirectDSN); opts come after those, so
// they may override the observer.
func (c *Client) NewTicker(opts ...TickerOption) *Ticker {
	own := []TickerOption{func(cfg *tickerConfig) { cfg.session = c.session }}
	if c.obs != nil {
		own = append(own, WithTickerObserver(c.obs))
	}
	return NewTicker(c.pool, append(own, opts...)...)
}

// RunTicker runs the client's Ticker (NewTicker) until ctx ends.
func (c *Client) RunTicker(ctx context.Context, opts ...TickerOption) error {
	return c.NewTicker(opts...).Run(ctx)
}

// setLeader records whether this Ticker leads, and tells its observer of a
// change.
func (t *Ticker) setLeader(leading bool) {
	if t.leader.Swap(leading) != leading && t.cfg.obs != nil {
		t.cfg.obs.TickerLeading(leading)
	}
}

// IsLeader reports whether this Ticker is currently the one doing the work.
func (t *Ticker) IsLeader() bool { return t.leader.Load() }

// Holder is the name this Ticker holds the leader lease under (the holder
// that pgque.leader_info('ticker') shows while it leads): "ticker-", the
// host name, the process id and a random suffix.
func (t *Ticker) Holder() string { return t.holder }

// Run works until ctx ends, then releases the lease if it holds it and
// returns nil.  Failures are logged and retried with backoff (see
// Ticker).  Run returns an error for a bad configuration, and for what
// retrying cannot fix: pgque is not installed (ErrNotInstalled), or the
// role may not run the ticker (ErrPermissionDenied: it needs pgque_admin).
func (t *Ticker) Run(ctx context.Context) error {
	switch {
	case t.cfg.tick <= 0 || t.cfg.idle <= 0 || t.cfg.maint <= 0 || t.cfg.election <= 0:
		return fmt.Errorf("pgque: ticker: intervals must be positive: %w", ErrInvalidArgument)
	case t.cfg.lease < time.Millisecond || t.cfg.lease > time.Hour:
		return fmt.Errorf("pgque: ticker: leader lease %v is out of range (at least 1 ms, at most 1 h): %w",
			t.cfg.lease, ErrInvalidArgument)
	}
	// A session that meets an error retrying cannot fix ends the run.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var fatal error
	session := func(sctx context.Context) (bool, error) {
		worked, err := t.session(sctx)
		var fe fatalError
		if errors.As(err, &fe) {
			fatal = fe.err
			stop()
		}
		return worked, err
	}
	reconnect(ctx, session, func(err error, wait time.Duration) {
		var oe *opError
		if errors.As(err, &oe) && oe.op == "connect" {
			// Refused, unreachable, or the server's answer (a wrong
			// password, a database that does not exist, starting up).
			t.cfg.log.Warn("pgque ticker: cannot connect; retrying", "err", describe("connect", oe.err), "in", wait)
		} else {
			t.cfg.log.Warn("pgque ticker: connection lost; reconnecting", "err", err, "in", wait)
		}
	})
	return fatal
}

// fatalError ends a Ticker's run: retrying cannot help.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }
func (e fatalError) Unwrap() error { return e.err }

// session runs on one dedicated connection until the connection fails or
// ctx ends: it campaigns for the lease and, while it holds it, ticks.  It
// reports whether any call on the connection succeeded.
func (t *Ticker) session(ctx context.Context) (bool, error) {
	conn, err := pgx.ConnectConfig(ctx, t.cfg.session.Copy())
	if err != nil {
		return false, &opError{"connect", err}
	}
	s := &tickerSession{t: t, conn: conn, warned: map[string]time.Time{}}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		if t.leader.Load() {
			s.resign(cctx)
		}
		conn.Close(cctx)
	}()
	err = s.run(ctx)
	return s.worked, err
}

// tickerSession is the state of one session of a Ticker.
type tickerSession struct {
	t      *Ticker
	conn   *pgx.Conn
	worked bool      // some call succeeded
	until  time.Time // the lease is surely ours until then (local clock)
	renew  time.Time // when to renew it next
	last   struct{ maint, check time.Time }
	warned map[string]time.Time
	b      backoff   // waits after server errors
	active time.Time // when a ticker() call last ticked a queue
	listen bool      // the connection listens on wakeChannel
}

// run is the session's loop; it returns on a connection error or when ctx
// ends.
func (s *tickerSession) run(ctx context.Context) error {
	t := s.t
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		began := time.Now()
		var err error
		leading := t.leader.Load()
		if !leading || !time.Now().Before(s.renew) {
			err = s.campaign(ctx)
		}
		if err == nil && t.leader.Load() {
			err = s.work(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A server error can end the session too (a FATAL one, such
			// as an idle session timeout): then the connection is gone.
			if connectionError(err) || s.conn.IsClosed() {
				t.setLeader(false)
				return err
			}
			if perr := wrap("pgque: ticker: "+s.failed(err), err); permanent(perr) {
				t.cfg.log.Error("pgque ticker: " + describe(s.failed(err), err) + "; stopping")
				return fatalError{perr}
			}
			wait := s.b.next()
			t.cfg.log.Error("pgque ticker: "+describe(s.failed(err), err)+"; retrying on the same connection",
				"in", wait)
			if !sleep(ctx, wait) {
				return ctx.Err()
			}
			continue
		}
		s.b.reset()
		if !t.leader.Load() {
			if s.listen {
				// A standby does not read the connection: notifications
				// would pile up.  A failure is met again by the next round.
				if _, err := s.conn.Exec(ctx, `UNLISTEN *`); err == nil {
					s.listen = false
				}
			}
			if !sleep(ctx, t.cfg.election) {
				return ctx.Err()
			}
			continue
		}
		if err := s.wait(ctx, began); err != nil {
			continue
		}
	}
}

// wait returns when the next check is due: a tick interval after the last
// one began while queues ticked within idleAfter, an idle tick interval
// after it otherwise, and at once when a send wakes the ticker.  A
// notification buffered while ticker() ran wakes it too, at once; the
// ones buffered behind it are dropped, as one check serves them all.  An
// error is the connection's: the next round's call meets it again.
func (s *tickerSession) wait(ctx context.Context, began time.Time) error {
	d := s.t.cfg.tick
	if time.Since(s.active) >= idleAfter {
		d = s.t.cfg.idle
	}
	wctx, cancel := context.WithDeadline(ctx, began.Add(d))
	_, err := s.conn.WaitForNotification(wctx)
	timedOut := wctx.Err() != nil
	cancel()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err == nil:
		done, stop := context.WithCancel(ctx)
		stop()
		for {
			if _, err := s.conn.WaitForNotification(done); err != nil {
				return nil
			}
		}
	case timedOut:
		return nil
	}
	return err
}

// opError names the call that failed, for logs.
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return e.op + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// failed is the name of the call err came from.
func (s *tickerSession) failed(err error) string {
	var oe *opError
	if errors.As(err, &oe) {
		return oe.op
	}
	return "call"
}

// campaign takes or renews the lease.  A leader that cannot renew keeps
// leading only while its lease surely runs.
func (s *tickerSession) campaign(ctx context.Context) error {
	t := s.t
	asked := time.Now()
	var ok bool
	err := s.conn.QueryRow(ctx, `SELECT pgque.leader_lease($1, $2, $3)`, leaseName, t.holder, t.cfg.lease).Scan(&ok)
	if err != nil {
		if t.leader.Load() && !time.Now().Before(s.until) {
			t.setLeader(false)
			t.cfg.log.Warn("pgque ticker: could not renew the leader lease before it ran out; stopped ticking")
		}
		return &opError{"leader_lease()", err}
	}
	s.worked = true
	switch {
	case ok:
		s.until = asked.Add(t.cfg.lease)
		s.renew = asked.Add(t.cfg.lease / 3)
		if !t.leader.Load() {
			t.setLeader(true)
			t.cfg.log.Info("pgque ticker: became leader", "holder", t.holder, "lease", t.cfg.lease)
		}
	case t.leader.Load():
		t.setLeader(false)
		t.cfg.log.Warn("pgque ticker: lost the leader lease to another ticker (this one stalled past its lease); standing by",
			"holder", t.holder)
	}
	return nil
}

// resign gives the lease up, so that a standby takes over at once.  A
// query cut short by the end of Run's context closes the connection, so
// the release may need a new one.
func (s *tickerSession) resign(ctx context.Context) {
	t := s.t
	t.setLeader(false)
	conn := s.conn
	if conn.IsClosed() {
		var err error
		if conn, err = pgx.ConnectConfig(ctx, t.cfg.session.Copy()); err != nil {
			t.cfg.log.Warn("pgque ticker: could not release the leader lease; a standby takes over when it runs out",
				"err", err)
			return
		}
		defer conn.Close(ctx)
	}
	if _, err := conn.Exec(ctx, `SELECT pgque.leader_release($1, $2)`, leaseName, t.holder); err != nil {
		t.cfg.log.Warn("pgque ticker: could not release the leader lease; a standby takes over when it runs out",
			"err", err)
		return
	}
	t.cfg.log.Info("pgque ticker: released the leader lease", "holder", t.holder)
}

// work ticks and, when due, runs maintenance, each call in its own
// transaction as the engine requires; a leader whose lease may have run
// out (it was stalled before renewing) does nothing.
func (s *tickerSession) work(ctx context.Context) error {
	t := s.t
	if !time.Now().Before(s.until) {
		t.setLeader(false)
		t.cfg.log.Warn("pgque ticker: the leader lease ran out before it was renewed (the process was stalled); stopped ticking")
		return nil
	}
	if !s.listen {
		if _, err := s.conn.Exec(ctx, `LISTEN "`+wakeChannel+`"`); err != nil {
			return &opError{"LISTEN", err}
		}
		s.listen = true
	}
	var ticked int
	began := time.Now()
	err := s.conn.QueryRow(ctx, `SELECT pgque.ticker()`).Scan(&ticked)
	if t.cfg.obs != nil {
		t.cfg.obs.TickerCall("ticker()", ticked, time.Since(began), err)
	}
	// Maintenance goes on while ticker() fails: it repairs some of what
	// makes ticker() fail (unlogged sequences a promotion left unreadable,
	// 22_unlogged.sql), and rotation must not wait for ticks.
	var tickErr error
	if err != nil {
		tickErr = &opError{"ticker()", err}
		if s.conn.IsClosed() {
			return tickErr
		}
	}
	if ticked > 0 {
		s.active = time.Now()
	}
	if time.Since(s.last.maint) >= t.cfg.maint {
		var done int
		began := time.Now()
		err := s.conn.QueryRow(ctx, `SELECT pgque.maint()`).Scan(&done)
		if t.cfg.obs != nil {
			t.cfg.obs.TickerCall("maint()", done, time.Since(began), err)
		}
		if err != nil {
			if tickErr != nil {
				return tickErr // the first failure is the one to report
			}
			return &opError{"maint()", err}
		}
		s.last.maint = time.Now()
	}
	if tickErr != nil {
		return tickErr
	}
	if time.Since(s.last.check) >= unclaimedCheckInterval {
		if err := t.warnUnclaimed(ctx, s.conn, s.warned); err != nil {
			return &opError{"get_unclaimed_info()", err}
		}
		s.last.check = time.Now()
	}
	return nil
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
	rows, err := conn.Query(ctx, `SELECT queue_name, unclaimed_events, unclaimed_since FROM pgque.get_unclaimed_info()`)
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
