package pgque

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
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

// ConsumerOption configures a Consumer.
type ConsumerOption func(*consumerConfig)

type consumerConfig struct {
	pollInterval    time.Duration
	maxMessages     int
	maxCatchUp      int
	concurrency     int
	retryAfter      time.Duration
	shutdownTimeout time.Duration
	unknown         UnknownTypePolicy
	ticker          []TickerOption
	runTicker       bool
	worker          string
	lease           time.Duration
	log             *slog.Logger
}

// WithPollInterval sets how long an idle consumer waits before it asks for
// new messages when no notification came (default 1 s).  Notifications
// normally wake it within milliseconds of a tick; polling is the fallback
// that keeps delivery going when one is missed or the listening connection
// is down.
func WithPollInterval(d time.Duration) ConsumerOption {
	return func(c *consumerConfig) { c.pollInterval = d }
}

// WithMaxMessages sets how many messages one receive call hands out
// (default 100).  They are handled, then acknowledged together; a larger
// batch is received in several such pieces.  A consumer that is behind asks
// for more (see WithMaxCatchUp).
func WithMaxMessages(n int) ConsumerOption {
	return func(c *consumerConfig) { c.maxMessages = n }
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
func WithMaxCatchUp(n int) ConsumerOption {
	return func(c *consumerConfig) { c.maxCatchUp = n }
}

// WithConcurrency sets how many handlers may run at once (default 1).  The
// messages of one receive call (see WithMaxMessages) are handed to up to n
// goroutines; the next ones are received once all of them are done.
//
// With 1, messages are handled one at a time in delivery order.  With more,
// the messages of one piece are handled in no particular order, but never
// together with messages of the next piece.
func WithConcurrency(n int) ConsumerOption {
	return func(c *consumerConfig) { c.concurrency = n }
}

// WithRetryAfter sets when a failed message is delivered again (default 0:
// the queue's exponential backoff, see retry_backoff_base).  It is rounded
// up to whole seconds.  Once due, a retry is moved back into the queue by
// maintenance and delivered by the next tick.
func WithRetryAfter(d time.Duration) ConsumerOption {
	return func(c *consumerConfig) { c.retryAfter = d }
}

// WithShutdownTimeout bounds graceful shutdown (default 0: no bound).  When
// Start's context ends, the consumer stops receiving and finishes the
// messages it holds; once d has passed, the handlers' contexts are cancelled
// and messages not started yet are left alone.  The messages are then not
// acknowledged, and are delivered again to the next run of this consumer.
func WithShutdownTimeout(d time.Duration) ConsumerOption {
	return func(c *consumerConfig) { c.shutdownTimeout = d }
}

// WithUnknownTypeHandling sets what happens to a message whose type has no
// handler and no "*" handler is registered (default NackUnknownTypes).
func WithUnknownTypeHandling(p UnknownTypePolicy) ConsumerOption {
	return func(c *consumerConfig) { c.unknown = p }
}

// WithTicker makes Start also run a Ticker for the database (with opts), so
// a single process needs nothing else to deliver messages.  It starts after
// the consumer has subscribed and stops when Start returns.  Any number of
// Tickers may run against a database; only one of them works at a time.
// By default the Ticker logs to the consumer's logger.
func WithTicker(opts ...TickerOption) ConsumerOption {
	return func(c *consumerConfig) {
		c.runTicker = true
		c.ticker = append(c.ticker, opts...)
	}
}

// WithWorker makes the consumer a cooperative worker named name of its
// consumer name (see Client.ReceiveAsWorker): several processes, each with
// its own worker name and the same consumer name, then share the consumer's
// messages, each handling different batches.  While it handles a piece the
// consumer renews its batch's lease (WithLease) every third of the lease; if
// it stops, another worker takes the batch over once the lease runs out.
func WithWorker(name string) ConsumerOption {
	return func(c *consumerConfig) { c.worker = name }
}

// WithLease sets how long a worker's batch stays its own without a receive
// or heartbeat (default DefaultLease).  Shorter leases hand a stopped
// worker's batch over sooner, at the cost of more heartbeats; handlers
// slower than the lease are fine, since the consumer heartbeats meanwhile.
func WithLease(d time.Duration) ConsumerOption {
	return func(c *consumerConfig) { c.lease = d }
}

// WithLogger makes the consumer log failures, retries of connections and
// shutdown (by default it logs nothing).
func WithLogger(l *slog.Logger) ConsumerOption {
	return func(c *consumerConfig) { c.log = l }
}

// Consumer reads one queue as one consumer (subscription) and hands each
// message to the handler registered for its type.  Create it with
// Client.NewConsumer, register handlers with Handle, and run it with Start.
//
// Delivery is at least once.  The messages of a receive call are
// acknowledged together, after every one of them was handled or nacked; a
// message whose handler failed is nacked (retried later, for this consumer
// only, with a RetryCount one higher) and the others are unaffected.  When
// the process crashes, loses its connection or is shut down before a piece
// is acknowledged, the whole piece is delivered again to the next run, so
// handlers should be idempotent (Message.MsgID is unique within a queue and
// kept on retries).
//
// With concurrency 1 (the default) messages are handled in delivery order
// (see docs/concepts.md; retries come after messages sent later).  With
// WithConcurrency(n) handlers run in parallel and order within a piece is
// not kept.
//
// One consumer name is one reader: run one Consumer per (queue, name) at a
// time, unless they are cooperative workers (WithWorker), each with a
// worker name of its own.  Every consumer name sees every event of the
// queue (fan-out); give services that each need all events different names.
type Consumer struct {
	client *Client
	queue  string
	name   string
	cfg    consumerConfig
	log    *slog.Logger

	mu       sync.RWMutex
	handlers map[string]HandlerFunc
	running  atomic.Bool
}

// NewConsumer returns a consumer named name on queue.  Nothing happens until
// Start.
func (c *Client) NewConsumer(queue, name string, opts ...ConsumerOption) *Consumer {
	cfg := consumerConfig{
		pollInterval: time.Second,
		maxMessages:  100,
		maxCatchUp:   100_000,
		concurrency:  1,
		lease:        DefaultLease,
		log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	log := cfg.log.With("queue", queue, "consumer", name)
	if cfg.worker != "" {
		log = log.With("worker", cfg.worker)
	}
	return &Consumer{
		client:   c,
		queue:    queue,
		name:     name,
		cfg:      cfg,
		log:      log,
		handlers: map[string]HandlerFunc{},
	}
}

// Handle registers h for messages of type typ; "*" registers the handler
// for every type that has none of its own.  A later Handle for the same type
// replaces the handler.  Handle may be called while the consumer runs; it
// panics if h is nil.
func (c *Consumer) Handle(typ string, h HandlerFunc) {
	if h == nil {
		panic("pgque: Consumer.Handle: nil handler for type " + typ)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers[typ] = h
}

func (c *Consumer) handler(typ string) HandlerFunc {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if h, ok := c.handlers[typ]; ok {
		return h
	}
	return c.handlers["*"]
}

// Start subscribes the consumer to its queue (if it is not yet) and
// handles messages until ctx ends; then it finishes the messages it holds
// (see WithShutdownTimeout), acknowledges them and returns nil.
//
// A new subscription starts at the queue's newest tick: events ticked
// before it are not delivered to this consumer.  Subscribe ahead of time
// (Client.Subscribe) when a consumer must not miss events sent before its
// first start.
//
// The consumer listens for the queue's notifications on a connection of its
// own (the pool's connection settings, with application_name
// "pgque-listener" unless one is set) and receives as soon as a tick is
// notified, and polls every poll interval in case one is missed.  Lost connections and other transient
// database errors are logged and retried with backoff.  Start returns an
// error when consuming is impossible: the queue does not exist
// (ErrQueueNotFound), the consumer was unsubscribed while running
// (ErrConsumerNotFound), a name or option is invalid (ErrInvalidArgument),
// pgque is not installed or the role lacks the rights, or the consumer is
// already running.
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
	case c.cfg.retryAfter < 0:
		return invalid(op, "retry delay %v is negative", c.cfg.retryAfter)
	case c.cfg.shutdownTimeout < 0:
		return invalid(op, "shutdown timeout %v is negative", c.cfg.shutdownTimeout)
	case c.cfg.unknown != NackUnknownTypes && c.cfg.unknown != SkipUnknownTypes:
		return invalid(op, "unknown type policy %d", c.cfg.unknown)
	case c.cfg.lease <= 0:
		return invalid(op, "lease %v is not positive", c.cfg.lease)
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

	// Everything stops when ctx ends or the ticker fails; the ticker and the
	// listener also stop when Start returns.
	bg, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()

	if err := c.subscribe(bg); err != nil || bg.Err() != nil {
		return err
	}
	tickerErr := make(chan error, 1)
	if c.cfg.runTicker {
		opts := append([]TickerOption{WithTickerLogger(c.cfg.log)}, c.cfg.ticker...)
		t := NewTicker(c.client.Pool(), opts...)
		wg.Go(func() {
			if err := t.Run(bg); err != nil {
				tickerErr <- err
				stop()
			}
		})
	}
	wake := make(chan struct{}, 1)
	wg.Go(func() { c.listen(bg, wake) })
	c.log.Info("pgque consumer: started")
	err := c.loop(bg, wake)
	stop()
	wg.Wait()
	select {
	case terr := <-tickerErr:
		return terr
	default:
	}
	if err == nil {
		c.log.Info("pgque consumer: stopped")
	}
	return err
}

// subscribe subscribes the consumer, retrying transient errors until ctx ends.
func (c *Consumer) subscribe(ctx context.Context) error {
	b := newBackoff(100*time.Millisecond, 10*time.Second)
	for {
		_, err := c.client.Subscribe(ctx, c.queue, c.name)
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			return nil
		case permanent(err):
			return err
		}
		wait := b.next()
		c.log.Warn("pgque consumer: subscribe failed; retrying", "err", err, "in", wait)
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

// idleMsg is logged (at debug level) each time the consumer has nothing to
// do and starts waiting for a notification or the poll interval.
const idleMsg = "pgque consumer: idle"

// loop receives and handles messages until ctx ends or a permanent error.
func (c *Consumer) loop(ctx context.Context, wake <-chan struct{}) error {
	b := newBackoff(100*time.Millisecond, 5*time.Second)
	size := c.cfg.maxMessages
	for {
		// Every tick notified so far is visible to the receive below.
		select {
		case <-wake:
		default:
		}
		msgs, err := c.receive(ctx, size)
		if ctx.Err() != nil {
			// Anything received but not handled comes again next run.
			return nil
		}
		if err != nil {
			if permanent(err) {
				return err
			}
			wait := b.next()
			c.log.Warn("pgque consumer: receive failed; retrying", "err", err, "in", wait)
			if !sleep(ctx, wait) {
				return nil
			}
			continue
		}
		b.reset()
		if len(msgs) > 0 {
			start := time.Now()
			c.process(ctx, msgs)
			size = c.nextSize(size, len(msgs), pieceSize(msgs), time.Since(start))
			continue
		}
		size = c.cfg.maxMessages
		c.log.Debug(idleMsg, "poll_in", c.cfg.pollInterval)
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

// receive asks for the next piece of up to size messages, as a worker when
// the consumer is one.
func (c *Consumer) receive(ctx context.Context, size int) ([]Message, error) {
	if c.cfg.worker != "" {
		return c.client.ReceiveAsWorker(ctx, c.queue, c.name, c.cfg.worker, size, c.cfg.lease)
	}
	return c.client.Receive(ctx, c.queue, c.name, size)
}

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

// heartbeat renews a worker's lease on batch every third of the lease
// until ctx ends.  A failed heartbeat is retried at the next beat; a lost
// batch is reported once (its messages go to another worker too).
func (c *Consumer) heartbeat(ctx context.Context, batch int64) {
	t := time.NewTicker(c.cfg.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, err := c.client.Heartbeat(ctx, batch, c.cfg.lease)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			c.log.Warn("pgque consumer: heartbeat failed", "batch_id", batch, "err", err)
		case !ok:
			c.log.Warn("pgque consumer: batch was taken over by another worker; its messages are delivered there too",
				"batch_id", batch)
			return
		}
	}
}

// state is what became of one message of a piece.
type state int

const (
	unhandled   state = iota // not started, or interrupted by the shutdown timeout
	handled                  // to be acknowledged
	failed                   // to be nacked, then acknowledged
	nackedState              // nacked already
)

type result struct {
	state  state
	reason string
}

// process handles one piece of a batch and settles it.
func (c *Consumer) process(ctx context.Context, msgs []Message) {
	// Handlers outlive ctx; only the shutdown timeout cancels them.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	stopWatch := context.AfterFunc(ctx, func() {
		c.log.Info("pgque consumer: stopping; finishing received messages", "messages", len(msgs))
		if c.cfg.shutdownTimeout > 0 {
			time.AfterFunc(c.cfg.shutdownTimeout, hcancel)
		}
	})
	defer stopWatch()

	if c.cfg.worker != "" {
		// Beats until the piece is settled, shutdown included.
		bctx, bcancel := context.WithCancel(context.WithoutCancel(ctx))
		var beats sync.WaitGroup
		beats.Go(func() { c.heartbeat(bctx, msgs[0].BatchID) })
		defer beats.Wait()
		defer bcancel()
	}

	res := make([]result, len(msgs))
	workers := min(c.cfg.concurrency, len(msgs))
	if workers == 1 {
		for i := range msgs {
			if hctx.Err() != nil {
				break
			}
			res[i] = c.handle(hctx, msgs[i])
		}
	} else {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= len(msgs) || hctx.Err() != nil {
						return
					}
					res[i] = c.handle(hctx, msgs[i])
				}
			})
		}
		wg.Wait()
	}
	c.settle(ctx, msgs, res)
}

