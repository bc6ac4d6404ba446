package pgque

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// HandlerFunc handles one message.  Returning nil marks it handled; returning
// an error (or panicking) nacks it, so it is retried later for this consumer
// and dead-lettered once it exhausted the queue's max_retries.
//
// The context is not cancelled when the context passed to Consumer.Start
// ends: a handler that is running at shutdown is allowed to finish.  It is
// cancelled only when a shutdown timeout (WithShutdownTimeout) expires.  It
// carries the values of Start's context.
type HandlerFunc func(ctx context.Context, msg Message) error

// UnknownTypePolicy says what a Consumer does with a message whose type has
// no handler when no "*" handler is registered either.
type UnknownTypePolicy int

const (
	// NackUnknownTypes nacks the message with the reason
	// "no handler for type T": it is retried with the queue's backoff and
	// ends in the dead-letter store after max_retries, where it can be
	// inspected, and replayed once a handler exists.  The default.
	NackUnknownTypes UnknownTypePolicy = iota
	// SkipUnknownTypes acknowledges the message without handling it: this
	// consumer never sees it again.  Use it when the queue carries types
	// this consumer does not care about.
	SkipUnknownTypes
)

// Option configures a Consumer (Client.NewConsumer).
type Option func(*Consumer)

type consumerConfig struct {
	pollInterval    time.Duration
	maxMessages     int
	maxCatchUp      int
	concurrency     int
	retryAfterSecs  int
	shutdownTimeout time.Duration
	handlerTimeout  time.Duration
	unknown         UnknownTypePolicy
	ticker          []TickerOption
	runTicker       bool
	worker          string
	singleReader    bool
	lease           time.Duration
	log             *slog.Logger
	tx              bool
	moreQueues      []string
}

// WithPollInterval sets how long an idle consumer waits before it asks for
// new messages when no notification came (default 1 s).  Notifications
// normally wake it within milliseconds of a tick; polling is the fallback
// that keeps delivery going when one is missed or the listening connection
// is down.
func WithPollInterval(d time.Duration) Option {
	return func(c *Consumer) { c.cfg.pollInterval = d }
}

// WithMaxMessages sets how many messages one receive call hands out
// (default 100).  They are handled, then acknowledged together; a larger
// batch is received in several such pieces.  A consumer that is behind asks
// for more (see WithMaxCatchUp).
func WithMaxMessages(n int) Option {
	return func(c *Consumer) { c.cfg.maxMessages = n }
}

// WithMaxCatchUp bounds how big the consumer's pieces grow while it is
// behind (default 100,000 messages; pieces also stay under about 16 MiB).
// Whenever a receive returns as many messages as asked and they were
// handled in under a quarter of a second, the next receive asks for four
// times as many, up to the bounds; pieces that take over a second shrink
// again, and once a receive returns fewer than asked (the consumer has
// caught up) it asks for WithMaxMessages again.  Big pieces cost less per
// message (pieces of 1,000 and more are read straight from the event
// tables, see Client.Receive): a backlog drains several times faster.
// Their messages are acknowledged together, so a crash delivers up to
// about a second's work again.  n at most WithMaxMessages turns growing
// off.
func WithMaxCatchUp(n int) Option {
	return func(c *Consumer) { c.cfg.maxCatchUp = n }
}

// WithConcurrency sets how many handlers may run at once (default 1).  The
// messages of one receive call (see WithMaxMessages) are handed to up to n
// goroutines; the next ones are received once all of them are done.
//
// With 1, messages are handled one at a time in delivery order.  With more,
// the messages of one piece are handled in no particular order, but never
// together with messages of the next piece.
func WithConcurrency(n int) Option {
	return func(c *Consumer) { c.cfg.concurrency = n }
}

// WithRetryAfter sets the number of seconds before a nacked message is
// redelivered (default 0: the queue's exponential backoff, see
// retry_backoff_base, which spaces the retries of a failing message out
// where a fixed delay would not).  A negative value makes Start fail; one
// over 100 years is refused by Client.Nack, and such messages are nacked
// with a fixed delay instead (see Consumer).  Once due, a retry is moved
// back into the queue by maintenance and delivered by the next tick.
func WithRetryAfter(secs int) Option {
	return func(c *Consumer) { c.cfg.retryAfterSecs = secs }
}

// WithShutdownTimeout bounds graceful shutdown (default 0: no bound).  When
// Start's context ends, the consumer stops receiving and finishes the
// messages it holds; once d has passed, the handlers' contexts are cancelled
// and messages not started yet are left alone.  The messages are then not
// acknowledged, and are delivered again to the next run of this consumer.
func WithShutdownTimeout(d time.Duration) Option {
	return func(c *Consumer) { c.cfg.shutdownTimeout = d }
}

// WithHandlerTimeout bounds each handler call (default 0: no bound).  After
// d the handler's context is cancelled (its cause says the handler timed
// out); a handler that then returns an error fails its message, with a
// reason saying it timed out, and the message is retried as any failure.
// A handler that ignores its context keeps its piece until it returns; the
// consumer heartbeats for it meanwhile.  A negative d makes Start fail.
// HandleTimeout sets one type's own bound.
func WithHandlerTimeout(d time.Duration) Option {
	return func(c *Consumer) { c.cfg.handlerTimeout = d }
}

// HandleOption configures one handler (Consumer.Handle).
type HandleOption func(*handlerEntry)

// HandleTimeout bounds the calls of this handler to d, in place of the
// consumer's WithHandlerTimeout (see there); 0 means no bound for it.
// Handle panics when d is negative.
func HandleTimeout(d time.Duration) HandleOption {
	return func(e *handlerEntry) { e.timeout = &d }
}

// handlerEntry is a registered handler with its options.
type handlerEntry struct {
	h       HandlerFunc
	timeout *time.Duration // nil: the consumer's
}

// WithQueues makes the consumer serve these queues too, after its own, as
// one pool of workers: one concurrency limit (WithConcurrency) and one
// piece at a time across all of them, under the same consumer name (each
// queue's own subscription, with its own retries and dead letters).
// Priority is strict, in the order given: before each piece the consumer
// asks its own queue first, then the next, and takes the first that has
// messages, so a queue is read only while every queue before it has
// nothing to hand out, and a steady backlog in one starves the queues after
// it.  Use it for "urgent before normal before bulk"; give queues that must
// all progress Consumers of their own.  It cannot be combined with
// WithSingleReader.
func WithQueues(queues ...string) Option {
	return func(c *Consumer) { c.cfg.moreQueues = append(c.cfg.moreQueues, queues...) }
}

