package pgque

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// QueueInfo describes a queue (pgque.get_queue_info).  Counts taken from the
// queue's event sequence (EventsPerSecond, NewEvents) are estimates: they
// include rolled-back sends and re-inserted retries.
type QueueInfo struct {
	Name             string
	Tables           int
	CurrentTable     int
	RotationPeriod   time.Duration
	SwitchTime       time.Time
	TickerMaxCount   int
	TickerMaxLag     time.Duration
	TickerIdlePeriod time.Duration
	MaxRetries       int
	RetryBackoffBase time.Duration
	RetryBackoffCap  time.Duration
	TickerLag        time.Duration // time since the newest tick
	// EventsPerSecond is the rate of sends over about the last minute: from
	// the newest tick at least a minute old (or the oldest tick kept, for a
	// younger queue) until now.
	EventsPerSecond float64
	NewEvents       int64 // sent since the newest tick
	// TotalEvents were sent since the queue was created: a counter to take
	// rates from (Prometheus' pgque_queue_events_total); 0 when the queue's
	// event sequence was broken by hand.
	TotalEvents  int64
	LastTickID   int64
	Consumers    int
	RetryPending int64
	DeadLetters  int64
	Paused       bool       // PauseQueue holds it: consumers receive nothing
	PausedAt     *time.Time // when it was paused; nil while it runs
	// EventBytes is the disk size of the queue's event tables, indexes and
	// TOAST included.
	EventBytes int64
	// EventDeadTuples counts dead rows in the queue's event tables, as the
	// statistics collector last heard (sessions report about once a second).
	// Events are only inserted, so only rolled-back sends leave any, and
	// rotation's TRUNCATE clears them.
	EventDeadTuples int64
	// KeepUnclaimed is the queue's keep_unclaimed setting: while it has no
	// consumer, its events are kept for the first one that subscribes.
	KeepUnclaimed bool
	// UnclaimedEvents estimates the events kept that way (0 while the
	// queue has consumers).  While it is above 0 the queue's tables cannot
	// rotate: subscribe a consumer, or turn keep_unclaimed off.
	UnclaimedEvents int64
	// UnclaimedSince is the time of the tick the unclaimed events were
	// sent after; nil while the queue has consumers.
	UnclaimedSince *time.Time
	// Errors counts the consecutive failures of the queue's periodic work
	// (the failing steps' counts summed), 0 when all is well.  ticker() and
	// maint() run each queue's steps so that one queue's failure is
	// recorded while the other queues go on; a step's record goes when it
	// next succeeds.  A count that keeps growing means the queue does not
	// tick, rotate or get its retries and delayed events: see LastError.
	Errors int64
	// LastError is the newest recorded failure, nil when Errors is 0.
	LastError *StepFailure
}

// StepFailure is a recorded failure of one step of a queue's periodic work.
type StepFailure struct {
	// Step is what failed: "tick" (ticker), "rotate" (the switch of its
	// event tables), "logs" (putting its newest tick back when maint
	// recycles the tick and consumer logs), "retry" or "delayed" (moving
	// due retries or delayed events into the queue; maint, and ticker for
	// delayed events), "delayed_store" or "dedup" (putting its parked
	// events or live unique keys back when maint recycles the delayed or
	// dedup store).  While a logs, delayed_store or dedup failure lasts,
	// that store is not recycled: nothing is lost, it grows.
	Step     string
	SQLState string // the error's SQLSTATE
	Message  string // the error's message (at most 1,000 characters)
	At       time.Time
}

// Queues describes every queue.
func (c *Client) Queues(ctx context.Context) ([]QueueInfo, error) {
	return c.queueInfo(ctx, nil)
}

// QueuesTx is Queues inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) QueuesTx(ctx context.Context, tx DBTX) ([]QueueInfo, error) {
	return c.inTx(tx).Queues(ctx)
}

