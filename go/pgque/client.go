package pgque

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Client is a handle on a database with pgque installed.  It is safe for
// concurrent use; every call takes a connection from its pool.
type Client struct {
	pool     *pgxpool.Pool
	ownsPool bool
	// session configures the connections that keep session state
	// (listening, a Ticker's): WithDirectDSN's, else the pool's.
	session  *pgx.ConnConfig
	ns       string    // WithNamespace: prefix of every queue name, "" for none
	notifier *notifier // shared with the clients WithNamespace makes
	db       DBTX      // the transaction of a Tx call (inTx); nil: the pool
	obs      Observer  // WithObserver; nil: none, and nothing on the hot path
	// directMin overrides defaultDirectMin when not 0 (tests: export_test.go).
	directMin int
}

// ClientOption configures Connect and New.
type ClientOption func(*clientConfig)

type clientConfig struct {
	pool      []func(*pgxpool.Config)
	directDSN string
}

// WithPoolConfig lets the caller adjust the pool Connect creates (size,
// timeouts, hooks) before it is opened.  It has no effect on New, whose
// pool exists already.
func WithPoolConfig(fn func(*pgxpool.Config)) ClientOption {
	return func(c *clientConfig) { c.pool = append(c.pool, fn) }
}

// WithDirectDSN gives the connection string of the database itself, for
// the client's pool to go through a connection pooler in transaction
// mode (PgBouncer's pool_mode = transaction): the connections that keep
// session state then bypass the pooler — the one that listens for ticks
// (Listen, every Consumer's wake-ups) and a Ticker's (RunTicker,
// WithTicker), which listens too.  Without it, behind such a pooler,
// notifications go astray and consumers fall back to polling (at
// WithPollInterval).  The pool's dsn must then choose a query mode that
// works without prepared statements, e.g. default_query_exec_mode=exec
// (docs/operations.md, "Behind PgBouncer").  A dsn that does not parse is
// ErrInvalidArgument.
func WithDirectDSN(dsn string) ClientOption {
	return func(c *clientConfig) { c.directDSN = dsn }
}

// clientOptions applies opts, and parses the direct dsn when one is given
// (nil when not).
func clientOptions(opts []ClientOption) (clientConfig, *pgx.ConnConfig, error) {
	var cfg clientConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.directDSN == "" {
		return cfg, nil, nil
	}
	direct, err := pgx.ParseConfig(cfg.directDSN)
	if err != nil {
		// pgx's message leaves the password out.
		return cfg, nil, fmt.Errorf("pgque: direct dsn: %w (%w)", err, ErrInvalidArgument)
	}
	return cfg, direct, nil
}

// Connect opens a connection pool to dsn (a PostgreSQL URL or key=value
// string) and checks that the server answers.  pgque must be installed in
// that database (see Install).  Close the client when done.  A dsn that
// does not parse is ErrInvalidArgument.
func Connect(ctx context.Context, dsn string, opts ...ClientOption) (*Client, error) {
	cc, direct, err := clientOptions(opts)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message leaves the password out.
		return nil, fmt.Errorf("pgque: connect: %w (%w)", err, ErrInvalidArgument)
	}
	for _, fn := range cc.pool {
		fn(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgque: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgque: connect: %w", err)
	}
	c := newClient(pool, direct)
	c.ownsPool = true
	return c, nil
}

// New returns a client over an existing pool.  Close does not close a pool
// passed to New.  Of the options only WithDirectDSN applies; it panics on
// a direct dsn that does not parse (Connect returns the error instead).
func New(pool *pgxpool.Pool, opts ...ClientOption) *Client {
	_, direct, err := clientOptions(opts)
	if err != nil {
		panic(err)
	}
	return newClient(pool, direct)
}

func newClient(pool *pgxpool.Pool, direct *pgx.ConnConfig) *Client {
	session := direct
	if session == nil {
		session = pool.Config().ConnConfig
	}
	return &Client{pool: pool, session: session, notifier: newNotifier(session)}
}

// Close closes the pool if Connect opened it.
func (c *Client) Close() {
	if c.ownsPool {
		c.pool.Close()
	}
}

// Pool returns the client's connection pool.
func (c *Client) Pool() *pgxpool.Pool { return c.pool }

// q is what the client's calls run their SQL on: the pool, or the
// transaction of a Tx call.
func (c *Client) q() DBTX {
	if c.db != nil {
		return c.db
	}
	return c.pool
}

// inTx is the client for the calls of a Tx form: c's calls, run in tx.
func (c *Client) inTx(tx DBTX) *Client {
	cc := *c
	cc.db = tx
	return &cc
}