// WithUnknownTypeHandling sets what happens to a message whose type has no
// handler and no "*" handler is registered (default NackUnknownTypes).
func WithUnknownTypeHandling(p UnknownTypePolicy) Option {
	return func(c *Consumer) { c.cfg.unknown = p }
}

// WithTicker makes Start also run a Ticker for the database (with opts), so
// a single process needs nothing else to deliver messages.  It starts after
// the consumer has subscribed and stops when Start returns.  Any number of
// Tickers may run against a database; only one of them works at a time.
// By default the Ticker logs to the consumer's logger.
func WithTicker(opts ...TickerOption) Option {
	return func(c *Consumer) {
		c.cfg.runTicker = true
		c.cfg.ticker = append(c.cfg.ticker, opts...)
	}
}

// WithWorker names the consumer's worker (see Client.ReceiveAsWorker).  By
// default each Start picks a name of its own from the host name, the
// process id and a random suffix.  A fixed name (a pod's name, say) lets a
// process that crashed and restarts resume its own batch at once, instead
// of another worker taking it over when its lease runs out.  Two running
// Consumers must not share a worker name: they would be handed the same
// messages (nothing is lost, but the messages are handled twice).
func WithWorker(name string) Option {
	return func(c *Consumer) { c.cfg.worker = name }
}

// WithSingleReader makes the consumer read its consumer name the PgQ way,
// as its one reader: whole batches, one at a time, in delivery order, with
// no lease.  Of several Consumers with this option and the same queue and
// name, one reads and the others stand by (a session lock on the listening
// connection elects it), taking over when its process or connection dies.
// Use it when the handler needs the order of the stream and one process
// keeps up with it; without it, Consumers share the messages (see
// Consumer).  It cannot be combined with WithWorker.
func WithSingleReader() Option {
	return func(c *Consumer) { c.cfg.singleReader = true }
}

// WithLease sets how long a worker's batch stays its own without a receive
// or heartbeat (default DefaultLease, at most MaxLease).  Shorter leases hand
// a stopped worker's batch over sooner, at the cost of more heartbeats;
// handlers slower than the lease are fine, since the consumer heartbeats
// meanwhile.  A plain reader's batch (WithSingleReader) is heartbeated too,
// so that no worker takes it over.
func WithLease(d time.Duration) Option {
	return func(c *Consumer) { c.cfg.lease = d }
}

// WithLogger makes the consumer log failures, retries of connections and
// shutdown to l (by default, to slog.Default() as it is at NewConsumer: a
// failure is never silent).  slog.New(slog.DiscardHandler) logs nothing.
func WithLogger(l *slog.Logger) Option {
	return func(c *Consumer) { c.cfg.log = l }
}

// Consumer reads one queue as one consumer (subscription) and hands each
// message to the handler registered for its type.  Create it with
// Client.NewConsumer, register handlers with Handle, and run it with Start.
// WithQueues makes it serve several queues in priority order.  A handler
// may return Snooze or Reject for outcomes other than a retry.
//
// Consumers share work: any number of Consumers with the same queue and
// name, in one process or in many (replicas, a rolling deploy), share the
// consumer's messages as cooperative workers.  Each handles different
// batches; each message is handled by one of them, and again by another
// only if the first stopped (crashed, hung, lost its connection) before
// acknowledging it and its lease ran out, or shut down and released it.
// Every Start picks a worker name of its own (WithWorker sets one) and
// forgets it when it stops.  WithSingleReader reads the consumer as one
// reader instead, the PgQ way: whole batches in delivery order, with the
// other Consumers of the name standing by.  Every consumer name sees every
// event of the queue (fan-out); give services that each need all events
// different names.
//
// Delivery is at least once.  The messages of a receive call (a piece) are
// acknowledged together, after every one of them was handled or nacked; a
// message whose handler failed is nacked (retried later, for this consumer
// only, with a RetryCount one higher) and the others are unaffected.  When
// the process crashes, loses its connection or is shut down before a piece
// is acknowledged, the piece is delivered again, so handlers should be
// idempotent (Message.MsgID is unique within a queue and kept on retries).
// A nack the server refuses, at once for PQ006 (say, a retry delay out of
// the engine's range) or four times for other errors, is made again with a
// fixed delay of 60 s instead, so that a message the configured delay
// cannot retry does not stop the consumer; settling a piece the server
// keeps refusing is given up after eight attempts (the piece is then
// delivered again).  Lost connections are retried without limit, with waits
// from 50 ms up to 500 ms.
// A worker that learns its batch was taken over (its heartbeat says so)
// cancels the handlers of that piece and starts none of its other messages.
// A message cancelled while it is handled (Client.Cancel) has its
// handler's context cancelled at the next heartbeat (every third of the
// lease), with the cause ErrMessageCancelled; it is neither retried nor
// dead-lettered, whatever its handler returns then, and a cancelled
// message not started yet is skipped.
//
// With concurrency 1 (the default) a Consumer handles its messages in
// delivery order (see docs/concepts.md; retries come after messages sent
// later); several Consumers sharing a name each keep the order of their own
// batches only.  With WithConcurrency(n) handlers run in parallel and order
// within a piece is not kept.
type Consumer struct {
	client *Client
	queue  string
	queues []string // queue first, then WithQueues, in priority order
	name   string
	cfg    consumerConfig
	log    *slog.Logger

	mu       sync.RWMutex
	handlers map[string]handlerEntry
	running  atomic.Bool
	// worker is the worker name of the current run ("" with
	// WithSingleReader); set by Start before anything reads it.
	worker string
	// leading is whether this single reader holds the reader lock.
	leading atomic.Bool
}