// Queue describes one queue; ErrQueueNotFound if there is none by that name.
func (c *Client) Queue(ctx context.Context, queue string) (QueueInfo, error) {
	queue = c.qn(queue)
	qs, err := c.queueInfo(ctx, &queue)
	if err != nil {
		return QueueInfo{}, err
	}
	return qs[0], nil
}

// QueueTx is Queue inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) QueueTx(ctx context.Context, tx DBTX, queue string) (QueueInfo, error) {
	return c.inTx(tx).Queue(ctx, queue)
}

func (c *Client) queueInfo(ctx context.Context, queue *string) ([]QueueInfo, error) {
	rows, err := c.q().Query(ctx, `
		SELECT queue_name, queue_ntables, queue_cur_table, queue_rotation_period, queue_switch_time,
		       queue_ticker_max_count, queue_ticker_max_lag, queue_ticker_idle_period, queue_max_retries,
		       queue_retry_backoff_base, queue_retry_backoff_cap, ticker_lag, ev_per_sec, ev_new, coalesce(ev_total, 0),
		       last_tick_id, consumers, retry_pending, dead_letters, paused, paused_at, event_bytes,
		       event_dead_tuples, keep_unclaimed, unclaimed_events, unclaimed_since, errors,
		       last_error_step, last_error_sqlstate, last_error, last_error_at
		  FROM pgque.get_queue_info($1, $2)`, queue, c.namespaceArg())
	if err != nil {
		return nil, wrap("pgque: queue info", err)
	}
	qs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (QueueInfo, error) {
		var q QueueInfo
		var lag *time.Duration
		var bytes, dead *int64
		var step, state, msg *string
		var at *time.Time
		err := row.Scan(&q.Name, &q.Tables, &q.CurrentTable, &q.RotationPeriod, &q.SwitchTime,
			&q.TickerMaxCount, &q.TickerMaxLag, &q.TickerIdlePeriod, &q.MaxRetries,
			&q.RetryBackoffBase, &q.RetryBackoffCap, &lag, &q.EventsPerSecond, &q.NewEvents, &q.TotalEvents,
			&q.LastTickID, &q.Consumers, &q.RetryPending, &q.DeadLetters,
			&q.Paused, &q.PausedAt, &bytes, &dead, &q.KeepUnclaimed, &q.UnclaimedEvents, &q.UnclaimedSince,
			&q.Errors, &step, &state, &msg, &at)
		if step != nil && state != nil && msg != nil && at != nil {
			q.LastError = &StepFailure{Step: *step, SQLState: *state, Message: *msg, At: *at}
		}
		// NULL only for a queue dropped while the row was read.
		if bytes != nil {
			q.EventBytes = *bytes
		}
		if dead != nil {
			q.EventDeadTuples = *dead
		}
		if lag != nil {
			q.TickerLag = *lag
		}
		q.Name = c.local(q.Name)
		return q, err
	})
	return qs, wrap("pgque: queue info", err)
}

// ConsumerInfo describes one subscription (pgque.get_consumer_info).
type ConsumerInfo struct {
	Queue string
	Name  string
	// Lag is how long the oldest event not yet consumed has waited, as an
	// upper bound: the time since the tick the consumer's position starts
	// after (the oldest of its own and of its workers' windows; what came
	// before is consumed), or 0 when PendingEvents is 0.  A consumer that is
	// stuck, stopped or paused shows a growing Lag.
	Lag      time.Duration
	LastSeen time.Duration // since it last opened, acked or finished a batch
	LastTick int64
	// CurrentBatch is the consumer's own open batch (a plain reader's, see
	// WithSingleReader), nil when none; NextTick is its end tick, or the end
	// of the tick range its workers' windows are being cut from (Workers
	// shows the batches they hold).
	CurrentBatch *int64
	NextTick     *int64
	// PendingEvents estimates the events the consumer has not consumed yet:
	// the queue's event sequence now minus its value at the consumer's
	// position.  It counts the open batch until it is finished and events not
	// ticked yet, and also rolled-back sends and other consumers' retries, so
	// it is an upper bound; it is 0 once the consumer has caught up.
	PendingEvents int64
	RetryPending  int64 // its failed events waiting in the retry store
	DeadLetters   int64 // its dead letters
	// BlockingRotation reports that it is what keeps the queue's tables from
	// rotating.
	BlockingRotation bool
	// BatchAge is the age of the oldest open batch, the consumer's own or a
	// window one of its workers holds, nil when none: the time since its end
	// tick.  A batch reaches to the newest tick when it is opened, so this
	// exceeds the time since the opening by less than one tick interval.  A
	// growing BatchAge with a recent LastSeen is a handler that hangs (or
	// works through a big batch) while its worker keeps renewing its lease.
	BatchAge *time.Duration
	// WorkerBatches is how many windows the consumer's cooperative workers
	// hold (Workers lists them).
	WorkerBatches int
}

