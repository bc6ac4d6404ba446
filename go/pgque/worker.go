package pgque

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cooperative workers share one consumer's stream: each worker holds a
// different batch, for a lease that receiving and Heartbeat renew.  A worker
// that stops (crash, lost connection, hang) loses its batch once the lease
// runs out; the next idle worker takes it over from what was acknowledged,
// so nothing is lost, and the unacknowledged messages are delivered again.
// A worker's batch covers about max messages of the consumer's backlog
// (cut from inside one big transaction if need be), so the others find work
// too.  Retries and dead letters belong to the consumer.  See pgque.receive
// in docs/sql-reference.md.
//
// Every Consumer is a worker unless told otherwise (WithSingleReader), with
// a name of its own; these calls are the building blocks.

// DefaultLease is how long a worker's batch stays its own without a receive
// or heartbeat, unless WithLease says otherwise.
const DefaultLease = 30 * time.Second

// MaxLease is the longest lease the engine accepts: work that takes longer
// keeps its batch with Heartbeat.
const MaxLease = 24 * time.Hour

// checkLease reports a lease the engine would refuse.
func checkLease(op string, lease time.Duration) error {
	if lease <= 0 || lease > MaxLease {
		return invalid(op, "lease %v is not in (0, %v]", lease, MaxLease)
	}
	return nil
}

// ReceiveAsWorker is Receive for worker of consumer: up to max messages of
// the worker's batch, or of a new one (see the package's cooperative
// workers).  The batch is the worker's for lease from now.  The worker is
// created on first use; the consumer must be subscribed.  It fails with
// ErrConsumerBusy while the consumer has a batch of its own open (plain
// Receive on the same consumer name).
func (c *Client) ReceiveAsWorker(ctx context.Context, queue, consumer, worker string, max int,
	lease time.Duration) ([]Message, error) {
	queue = c.qn(queue)
	const op = "pgque: receive as worker"
	if err := checkLease(op, lease); err != nil {
		return nil, err
	}
	if err := checkCount(op, "max", max, 1); err != nil {
		return nil, err
	}
	return c.receivePiece(ctx, op, queue, consumer, max, &worker, &lease)
}

// ReceiveAsWorkerTx is ReceiveAsWorker inside tx (a pgx.Tx, or a
// database/sql transaction through SQLTx); see ReceiveTx.
func (c *Client) ReceiveAsWorkerTx(ctx context.Context, tx DBTX, queue, consumer, worker string, max int,
	lease time.Duration) ([]Message, error) {
	return c.inTx(tx).ReceiveAsWorker(ctx, queue, consumer, worker, max, lease)
}

// Heartbeat keeps the batch that the messages of batchID (a piece, as
// Message.BatchID) came from the worker's own for lease from now.  It
// reports false when that batch is no longer open: finished, or taken over
// by another worker after the lease ran out (whatever the worker still
// handles of it will be delivered to the other one as well).  For a plain
// reader's batch it records that the reader is alive, so that no worker
// takes the batch over.  A message of the piece cancelled meanwhile
// (Client.Cancel) leaves the batch the worker's: it reports true;
// CancelledMessages says which messages to stop handling.
func (c *Client) Heartbeat(ctx context.Context, batchID int64, lease time.Duration) (bool, error) {
	n, err := c.heartbeat(ctx, batchID, lease)
	return n >= 1, err
}

// heartbeat is pgque.heartbeat's answer: 0 lost, 1 ours, 2 ours with a
// message of the piece cancelled.
func (c *Client) heartbeat(ctx context.Context, batchID int64, lease time.Duration) (int64, error) {
	const op = "pgque: heartbeat"
	if err := checkLease(op, lease); err != nil {
		return 0, err
	}
	return c.exec1(ctx, op, `SELECT pgque.heartbeat($1, $2)`, batchID, lease)
}

// HeartbeatTx is Heartbeat inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) HeartbeatTx(ctx context.Context, tx DBTX, batchID int64, lease time.Duration) (bool, error) {
	return c.inTx(tx).Heartbeat(ctx, batchID, lease)
}