// NewConsumer returns a consumer named name on queue.  Nothing happens until
// Start.
func (c *Client) NewConsumer(queue, name string, opts ...Option) *Consumer {
	cons := &Consumer{
		client: c,
		queue:  queue,
		name:   name,
		cfg: consumerConfig{
			pollInterval: time.Second,
			maxMessages:  100,
			maxCatchUp:   100_000,
			concurrency:  1,
			lease:        DefaultLease,
			log:          slog.Default(),
		},
		handlers: map[string]handlerEntry{},
	}
	for _, opt := range opts {
		opt(cons)
	}
	cons.queues = append([]string{queue}, cons.cfg.moreQueues...)
	if len(cons.queues) > 1 {
		cons.log = cons.cfg.log.With("queues", strings.Join(cons.queues, ","), "consumer", name)
	} else {
		cons.log = cons.cfg.log.With("queue", queue, "consumer", name)
	}
	return cons
}

// Handle registers h for messages of type typ; "*" registers the handler
// for every type that has none of its own.  A later Handle for the same type
// replaces the handler.  opts configure this handler only (HandleTimeout).
// Handle may be called while the consumer runs; it panics if h is nil or
// an option is invalid.
func (c *Consumer) Handle(typ string, h HandlerFunc, opts ...HandleOption) {
	if h == nil {
		panic("pgque: Consumer.Handle: nil handler for type " + typ)
	}
	e := handlerEntry{h: h}
	for _, opt := range opts {
		opt(&e)
	}
	if e.timeout != nil && *e.timeout < 0 {
		panic(fmt.Sprintf("pgque: Consumer.Handle: negative timeout %v for type %s", *e.timeout, typ))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers[typ] = e
}

// handler returns the handler of typ (or "*") and its timeout (0: none).
func (c *Consumer) handler(typ string) (HandlerFunc, time.Duration) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.handlers[typ]
	if !ok {
		e = c.handlers["*"]
	}
	if e.timeout != nil {
		return e.h, *e.timeout
	}
	return e.h, c.cfg.handlerTimeout
}

// Start subscribes the consumer to its queue (if it is not yet) and
// handles messages until ctx ends; then it finishes the messages it holds
// (see WithShutdownTimeout), acknowledges them, hands what is left of its
// batch to the other workers (Client.ReleaseWorker) and returns nil.
//
// A new subscription starts at the queue's newest tick, except the first
// one of a queue, which gets the events sent while the queue had no
// consumer (see Client.Subscribe).  Subscribe ahead of time when a second
// consumer must not miss events sent before its first start.
//
// The consumer listens for the queue's notifications on the client's shared
// listening connection (Client.Listen) and receives as soon as a tick is
// notified, and polls every poll interval in case one is missed.  Lost
// connections and other transient database errors are logged and retried
// with backoff.  Start returns an error when consuming is impossible: the
// queue does not exist (ErrQueueNotFound), the consumer was unsubscribed
// while running (ErrConsumerNotFound), a name or option is invalid
// (ErrInvalidArgument), pgque is not installed or the role lacks the
// rights, or the consumer is already running.
func (c *Consumer) Start(ctx context.Context) error {
	const op = "pgque: consumer"
	switch {
	case c.cfg.pollInterval <= 0:
		return invalid(op, "poll interval %v is not positive", c.cfg.pollInterval)
	case c.cfg.maxMessages <= 0:
		return invalid(op, "max messages %d is not positive", c.cfg.maxMessages)
	case c.cfg.maxCatchUp < 0:
		return invalid(op, "max catch-up %d is negative", c.cfg.maxCatchUp)
	case c.cfg.concurrency <= 0:
		return invalid(op, "concurrency %d is not positive", c.cfg.concurrency)
	case c.cfg.retryAfterSecs < 0:
		return invalid(op, "retry delay %d s is negative", c.cfg.retryAfterSecs)
	case c.cfg.shutdownTimeout < 0:
		return invalid(op, "shutdown timeout %v is negative", c.cfg.shutdownTimeout)
	case c.cfg.handlerTimeout < 0:
		return invalid(op, "handler timeout %v is negative", c.cfg.handlerTimeout)
	case c.cfg.unknown != NackUnknownTypes && c.cfg.unknown != SkipUnknownTypes:
		return invalid(op, "unknown type policy %d", c.cfg.unknown)
	case c.cfg.singleReader && c.cfg.worker != "":
		return invalid(op, "WithSingleReader and WithWorker(%q) exclude each other", c.cfg.worker)
	case c.cfg.singleReader && len(c.queues) > 1:
		return invalid(op, "WithSingleReader and WithQueues(%s) exclude each other", strings.Join(c.queues[1:], ", "))
	case c.cfg.tx && c.cfg.concurrency > 1:
		return invalid(op, "WithTransaction and WithConcurrency(%d) exclude each other: a transaction runs one handler at a time",
			c.cfg.concurrency)
	}
	if err := checkLease(op, c.cfg.lease); err != nil {
		return err
	}
	c.mu.RLock()
	n := len(c.handlers)
	c.mu.RUnlock()
	if n == 0 {
		return invalid(op, "%s/%s has no handlers", c.queue, c.name)
	}
	if !c.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%s: %s/%s is already running", op, c.queue, c.name)
	}
	defer c.running.Store(false)
	log := c.log
	c.worker = ""
	if !c.cfg.singleReader {
		c.worker = c.cfg.worker
		if c.worker == "" {
			c.worker = WorkerName("")
		}
		log = log.With("worker", c.worker)
	}

	// Everything stops when ctx ends or the ticker fails; the ticker and the
	// listener also stop when Start returns.
	bg, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()

	if err := c.subscribe(bg, log); err != nil || bg.Err() != nil {
		return err
	}
	tickerErr := make(chan error, 1)
	if c.cfg.runTicker {
		opts := append([]TickerOption{WithTickerLogger(c.cfg.log)}, c.cfg.ticker...)
		t := c.client.NewTicker(opts...)
		wg.Go(func() {
			if err := t.Run(bg); err != nil {
				tickerErr <- err
				stop()
			}
		})
	}
	// Ticks of any of its queues wake the loop through the client's shared
	// listening connection; a single reader is also woken when it becomes
	// the reader.
	wake := make(chan struct{}, 1)
	for _, q := range c.queues {
		ticks, unlisten := c.client.Listen(q)
		defer unlisten()
		wg.Go(func() {
			for {
				select {
				case <-bg.Done():
					return
				case <-ticks:
					signal(wake)
				}
			}
		})
	}
	// The reader lock outlives the loop's shutdown: a single reader holds
	// it until its last piece is settled, so that no standby takes over
	// what it still handles.
	lctx, stopLead := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLead()
	if c.cfg.singleReader {
		wg.Go(func() { c.holdReaderLock(lctx, log, wake) })
	}
	log.Info("pgque consumer: started")
	err := c.loop(bg, log, wake)
	stop()
	stopLead()
	wg.Wait()
	if c.worker != "" {
		c.release(ctx, log)
	}
	select {
	case terr := <-tickerErr:
		return terr
	default:
	}
	if err == nil {
		log.Info("pgque consumer: stopped")
	}
	return err
}

