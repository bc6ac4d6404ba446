package pgque

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// PeekedMessage is a message Peek shows.
type PeekedMessage struct {
	// Message is the message; its BatchID is the open batch holding it (a
	// worker's window or the consumer's own batch, as Workers and
	// Consumers show them), not a piece to acknowledge, and 0 for a
	// message in no open batch yet.
	Message
	// Worker is the worker whose window holds the message; "" for the
	// consumer's own batch and for messages not handed out yet.
	Worker string
}

// Peek returns up to max (1 to 2,147,483,647) messages consumer has not acknowledged, in the
// order they are handed out: those in open batches first (handed out or
// not), then those a receive would get next, up to the newest tick.  It
// moves, locks and saves nothing, so an operator can look at a stuck
// consumer without taking its messages.  Messages not ticked yet, retries
// not due yet and delayed events are not shown.
func (c *Client) Peek(ctx context.Context, queue, consumer string, max int) ([]PeekedMessage, error) {
	const op = "pgque: peek"
	if err := checkCount(op, "max", max, 1); err != nil {
		return nil, err
	}
	rows, err := c.q().Query(ctx, `
		SELECT msg_id, coalesce(batch_id, 0), coalesce(worker_name, ''), type, payload, retry_count, created_at,
		       extra1, extra2, extra3, extra4
		  FROM pgque.peek($1, $2, $3)`, c.qn(queue), consumer, max)
	if err != nil {
		return nil, wrap(op, err)
	}
	ms, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (PeekedMessage, error) {
		var p PeekedMessage
		var payload *string
		m := &p.Message
		err := row.Scan(&m.MsgID, &m.BatchID, &p.Worker, &m.Type, &payload, &m.RetryCount, &m.CreatedAt,
			&m.Extra1, &m.Extra2, &m.Extra3, &m.Extra4)
		m.Payload = payloadText(payload)
		return p, err
	})
	return ms, wrap(op, err)
}

// PeekTx is Peek inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) PeekTx(ctx context.Context, tx DBTX, queue, consumer string, max int) ([]PeekedMessage, error) {
	return c.inTx(tx).Peek(ctx, queue, consumer, max)
}