// Consumers describes the subscriptions of queue, or of every queue when
// queue is "".
func (c *Client) Consumers(ctx context.Context, queue string) ([]ConsumerInfo, error) {
	queue = c.qn(queue)
	var q *string
	if queue != "" {
		q = &queue
	}
	return c.consumerInfo(ctx, q, nil)
}

// ConsumersTx is Consumers inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) ConsumersTx(ctx context.Context, tx DBTX, queue string) ([]ConsumerInfo, error) {
	return c.inTx(tx).Consumers(ctx, queue)
}

// Consumer describes the subscription of consumer to queue: ErrQueueNotFound
// or ErrConsumerNotFound if there is none, ErrInvalidArgument for a
// malformed name.
func (c *Client) Consumer(ctx context.Context, queue, consumer string) (ConsumerInfo, error) {
	queue = c.qn(queue)
	cs, err := c.consumerInfo(ctx, &queue, &consumer)
	if err != nil {
		return ConsumerInfo{}, err
	}
	return cs[0], nil
}

// ConsumerTx is Consumer inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) ConsumerTx(ctx context.Context, tx DBTX, queue, consumer string) (ConsumerInfo, error) {
	return c.inTx(tx).Consumer(ctx, queue, consumer)
}

func (c *Client) consumerInfo(ctx context.Context, queue, consumer *string) ([]ConsumerInfo, error) {
	rows, err := c.q().Query(ctx, `
		SELECT queue_name, consumer_name, lag, last_seen, last_tick, current_batch, next_tick,
		       pending_events, retry_pending, dead_letters, blocking_rotation, batch_age, worker_batches
		  FROM pgque.get_consumer_info($1, $2, $3)`, queue, consumer, c.namespaceArg())
	if err != nil {
		return nil, wrap("pgque: consumer info", err)
	}
	cs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ConsumerInfo, error) {
		var ci ConsumerInfo
		err := row.Scan(&ci.Queue, &ci.Name, &ci.Lag, &ci.LastSeen, &ci.LastTick, &ci.CurrentBatch,
			&ci.NextTick, &ci.PendingEvents, &ci.RetryPending, &ci.DeadLetters, &ci.BlockingRotation,
			&ci.BatchAge, &ci.WorkerBatches)
		ci.Queue = c.local(ci.Queue)
		return ci, err
	})
	return cs, wrap("pgque: consumer info", err)
}

// TableInfo describes one of pgque's tables, database wide, its partitions
// summed (pgque.get_table_info).  Name is "pgque.queue", "pgque.consumer",
// "pgque.event_slot", "pgque.tick", "pgque.sub_state", "pgque.retry_queue",
// "pgque.dead_letter", or "pgque.event" for the event tables of every queue.
// The tick and consumer-state logs and the event tables are insert-only and
// recycled with TRUNCATE, so their DeadTuples stay at zero (rolled-back
// inserts aside): that is pgque's "no bloat" to monitor.  Tuple counts and
// vacuum times come from the statistics collector.
type TableInfo struct {
	Name       string
	Partitions int
	TotalBytes int64 // disk size, indexes and TOAST included
	LiveTuples int64
	DeadTuples int64
	LastVacuum *time.Time // latest manual or auto vacuum; nil if never
}