// WorkerName returns a worker name unique to this call: prefix, the host
// name (reduced to the characters names allow), the process id and a random
// suffix, within the 63 bytes a worker name may have.  It is what a
// Consumer picks for each run (with no prefix), and what tools that receive
// as workers use (the CLI's prefix is "cli-").
func WorkerName(prefix string) string {
	host, _ := os.Hostname()
	clean := []byte(host)
	n := 0
	for _, b := range clean {
		if b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '.' || b == '_' {
			clean[n] = b
			n++
		}
	}
	host = strings.TrimLeft(string(clean[:n]), "-._")
	if host == "" {
		host = "worker"
	}
	host = prefix + host
	suffix := fmt.Sprintf("-%d-%08x", os.Getpid(), rand.Uint32())
	return host[:min(len(host), 63-len(suffix))] + suffix
}

// release gives up the worker's batch, if it still holds one, so that
// another worker takes it at once, and forgets the worker.
func (c *Consumer) release(ctx context.Context, log *slog.Logger) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	for _, q := range c.queues {
		if _, err := c.client.ReleaseWorker(rctx, q, c.name, c.worker); err != nil {
			log.Warn("pgque consumer: releasing the worker failed; another worker takes its batch over when its lease runs out",
				"queue", q, "err", err)
		}
	}
}

// subscribe subscribes the consumer to its queues, retrying transient
// errors until ctx ends.
func (c *Consumer) subscribe(ctx context.Context, log *slog.Logger) error {
	b := newBackoff()
	for i := 0; i < len(c.queues); {
		_, err := c.client.Subscribe(ctx, c.queues[i], c.name)
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			i++
			continue
		case permanent(err):
			return fmt.Errorf("queue %s: %w", c.queues[i], err)
		}
		wait := b.next()
		log.Warn("pgque consumer: subscribe failed; retrying", "queue", c.queues[i], "err", err, "in", wait)
		if !sleep(ctx, wait) {
			return nil
		}
	}
	return nil
}

// idleMsg is logged (at debug level) each time the consumer has nothing to
// do and starts waiting for a notification or the poll interval.
const idleMsg = "pgque consumer: idle"