// WithNamespace returns a client scoped to namespace ns, sharing c's pool:
// every queue name it is given is taken inside the namespace ("orders"
// means the queue "ns.orders"), the lists (Queues, Consumers, Schedules)
// hold the namespace's queues only, and the names it returns are local to
// it.  Multi-tenant services keep one pool and one scoped client per
// tenant; the database decides what each login may do (pgque.grant_access).
// Closing the scoped client does not close the pool.  ns must be a valid
// queue name without ".".
func (c *Client) WithNamespace(ns string) (*Client, error) {
	const op = "pgque: namespace"
	if ns == "" || strings.Contains(ns, ".") || len(ns) > 56 || !validName(ns) {
		return nil, invalid(op, "%q is not a namespace (letters, digits, \"_\" and \"-\", at most 56 bytes, no \".\")", ns)
	}
	return &Client{pool: c.pool, session: c.session, ns: ns, notifier: c.notifier, obs: c.obs}, nil
}

// Namespace returns the client's namespace, "" for an unscoped client.
func (c *Client) Namespace() string { return c.ns }

// qn is the full name of a queue named by the caller.
func (c *Client) qn(queue string) string {
	if c.ns == "" || queue == "" {
		return queue
	}
	return c.ns + "." + queue
}

// local is a full queue name as the caller knows it.
func (c *Client) local(queue string) string {
	if c.ns == "" {
		return queue
	}
	return strings.TrimPrefix(queue, c.ns+".")
}

// namespaceArg is the namespace filter of the list functions: NULL for none.
func (c *Client) namespaceArg() *string {
	if c.ns == "" {
		return nil
	}
	return &c.ns
}

// validName reports whether s is made of the characters pgque allows in
// names and starts with a letter or digit.
func validName(s string) bool {
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '_' || r == '-' || r == '.')
		if !ok {
			return false
		}
	}
	return s != ""
}

// Event is a message to send.
type Event struct {
	// Type names the kind of event; consumers dispatch on it.  "" sends
	// DefaultEventType, as the PgQue client does.
	Type string
	// Payload is marshalled to JSON.  json.RawMessage and []byte are taken as
	// JSON already and must be valid; nil sends a NULL payload.
	Payload any
	// Extra1..Extra4 are optional free-form text fields delivered with the event.
	Extra1, Extra2, Extra3, Extra4 *string
}

// DefaultEventType is the type of an Event sent with Type "".
const DefaultEventType = "default"

// sentType is the type the event is sent with.
func (e Event) sentType() string {
	if e.Type == "" {
		return DefaultEventType
	}
	return e.Type
}

// payload returns the event's payload as JSON text, or nil for NULL,
// having checked that its text fields are text PostgreSQL can hold.
func (e Event) payload(op string) (*string, error) {
	if err := checkText(op, "event type", e.Type); err != nil {
		return nil, err
	}
	for i, x := range []*string{e.Extra1, e.Extra2, e.Extra3, e.Extra4} {
		if x != nil {
			if err := checkText(op, fmt.Sprintf("extra%d of %.100q event", i+1, e.Type), *x); err != nil {
				return nil, err
			}
		}
	}
	var raw []byte
	switch p := e.Payload.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		raw = p
	case []byte:
		raw = p
	default:
		b, err := json.Marshal(p)
		if err != nil {
			return nil, invalid(op, "payload of %q event: %v", e.Type, err)
		}
		raw = b
	}
	if !json.Valid(raw) {
		return nil, invalid(op, "payload of %q event is not valid JSON", e.Type)
	}
	// JSON strings may hold invalid UTF-8 as far as json.Valid is concerned.
	if err := checkText(op, fmt.Sprintf("payload of %.100q event", e.Type), string(raw)); err != nil {
		return nil, err
	}
	s := string(raw)
	return &s, nil
}

const sendSQL = `SELECT pgque.send($1::pg_catalog.text, $2::pg_catalog.text, $3::pg_catalog.text, $4, $5, $6, $7)`

// sendOptsSQL calls the engine's entry point for sends with options.  A
// delay is added to the server's clock when the statement runs, so client
// clock skew and time spent in the caller's transaction do not shorten it.
const sendOptsSQL = `SELECT pgque.send_opts($1::pg_catalog.text, $2::pg_catalog.text, $3::pg_catalog.text,
	deliver_at  => coalesce(pg_catalog.clock_timestamp() + $4::pg_catalog.interval, $5::pg_catalog.timestamptz),
	unique_key  => $6::pg_catalog.text,
	unique_ttl  => $7::pg_catalog.interval,
	max_retries => $8::pg_catalog.int4,
	extra1 => $9, extra2 => $10, extra3 => $11, extra4 => $12)`