// CancelledMessages returns the ids of the messages of the piece batchID
// (Message.BatchID) that Cancel took back after they were handed out, in
// delivery order: their handling may stop (their Nack, Snooze and Reject
// return OutcomeCancelled); the piece is acked as usual.  None for a piece
// without any, or one no longer open.  A Consumer asks for them when a
// heartbeat finds one, and cancels those handlers' contexts.
func (c *Client) CancelledMessages(ctx context.Context, batchID int64) ([]int64, error) {
	const op = "pgque: cancelled messages"
	rows, err := c.q().Query(ctx, `SELECT pgque.cancelled_messages($1)`, batchID)
	if err != nil {
		return nil, wrap(op, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return ids, wrap(op, err)
}

// CancelledMessagesTx is CancelledMessages inside tx (a pgx.Tx, or a
// database/sql transaction through SQLTx).
func (c *Client) CancelledMessagesTx(ctx context.Context, tx DBTX, batchID int64) ([]int64, error) {
	return c.inTx(tx).CancelledMessages(ctx, batchID)
}

// WorkerInfo describes a worker of a consumer (Client.Workers).
type WorkerInfo struct {
	Name string
	// BatchID is the batch the worker holds; nil when none.
	BatchID *int64
	// LeaseLeft is the time until another worker may take the batch over
	// (negative: it may already); nil without a batch.
	LeaseLeft *time.Duration
	// LastSeen is the time since the worker last received, acked or
	// heartbeated.
	LastSeen time.Duration
}

// Workers lists the workers of consumer, by name.
func (c *Client) Workers(ctx context.Context, queue, consumer string) ([]WorkerInfo, error) {
	queue = c.qn(queue)
	const op = "pgque: workers"
	rows, err := c.q().Query(ctx, `SELECT worker_name, current_batch, lease_left, last_seen
	                                  FROM pgque.get_worker_info($1, $2)`, queue, consumer)
	if err != nil {
		return nil, wrap(op, err)
	}
	ws, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (WorkerInfo, error) {
		var w WorkerInfo
		err := row.Scan(&w.Name, &w.BatchID, &w.LeaseLeft, &w.LastSeen)
		return w, err
	})
	return ws, wrap(op, err)
}

// WorkersTx is Workers inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) WorkersTx(ctx context.Context, tx DBTX, queue, consumer string) ([]WorkerInfo, error) {
	return c.inTx(tx).Workers(ctx, queue, consumer)
}

// UnregisterWorker forgets a worker that will not come back; it reports
// false when there was none of that name.  It fails with ErrWorkerBusy
// while the worker holds a batch.
func (c *Client) UnregisterWorker(ctx context.Context, queue, consumer, worker string) (bool, error) {
	queue = c.qn(queue)
	n, err := c.exec1(ctx, "pgque: unregister worker", `SELECT pgque.unregister_worker($1, $2, $3)`,
		queue, consumer, worker)
	return n == 1, err
}

// UnregisterWorkerTx is UnregisterWorker inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) UnregisterWorkerTx(ctx context.Context, tx DBTX, queue, consumer, worker string) (bool, error) {
	return c.inTx(tx).UnregisterWorker(ctx, queue, consumer, worker)
}

// ReleaseWorker is UnregisterWorker for a worker that stops: a batch it
// still holds goes to the next worker that receives, at once (from what it
// acknowledged), instead of after its lease, and the worker is forgotten
// once that happened.  It reports false when there was no worker of that
// name.  A Consumer calls it when it stops.
func (c *Client) ReleaseWorker(ctx context.Context, queue, consumer, worker string) (bool, error) {
	queue = c.qn(queue)
	n, err := c.exec1(ctx, "pgque: release worker", `SELECT pgque.unregister_worker($1, $2, $3, true)`,
		queue, consumer, worker)
	return n == 1, err
}

// ReleaseWorkerTx is ReleaseWorker inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) ReleaseWorkerTx(ctx context.Context, tx DBTX, queue, consumer, worker string) (bool, error) {
	return c.inTx(tx).ReleaseWorker(ctx, queue, consumer, worker)
}