// loop receives and handles messages until ctx ends or a permanent error.
func (c *Consumer) loop(ctx context.Context, log *slog.Logger, wake <-chan struct{}) error {
	b := newBackoff()
	// sizes are the piece sizes to ask each queue for (see WithMaxCatchUp).
	sizes := make([]int, len(c.queues))
	for i := range sizes {
		sizes[i] = c.cfg.maxMessages
	}
	for {
		// Every tick notified so far is visible to the receive below.
		select {
		case <-wake:
		default:
		}
		var msgs []Message
		var err error
		asked := time.Now()
		q := 0 // the queue msgs came from
		if !c.cfg.singleReader || c.leading.Load() {
			// Strict priority: the first queue with messages.
			for ; q < len(c.queues); q++ {
				if msgs, err = c.receive(ctx, c.queues[q], sizes[q]); err != nil || len(msgs) > 0 {
					break
				}
				sizes[q] = c.cfg.maxMessages
			}
		}
		if ctx.Err() != nil {
			// Anything received but not handled comes again next run.
			return nil
		}
		if err != nil {
			if permanent(err) {
				return err
			}
			wait := b.next()
			if len(c.queues) > 1 {
				err = fmt.Errorf("queue %s: %w", c.queues[q], err)
			}
			if errors.Is(err, ErrConsumerBusy) {
				log.Info("pgque consumer: a plain reader holds the consumer's batch; waiting (a worker takes it over once nobody touched it for a lease)",
					"in", wait)
			} else {
				log.Warn("pgque consumer: receive failed; retrying", "err", err, "in", wait)
			}
			if !sleep(ctx, wait) {
				return nil
			}
			continue
		}
		b.reset()
		if len(msgs) > 0 {
			plog := log
			if len(c.queues) > 1 {
				plog = log.With("queue", c.queues[q])
			}
			start := time.Now()
			c.process(ctx, plog, msgs, asked)
			sizes[q] = c.nextSize(sizes[q], len(msgs), pieceSize(msgs), time.Since(start))
			continue
		}
		log.Debug(idleMsg, "poll_in", c.cfg.pollInterval)
		timer := time.NewTimer(c.cfg.pollInterval)
		select {
		case <-ctx.Done():
		case <-wake:
		case <-timer.C:
		}
		timer.Stop()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// receive asks queue for the next piece of up to size messages, as the
// consumer's worker or as its plain reader.  Shutdown gives a receive in
// progress receiveGrace to finish instead of cutting it short: a receive
// cancelled on the client may still commit on the server, after the worker
// was released, and would then hold its messages for a whole lease with
// nobody to handle them.
func (c *Consumer) receive(ctx context.Context, queue string, size int) ([]Message, error) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer context.AfterFunc(ctx, func() { time.AfterFunc(receiveGrace, cancel) })()
	if c.worker != "" {
		return c.client.ReceiveAsWorker(rctx, queue, c.name, c.worker, size, c.cfg.lease)
	}
	return c.client.Receive(rctx, queue, c.name, size)
}

// receiveGrace is how long a receive in progress at shutdown may go on.
const receiveGrace = 5 * time.Second

// pieceBudget and pieceMemory bound a grown piece (see WithMaxCatchUp):
// about how long handling it may take, and about how much memory it holds.
const (
	pieceBudget = time.Second
	pieceMemory = 16 << 20
)

// messageOverhead estimates a message's memory besides its payload.
const messageOverhead = 200

// pieceSize estimates the memory msgs hold.
func pieceSize(msgs []Message) int {
	n := len(msgs) * messageOverhead
	for i := range msgs {
		n += len(msgs[i].Payload)
	}
	return n
}

// nextSize is the size of the piece to ask for after one of size that
// brought got messages holding bytes, handled in took.
func (c *Consumer) nextSize(size, got, bytes int, took time.Duration) int {
	switch {
	case got < size: // caught up
		return c.cfg.maxMessages
	case took < pieceBudget/4:
		grown := min(4*size, c.cfg.maxCatchUp, size*pieceMemory/max(bytes, 1))
		return max(grown, c.cfg.maxMessages)
	case took > pieceBudget:
		return max(size/2, c.cfg.maxMessages)
	}
	return size
}

// errPieceLost cancels the handlers of a piece whose batch another worker
// took over; errNotReader those of a single reader that lost its reader
// lock (its listening connection), since a standby reads the batch now.
var (
	errPieceLost = errors.New("pgque: the batch was taken over by another worker")
	errNotReader = errors.New("pgque: no longer the consumer's single reader")
)

// pieceLease is what the consumer knows of the lease on the batch of the
// piece it handles: until when the batch is surely its own (by the local
// clock, counted from before the receive or heartbeat that renewed it), and
// whether it was found taken over.
type pieceLease struct {
	c     *Consumer
	log   *slog.Logger
	piece int64
	lost  func() // cancels the piece's handlers
	stops *stopSet

	mu    sync.Mutex
	until time.Time
	gone  bool
}

// beat renews the lease, reporting false once the batch was taken over.
// Errors are logged and count as renewed: the next beat tries again.
func (l *pieceLease) beat(ctx context.Context) bool {
	asked := time.Now()
	n, err := l.c.client.heartbeat(ctx, l.piece, l.c.cfg.lease)
	if n == 2 {
		l.stopCancelled(ctx)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil:
		if ctx.Err() == nil {
			l.log.Warn("pgque consumer: heartbeat failed", "batch_id", l.piece, "err", err)
		}
		return !l.gone
	case n == 0:
		if !l.gone {
			l.gone = true
			l.lost()
		}
		return false
	}
	l.until = asked.Add(l.c.cfg.lease)
	return !l.gone
}

// stopCancelled stops the handling of the piece's messages that were
// cancelled while it was handed out.  A failure to learn which is logged:
// the next heartbeat asks again, and their nacks do nothing meanwhile.
func (l *pieceLease) stopCancelled(ctx context.Context) {
	ids, err := l.c.client.CancelledMessages(ctx, l.piece)
	if err != nil {
		if ctx.Err() == nil {
			l.log.Warn("pgque consumer: cannot learn which messages of the batch were cancelled", "batch_id", l.piece, "err", err)
		}
		return
	}
	l.stops.stop(ids)
}

// stopSet is what a piece knows of its messages cancelled while handed
// out: their ids, and the contexts of their handlers running now.
type stopSet struct {
	mu      sync.Mutex
	ids     map[int64]bool
	running map[int64]context.CancelCauseFunc
}

// stop cancels the handlers of ids, and marks them not to be started.
func (s *stopSet) stop(ids []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if s.ids == nil {
			s.ids = make(map[int64]bool)
		}
		s.ids[id] = true
		if cancel := s.running[id]; cancel != nil {
			cancel(ErrMessageCancelled)
		}
	}
}

// start returns the context to handle message id with, and the function
// to call when its handler returned; stopped reports that it was
// cancelled already and is not to be handled.
func (s *stopSet) start(ctx context.Context, id int64) (mctx context.Context, done func(), stopped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids[id] {
		return nil, nil, true
	}
	mctx, cancel := context.WithCancelCause(ctx)
	if s.running == nil {
		s.running = make(map[int64]context.CancelCauseFunc)
	}
	s.running[id] = cancel
	return mctx, func() {
		s.mu.Lock()
		delete(s.running, id)
		s.mu.Unlock()
		cancel(nil)
	}, false
}

// ours reports whether the next message may be started: the lease has not
// run out, or a heartbeat now says the batch is still ours.  A consumer that
// was frozen (or starved) past its lease thus starts nothing more of a batch
// another worker took over.
func (l *pieceLease) ours(ctx context.Context) bool {
	l.mu.Lock()
	fresh, gone := time.Now().Before(l.until), l.gone
	l.mu.Unlock()
	if gone {
		return false
	}
	return fresh || l.beat(ctx)
}

// run renews the lease every third of it until ctx ends or the batch is
// lost.
func (l *pieceLease) run(ctx context.Context) {
	t := time.NewTicker(l.c.cfg.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !l.beat(ctx) {
			return
		}
	}
}

// state is what became of one message of a piece.
type state int

const (
	unhandled   state = iota // not started, or interrupted by the shutdown timeout or a takeover
	handled                  // to be acknowledged
	failed                   // to be nacked, then acknowledged
	nackedState              // nacked already
)

// settleAs is how a failed message is settled.
type settleAs int

const (
	nacked       settleAs = iota // retried with a failure counted, or dead-lettered (Nack)
	snoozed                      // delivered again after delay, nothing counted (Snooze)
	rejected                     // dead-lettered at once (Reject)
	cancelledHow                 // not to be done at all (Cancel)
)

type result struct {
	state  state
	reason string
	how    settleAs
	delay  time.Duration // snoozed: how long
	// outcome is what the engine made of a failed message once settled
	// (retry, dead, snoozed, cancelled), for the Observer.
	outcome Outcome
	// nackFails counts the nacks of the message the server refused;
	// fallback is set once it is nacked with nackFallbackDelay instead.
	nackFails int
	fallback  bool
}

// A nack the server keeps refusing must not stall the consumer: after
// nackFallbackAfter refusals (or at once for PQ006, an argument the engine
// will never accept, such as a retry delay its backoff settings overflow)
// the message is nacked with the fixed delay nackFallbackDelay instead of
// the configured one, so that it is retried (or dead-lettered) and the
// consumer moves on.
const (
	nackFallbackAfter = 4
	nackFallbackDelay = 60 * time.Second
)

