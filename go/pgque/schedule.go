package pgque

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Schedule is a periodic event for CreateSchedule: maintenance (Maint, or a
// running Ticker) sends an event of Type with Payload to Queue every Every,
// or whenever Cron matches the wall clock.  Set exactly one of Every and
// Cron.
type Schedule struct {
	// Name identifies the schedule, like a queue name: 1 to 63 bytes of
	// letters, digits, "_", "." and "-", starting with a letter or digit.
	Name string
	// Queue receives the events; it must exist.  Dropping the queue drops
	// its schedules.
	Queue string
	// Type and Payload are those of every event sent, as in Event.
	Type    string
	Payload any
	// Every is the period: whole seconds, at least one.  It is an exact
	// duration (24*time.Hour is 24 hours even across a DST change); use
	// Cron to follow a wall clock.
	Every time.Duration
	// Cron is a 5-field cron expression (minute hour day-of-month month
	// day-of-week) or a shortcut such as "@daily", matched against the wall
	// clock of TimeZone.  See pgque.create_schedule in the SQL reference.
	Cron string
	// TimeZone is an IANA time zone name, e.g. "Europe/Berlin"; "" is UTC.
	TimeZone string
	// StartAt, for Every only, is the first run (rounded down to the
	// second); when it has passed, the first run is the next StartAt + k *
	// Every.  Zero: one period from now.
	StartAt time.Time
}

// CreateSchedule creates a schedule and returns its first run.  It fails with
// ErrScheduleExists when the name is taken, ErrQueueNotFound for an unknown
// queue and ErrInvalidArgument for a bad name, period (at most 100 years),
// cron expression, time zone or StartAt (within 100 years of now).
func (c *Client) CreateSchedule(ctx context.Context, s Schedule) (time.Time, error) {
	const op = "pgque: create schedule"
	for _, f := range []struct{ what, v string }{{"schedule name", s.Name}, {"cron", s.Cron}, {"time zone", s.TimeZone}} {
		if err := checkText(op, f.what, f.v); err != nil {
			return time.Time{}, err
		}
	}
	if (s.Every == 0) == (s.Cron == "") {
		return time.Time{}, invalid(op, "schedule %q: set exactly one of Every and Cron", s.Name)
	}
	if s.Cron != "" && !s.StartAt.IsZero() {
		return time.Time{}, invalid(op, "schedule %q: StartAt applies to Every only", s.Name)
	}
	if s.Cron == "" && s.Every > maxSpan {
		// The engine checks the lower bound, with its own message.
		return time.Time{}, checkSpan(op, "period", s.Every)
	}
	if !s.StartAt.IsZero() {
		if err := checkTime(op, "start time", s.StartAt, true); err != nil {
			return time.Time{}, err
		}
	}
	p, err := Event{Type: s.Type, Payload: s.Payload}.payload(op)
	if err != nil {
		return time.Time{}, err
	}
	tz := s.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	var first time.Time
	if s.Cron != "" {
		err = c.q().QueryRow(ctx, `SELECT pgque.create_schedule($1, $2, $3, $4::pg_catalog.text, cron => $5::pg_catalog.text, time_zone => $6)`,
			s.Name, c.qn(s.Queue), s.Type, p, s.Cron, tz).Scan(&first)
	} else {
		var start *time.Time
		if !s.StartAt.IsZero() {
			start = &s.StartAt
		}
		err = c.q().QueryRow(ctx, `SELECT pgque.create_schedule($1, $2, $3, $4::pg_catalog.text, every => $5::pg_catalog.interval,
		                                                         time_zone => $6, start_at => $7)`,
			s.Name, c.qn(s.Queue), s.Type, p, s.Every, tz, start).Scan(&first)
	}
	return first, wrap(op, err)
}

// CreateScheduleTx is CreateSchedule inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) CreateScheduleTx(ctx context.Context, tx DBTX, s Schedule) (time.Time, error) {
	return c.inTx(tx).CreateSchedule(ctx, s)
}