// SendOption changes how Send and SendTx enqueue an event.
type SendOption func(*sendOptions)

type sendOptions struct {
	runAt      *time.Time
	delay      *time.Duration
	uniqueKey  *string
	uniqueTTL  *time.Duration
	maxRetries *int
}

// WithRunAt delivers the event at t, not before: it waits in the delayed
// store and goes to every consumer at the first tick after t.  A t that is
// not in the future sends at once; one more than 100 years ahead is
// ErrInvalidArgument.  The event id is assigned at send time;
// CancelScheduled withdraws the event until it is delivered.  It replaces
// an earlier WithDelay.
func WithRunAt(t time.Time) SendOption {
	return func(o *sendOptions) { o.runAt, o.delay = &t, nil }
}

// WithDelay delivers the event d after the send, by the database server's
// clock (see WithRunAt); d <= 0 sends at once, d over 100 years is
// ErrInvalidArgument.  It replaces an earlier WithRunAt.
func WithDelay(d time.Duration) SendOption {
	return func(o *sendOptions) { o.delay, o.runAt = &d, nil }
}

// WithUniqueKey sends the event only if the queue holds no live event with
// the same key; otherwise Send returns the live event's id and enqueues
// nothing.  An event is live while it is pending for a consumer (delayed,
// not yet acked by every subscribed consumer, or waiting for a retry) or
// within the key's TTL (WithUniqueTTL) of its send.  Concurrent sends of one
// key yield one event, and every caller gets its id.  Needs READ COMMITTED
// (the default) when used with SendTx.
func WithUniqueKey(key string) SendOption {
	return func(o *sendOptions) { o.uniqueKey = &key }
}

// WithUniqueTTL keeps the unique key live for at least d after the send,
// even once every consumer has handled the event.  Only with WithUniqueKey;
// d from 0 to 100 years.
func WithUniqueTTL(d time.Duration) SendOption {
	return func(o *sendOptions) { o.uniqueTTL = &d }
}

// WithMaxRetries sets how many times this event may be retried (nacked)
// before it is dead-lettered, instead of the queue's max_retries (0 to
// 2,147,483,647).  Retries and dead-letter replays keep the limit.
func WithMaxRetries(n int) SendOption {
	return func(o *sendOptions) { o.maxRetries = &n }
}

func send(ctx context.Context, q DBTX, op, queue string, ev Event, opts []SendOption) (int64, error) {
	p, err := ev.payload(op)
	if err != nil {
		return 0, err
	}
	ev.Type = ev.sentType()
	var id int64
	if len(opts) == 0 {
		err = q.QueryRow(ctx, sendSQL, queue, ev.Type, p, ev.Extra1, ev.Extra2, ev.Extra3, ev.Extra4).Scan(&id)
		return id, wrap(op, err)
	}
	var o sendOptions
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.runAt != nil && o.runAt.IsZero():
		return 0, invalid(op, "run-at time is the zero time")
	case o.runAt != nil && checkTime(op, "run-at time", *o.runAt, false) != nil:
		return 0, checkTime(op, "run-at time", *o.runAt, false)
	case o.delay != nil && *o.delay > maxSpan:
		// A delay <= 0 sends at once.
		return 0, checkSpan(op, "delay", *o.delay)
	case o.uniqueKey != nil && *o.uniqueKey == "":
		return 0, invalid(op, "unique key is empty")
	case o.uniqueTTL != nil && o.uniqueKey == nil:
		return 0, invalid(op, "unique TTL without a unique key")
	case o.uniqueTTL != nil && checkSpan(op, "unique TTL", *o.uniqueTTL) != nil:
		return 0, checkSpan(op, "unique TTL", *o.uniqueTTL)
	case o.maxRetries != nil && checkCount(op, "max retries", *o.maxRetries, 0) != nil:
		return 0, checkCount(op, "max retries", *o.maxRetries, 0)
	}
	err = q.QueryRow(ctx, sendOptsSQL, queue, ev.Type, p, o.delay, o.runAt, o.uniqueKey, o.uniqueTTL, o.maxRetries,
		ev.Extra1, ev.Extra2, ev.Extra3, ev.Extra4).Scan(&id)
	return id, wrap(op, err)
}

// Send enqueues one event and returns its id.  The event is committed at
// once; use SendTx to make it part of your own transaction.  Options delay
// it (WithRunAt, WithDelay), deduplicate it (WithUniqueKey, WithUniqueTTL)
// or set its retry limit (WithMaxRetries); without options Send takes the
// engine's plain, fastest path.
func (c *Client) Send(ctx context.Context, queue string, ev Event, opts ...SendOption) (int64, error) {
	return c.sendOne(ctx, c.q(), queue, ev, opts)
}

