package pgque

import (
	"context"
	"fmt"
	"time"
)

// ReceiveOption changes how ReceiveFirst reads the consumer.
type ReceiveOption func(*receiveAs)

// receiveAs is who ReceiveFirst receives as: the consumer's plain reader
// (worker nil) or one of its cooperative workers.
type receiveAs struct {
	worker *string
	lease  time.Duration
}

// AsWorker makes ReceiveFirst receive as the cooperative worker named worker,
// its batch held for lease from now, as ReceiveAsWorker does (on each
// queue: a worker's batches are per queue).
func AsWorker(worker string, lease time.Duration) ReceiveOption {
	return func(a *receiveAs) { a.worker, a.lease = &worker, lease }
}

// ReceiveFirst receives for consumer from several queues in strict
// priority, as a Consumer WithQueues does: it asks the queues in the order
// given and returns the piece of the first that hands out messages (up to
// maxMessages, each with its Queue set), so a queue is read only while
// every queue before it has nothing.  The consumer must be subscribed to
// every queue; none of them handing out anything returns no messages.  A
// call hands out at most one piece, of one queue: Ack it by its BatchID.
// Without options it receives as the consumer's plain reader (Receive);
// AsWorker receives as a cooperative worker (ReceiveAsWorker).  An error
// of one queue names it and stops there.
func (c *Client) ReceiveFirst(ctx context.Context, queues []string, consumer string, maxMessages int,
	opts ...ReceiveOption) ([]Message, error) {
	const op = "pgque: receive first"
	var as receiveAs
	for _, o := range opts {
		o(&as)
	}
	if len(queues) == 0 {
		return nil, invalid(op, "no queues")
	}
	if err := checkCount(op, "max", maxMessages, 1); err != nil {
		return nil, err
	}
	var lease *time.Duration
	if as.worker != nil {
		if err := checkLease(op, as.lease); err != nil {
			return nil, err
		}
		lease = &as.lease
	}
	for _, q := range queues {
		msgs, err := c.receivePiece(ctx, op, c.qn(q), consumer, maxMessages, as.worker, lease)
		if err != nil {
			return nil, fmt.Errorf("queue %s: %w", q, err)
		}
		if len(msgs) > 0 {
			return msgs, nil
		}
	}
	return nil, nil
}

// ReceiveFirstTx is ReceiveFirst inside tx (a pgx.Tx, or a database/sql
// transaction through SQLTx); see ReceiveTx.  The queues asked before the
// one that hands out messages hand out nothing, so the transaction holds
// one piece.
func (c *Client) ReceiveFirstTx(ctx context.Context, tx DBTX, queues []string, consumer string, maxMessages int,
	opts ...ReceiveOption) ([]Message, error) {
	return c.inTx(tx).ReceiveFirst(ctx, queues, consumer, maxMessages, opts...)
}