// process handles one piece of a batch, received at asked, and settles it.
func (c *Consumer) process(ctx context.Context, log *slog.Logger, msgs []Message, asked time.Time) {
	// Handlers outlive ctx; only the shutdown timeout, or the loss of the
	// batch to another worker, cancels them.
	hctx, hcancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer hcancel(nil)
	stopWatch := context.AfterFunc(ctx, func() {
		log.Info("pgque consumer: stopping; finishing received messages", "messages", len(msgs))
		if c.cfg.shutdownTimeout > 0 {
			time.AfterFunc(c.cfg.shutdownTimeout, func() { hcancel(context.DeadlineExceeded) })
		}
	})
	defer stopWatch()

	// Beats until the piece is settled, shutdown included.
	stops := &stopSet{}
	lease := &pieceLease{c: c, log: log, piece: msgs[0].BatchID, until: asked.Add(c.cfg.lease),
		lost: func() { hcancel(errPieceLost) }, stops: stops}
	bctx, bcancel := context.WithCancel(context.WithoutCancel(ctx))
	var beats sync.WaitGroup
	beats.Go(func() { lease.run(bctx) })
	defer beats.Wait()
	defer bcancel()
	// may reports whether the next message may be started.
	may := func() bool {
		switch {
		case hctx.Err() != nil:
			return false
		case c.worker != "":
			return lease.ours(bctx)
		case c.cfg.singleReader && !c.leading.Load():
			hcancel(errNotReader)
			return false
		}
		return true
	}

	handle := c.handle
	var ptx *pieceTx
	if c.cfg.tx {
		tx, err := c.client.Pool().BeginTx(bctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
		if err != nil {
			log.Error("pgque consumer: cannot begin the transaction of a batch; its messages will be delivered again",
				"batch_id", msgs[0].BatchID, "err", err)
			return
		}
		ptx = &pieceTx{tx: tx, ctx: bctx, abort: hcancel}
		handle = func(hctx context.Context, log *slog.Logger, msg Message) result { return ptx.handle(c, hctx, log, msg) }
	}
	run := func(i int) result {
		mctx, done, stopped := stops.start(hctx, msgs[i].MsgID)
		if stopped {
			log.Info("pgque consumer: message cancelled before it was handled", "msg_id", msgs[i].MsgID, "type", msgs[i].Type)
			return cancelledResult
		}
		defer done()
		if obs := c.client.obs; obs != nil {
			octx, end := obs.StartHandle(mctx, c.name, msgs[i])
			r := handle(octx, log, msgs[i])
			end(r.failure())
			return r
		}
		return handle(mctx, log, msgs[i])
	}
	res := make([]result, len(msgs))
	workers := min(c.cfg.concurrency, len(msgs))
	if workers == 1 {
		for i := range msgs {
			if !may() {
				break
			}
			res[i] = run(i)
		}
	} else {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= len(msgs) || !may() {
						return
					}
					res[i] = run(i)
				}
			})
		}
		wg.Wait()
	}
	if ptx != nil {
		defer ptx.tx.Rollback(bctx) //nolint:errcheck // after Commit it does nothing
	}
	if !c.settleable(log, msgs, res, context.Cause(hctx)) {
		return
	}
	if ptx != nil {
		ptx.settle(c, log, msgs, res)
		return
	}
	c.settle(ctx, log, msgs, res)
}

// handle runs the message's handler, turning an error or a panic into a
// failure.
func (c *Consumer) handle(ctx context.Context, log *slog.Logger, msg Message) (res result) {
	h, timeout := c.handler(msg.Type)
	if h == nil {
		if c.cfg.unknown == SkipUnknownTypes {
			log.Debug("pgque consumer: skipping message of unknown type", "msg_id", msg.MsgID, "type", msg.Type)
			return result{state: handled}
		}
		return failure("no handler for type " + msg.Type)
	}
	defer func() {
		if p := recover(); p != nil {
			log.Error("pgque consumer: handler panicked", "msg_id", msg.MsgID, "type", msg.Type,
				"panic", p, "stack", string(debug.Stack()))
			res = failure(fmt.Sprintf("handler panicked: %v", p))
		}
	}()
	hctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeoutCause(ctx, timeout, errHandlerTimeout)
		defer cancel()
	}
	if err := h(hctx, msg); err != nil {
		switch {
		case context.Cause(ctx) == ErrMessageCancelled:
			return cancelledResult
		case ctx.Err() != nil:
			// Cut short by the shutdown timeout or a takeover: not the
			// message's fault.
			return result{state: unhandled}
		case context.Cause(hctx) == errHandlerTimeout:
			return failure(fmt.Sprintf("handler timed out after %v: %v", timeout, err))
		}
		return outcomeOf(err)
	}
	return result{state: handled}
}

// failure is why a handler failed, for the Observer: "" when it
// succeeded or chose to snooze or cancel its message.
func (r result) failure() string {
	switch {
	case r.state == unhandled:
		return FailureInterrupted
	case r.state != failed || r.how == snoozed || r.how == cancelledHow:
		return ""
	}
	return r.reason
}

// observeSettled tells the client's observer what became of each message
// of a piece just acknowledged.
func (c *Consumer) observeSettled(msgs []Message, res []result) {
	obs := c.client.obs
	if obs == nil {
		return
	}
	for i := range msgs {
		out := OutcomeAcked
		if res[i].outcome != "" {
			out = res[i].outcome
		}
		obs.Settled(c.name, msgs[i], out)
	}
}

// startAck tells the client's observer an ack of msgs' piece begins.
func (c *Consumer) startAck(ctx context.Context, msgs []Message) func(error) {
	if c.client.obs == nil {
		return func(error) {}
	}
	return c.client.obs.StartAck(ctx, msgs[0].Queue, c.name, len(msgs))
}

// failure is a failed message's result.  Its reason is made text
// PostgreSQL can hold, which a handler's error need not be (it may quote
// binary data): Nack would refuse it, every time, and the message would
// come again and again without ever being retried or dead-lettered.
func failure(reason string) result {
	return result{state: failed, reason: asText(reason)}
}

// settleTimeout bounds one attempt to nack and ack a piece.
const settleTimeout = 10 * time.Second