// sendOne is Send and SendTx, observed.
func (c *Client) sendOne(ctx context.Context, q DBTX, queue string, ev Event, opts []SendOption) (int64, error) {
	const op = "pgque: send"
	if c.obs == nil {
		return send(ctx, q, op, c.qn(queue), ev, opts)
	}
	evs := []Event{ev}
	ctx, end := c.obs.StartSend(ctx, queue, evs)
	id, err := send(ctx, q, op, c.qn(queue), evs[0], opts)
	end(err)
	return id, err
}

// SendTx enqueues one event inside tx (a pgx.Tx, or a database/sql
// transaction through SQLTx): it is delivered only if tx commits.
// Options are those of Send.
func (c *Client) SendTx(ctx context.Context, tx DBTX, queue string, ev Event, opts ...SendOption) (int64, error) {
	return c.sendOne(ctx, tx, queue, ev, opts)
}

// CancelScheduled withdraws an event sent with WithRunAt or WithDelay that
// has not been delivered yet.  It reports true when it cancelled the event
// and false when the event was already delivered or cancelled.  It fails
// with ErrNotScheduled when id is not a delayed event of queue (or was
// delivered or cancelled so long ago that the store no longer remembers it;
// at least a minute).  A cancel racing the delivery either wins or reports
// false, never both.
func (c *Client) CancelScheduled(ctx context.Context, queue string, id int64) (bool, error) {
	queue = c.qn(queue)
	n, err := c.exec1(ctx, "pgque: cancel scheduled", `SELECT pgque.cancel_scheduled($1, $2)`, queue, id)
	return n == 1, err
}

// CancelScheduledTx is CancelScheduled inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) CancelScheduledTx(ctx context.Context, tx DBTX, queue string, id int64) (bool, error) {
	return c.inTx(tx).CancelScheduled(ctx, queue, id)
}

// SendBatch enqueues events atomically in one round trip and returns their
// ids in the order of events.  Events of one type without extras take the
// set-based path (pgque.send_batch).
func (c *Client) SendBatch(ctx context.Context, queue string, events []Event) (ids []int64, err error) {
	const op = "pgque: send batch"
	if len(events) == 0 {
		return nil, nil
	}
	if c.obs != nil {
		events = slices.Clone(events)
		var end func(error)
		ctx, end = c.obs.StartSend(ctx, queue, events)
		defer func() { end(err) }()
	}
	queue = c.qn(queue)
	types := make([]string, len(events))
	payloads := make([]*string, len(events))
	extras := make([][]*string, 4)
	for i := range extras {
		extras[i] = make([]*string, len(events))
	}
	uniform := true
	for i, ev := range events {
		p, err := ev.payload(op)
		if err != nil {
			return nil, err
		}
		types[i], payloads[i] = ev.sentType(), p
		for j, x := range []*string{ev.Extra1, ev.Extra2, ev.Extra3, ev.Extra4} {
			extras[j][i] = x
			uniform = uniform && x == nil
		}
		uniform = uniform && types[i] == types[0]
	}
	if uniform {
		err = c.q().QueryRow(ctx, `SELECT pgque.send_batch($1::pg_catalog.text, $2::pg_catalog.text, $3::pg_catalog.text[])`,
			queue, types[0], payloads).Scan(&ids)
	} else {
		// One statement, so one round trip and all or nothing.
		err = c.q().QueryRow(ctx, `
			SELECT pg_catalog.array_agg(pgque.send($1::pg_catalog.text, t, p, e1, e2, e3, e4) ORDER BY n)
			  FROM unnest($2::pg_catalog.text[], $3::pg_catalog.text[], $4::pg_catalog.text[], $5::pg_catalog.text[], $6::pg_catalog.text[], $7::pg_catalog.text[])
			       WITH ORDINALITY AS u(t, p, e1, e2, e3, e4, n)`,
			queue, types, payloads, extras[0], extras[1], extras[2], extras[3]).Scan(&ids)
	}
	if err != nil {
		return nil, wrap(op, err)
	}
	return ids, nil
}

// SendBatchTx is SendBatch inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) SendBatchTx(ctx context.Context, tx DBTX, queue string, events []Event) ([]int64, error) {
	return c.inTx(tx).SendBatch(ctx, queue, events)
}