// handle runs the message's handler, turning an error or a panic into a
// failure.
func (c *Consumer) handle(ctx context.Context, msg Message) (res result) {
	h := c.handler(msg.Type)
	if h == nil {
		if c.cfg.unknown == SkipUnknownTypes {
			c.log.Debug("pgque consumer: skipping message of unknown type", "msg_id", msg.MsgID, "type", msg.Type)
			return result{state: handled}
		}
		return result{state: failed, reason: "no handler for type " + msg.Type}
	}
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("pgque consumer: handler panicked", "msg_id", msg.MsgID, "type", msg.Type,
				"panic", p, "stack", string(debug.Stack()))
			res = result{state: failed, reason: fmt.Sprintf("handler panicked: %v", p)}
		}
	}()
	if err := h(ctx, msg); err != nil {
		if ctx.Err() != nil {
			// Cut short by the shutdown timeout: not the message's fault.
			return result{state: unhandled}
		}
		return result{state: failed, reason: err.Error()}
	}
	return result{state: handled}
}

// settleTimeout bounds one attempt to nack and ack a piece.
const settleTimeout = 10 * time.Second

// settle nacks the failed messages of a fully handled piece and acks it,
// retrying transient errors while the consumer runs.  A piece that was not
// fully handled is left unacknowledged, so it is delivered again.
func (c *Consumer) settle(ctx context.Context, msgs []Message, res []result) {
	batch := msgs[0].BatchID
	for _, r := range res {
		if r.state == unhandled {
			c.log.Info("pgque consumer: shutdown interrupted a batch; its messages will be delivered again",
				"batch_id", batch, "messages", len(msgs))
			return
		}
	}
	b := newBackoff(100*time.Millisecond, 5*time.Second)
	for {
		err := c.trySettle(ctx, msgs, res)
		if err == nil {
			return
		}
		if ctx.Err() != nil || !retryable(err) {
			c.log.Error("pgque consumer: cannot acknowledge batch; its messages will be delivered again",
				"batch_id", batch, "err", err)
			return
		}
		wait := b.next()
		c.log.Warn("pgque consumer: acknowledging batch failed; retrying", "batch_id", batch, "err", err, "in", wait)
		if !sleep(ctx, wait) {
			c.log.Error("pgque consumer: batch not acknowledged at shutdown; its messages will be delivered again",
				"batch_id", batch, "err", err)
			return
		}
	}
}