// DropSchedule deletes a schedule; events it sent stay in their queue.  It
// fails with ErrScheduleNotFound when there is none by that name (in the
// client's namespace), and with ErrInvalidArgument when the session
// administers schedules of that name in several namespaces: name the queue
// with DropQueueSchedule then.
func (c *Client) DropSchedule(ctx context.Context, name string) error {
	const op = "pgque: drop schedule"
	if c.ns == "" {
		_, err := c.exec1(ctx, op, `SELECT pgque.drop_schedule($1)`, name)
		return err
	}
	// Names are unique per namespace; the engine's own lookup spans every
	// namespace the role administers, so pin this one's.
	var n int64
	err := c.q().QueryRow(ctx, `SELECT pgque.drop_schedule(s.schedule_name, false, s.queue)
	                               FROM pgque.list_schedules(namespace => $2) s
	                              WHERE s.schedule_name = $1`, name, c.ns).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		if len(name) > 63 || !validName(name) {
			return invalid(op, "invalid schedule name %.100q", name)
		}
		return fmt.Errorf("%s: schedule %q does not exist: %w", op, name, ErrScheduleNotFound)
	}
	return wrap(op, err)
}

// DropScheduleTx is DropSchedule inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) DropScheduleTx(ctx context.Context, tx DBTX, name string) error {
	return c.inTx(tx).DropSchedule(ctx, name)
}

// DropQueueSchedule deletes the schedule name that sends to queue.  It
// fails with ErrScheduleNotFound when that queue has no schedule by that
// name, and with the errors of any call on a queue (ErrQueueNotFound, a
// permission error).
func (c *Client) DropQueueSchedule(ctx context.Context, queue, name string) error {
	_, err := c.exec1(ctx, "pgque: drop schedule", `SELECT pgque.drop_schedule($1, false, $2)`, name, c.qn(queue))
	return err
}

// DropQueueScheduleTx is DropQueueSchedule inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) DropQueueScheduleTx(ctx context.Context, tx DBTX, queue, name string) error {
	return c.inTx(tx).DropQueueSchedule(ctx, queue, name)
}

// ScheduleInfo describes a schedule (pgque.list_schedules).
type ScheduleInfo struct {
	Name    string
	Queue   string
	Type    string
	Payload json.RawMessage // nil for a NULL payload
	// Every is the period, 0 for a cron schedule.  A period given in SQL
	// with days or months counts them as 24 hours and 30 days here.
	Every    time.Duration
	Cron     string // "" for a periodic schedule
	TimeZone string
	NextRun  time.Time
	// LastRun is the due time of the last event sent, LastFiredAt when it
	// was sent and LastEventID its id; nil before the first.
	LastRun     *time.Time
	LastFiredAt *time.Time
	LastEventID *int64
	Runs        int64 // events sent so far
	CreatedAt   time.Time
}

// Schedules describes every schedule (of the client's namespace), by name.
func (c *Client) Schedules(ctx context.Context) ([]ScheduleInfo, error) {
	const op = "pgque: schedules"
	rows, err := c.q().Query(ctx, `SELECT * FROM pgque.list_schedules(namespace => $1)`, c.namespaceArg())
	if err != nil {
		return nil, wrap(op, err)
	}
	ss, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ScheduleInfo, error) {
		var s ScheduleInfo
		var payload, cron *string
		var every *time.Duration
		err := row.Scan(&s.Name, &s.Queue, &s.Type, &payload, &every, &cron, &s.TimeZone, &s.NextRun,
			&s.LastRun, &s.LastFiredAt, &s.LastEventID, &s.Runs, &s.CreatedAt)
		s.Payload = rawJSON(payload)
		s.Queue = c.local(s.Queue)
		if every != nil {
			s.Every = *every
		}
		if cron != nil {
			s.Cron = *cron
		}
		return s, err
	})
	return ss, wrap(op, err)
}

// SchedulesTx is Schedules inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) SchedulesTx(ctx context.Context, tx DBTX) ([]ScheduleInfo, error) {
	return c.inTx(tx).Schedules(ctx)
}

// scheduleDueLayout is how an event's Extra2 carries its due time.
const scheduleDueLayout = "2006-01-02T15:04:05Z"

// ScheduledRun tells a handler which schedule sent msg and for which due
// time (after downtime, the earliest run that was missed): schedules send
// their name in Extra1 and the due time in Extra2.  ok is false when msg
// does not carry both (it was not sent by a schedule).
func (m Message) ScheduledRun() (schedule string, due time.Time, ok bool) {
	if m.Extra1 == nil || m.Extra2 == nil {
		return "", time.Time{}, false
	}
	due, err := time.Parse(scheduleDueLayout, *m.Extra2)
	if err != nil {
		return "", time.Time{}, false
	}
	return *m.Extra1, due, true
}
