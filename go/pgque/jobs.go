package pgque

import (
	"context"
	"fmt"
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
	MsgID int64
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
	Reason     *string    // dead, retrying: why (as given to Nack or Reject; nil for a snooze)
	DeadAt     *time.Time // dead: when
	// PositionAt is, for pending, the time of the tick the consumer
	// finished last: how far behind it is.
	PositionAt *time.Time
	// Message is the message as far as a table or store still holds it
	// (BatchID and RetryCount are 0 and nil); nil when none does.
	Message *Message
}

// stateColumns are the columns of message_status and list_messages that
// scanState reads, after the message id.
const stateColumns = `consumer_name, state, worker_name, lease_until, retry_count, due_at, reason, dead_at,
	%s, type, payload, created_at, extra1, extra2, extra3, extra4`

// scanState reads one row of message_status or list_messages.
func scanState(row pgx.CollectableRow) (MessageState, error) {
	var s MessageState
	var consumer, typ, payload *string
	var created *time.Time
	var m Message
	err := row.Scan(&s.MsgID, &consumer, &s.State, &s.Worker, &s.LeaseUntil, &s.RetryCount, &s.DueAt,
		&s.Reason, &s.DeadAt, &s.PositionAt, &typ, &payload, &created,
		&m.Extra1, &m.Extra2, &m.Extra3, &m.Extra4)
	if consumer != nil {
		s.Consumer = *consumer
	}
	if created != nil {
		m.MsgID, m.CreatedAt, m.Payload = s.MsgID, *created, payloadText(payload)
		if typ != nil {
			m.Type = *typ
		}
		s.Message = &m
	}
	return s, err
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
	rows, err := c.q().Query(ctx, `SELECT $2::bigint, `+fmt.Sprintf(stateColumns, "position_at")+`
	                                 FROM pgque.message_status($1, $2)`, queue, msgID)
	if err != nil {
		return nil, wrap(op, err)
	}
	ss, err := pgx.CollectRows(rows, scanState)
	return ss, wrap(op, err)
}

// MessageStatusTx is MessageStatus inside tx (a pgx.Tx, or a database/sql
// transaction through SQLTx).
func (c *Client) MessageStatusTx(ctx context.Context, tx DBTX, queue string, msgID int64) ([]MessageState, error) {
	return c.inTx(tx).MessageStatus(ctx, queue, msgID)
}

// ListOptions narrows ListMessages.
type ListOptions struct {
	// Consumer is whose messages to list: required for JobPending;
	// "" lists every consumer's retrying and dead messages.
	Consumer string
	// Max bounds the messages listed (0: 100); a message with a row per
	// consumer counts once.
	Max int
	// After is the cursor: list messages with a greater id only (the last
	// MsgID of the previous page).
	After int64
	Type  string    // only events of this type ("": any)
	Since time.Time // from this time on (zero: no bound): created_at for pending, due_at for retrying and delayed, dead_at for dead
	Until time.Time // before this time (zero: no bound)
}

// ListMessages lists the messages of queue in state, which is JobPending
// (what opts.Consumer has not finished: JobPending or JobHandedOut rows),
// JobRetrying, JobDead or JobDelayed, oldest (lowest id) first.  It moves
// nothing; pending reads the consumer's backlog in the event tables, so
// its cost grows with how far behind the consumer is.
func (c *Client) ListMessages(ctx context.Context, queue string, state JobState, opts ListOptions) ([]MessageState, error) {
	const op = "pgque: list messages"
	max := opts.Max
	if max == 0 {
		max = 100
	}
	if err := checkCount(op, "max", max, 1); err != nil {
		return nil, err
	}
	queue = c.qn(queue)
	var consumer, typ *string
	if opts.Consumer != "" {
		consumer = &opts.Consumer
	}
	if opts.Type != "" {
		typ = &opts.Type
	}
	var after *int64
	if opts.After != 0 {
		after = &opts.After
	}
	var since, until *time.Time
	if !opts.Since.IsZero() {
		since = &opts.Since
	}
	if !opts.Until.IsZero() {
		until = &opts.Until
	}
	rows, err := c.q().Query(ctx, `SELECT msg_id, `+fmt.Sprintf(stateColumns, "NULL::timestamptz")+`
	                                 FROM pgque.list_messages($1, $2, $3, $4, $5, $6, $7, $8)`,
		queue, string(state), consumer, max, after, typ, since, until)
	if err != nil {
		return nil, wrap(op, err)
	}
	ss, err := pgx.CollectRows(rows, scanState)
	return ss, wrap(op, err)
}

// ListMessagesTx is ListMessages inside tx (a pgx.Tx, or a database/sql
// transaction through SQLTx).
func (c *Client) ListMessagesTx(ctx context.Context, tx DBTX, queue string, state JobState, opts ListOptions) ([]MessageState, error) {
	return c.inTx(tx).ListMessages(ctx, queue, state, opts)
}

// CancelResult is what Cancel did for one consumer: Outcome is
// "cancelled" (it will never be handed out to it), "handed_out" (it is
// being handled: cancelled too, and the piece's Heartbeat and Nack see
// it), "done" or "dead" (too late: nothing changed), or "unknown".
type CancelResult struct {
	Consumer string // "" for the one row of a queue without consumers
	Outcome  string
}

// Cancel takes message msgID of queue back before it is handled, for
// consumer only, or for every consumer when consumer is "".  A cancelled
// message is never delivered afterwards; a retrying one loses its retry, a
// delayed one is cancelled for every consumer.  Cancelling again returns
// the same outcomes.  It needs the right to send to the queue.
func (c *Client) Cancel(ctx context.Context, queue string, msgID int64, consumer string) ([]CancelResult, error) {
	const op = "pgque: cancel"
	queue = c.qn(queue)
	var who *string
	if consumer != "" {
		who = &consumer
	}
	rows, err := c.q().Query(ctx, `SELECT coalesce(consumer_name, ''), outcome FROM pgque.cancel($1, $2, $3)`,
		queue, msgID, who)
	if err != nil {
		return nil, wrap(op, err)
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[CancelResult])
	return rs, wrap(op, err)
}

// CancelTx is Cancel inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) CancelTx(ctx context.Context, tx DBTX, queue string, msgID int64, consumer string) ([]CancelResult, error) {
	return c.inTx(tx).Cancel(ctx, queue, msgID, consumer)
}
