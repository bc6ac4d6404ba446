package pgque

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// SentEvent is an event as it was sent to a queue, as FindEvents lists it.
type SentEvent struct {
	MsgID int64  `json:"msg_id"`
	Type  string `json:"type"`
	// Payload is the payload as sent (raw JSON unless sent as text through
	// SQL); "" for a NULL payload.
	Payload   string    `json:"payload"`
	CreatedAt time.Time `json:"created_at"`
	// DeliverAt is set while a delayed event (WithRunAt, WithDelay) waits
	// to be published; nil once published, and for other events.
	DeliverAt *time.Time `json:"deliver_at"`
	Extra1    *string    `json:"extra1"`
	Extra2    *string    `json:"extra2"`
	Extra3    *string    `json:"extra3"`
	Extra4    *string    `json:"extra4"`
}

// FindOptions narrows FindEvents.
type FindOptions struct {
	Type string // only events of this type; "": every type
	// ThisTransaction lists only what the transaction of FindEventsTx sent
	// (not committed yet); FindEvents refuses it, as a statement of its own
	// has sent nothing.
	ThisTransaction bool
	Max             int // at most this many, 1 to 2,147,483,647; 0: 100
}

// FindEvents lists the events sent to queue that it still holds, newest
// first, whether consumers got them or not: what a test asserts was sent
// (pgquetest.RequireSent), or what an operator looks for.  Retries and
// replays of dead letters are not sends and are not listed; a delayed event
// is listed once, with DeliverAt while it waits.  It reads the queue's
// event tables through: for tests and inspection, not for a hot path.  It
// needs the right to consume from the queue.
func (c *Client) FindEvents(ctx context.Context, queue string, opts FindOptions) ([]SentEvent, error) {
	const op = "pgque: find events"
	if opts.ThisTransaction {
		return nil, invalid(op, "ThisTransaction needs FindEventsTx")
	}
	return findEvents(ctx, c.q(), op, c.qn(queue), opts)
}

// FindEventsTx is FindEvents inside tx: it also sees what tx sent, and
// with opts.ThisTransaction only that.
func (c *Client) FindEventsTx(ctx context.Context, tx DBTX, queue string, opts FindOptions) ([]SentEvent, error) {
	return findEvents(ctx, tx, "pgque: find events", c.qn(queue), opts)
}

func findEvents(ctx context.Context, q DBTX, op, queue string, opts FindOptions) ([]SentEvent, error) {
	limit := opts.Max
	if limit == 0 {
		limit = 100
	}
	if err := checkCount(op, "Max", limit, 1); err != nil {
		return nil, err
	}
	var typ *string
	if opts.Type != "" {
		typ = &opts.Type
	}
	rows, err := q.Query(ctx, `SELECT msg_id, type, coalesce(payload, ''), created_at, deliver_at,
		extra1, extra2, extra3, extra4
		FROM pgque.find_events($1::pg_catalog.text, $2::pg_catalog.text, $3::pg_catalog.bool, $4::pg_catalog.int4)`,
		queue, typ, opts.ThisTransaction, limit)
	if err != nil {
		return nil, wrap(op, err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SentEvent, error) {
		var e SentEvent
		var t *string
		err := r.Scan(&e.MsgID, &t, &e.Payload, &e.CreatedAt, &e.DeliverAt, &e.Extra1, &e.Extra2, &e.Extra3, &e.Extra4)
		if t != nil {
			e.Type = *t
		}
		return e, err
	})
	return evs, wrap(op, err)
}