// Tables describes pgque's tables.
func (c *Client) Tables(ctx context.Context) ([]TableInfo, error) {
	rows, err := c.q().Query(ctx, `SELECT * FROM pgque.get_table_info()`)
	if err != nil {
		return nil, wrap("pgque: table info", err)
	}
	ts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TableInfo, error) {
		var t TableInfo
		err := row.Scan(&t.Name, &t.Partitions, &t.TotalBytes, &t.LiveTuples, &t.DeadTuples, &t.LastVacuum)
		return t, err
	})
	return ts, wrap("pgque: table info", err)
}

// TablesTx is Tables inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) TablesTx(ctx context.Context, tx DBTX) ([]TableInfo, error) {
	return c.inTx(tx).Tables(ctx)
}

// DeadLetter is an event that exhausted its retries for one consumer.
type DeadLetter struct {
	ID       int64
	Consumer string
	DeadAt   time.Time
	Reason   *string
	Message  Message // BatchID is 0
}

// DeadLetters lists up to limit (1 to 2147483647) dead letters of queue,
// newest first.
func (c *Client) DeadLetters(ctx context.Context, queue string, limit int) ([]DeadLetter, error) {
	if err := checkCount("pgque: dead letters", "limit", limit, 1); err != nil {
		return nil, err
	}
	queue = c.qn(queue)
	rows, err := c.q().Query(ctx, `SELECT * FROM pgque.dlq_list($1, $2)`, queue, limit)
	if err != nil {
		return nil, wrap("pgque: dead letters", err)
	}
	ds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (DeadLetter, error) {
		var d DeadLetter
		var payload *string
		m := &d.Message
		err := row.Scan(&d.ID, &d.Consumer, &d.DeadAt, &d.Reason, &m.MsgID, &m.CreatedAt, &m.RetryCount,
			&m.Type, &payload, &m.Extra1, &m.Extra2, &m.Extra3, &m.Extra4)
		m.Payload = payloadText(payload)
		return d, err
	})
	return ds, wrap("pgque: dead letters", err)
}

// DeadLettersTx is DeadLetters inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) DeadLettersTx(ctx context.Context, tx DBTX, queue string, limit int) ([]DeadLetter, error) {
	return c.inTx(tx).DeadLetters(ctx, queue, limit)
}

// ReplayDeadLetter delivers a dead letter again, to the consumer that
// dead-lettered it only, and removes it from the store.  It returns the
// message id (unchanged).
func (c *Client) ReplayDeadLetter(ctx context.Context, id int64) (int64, error) {
	return c.exec1(ctx, "pgque: replay dead letter", `SELECT pgque.dlq_replay($1)`, id)
}

// ReplayDeadLetterTx is ReplayDeadLetter inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) ReplayDeadLetterTx(ctx context.Context, tx DBTX, id int64) (int64, error) {
	return c.inTx(tx).ReplayDeadLetter(ctx, id)
}

// PurgeDeadLetters deletes queue's dead letters older than olderThan (all
// with 0) and returns how many.
func (c *Client) PurgeDeadLetters(ctx context.Context, queue string, olderThan time.Duration) (int, error) {
	queue = c.qn(queue)
	n, err := c.exec1(ctx, "pgque: purge dead letters", `SELECT pgque.dlq_purge($1, $2)`, queue, olderThan)
	return int(n), err
}

// PurgeDeadLettersTx is PurgeDeadLetters inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) PurgeDeadLettersTx(ctx context.Context, tx DBTX, queue string, olderThan time.Duration) (int, error) {
	return c.inTx(tx).PurgeDeadLetters(ctx, queue, olderThan)
}
