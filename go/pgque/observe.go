package pgque

import (
	"context"
	"time"
)

// Observer is told what a Client, its Consumers and Tickers do, for metrics
// and tracing: package pgqueprom turns it into Prometheus metrics,
// pgqueotel into OpenTelemetry spans.  Its methods are called on the hot
// path, from many goroutines at once: they must be quick and safe for
// concurrent use.  Embed NopObserver to implement only some of them.
type Observer interface {
	// StartSend is called before events are sent to queue (Send,
	// SendBatch and their Tx forms).  events is the SDK's own copy, which
	// the observer may change (pgqueotel writes a trace context into an
	// extra field); the returned context is the send's, and end is called
	// with its outcome.
	StartSend(ctx context.Context, queue string, events []Event) (_ context.Context, end func(err error))
	// StartReceive is called before a piece is received for consumer
	// (Receive, ReceiveAsWorker, ReceiveFirst per queue asked, a
	// Consumer's receives); end gets what was handed out.
	StartReceive(ctx context.Context, queue, consumer string) (end func(msgs []Message, err error))
	// StartHandle is called before a Consumer's handler runs on msg; the
	// handler runs with the returned context, and end is called when it
	// returns: failure is "" when it succeeded, else why it failed.
	StartHandle(ctx context.Context, consumer string, msg Message) (_ context.Context, end func(failure string))
	// Settled is called for each message of a piece a Consumer
	// acknowledged: OutcomeAcked for one handled, else what became of it
	// (OutcomeRetry, OutcomeDead, OutcomeSnoozed, OutcomeCancelled).
	Settled(consumer string, msg Message, outcome Outcome)
	// StartAck is called before a Consumer acknowledges a piece of n
	// messages (with their nacks and other outcomes); end gets the result.
	StartAck(ctx context.Context, queue, consumer string, n int) (end func(err error))
	// TickerCall is called after each call a Ticker's leader makes: call is
	// "ticker()" (n: the queues it ticked) or "maint()" (n: the work done).
	TickerCall(call string, n int, took time.Duration, err error)
	// TickerLeading is called when a Ticker becomes the leader (true) or
	// stops being it (false).
	TickerLeading(leading bool)
}

// FailureInterrupted is the failure an Observer's StartHandle end is given
// for a handler cut short by shutdown or a takeover: not the message's
// fault, and it is delivered again.
const FailureInterrupted = "interrupted"

// OutcomeAcked is a message handled and acknowledged (Observer.Settled).
const OutcomeAcked Outcome = "acked"

// NopObserver does nothing; embed it in an Observer that implements only
// some of the methods.
type NopObserver struct{}

func (NopObserver) StartSend(ctx context.Context, _ string, _ []Event) (context.Context, func(error)) {
	return ctx, func(error) {}
}
func (NopObserver) StartReceive(context.Context, string, string) func([]Message, error) {
	return func([]Message, error) {}
}
func (NopObserver) StartHandle(ctx context.Context, _ string, _ Message) (context.Context, func(string)) {
	return ctx, func(string) {}
}
func (NopObserver) Settled(string, Message, Outcome)                          {}
func (NopObserver) StartAck(context.Context, string, string, int) func(error) { return func(error) {} }
func (NopObserver) TickerCall(string, int, time.Duration, error)              {}
func (NopObserver) TickerLeading(bool)                                        {}

// Observers returns an Observer that tells each of obs in turn (metrics and
// tracing together); the contexts the later ones get are those the earlier
// ones returned.
func Observers(obs ...Observer) Observer { return observers(obs) }

type observers []Observer

func (os observers) StartSend(ctx context.Context, queue string, events []Event) (context.Context, func(error)) {
	ends := make([]func(error), len(os))
	for i, o := range os {
		ctx, ends[i] = o.StartSend(ctx, queue, events)
	}
	return ctx, func(err error) {
		for _, end := range ends {
			end(err)
		}
	}
}

func (os observers) StartReceive(ctx context.Context, queue, consumer string) func([]Message, error) {
	ends := make([]func([]Message, error), len(os))
	for i, o := range os {
		ends[i] = o.StartReceive(ctx, queue, consumer)
	}
	return func(msgs []Message, err error) {
		for _, end := range ends {
			end(msgs, err)
		}
	}
}

func (os observers) StartHandle(ctx context.Context, consumer string, msg Message) (context.Context, func(string)) {
	ends := make([]func(string), len(os))
	for i, o := range os {
		ctx, ends[i] = o.StartHandle(ctx, consumer, msg)
	}
	return ctx, func(failure string) {
		for _, end := range ends {
			end(failure)
		}
	}
}

func (os observers) Settled(consumer string, msg Message, outcome Outcome) {
	for _, o := range os {
		o.Settled(consumer, msg, outcome)
	}
}

func (os observers) StartAck(ctx context.Context, queue, consumer string, n int) func(error) {
	ends := make([]func(error), len(os))
	for i, o := range os {
		ends[i] = o.StartAck(ctx, queue, consumer, n)
	}
	return func(err error) {
		for _, end := range ends {
			end(err)
		}
	}
}

func (os observers) TickerCall(call string, n int, took time.Duration, err error) {
	for _, o := range os {
		o.TickerCall(call, n, took, err)
	}
}

func (os observers) TickerLeading(leading bool) {
	for _, o := range os {
		o.TickerLeading(leading)
	}
}

// WithObserver returns a client like c (same pool, namespace and
// listener) whose calls, Consumers and Tickers (RunTicker, WithTicker)
// report to o.  Closing it does not close the pool.
func (c *Client) WithObserver(o Observer) *Client {
	cc := *c
	cc.ownsPool = false
	cc.obs = o
	return &cc
}

// WithTickerObserver makes a Ticker report its calls and leadership to o
// (a Client's RunTicker and a Consumer's WithTicker pass the client's).
func WithTickerObserver(o Observer) TickerOption {
	return func(c *tickerConfig) { c.obs = o }
}
