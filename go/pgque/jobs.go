package pgque

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// JobState is where a message stands for one consumer (MessageStatus).
type JobState string

// The states of a message for a consumer; docs/concepts.md says how each
// is derived and how long it can be told.
const (
	JobNotTicked JobState = "not_ticked" // committed, in no tick yet: no consumer can get it
	JobPending   JobState = "pending"    // ticked, not handed out to this consumer yet
	JobHandedOut JobState = "handed_out" // received and not acknowledged
	JobDone      JobState = "done"       // acknowledged, or the consumer's position is past it
	JobRetrying  JobState = "retrying"   // nacked or snoozed, waiting in the retry store
	JobDead      JobState = "dead"       // in the dead letters
	JobDelayed   JobState = "delayed"    // sent with a delivery time not reached yet
	JobCancelled JobState = "cancelled"  // a delayed send cancelled before it was due
	JobUnclaimed JobState = "unclaimed"  // the queue has no consumer
	JobUnknown   JobState = "unknown"    // no table or store holds it (never sent, or reclaimed by rotation)
)

// MessageState is where one message stands for one consumer of its queue.
type MessageState struct {
	// Consumer is the consumer's name; "" in the one row of a queue that
	// has no consumer.
	Consumer string
	State    JobState
	// Worker and LeaseUntil: which worker holds it (handed_out), and until
	// when its lease runs; nil for a plain reader.
	Worker     *string
	LeaseUntil *time.Time
	// RetryCount: the attempt that comes next (retrying), or the count it
	// died with (dead); nil for a first delivery.
	RetryCount *int
	DueAt      *time.Time // retrying, delayed: when it is due
	Reason     *string    // dead: why
	DeadAt     *time.Time // dead: when
	// PositionAt is, for pending, the time of the tick the consumer
	// finished last: how far behind it is.
	PositionAt *time.Time
	// Message is the message as far as a table or store still holds it
	// (BatchID and RetryCount are 0 and nil); nil when none does.
	Message *Message
}

// MessageStatus tells where the message msgID of queue stands, one
// MessageState per consumer, by consumer name.  It is derived from
// positions, ticks and the retry, dead-letter and delayed stores, moves
// nothing and locks nothing; it reads the queue's event tables through, so
// its cost grows with what the queue holds.  A message the tables no
// longer hold (rotation reclaimed it) and that no store holds is
// JobUnknown.
func (c *Client) MessageStatus(ctx context.Context, queue string, msgID int64) ([]MessageState, error) {
	const op = "pgque: message status"
	queue = c.qn(queue)
	rows, err := c.q().Query(ctx, `SELECT consumer_name, state, worker_name, lease_until, retry_count, due_at,
	                                      reason, dead_at, position_at, type, payload, created_at,
	                                      extra1, extra2, extra3, extra4
	                                 FROM pgque.message_status($1, $2)`, queue, msgID)
	if err != nil {
		return nil, wrap(op, err)
	}
	ss, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (MessageState, error) {
		var s MessageState
		var consumer, typ, payload *string
		var created *time.Time
		var m Message
		err := row.Scan(&consumer, &s.State, &s.Worker, &s.LeaseUntil, &s.RetryCount, &s.DueAt,
			&s.Reason, &s.DeadAt, &s.PositionAt, &typ, &payload, &created,
			&m.Extra1, &m.Extra2, &m.Extra3, &m.Extra4)
		if consumer != nil {
			s.Consumer = *consumer
		}
		if created != nil {
			m.MsgID, m.CreatedAt, m.Payload = msgID, *created, payloadText(payload)
			if typ != nil {
				m.Type = *typ
			}
			s.Message = &m
		}
		return s, err
	})
	return ss, wrap(op, err)
}

// MessageStatusTx is MessageStatus inside tx (a pgx.Tx, or a database/sql
// transaction through SQLTx).
func (c *Client) MessageStatusTx(ctx context.Context, tx DBTX, queue string, msgID int64) ([]MessageState, error) {
	return c.inTx(tx).MessageStatus(ctx, queue, msgID)
}
