package pgque

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// OutcomeSnoozed is what became of a snoozed message (Snooze): it comes
// back after the delay, its RetryCount unchanged.  OutcomeCancelled: the
// message was cancelled (pgque.cancel in SQL) while it was handed out, so
// Nack, Snooze and Reject leave it alone: it is not delivered again.
const (
	OutcomeSnoozed   Outcome = "snoozed"
	OutcomeCancelled Outcome = "cancelled"
)

// SnoozeError is what Snooze returns; see there.
type SnoozeError struct {
	Delay time.Duration
}

func (e *SnoozeError) Error() string { return fmt.Sprintf("pgque: snoozed for %v", e.Delay) }

// Snooze is an error a handler returns to have its message delivered again
// after d, to this consumer only, without counting a failure: RetryCount
// stays as it is and the message is never dead-lettered for it.  For work
// that is not ready yet (a rate limit, a resource still being prepared),
// not for work that failed.  d is from 0 to 100 years; anything else fails
// the message instead, with a reason saying so.
func Snooze(d time.Duration) error { return &SnoozeError{Delay: d} }

// RejectError is what Reject returns; see there.
type RejectError struct {
	Err error
}

func (e *RejectError) Error() string {
	if e.Err == nil {
		return "pgque: rejected"
	}
	return "pgque: rejected: " + e.Err.Error()
}

func (e *RejectError) Unwrap() error { return e.Err }

// Reject is an error a handler returns for a message that can never
// succeed (a payload it cannot parse, an order that no longer exists): it
// goes to the dead letters at once, with err's text as the reason (or
// "rejected" for nil), however many retries it has left.
func Reject(err error) error { return &RejectError{Err: err} }

// CancelError is what Cancel returns; see there.
type CancelError struct {
	Err error
}

func (e *CancelError) Error() string {
	if e.Err == nil {
		return "pgque: cancelled"
	}
	return "pgque: cancelled: " + e.Err.Error()
}

func (e *CancelError) Unwrap() error { return e.Err }

// Cancel is an error a handler returns for a message whose work is not to
// be done at all (the order it was for was withdrawn): it is cancelled for
// this consumer, as Client.Cancel would, with no retry and no dead letter;
// MessageStatus says JobCancelled.  err, if any, is logged.
func Cancel(err error) error { return &CancelError{Err: err} }

// Snooze has the server deliver msg, a message of the piece batchID
// (msg.BatchID), again after d to this consumer only, without counting a
// failure (see the Snooze function for handlers).  After settling
// individual messages, call Ack to finish the piece.  It returns
// OutcomeSnoozed, or what the message was settled as before (OutcomeRetry,
// OutcomeDead), which it leaves as it is.
func (c *Client) Snooze(ctx context.Context, batchID int64, msg Message, d time.Duration) (Outcome, error) {
	const op = "pgque: snooze"
	if d < 0 || d > maxSpan {
		return "", invalid(op, "delay %v is out of range: must be from 0 to 100 years", d)
	}
	var out string
	err := c.q().QueryRow(ctx, `SELECT pgque.snooze($1, $2, $3::pg_catalog.interval)`, batchID, msg.MsgID, d).Scan(&out)
	return Outcome(out), wrap(op, err)
}

// SnoozeTx is Snooze inside tx (see NackTx).
func (c *Client) SnoozeTx(ctx context.Context, tx DBTX, batchID int64, msg Message, d time.Duration) (Outcome, error) {
	return c.inTx(tx).Snooze(ctx, batchID, msg, d)
}

// Reject puts msg, a message of the piece batchID (msg.BatchID), in this
// consumer's dead letters now, with reason, however many retries it has
// left (see the Reject function for handlers).  After settling individual
// messages, call Ack to finish the piece.  It returns OutcomeDead, or
// OutcomeRetry when the message was already queued for retry, which it
// leaves as it is.
func (c *Client) Reject(ctx context.Context, batchID int64, msg Message, reason string) (Outcome, error) {
	const op = "pgque: reject"
	why, err := reasonArg(op, reason)
	if err != nil {
		return "", err
	}
	var out string
	err = c.q().QueryRow(ctx, `SELECT pgque.reject($1, $2, $3)`, batchID, msg.MsgID, why).Scan(&out)
	return Outcome(out), wrap(op, err)
}

// RejectTx is Reject inside tx (see NackTx).
func (c *Client) RejectTx(ctx context.Context, tx DBTX, batchID int64, msg Message, reason string) (Outcome, error) {
	return c.inTx(tx).Reject(ctx, batchID, msg, reason)
}

// ErrMessageCancelled is the cause (context.Cause) of a Consumer
// handler's context cancelled because its message was cancelled
// (Client.Cancel) while it was handled.  Whatever the handler returns then,
// the message is not retried or dead-lettered.
var ErrMessageCancelled = errors.New("pgque: the message was cancelled")

// cancelledResult settles a message cancelled while it was handed out: a
// nack of it changes nothing (the engine answers 'cancelled'), and it
// needs no handler's verdict.
var cancelledResult = result{state: failed, reason: "cancelled while handed out"}

// CancelMessage cancels msg, a message of the piece batchID
// (msg.BatchID), for this consumer (see the Cancel function for handlers):
// not retried, not dead-lettered, never delivered to it again.  After
// settling individual messages, call Ack to finish the piece.  It returns
// OutcomeCancelled, or what the message was settled as before
// (OutcomeRetry, OutcomeDead), which it leaves as it is.
func (c *Client) CancelMessage(ctx context.Context, batchID int64, msg Message) (Outcome, error) {
	var out string
	err := c.q().QueryRow(ctx, `SELECT pgque.cancel_message($1, $2)`, batchID, msg.MsgID).Scan(&out)
	return Outcome(out), wrap("pgque: cancel message", err)
}

// CancelMessageTx is CancelMessage inside tx (see NackTx).
func (c *Client) CancelMessageTx(ctx context.Context, tx DBTX, batchID int64, msg Message) (Outcome, error) {
	return c.inTx(tx).CancelMessage(ctx, batchID, msg)
}

// errHandlerTimeout is the cause of a handler's context cancelled by
// WithHandlerTimeout.
var errHandlerTimeout = errors.New("pgque: handler timeout")

// outcomeOf is the result of a handler's error err: a snooze, a rejection,
// or a failure to nack.
func outcomeOf(err error) result {
	var s *SnoozeError
	var r *RejectError
	var x *CancelError
	switch {
	case errors.As(err, &x):
		reason := "cancelled"
		if x.Err != nil {
			reason = x.Err.Error()
		}
		res := failure(reason)
		res.how = cancelledHow
		return res
	case errors.As(err, &s):
		if s.Delay < 0 || s.Delay > maxSpan {
			return failure(fmt.Sprintf("snooze delay %v is out of range: must be from 0 to 100 years", s.Delay))
		}
		return result{state: failed, how: snoozed, delay: s.Delay}
	case errors.As(err, &r):
		reason := "rejected"
		if r.Err != nil {
			reason = r.Err.Error()
		}
		res := failure(reason)
		res.how = rejected
		return res
	}
	return failure(err.Error())
}
