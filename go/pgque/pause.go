package pgque

import "context"

// PauseQueue stops queue from handing out events until ResumeQueue: its
// consumers receive nothing (Receive returns no messages and a running
// Consumer stays idle), while producers, the ticker and maintenance carry on,
// so nothing sent meanwhile is lost.  A batch that is open stays open: no
// further piece of it is handed out, but what was received before the pause
// can still be acknowledged (Ack) or nacked.  PauseQueue waits for consumer
// calls on the queue that are in progress, so once it returns no consumer is
// handed anything more.  It reports false when the queue was paused already.
// Requires pgque_admin.
func (c *Client) PauseQueue(ctx context.Context, queue string) (bool, error) {
	queue = c.qn(queue)
	n, err := c.exec1(ctx, "pgque: pause queue", `SELECT pgque.pause_queue($1)`, queue)
	return n == 1, err
}

// PauseQueueTx is PauseQueue inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) PauseQueueTx(ctx context.Context, tx DBTX, queue string) (bool, error) {
	return c.inTx(tx).PauseQueue(ctx, queue)
}

// ResumeQueue lets the consumers of a paused queue receive again and wakes
// them at once with a notification on the queue's channel.  Each continues
// where it stopped: an open batch after what it acknowledged, then
// everything sent during the pause.  It reports false when the queue was not
// paused.  Requires pgque_admin.
func (c *Client) ResumeQueue(ctx context.Context, queue string) (bool, error) {
	queue = c.qn(queue)
	n, err := c.exec1(ctx, "pgque: resume queue", `SELECT pgque.resume_queue($1)`, queue)
	return n == 1, err
}

// ResumeQueueTx is ResumeQueue inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) ResumeQueueTx(ctx context.Context, tx DBTX, queue string) (bool, error) {
	return c.inTx(tx).ResumeQueue(ctx, queue)
}