// trySettle makes one attempt, with a context that survives shutdown.
func (c *Consumer) trySettle(ctx context.Context, msgs []Message, res []result) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	retrySecs := int((c.cfg.retryAfter + time.Second - 1) / time.Second)
	for i := range res {
		if res[i].state != failed {
			continue
		}
		// Nack is idempotent, so a retried attempt may repeat it safely.
		out, err := c.client.Nack(sctx, msgs[i].BatchID, msgs[i], retrySecs, res[i].reason)
		if err != nil {
			return err
		}
		res[i].state = nackedState
		c.log.Warn("pgque consumer: message failed", "msg_id", msgs[i].MsgID, "type", msgs[i].Type,
			"retry_count", msgs[i].RetryCount, "reason", res[i].reason, "outcome", out)
	}
	ok, err := c.client.Ack(sctx, msgs[0].BatchID)
	if err == nil && !ok {
		c.log.Warn("pgque consumer: batch was already acknowledged (is another process using this consumer name?)",
			"batch_id", msgs[0].BatchID)
	}
	return err
}

// listenerAppName is the application_name of the listening connection when
// the pool's configuration sets none.
const listenerAppName = "pgque-listener"

// listenHealthInterval is how long the listening connection may stay silent
// before it is pinged.
const listenHealthInterval = time.Minute