// settleRefusals bounds the attempts to settle a piece that the server
// refuses (with an SQLSTATE, not a lost connection): beyond them the piece
// is left to be delivered again, rather than retried forever.
const settleRefusals = 2 * nackFallbackAfter

// settleable reports whether a piece was fully handled, to be settled.  A
// piece that was not (cut by the shutdown timeout, lost to another worker
// or the reader lock, its transaction failed, as cause says) is left
// unacknowledged, so it is delivered again.
func (c *Consumer) settleable(log *slog.Logger, msgs []Message, res []result, cause error) bool {
	piece := msgs[0].BatchID
	if errors.Is(cause, errNotReader) {
		log.Warn("pgque consumer: lost the single reader's lock (its listening connection); stopped handling the batch, which the new reader gets again",
			"batch_id", piece, "messages", len(msgs))
		return false
	}
	if errors.Is(cause, errTxBroken) {
		log.Error("pgque consumer: the transaction of the batch failed; stopped handling it, and its messages will be delivered again",
			"batch_id", piece, "err", cause)
		return false
	}
	if errors.Is(cause, errPieceLost) {
		left := 0
		for _, r := range res {
			if r.state == unhandled {
				left++
			}
		}
		log.Warn("pgque consumer: the batch was taken over by another worker (its lease ran out); stopped handling it, and its messages are handled there too",
			"batch_id", piece, "messages", len(msgs), "not_handled_here", left)
		return false
	}
	for _, r := range res {
		if r.state == unhandled {
			log.Info("pgque consumer: shutdown interrupted a batch; its messages will be delivered again",
				"batch_id", piece, "messages", len(msgs))
			return false
		}
	}
	return true
}

// settle nacks the failed messages of a fully handled piece and acks it,
// retrying transient errors while the consumer runs.
func (c *Consumer) settle(ctx context.Context, log *slog.Logger, msgs []Message, res []result) {
	piece := msgs[0].BatchID
	b := newBackoff()
	refused := 0 // attempts the server answered with an error
	for attempt := 1; ; attempt++ {
		err := c.trySettle(ctx, log, msgs, res, attempt)
		if err == nil {
			return
		}
		if serverError(err) != nil {
			refused++
		}
		if ctx.Err() != nil || !retryable(err) || refused > settleRefusals {
			log.Error("pgque consumer: cannot acknowledge batch; its messages will be delivered again",
				"batch_id", piece, "err", err)
			return
		}
		wait := b.next()
		log.Warn("pgque consumer: acknowledging batch failed; retrying", "batch_id", piece, "err", err, "in", wait)
		if !sleep(ctx, wait) {
			log.Error("pgque consumer: batch not acknowledged at shutdown; its messages will be delivered again",
				"batch_id", piece, "err", err)
			return
		}
	}
}

// trySettle makes one attempt, with a context that survives shutdown.
func (c *Consumer) trySettle(ctx context.Context, log *slog.Logger, msgs []Message, res []result, attempt int) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	for i := range res {
		if res[i].state != failed {
			continue
		}
		if res[i].how != nacked {
			if err := c.settleOther(sctx, nil, log, msgs[i], &res[i]); errors.Is(err, ErrTakenOver) {
				c.lostAtSettle(log, msgs[0].BatchID)
				return nil
			} else if err != nil {
				return err
			}
			continue
		}
		// Nack is idempotent, so a retried attempt may repeat it safely.
		secs := c.cfg.retryAfterSecs
		if res[i].fallback {
			secs = int(nackFallbackDelay / time.Second)
		}
		out, err := c.client.NackResult(sctx, msgs[i].BatchID, msgs[i], secs, res[i].reason)
		if err != nil && !res[i].fallback && !errors.Is(err, ErrTakenOver) &&
			(serverError(err) != nil || errors.Is(err, ErrInvalidArgument)) {
			res[i].nackFails++
			if errors.Is(err, ErrInvalidArgument) || res[i].nackFails >= nackFallbackAfter {
				res[i].fallback = true
				log.Warn("pgque consumer: the server keeps refusing to nack a message; nacking it with a fixed delay instead",
					"msg_id", msgs[i].MsgID, "failures", res[i].nackFails, "err", describe("nack", err),
					"delay", nackFallbackDelay)
				secs = int(nackFallbackDelay / time.Second)
				out, err = c.client.NackResult(sctx, msgs[i].BatchID, msgs[i], secs, res[i].reason)
			}
		}
		if errors.Is(err, ErrTakenOver) {
			c.lostAtSettle(log, msgs[0].BatchID)
			return nil
		} else if err != nil {
			return err
		}
		res[i].state, res[i].outcome = nackedState, out
		logNacked(log, msgs[i], res[i].reason, out)
	}
	endAck := c.startAck(sctx, msgs)
	ok, err := c.client.AckResult(sctx, msgs[0].BatchID)
	endAck(err)
	if err == nil {
		c.observeSettled(msgs, res)
	}
	switch {
	case errors.Is(err, ErrTakenOver):
		c.lostAtSettle(log, msgs[0].BatchID)
		return nil
	case err != nil || ok:
	case attempt > 1:
		log.Debug("pgque consumer: batch was acknowledged by an earlier attempt whose reply was lost",
			"batch_id", msgs[0].BatchID)
	default:
		log.Warn("pgque consumer: nothing to acknowledge: the batch was acknowledged or finished by another reader of this consumer name (or worker name)",
			"batch_id", msgs[0].BatchID)
	}
	return err
}

