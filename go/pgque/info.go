package pgque

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// QueueInfo describes a queue (pgque.get_queue_info).
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
	EventsPerSecond  float64
	NewEvents        int64 // sent since the newest tick
	LastTickID       int64
	Consumers        int
	RetryPending     int64
	DeadLetters      int64
}

// Queues describes every queue.
func (c *Client) Queues(ctx context.Context) ([]QueueInfo, error) {
	return c.queueInfo(ctx, nil)
}

// Queue describes one queue; ErrQueueNotFound if there is none by that name.
func (c *Client) Queue(ctx context.Context, queue string) (QueueInfo, error) {
	qs, err := c.queueInfo(ctx, &queue)
	if err != nil {
		return QueueInfo{}, err
	}
	return qs[0], nil
}

func (c *Client) queueInfo(ctx context.Context, queue *string) ([]QueueInfo, error) {
	rows, err := c.pool.Query(ctx, `SELECT * FROM pgque.get_queue_info($1)`, queue)
	if err != nil {
		return nil, wrap("pgque: queue info", err)
	}
	qs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (QueueInfo, error) {
		var q QueueInfo
		var lag *time.Duration
		err := row.Scan(&q.Name, &q.Tables, &q.CurrentTable, &q.RotationPeriod, &q.SwitchTime,
			&q.TickerMaxCount, &q.TickerMaxLag, &q.TickerIdlePeriod, &q.MaxRetries,
			&q.RetryBackoffBase, &q.RetryBackoffCap, &lag, &q.EventsPerSecond, &q.NewEvents,
			&q.LastTickID, &q.Consumers, &q.RetryPending, &q.DeadLetters)
		if lag != nil {
			q.TickerLag = *lag
		}
		return q, err
	})
	return qs, wrap("pgque: queue info", err)
}

// ConsumerInfo describes one subscription (pgque.get_consumer_info).
type ConsumerInfo struct {
	Queue            string
	Name             string
	Lag              time.Duration // since the tick it last finished
	LastSeen         time.Duration // since it last opened, acked or finished a batch
	LastTick         int64
	CurrentBatch     *int64
	NextTick         *int64
	PendingEvents    int64
	RetryPending     int64
	DeadLetters      int64
	BlockingRotation bool // it is what keeps the queue's tables from rotating
}

// Consumers describes the subscriptions of queue, or of every queue when
// queue is "".
func (c *Client) Consumers(ctx context.Context, queue string) ([]ConsumerInfo, error) {
	var q *string
	if queue != "" {
		q = &queue
	}
	rows, err := c.pool.Query(ctx, `SELECT * FROM pgque.get_consumer_info($1)`, q)
	if err != nil {
		return nil, wrap("pgque: consumer info", err)
	}
	cs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ConsumerInfo, error) {
		var ci ConsumerInfo
		err := row.Scan(&ci.Queue, &ci.Name, &ci.Lag, &ci.LastSeen, &ci.LastTick, &ci.CurrentBatch,
			&ci.NextTick, &ci.PendingEvents, &ci.RetryPending, &ci.DeadLetters, &ci.BlockingRotation)
		return ci, err
	})
	return cs, wrap("pgque: consumer info", err)
}

// DeadLetter is an event that exhausted its retries for one consumer.
type DeadLetter struct {
	ID       int64
	Consumer string
	DeadAt   time.Time
	Reason   *string
	Message  Message // BatchID is 0
}

// DeadLetters lists up to limit dead letters of queue, newest first.
func (c *Client) DeadLetters(ctx context.Context, queue string, limit int) ([]DeadLetter, error) {
	rows, err := c.pool.Query(ctx, `SELECT * FROM pgque.dlq_list($1, $2)`, queue, limit)
	if err != nil {
		return nil, wrap("pgque: dead letters", err)
	}
	ds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (DeadLetter, error) {
		var d DeadLetter
		var payload *string
		m := &d.Message
		err := row.Scan(&d.ID, &d.Consumer, &d.DeadAt, &d.Reason, &m.MsgID, &m.CreatedAt, &m.RetryCount,
			&m.Type, &payload, &m.Extra1, &m.Extra2, &m.Extra3, &m.Extra4)
		m.Payload = rawJSON(payload)
		return d, err
	})
	return ds, wrap("pgque: dead letters", err)
}

// ReplayDeadLetter delivers a dead letter again, to the consumer that
// dead-lettered it only, and removes it from the store.  It returns the
// message id (unchanged).
func (c *Client) ReplayDeadLetter(ctx context.Context, id int64) (int64, error) {
	return c.exec1(ctx, "pgque: replay dead letter", `SELECT pgque.dlq_replay($1)`, id)
}

// PurgeDeadLetters deletes queue's dead letters older than olderThan (all
// with 0) and returns how many.
func (c *Client) PurgeDeadLetters(ctx context.Context, queue string, olderThan time.Duration) (int, error) {
	n, err := c.exec1(ctx, "pgque: purge dead letters", `SELECT pgque.dlq_purge($1, $2)`, queue, olderThan)
	return int(n), err
}