// Message is an event as a consumer receives it.
type Message struct {
	// MsgID is the event's id, unique within its queue and kept on retries.
	MsgID int64 `json:"msg_id"`
	// Queue is the queue the message was received from (as the client
	// names it, without its namespace), so that a handler serving several
	// queues (WithQueues, ReceiveFirst) knows where it came from; "" where
	// the queue is known otherwise (Peek, dead letters).
	Queue string `json:"queue"`
	// BatchID is the piece the message was handed out in: the id to Ack.
	BatchID int64  `json:"batch_id"`
	Type    string `json:"type"`
	// Payload is the event's payload as sent: raw JSON text (or other text
	// when sent as such through SQL); "" for a NULL payload.  Unmarshal it
	// with json.Unmarshal([]byte(msg.Payload), &v); to send it on as is,
	// give it to an Event as json.RawMessage(msg.Payload).
	Payload string `json:"payload"`
	// RetryCount is nil on first delivery and 1, 2, ... on retries.
	RetryCount *int      `json:"retry_count"`
	CreatedAt  time.Time `json:"created_at"`
	Extra1     *string   `json:"extra1"`
	Extra2     *string   `json:"extra2"`
	Extra3     *string   `json:"extra3"`
	Extra4     *string   `json:"extra4"`
}

// payloadText turns a scanned payload column into a Message payload.
func payloadText(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// rawJSON turns a scanned payload column into a schedule's payload.
func rawJSON(p *string) json.RawMessage {
	if p == nil {
		return nil
	}
	return json.RawMessage(*p)
}

// Receive returns up to maxMessages messages (1 to 2,147,483,647) of the
// consumer's open (or next) batch, as its plain reader; none when nothing
// new was ticked.  They are handed out as one piece, whose id is their
// BatchID: Ack it when they are handled; messages received and not acked come again (as a new piece).  To
// share a consumer with other processes without being handed the same
// messages, receive as a worker (ReceiveAsWorker), as a Consumer does.
//
// Pieces of 1000 messages or more are read straight from the event tables
// when the session's role may (pgque_reader may; see pgque.receive_query):
// that streams them, where the receive() function holds them first.
func (c *Client) Receive(ctx context.Context, queue, consumer string, maxMessages int) ([]Message, error) {
	const op = "pgque: receive"
	if err := checkCount(op, "max", maxMessages, 1); err != nil {
		return nil, err
	}
	return c.receivePiece(ctx, op, c.qn(queue), consumer, maxMessages, nil, nil)
}

// ReceiveTx is Receive inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx): the piece is handed out when tx commits, and a rollback
// hands its messages out again.  Until tx ends, the consumer's other
// receives (its workers') wait for it: keep such a transaction short.  It always goes through receive(), whatever
// the piece's size: reading straight from the event tables changes planner
// settings for the rest of the transaction, which is the caller's.
func (c *Client) ReceiveTx(ctx context.Context, tx DBTX, queue, consumer string, maxMessages int) ([]Message, error) {
	return c.inTx(tx).Receive(ctx, queue, consumer, maxMessages)
}

// defaultDirectMin is the smallest piece read straight from the event tables: it
// takes two round trips where receive() takes one, which only a big piece
// pays back (docs/benchmarks.md).
const defaultDirectMin = 1000

// receivePiece hands out a piece for Receive and ReceiveAsWorker (worker
// and lease nil for the consumer itself).
func (c *Client) receivePiece(ctx context.Context, op, queue, consumer string, max int, worker *string,
	lease *time.Duration) ([]Message, error) {
	directMin := defaultDirectMin
	if c.directMin != 0 {
		directMin = c.directMin
	}
	name := c.local(queue)
	var end func([]Message, error)
	if c.obs != nil {
		end = c.obs.StartReceive(ctx, name, consumer)
	}
	msgs, err := c.readPiece(ctx, queue, consumer, max, worker, lease, directMin)
	for i := range msgs {
		msgs[i].Queue = name
	}
	err = wrap(op, err)
	if end != nil {
		end(msgs, err)
	}
	return msgs, err
}

// readPiece is receivePiece's reading: straight from the event tables for
// a piece of directMin messages or more when the role may, else through
// receive().
func (c *Client) readPiece(ctx context.Context, queue, consumer string, max int, worker *string,
	lease *time.Duration, directMin int) ([]Message, error) {
	if max >= directMin && c.db == nil {
		msgs, done, err := c.receiveDirect(ctx, queue, consumer, max, worker, lease)
		if done || err != nil {
			return msgs, err
		}
	}
	rows, err := c.q().Query(ctx, `SELECT msg_id, batch_id, type, payload, retry_count, created_at,
	                                       extra1, extra2, extra3, extra4
	                                  FROM pgque.receive($1, $2, $3, $4, $5)`,
		queue, consumer, max, worker, lease)
	if err != nil {
		return nil, err
	}
	return collectMessages(rows, max)
}

// receiveDirect hands out a piece with receive_query and reads it.  done
// is false when receive() is to hand it out instead: the role may not read
// the event tables.
func (c *Client) receiveDirect(ctx context.Context, queue, consumer string, max int, worker *string,
	lease *time.Duration) (msgs []Message, done bool, err error) {
	var (
		direct       bool
		batch        *int64
		query, bound *string
	)
	err = c.pool.QueryRow(ctx, `SELECT direct, batch_id, query, ctx
	                              FROM pgque.receive_query($1, $2, $3, $4, $5)`,
		queue, consumer, max, worker, lease).Scan(&direct, &batch, &query, &bound)
	switch {
	case err != nil:
		return nil, true, err
	case !direct:
		return nil, false, nil
	case batch == nil:
		return nil, true, nil
	}
	// One round trip, one implicit transaction: the planner settings that
	// receive() has, then the piece, planned for its own ctx (a generic
	// plan would take the ctx's fields apart again for every row).
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true),
	                set_config('enable_sort', 'off', true), set_config('max_parallel_workers_per_gather', '0', true),
	                set_config('jit', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true)`)
	b.Queue(*query, *bound, *batch, max)
	br := c.pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, true, err
	}
	rows, err := br.Query()
	if err == nil {
		msgs, err = collectMessages(rows, max)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		// The grant went away since receive_query looked: receive() hands
		// out the same piece.
		return nil, false, nil
	}
	return msgs, true, err
}

// collectMessages reads pgque.message rows (msg_id, batch_id, type, payload,
// retry_count, created_at, extra1..4), at most limit of them.  Receiving is
// the SDK's hot path and its CPU is taken from the server's on a small
// machine, so it avoids an allocation per column: payloads are copied into
// shared chunks and their strings made over the chunk's bytes, the few
// distinct types of a piece share their strings, nullable columns go
// through pgtype values rather than reflection, and the slice grows in few
// steps.
func collectMessages(rows pgx.Rows, limit int) ([]Message, error) {
	defer rows.Close()
	var (
		msgs   []Message
		chunk  []byte
		types  = map[string]string{}
		retry  pgtype.Int4
		extras [4]pgtype.Text
	)
	// database/sql has no raw values: it scans type and payload itself.
	_, viaSQL := rows.(*sqlRows)
	var typeCol, payloadCol any
	var sqlType, sqlPayload []byte
	if viaSQL {
		typeCol, payloadCol = &sqlType, &sqlPayload
	}
	for rows.Next() {
		var m Message
		// type and payload are read from the raw values: text is the same
		// in both wire formats.
		if err := rows.Scan(&m.MsgID, &m.BatchID, typeCol, payloadCol, &retry, &m.CreatedAt,
			&extras[0], &extras[1], &extras[2], &extras[3]); err != nil {
			return nil, err
		}
		typRaw, p := sqlType, sqlPayload
		if !viaSQL {
			raw := rows.RawValues()
			typRaw, p = raw[2], raw[3]
		}
		typ, ok := types[string(typRaw)]
		if !ok {
			typ = string(typRaw)
			types[typ] = typ
		}
		m.Type = typ
		if len(p) > 0 {
			if cap(chunk)-len(chunk) < len(p) {
				chunk = make([]byte, 0, max(payloadChunk, len(p)))
			}
			n := len(chunk)
			chunk = append(chunk, p...)
			// A chunk's bytes are written once, by this append, and the
			// chunk is never reused (a full one is dropped for a new one),
			// so the string stays immutable as strings must.
			m.Payload = unsafe.String(&chunk[n], len(p))
		}
		if retry.Valid {
			r := int(retry.Int32)
			m.RetryCount = &r
		}
		for i, dst := range [...]**string{&m.Extra1, &m.Extra2, &m.Extra3, &m.Extra4} {
			if extras[i].Valid {
				v := extras[i].String
				*dst = &v
			}
		}
		if len(msgs) == cap(msgs) {
			// ×4 rather than append's ×2: a 10,000-row piece is copied
			// three times, not seven.
			grown := make([]Message, len(msgs), min(max(4*cap(msgs), 256), max(limit, 1)))
			copy(grown, msgs)
			msgs = grown
		}
		msgs = append(msgs, m)
	}
	return msgs, rows.Err()
}

// payloadChunk is the size of the chunks collectMessages copies payloads
// into: a chunk lives as long as any of its messages.
const payloadChunk = 64 << 10

// Ack finishes the piece of a batch that one receive handed out, advancing
// the consumer's position past its messages: batchID is their
// Message.BatchID.  It never covers more than the piece held, whatever
// other readers of the consumer were handed since.  Acking a piece again,
// or one whose batch was finished, does nothing and is no error;
// AckResult reports whether anything was acknowledged.  It fails with
// ErrTakenOver when another worker took the batch over (this worker's lease
// ran out; nothing is acknowledged), and with ErrNotAPiece for the id of a
// whole batch.
func (c *Client) Ack(ctx context.Context, batchID int64) error {
	_, err := c.AckResult(ctx, batchID)
	return err
}

// AckResult is Ack that also reports whether it acknowledged anything:
// false when the piece is unknown or was acknowledged already (also by a
// later piece that held the same messages), or its batch was finished.
func (c *Client) AckResult(ctx context.Context, batchID int64) (bool, error) {
	var n int
	err := c.q().QueryRow(ctx, `SELECT pgque.ack($1)`, batchID).Scan(&n)
	return n == 1, wrap("pgque: ack", err)
}

// AckTx is Ack inside tx (a pgx.Tx, or a database/sql transaction through
// SQLTx): the piece counts as acknowledged once tx commits, together with
// whatever else tx wrote; a rollback leaves it unacknowledged.
func (c *Client) AckTx(ctx context.Context, tx DBTX, batchID int64) error {
	return c.inTx(tx).Ack(ctx, batchID)
}

// AckResultTx is AckResult inside tx (see AckTx).
func (c *Client) AckResultTx(ctx context.Context, tx DBTX, batchID int64) (bool, error) {
	return c.inTx(tx).AckResult(ctx, batchID)
}

// Outcome is what became of a nacked message (NackResult).
type Outcome string

const (
	OutcomeRetry Outcome = "retry" // it will be delivered again to this consumer
	OutcomeDead  Outcome = "dead"  // it exhausted its retries and went to the dead-letter store
)

// Nack re-queues msg, a message of the piece batchID (msg.BatchID), for
// later redelivery to this consumer: after retryAfterSecs seconds (0: the
// queue's exponential backoff), with a RetryCount one higher.  Once it was
// retried max_retries times (the queue's, or the event's WithMaxRetries) it
// goes to the dead-letter table instead, with reason.  After nacking
// individual messages, call Ack to finish the piece.  NackResult reports
// which of the two happened.  It fails with ErrTakenOver when another
// worker took the batch over, and with ErrInvalidArgument for a delay
// outside 0 to 100 years.
func (c *Client) Nack(ctx context.Context, batchID int64, msg Message, retryAfterSecs int, reason string) error {
	_, err := c.NackResult(ctx, batchID, msg, retryAfterSecs, reason)
	return err
}

// NackResult is Nack that also reports the message's outcome: OutcomeRetry
// or OutcomeDead.
func (c *Client) NackResult(ctx context.Context, batchID int64, msg Message, retryAfterSecs int,
	reason string) (Outcome, error) {
	const op = "pgque: nack"
	if err := checkRetryAfter(op, retryAfterSecs); err != nil {
		return "", err
	}
	var delay *time.Duration
	if retryAfterSecs > 0 {
		d := time.Duration(retryAfterSecs) * time.Second
		delay = &d
	}
	why, err := reasonArg(op, reason)
	if err != nil {
		return "", err
	}
	var out string
	err = c.q().QueryRow(ctx, `SELECT pgque.nack($1, $2, $3::pg_catalog.interval, $4)`, batchID, msg.MsgID, delay, why).Scan(&out)
	return Outcome(out), wrap(op, err)
}

// reasonArg is a failure's reason as the engine takes it: NULL for none.
func reasonArg(op, reason string) (*string, error) {
	if err := checkText(op, "reason", reason); err != nil {
		return nil, err
	}
	if reason == "" {
		return nil, nil
	}
	return &reason, nil
}

// NackTx is Nack inside tx (a pgx.Tx, or a database/sql transaction through
// SQLTx): the retry (or dead letter) exists once tx commits.
func (c *Client) NackTx(ctx context.Context, tx DBTX, batchID int64, msg Message, retryAfterSecs int, reason string) error {
	return c.inTx(tx).Nack(ctx, batchID, msg, retryAfterSecs, reason)
}

// NackResultTx is NackResult inside tx (see NackTx).
func (c *Client) NackResultTx(ctx context.Context, tx DBTX, batchID int64, msg Message, retryAfterSecs int,
	reason string) (Outcome, error) {
	return c.inTx(tx).NackResult(ctx, batchID, msg, retryAfterSecs, reason)
}

// checkRetryAfter rejects a retry delay in seconds outside 0 to 100 years.
func checkRetryAfter(op string, secs int) error {
	if secs < 0 || secs > int(maxSpan/time.Second) {
		return invalid(op, "retry delay %d s is out of range: must be from 0 to %d (100 years)",
			secs, int(maxSpan/time.Second))
	}
	return nil
}

// exec1 runs a statement returning one int.
func (c *Client) exec1(ctx context.Context, op, sql string, args ...any) (int64, error) {
	var n int64
	err := c.q().QueryRow(ctx, sql, args...).Scan(&n)
	return n, wrap(op, err)
}

// CreateQueue creates a queue; it reports false when it already existed.
func (c *Client) CreateQueue(ctx context.Context, queue string) (bool, error) {
	queue = c.qn(queue)
	n, err := c.exec1(ctx, "pgque: create queue", `SELECT pgque.create_queue($1)`, queue)
	return n == 1, err
}

// CreateQueueTx is CreateQueue inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) CreateQueueTx(ctx context.Context, tx DBTX, queue string) (bool, error) {
	return c.inTx(tx).CreateQueue(ctx, queue)
}

// DropQueue drops a queue with its events.  Without force it fails with
// ErrQueueHasConsumers while consumers are subscribed.
func (c *Client) DropQueue(ctx context.Context, queue string, force bool) error {
	queue = c.qn(queue)
	_, err := c.exec1(ctx, "pgque: drop queue", `SELECT pgque.drop_queue($1, $2)`, queue, force)
	return err
}

// DropQueueTx is DropQueue inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) DropQueueTx(ctx context.Context, tx DBTX, queue string, force bool) error {
	return c.inTx(tx).DropQueue(ctx, queue, force)
}

// SetQueueConfig changes one setting of a queue (see pgque.set_queue_config
// in the SQL reference for the parameters).
func (c *Client) SetQueueConfig(ctx context.Context, queue, param, value string) error {
	queue = c.qn(queue)
	_, err := c.exec1(ctx, "pgque: set queue config", `SELECT pgque.set_queue_config($1, $2, $3)`, queue, param, value)
	return err
}

// SetQueueConfigTx is SetQueueConfig inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) SetQueueConfigTx(ctx context.Context, tx DBTX, queue, param, value string) error {
	return c.inTx(tx).SetQueueConfig(ctx, queue, param, value)
}

// Subscribe makes consumer receive every event sent to queue from now on;
// it reports false when it was subscribed already.
func (c *Client) Subscribe(ctx context.Context, queue, consumer string) (bool, error) {
	queue = c.qn(queue)
	n, err := c.exec1(ctx, "pgque: subscribe", `SELECT pgque.subscribe($1, $2)`, queue, consumer)
	return n == 1, err
}

// SubscribeTx is Subscribe inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) SubscribeTx(ctx context.Context, tx DBTX, queue, consumer string) (bool, error) {
	return c.inTx(tx).Subscribe(ctx, queue, consumer)
}

// Unsubscribe removes the consumer's subscription, position and pending
// retries; it reports false when it was not subscribed.
func (c *Client) Unsubscribe(ctx context.Context, queue, consumer string) (bool, error) {
	queue = c.qn(queue)
	n, err := c.exec1(ctx, "pgque: unsubscribe", `SELECT pgque.unsubscribe($1, $2)`, queue, consumer)
	return n == 1, err
}

// UnsubscribeTx is Unsubscribe inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) UnsubscribeTx(ctx context.Context, tx DBTX, queue, consumer string) (bool, error) {
	return c.inTx(tx).Unsubscribe(ctx, queue, consumer)
}

// ForceTick ticks queue now, whatever its thresholds, and returns the tick
// id.  Tests and demos use it; in production a ticker runner ticks.
func (c *Client) ForceTick(ctx context.Context, queue string) (int64, error) {
	queue = c.qn(queue)
	return c.exec1(ctx, "pgque: force tick", `SELECT pgque.force_tick($1)`, queue)
}

// ForceTickTx is ForceTick inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) ForceTickTx(ctx context.Context, tx DBTX, queue string) (int64, error) {
	return c.inTx(tx).ForceTick(ctx, queue)
}

// Tick ticks every queue that is due and returns how many ticked.
func (c *Client) Tick(ctx context.Context) (int, error) {
	n, err := c.exec1(ctx, "pgque: tick", `SELECT pgque.ticker()`)
	return int(n), err
}

// TickTx is Tick inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) TickTx(ctx context.Context, tx DBTX) (int, error) {
	return c.inTx(tx).Tick(ctx)
}

// Maint runs the periodic maintenance (table rotation, retry mover, tick
// cleanup) and returns how many things it did.
func (c *Client) Maint(ctx context.Context) (int, error) {
	n, err := c.exec1(ctx, "pgque: maint", `SELECT pgque.maint()`)
	return int(n), err
}

// MaintTx is Maint inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) MaintTx(ctx context.Context, tx DBTX) (int, error) {
	return c.inTx(tx).Maint(ctx)
}