// settleOther snoozes, cancels or rejects msg as res says, in tx unless it is nil.
// Both are idempotent, so a retried attempt may repeat them safely.  Their
// arguments were checked before, so a refusal other than a takeover is the
// server's to fix: the piece is tried again, then given up and delivered
// again (in a transaction: rolled back and delivered again).
func (c *Consumer) settleOther(ctx context.Context, tx DBTX, log *slog.Logger, msg Message, res *result) error {
	cl := c.client
	if tx != nil {
		cl = cl.inTx(tx)
	}
	var out Outcome
	var err error
	switch res.how {
	case snoozed:
		out, err = cl.Snooze(ctx, msg.BatchID, msg, res.delay)
	case cancelledHow:
		out, err = cl.CancelMessage(ctx, msg.BatchID, msg)
	default:
		out, err = cl.Reject(ctx, msg.BatchID, msg, res.reason)
	}
	if err != nil {
		return err
	}
	res.state, res.outcome = nackedState, out
	switch res.how {
	case snoozed:
		log.Debug("pgque consumer: message snoozed", "msg_id", msg.MsgID, "type", msg.Type, "delay", res.delay,
			"outcome", out)
	case cancelledHow:
		log.Info("pgque consumer: message cancelled by its handler", "msg_id", msg.MsgID, "type", msg.Type,
			"reason", res.reason, "outcome", out)
	default:
		log.Warn("pgque consumer: message rejected", "msg_id", msg.MsgID, "type", msg.Type,
			"retry_count", retryCount(msg), "reason", res.reason, "outcome", out)
	}
	return nil
}

// logNacked logs a message nacked for reason: failed, or cancelled while
// it was handed out (out is then OutcomeCancelled).
func logNacked(log *slog.Logger, msg Message, reason string, out Outcome) {
	if out == OutcomeCancelled {
		log.Info("pgque consumer: message cancelled", "msg_id", msg.MsgID, "type", msg.Type)
		return
	}
	log.Warn("pgque consumer: message failed", "msg_id", msg.MsgID, "type", msg.Type,
		"retry_count", retryCount(msg), "reason", reason, "outcome", out)
}

// lostAtSettle logs a piece found taken over when it was being settled.
func (c *Consumer) lostAtSettle(log *slog.Logger, piece int64) {
	log.Warn("pgque consumer: batch was taken over by another worker before it was acknowledged (its lease ran out); its messages are handled there too",
		"batch_id", piece)
}

// retryCount is a message's retry count for logs: 0 on first delivery.
func retryCount(m Message) int {
	if m.RetryCount == nil {
		return 0
	}
	return *m.RetryCount
}

// readerLockNS is the first key of the session advisory lock that elects
// the one reader among single-reader Consumers of a consumer name; the
// second is hashtext('<queue>/<consumer>').
const readerLockNS = 1886482284

// readerAppName is the application_name of a single reader's lock
// connection when the pool's configuration sets none.
const readerAppName = "pgque-reader"

// holdReaderLock keeps a connection of its own holding the reader lock
// while ctx lasts (the single reader reads while it holds it), and
// reconnects with backoff when the connection is lost.
func (c *Consumer) holdReaderLock(ctx context.Context, log *slog.Logger, wake chan<- struct{}) {
	session := func(ctx context.Context) (bool, error) { return c.readerSession(ctx, log, wake) }
	reconnect(ctx, session, func(err error, wait time.Duration) {
		log.Warn("pgque consumer: the reader lock's connection was lost; not reading until it is back", "err", err, "in", wait)
	})
}

// readerSession runs one lock connection until it fails or ctx ends: it
// waits for the reader lock, marks the consumer leading while it holds it,
// and reports whether it got it.  The connection only waits, so that its
// loss is seen at once (PostgreSQL released the lock with it).
//
// The lock is a transaction's, held by a transaction left open: a session
// lock taken through a transaction-mode pooler (PgBouncer) would be held
// by whichever server connection ran that statement, not by this
// session, so that two readers could both win.  An open transaction keeps
// its server connection, through a pooler too.  It holds no snapshot
// between statements (read committed), so it holds no rows back from
// vacuum; the server's timeouts for idle and long transactions are off
// for it.
func (c *Consumer) readerSession(ctx context.Context, log *slog.Logger, wake chan<- struct{}) (bool, error) {
	conn, err := dedicatedConn(ctx, c.client.session, readerAppName)
	if err != nil {
		return false, err
	}
	defer closeConn(ctx, conn)
	if _, err := conn.Exec(ctx, `BEGIN ISOLATION LEVEL READ COMMITTED`); err != nil {
		return false, err
	}
	// transaction_timeout exists from PostgreSQL 17 on.
	if _, err := conn.Exec(ctx, `SELECT set_config(name, '0', true) FROM pg_settings
		WHERE name IN ('idle_in_transaction_session_timeout', 'transaction_timeout')`); err != nil {
		return false, err
	}
	if err := c.lead(ctx, log, conn); err != nil {
		return false, err
	}
	defer c.leading.Store(false)
	signal(wake) // read now, not at the next tick
	for {
		wctx, cancel := context.WithTimeout(ctx, listenHealthInterval)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return true, ctx.Err()
		case wctx.Err() != nil:
			if err := ping(ctx, conn); err != nil {
				return true, err
			}
		case err != nil:
			return true, err
		}
	}
}

// lead waits until this single reader holds the reader lock on conn,
// trying every poll interval, and marks it leading.
func (c *Consumer) lead(ctx context.Context, log *slog.Logger, conn *pgx.Conn) error {
	key := c.client.qn(c.queue) + "/" + c.name
	for waited := false; ; waited = true {
		var won bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, hashtext($2))`, readerLockNS, key).Scan(&won); err != nil {
			return err
		}
		if won {
			c.leading.Store(true)
			if waited {
				log.Info("pgque consumer: now the single reader of the consumer")
			}
			return nil
		}
		if !waited {
			log.Info("pgque consumer: another single reader reads the consumer; standing by")
		}
		if !sleep(ctx, c.cfg.pollInterval) {
			return ctx.Err()
		}
	}
}

// signal wakes the receive loop without blocking; one pending wake-up is
// enough.
func signal(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

// permanent reports errors that retrying cannot fix: the queue or the
// subscription is gone, an argument is invalid, pgque is not installed, or
// the role lacks the rights.
func permanent(err error) bool {
	for _, e := range []error{ErrQueueNotFound, ErrConsumerNotFound, ErrInvalidArgument, ErrNotInstalled, ErrPermissionDenied} {
		if errors.Is(err, e) {
			return true
		}
	}
	// A pgque older than the SDK: a function it calls does not exist.
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42883"
}

// retryable reports errors worth retrying an ack or nack for: not the
// engine's own answers (such as a batch that is no longer open), which
// would only repeat.
func retryable(err error) bool {
	var pqErr *Error
	return !permanent(err) && !errors.As(err, &pqErr)
}
