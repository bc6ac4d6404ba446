package pgque

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// WithTransaction runs the handlers of each piece in one database
// transaction that also acknowledges the piece: a handler's writes (made
// through TxFromContext(ctx)) and the acknowledgement of its message commit
// together, or not at all.  A crash, a lost connection or a shutdown
// timeout before the commit undoes the writes of every handler of the piece
// and the piece is delivered again; once the commit is done, the messages
// are not delivered again.  The effects of such handlers are thus exactly
// once, where other handlers' are at least once.
//
// Each handler runs under a savepoint of its own: one that fails (returns
// an error or panics) has its writes rolled back and its message nacked in
// the same transaction, the others keep theirs.  A handler that returns nil
// after a statement of its own failed (PostgreSQL then refuses everything
// until the savepoint is rolled back) counts as failed.  The piece's
// transaction is rolled back, and the piece delivered again, when it was
// taken over by another worker or acknowledged by another reader, so that
// the other's handling is the only one whose writes stay.  A nack the
// server refuses is made again at once with a fixed 60 s delay; if that is
// refused too, the piece is rolled back.
//
// The transaction is read committed and held while the piece is handled:
// keep handlers short (pieces grow while the consumer is behind only as
// long as they are handled within a second, see WithMaxCatchUp).  It needs
// a pool connection of its own for the piece, besides the connections that
// heartbeat.  It cannot be combined with WithConcurrency above 1: a
// transaction runs one statement at a time.
func WithTransaction() Option {
	return func(c *Consumer) { c.cfg.tx = true }
}

type txKey struct{}

// TxFromContext returns the transaction of the piece a handler of a
// Consumer WithTransaction runs in, nil for other handlers.  Write with it
// (or give it to the SDK's Tx calls: SendTx for an outbox) for the writes to
// commit with the message's acknowledgement.  Its Commit and Rollback fail:
// the Consumer ends the transaction; return an error to undo the handler's
// writes.  It is valid until the handler returns.
func TxFromContext(ctx context.Context) pgx.Tx {
	tx, _ := ctx.Value(txKey{}).(pgx.Tx)
	return tx
}

// handlerTx is the piece's transaction as a handler sees it.
type handlerTx struct{ pgx.Tx }

// ErrHandlerEndsTx is what the Commit and Rollback of a handler's
// transaction (TxFromContext) return.
var ErrHandlerEndsTx = errors.New("pgque: a Consumer WithTransaction commits the handler's transaction itself; return an error to undo the handler's writes")

func (handlerTx) Commit(context.Context) error   { return ErrHandlerEndsTx }
func (handlerTx) Rollback(context.Context) error { return ErrHandlerEndsTx }

// errTxBroken cancels the handlers of a piece whose transaction failed
// (its connection was lost): nothing of the piece can commit any more.
var errTxBroken = errors.New("pgque: the piece's transaction failed")

// pieceTx is the transaction a piece is handled and settled in.
type pieceTx struct {
	tx    pgx.Tx
	ctx   context.Context // for the consumer's own statements: outlives shutdown
	abort func(error)     // cancels the piece's handlers
}

// handle runs msg's handler under a savepoint, rolled back unless it
// succeeded.  When the consumer's own statements fail, nothing of the
// piece can commit: its handlers are aborted.
func (p *pieceTx) handle(c *Consumer, hctx context.Context, log *slog.Logger, msg Message) result {
	if _, err := p.tx.Exec(p.ctx, "SAVEPOINT pgque_handler"); err != nil {
		p.abort(fmt.Errorf("%w: %w", errTxBroken, err))
		return result{state: unhandled}
	}
	res := c.handle(context.WithValue(hctx, txKey{}, pgx.Tx(handlerTx{p.tx})), log, msg)
	if res.state == handled {
		_, err := p.tx.Exec(p.ctx, "RELEASE SAVEPOINT pgque_handler")
		if err == nil {
			return res
		}
		res = failure(fmt.Sprintf("the handler returned nil after a statement of its own failed (%v)", describe("release savepoint", err)))
	}
	if _, err := p.tx.Exec(p.ctx, "ROLLBACK TO SAVEPOINT pgque_handler"); err != nil {
		p.abort(fmt.Errorf("%w: %w", errTxBroken, err))
		return result{state: unhandled}
	}
	return res
}