// listen keeps a connection LISTENing on the queue's channel, signalling
// wake for every notification, and reconnects with backoff when it is lost.
func (c *Consumer) listen(ctx context.Context, wake chan<- struct{}) {
	b := newBackoff(100*time.Millisecond, 10*time.Second)
	for ctx.Err() == nil {
		listening, err := c.listenSession(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		if listening {
			b.reset()
		}
		wait := b.next()
		c.log.Warn("pgque consumer: listening connection lost; polling until it is back", "err", err, "in", wait)
		if !sleep(ctx, wait) {
			return
		}
	}
}

// listenSession runs one listening connection until it fails or ctx ends.
// It reports whether LISTEN succeeded.
func (c *Consumer) listenSession(ctx context.Context, wake chan<- struct{}) (bool, error) {
	cfg := c.client.Pool().Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = listenerAppName
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	channel := pgx.Identifier{"pgque_" + c.client.qn(c.queue)}.Sanitize()
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return false, err
	}
	c.log.Debug("pgque consumer: listening", "channel", channel)
	// Ticks may have been missed while not listening: receive now.
	signal(wake)
	for {
		wctx, cancel := context.WithTimeout(ctx, listenHealthInterval)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			signal(wake)
		case ctx.Err() != nil:
			return true, ctx.Err()
		case wctx.Err() != nil:
			// Silent for a while: make sure the connection is still alive.
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return true, err
			}
		default:
			return true, err
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
	if errors.Is(err, ErrQueueNotFound) || errors.Is(err, ErrConsumerNotFound) || errors.Is(err, ErrInvalidArgument) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "42501", // insufficient_privilege
			"42883", // undefined_function: pgque not installed
			"3F000": // invalid_schema_name: pgque not installed
			return true
		}
	}
	return false
}

// retryable reports errors worth retrying an ack or nack for: not the
// engine's own answers (such as a batch that is no longer open), which
// would only repeat.
func retryable(err error) bool {
	var pqErr *Error
	return !permanent(err) && !errors.As(err, &pqErr)
}