// settle nacks the piece's failed messages, acknowledges it and commits;
// on anything else the transaction is left to be rolled back by the
// caller, and the piece is delivered again.
func (p *pieceTx) settle(c *Consumer, log *slog.Logger, msgs []Message, res []result) {
	piece := msgs[0].BatchID
	sctx, cancel := context.WithTimeout(p.ctx, settleTimeout)
	defer cancel()
	undone := func(what string, err error) {
		log.Error("pgque consumer: "+what+"; the transaction of the batch was rolled back, with its handlers' writes, and its messages will be delivered again",
			"batch_id", piece, "err", err)
	}
	for i := range res {
		if res[i].state != failed {
			continue
		}
		if res[i].how != nacked {
			if err := c.settleOther(sctx, p.tx, log, msgs[i], &res[i]); errors.Is(err, ErrTakenOver) {
				c.lostAtSettle(log, piece)
				return
			} else if err != nil {
				undone("cannot settle a message", err)
				return
			}
			continue
		}
		out, err := p.nack(sctx, c, log, msgs[i], res[i].reason)
		if errors.Is(err, ErrTakenOver) {
			c.lostAtSettle(log, piece)
			return
		} else if err != nil {
			undone("cannot nack a message", err)
			return
		}
		res[i].outcome = out
		logNacked(log, msgs[i], res[i].reason, out)
	}
	endAck := c.startAck(sctx, msgs)
	ok, err := c.client.AckResultTx(sctx, p.tx, piece)
	if err != nil || !ok {
		endAck(err)
	}
	switch {
	case errors.Is(err, ErrTakenOver):
		c.lostAtSettle(log, piece)
		return
	case err != nil:
		undone("cannot acknowledge the batch", err)
		return
	case !ok:
		log.Warn("pgque consumer: nothing to acknowledge: the batch was acknowledged or finished by another reader of this consumer name (or worker name); the handlers' writes were rolled back",
			"batch_id", piece)
		return
	}
	err = p.tx.Commit(sctx)
	endAck(err)
	if err == nil {
		c.observeSettled(msgs, res)
	} else {
		log.Error("pgque consumer: committing the batch failed; unless the commit reached the server, its handlers' writes were rolled back and its messages will be delivered again",
			"batch_id", piece, "err", err)
	}
}

// nack nacks msg in the transaction, under a savepoint: when the server
// refuses the nack it is made again with nackFallbackDelay.
func (p *pieceTx) nack(ctx context.Context, c *Consumer, log *slog.Logger, msg Message, reason string) (Outcome, error) {
	secs := c.cfg.retryAfterSecs
	for fallback := false; ; fallback = true {
		if _, err := p.tx.Exec(ctx, "SAVEPOINT pgque_nack"); err != nil {
			return "", err
		}
		out, err := c.client.NackResultTx(ctx, p.tx, msg.BatchID, msg, secs, reason)
		if err == nil {
			_, err = p.tx.Exec(ctx, "RELEASE SAVEPOINT pgque_nack")
			return out, err
		}
		refused := serverError(err) != nil || errors.Is(err, ErrInvalidArgument)
		if fallback || errors.Is(err, ErrTakenOver) || !refused {
			return "", err
		}
		if _, rerr := p.tx.Exec(ctx, "ROLLBACK TO SAVEPOINT pgque_nack"); rerr != nil {
			return "", rerr
		}
		log.Warn("pgque consumer: the server refused to nack a message; nacking it with a fixed delay instead",
			"msg_id", msg.MsgID, "err", describe("nack", err), "delay", nackFallbackDelay)
		secs = int(nackFallbackDelay / time.Second)
	}
}
