// Package pgque is the Go SDK of pgque, a message and job queue that lives
// inside PostgreSQL.
//
// The queue engine is PL/pgSQL in the database (schema pgque): events are
// only ever INSERTed into rotating tables, a ticker records snapshots, and
// a consumer's batch is "the events whose transactions committed between two
// ticks"; storage is reclaimed with TRUNCATE, so the event path leaves
// nothing for VACUUM.  This package calls the engine's SQL functions and adds
// what a Go service needs: a Client for producing and low-level consuming, a
// Consumer that dispatches messages to handlers, a Ticker that ticks and
// maintains the queues, an installer, and test helpers (package pgquetest).
// docs/go.md in the repository is the full guide; docs/concepts.md explains
// the engine and its guarantees.
//
// # Quick start
//
//	client, err := pgque.Connect(ctx, dsn) // dsn: "postgres://user:pass@host/db"
//	if err != nil { ... }
//	defer client.Close()
//
//	// Produce.
//	id, err := client.Send(ctx, "orders", pgque.Event{Type: "order.created", Payload: order})
//
//	// Consume: handlers by type; Start blocks until ctx ends.
//	c := client.NewConsumer("orders", "processor", pgque.WithTicker())
//	c.Handle("order.created", func(ctx context.Context, msg pgque.Message) error {
//		var o Order
//		if err := json.Unmarshal(msg.Payload, &o); err != nil {
//			return err // nacked: retried later, dead-lettered in the end
//		}
//		return process(ctx, o)
//	})
//	err = c.Start(ctx)
//
// The queue must exist ([Client.CreateQueue], once, e.g. at deployment), and
// pgque must be installed in the database ([Install]).  [WithTicker] runs a
// [Ticker] inside the consumer's process; see "Ticker" below.
//
// # Producing
//
// [Client.Send] sends one event and commits it at once.  [Client.SendTx]
// sends inside your own [pgx.Tx]: the event exists only if your transaction commits,
// so business data and the event announcing it are written together or not
// at all.  [Client.SendBatch] sends many events in one statement, atomically.
// An [Event] has a Type (required), a Payload marshalled to JSON (a
// json.RawMessage or []byte is taken as JSON as is; nil sends NULL), and four
// optional text fields Extra1..Extra4.
//
// Send options: [WithRunAt] and [WithDelay] deliver the event later
// ([Client.CancelScheduled] takes it back before then), [WithUniqueKey]
// (and [WithUniqueTTL]) send nothing while an event with the same key is
// still pending, and [WithMaxRetries] overrides the queue's retry limit for
// the event.  [Client.CreateSchedule] sends an event periodically, every
// interval or on a cron expression.
//
// # Delivery semantics
//
// Every consumer (subscription) of a queue sees every event sent after it
// subscribed (the first consumer of a queue also gets those sent while it
// had none): different consumer names are independent readers.  Processes
// that use the same consumer name share its events as competing workers.
// Delivery is at least once.  A consumer's position moves only when it
// acknowledges: messages handed out and not acknowledged (the process
// crashed or lost its connection first) are delivered again, and an
// acknowledgement only ever finishes what its caller received.  Make handlers idempotent; Message.MsgID is
// unique within a queue and kept on retries.  Events of one transaction
// arrive in the order they were sent; across transactions the order is by
// transaction id, not commit order (docs/concepts.md, "Delivery order").
//
// An event is delivered after the first tick that follows its commit.  Send,
// tick and receive are separate transactions; never tick inside the
// transaction that sends.
//
// # Consuming
//
// A [Consumer] ([Client.NewConsumer]) receives pieces of batches, runs the
// handler registered for each message's type (or the "*" handler), nacks
// messages whose handler failed or panicked, and acknowledges each piece
// once all its messages are handled.  It waits for the queue's NOTIFY and
// polls as a fallback, and on shutdown finishes the messages it holds.
//
// Any number of Consumers with the same queue and name, in one process or
// many, share the consumer's messages: each Start is a cooperative worker
// with a name of its own ([WorkerName], or [WithWorker]), holding windows of
// the stream under a lease that it renews while it works; a worker that
// stops loses its window to another one when the lease runs out, or at once
// when it shuts down.  A worker whose window was taken over stops handling
// it.  [WithSingleReader] reads a consumer as its one reader instead, whole
// batches in order, with other instances standing by.
//
// The low-level calls are [Client.ReceiveAsWorker] and [Client.Receive] (up
// to max messages, handed out as one piece whose id is their BatchID),
// [Client.Ack] (acknowledge that piece), [Client.Nack] (retry one message
// later, for this consumer only, or dead-letter it after the queue's
// max_retries) and [Client.Heartbeat].  [Client.Peek] shows what a consumer
// has not acknowledged without taking it.  [Client.PauseQueue] stops
// deliveries of a queue (sends go on) until [Client.ResumeQueue].
//
// # Namespaces
//
// A queue named "acme.orders" belongs to the namespace "acme".
// [Client.WithNamespace] scopes a client to a namespace: queue names are local
// to it and the lists show its queues only.  What a database role may do to
// the queues of a namespace is granted with [Client.GrantAccess]; calls
// beyond it fail with [ErrPermissionDenied].
//
// # Ticker
//
// Nothing is delivered until a tick.  A [Ticker] ([NewTicker], [Client.RunTicker],
// or the [WithTicker] consumer option) calls pgque.ticker() every few
// milliseconds, which ticks every queue with new events, and pgque.maint()
// every second, which rotates tables, moves due retries back into their
// queues, fires due schedules, expires dedup keys and recycles old ticks;
// ticker() also publishes delayed events as they come due.  Run at least one per database; any number
// may run, in one process or many: they elect a leader with a lease in the
// database (pgque.leader_lease), only the leader works, and it renews the
// lease every third of it ([WithLeaderLease], 3 s by default).  A leader
// that stops cleanly releases the lease; one that stops working (crashed,
// frozen, cut off) stops renewing, and another takes over once its lease
// ran out.  Errors the server answers with are logged with their SQLSTATE
// and retried on the same connection; a lost connection is reconnected,
// with waits from 50 ms up to 500 ms, so ticking resumes within about half
// a second of the server's return.
//
// # Installing
//
// [Install] installs pgque into a database, or brings an existing install up
// to date, and is safe to call at every start and from several processes at
// once.  It uses CREATE EXTENSION pgque where the server has the extension
// files, and otherwise (or with [WithoutExtension], for managed PostgreSQL
// services that allow no custom extensions) applies the same SQL as plain
// statements, recorded in the version table pgque.schema_version.  An
// existing install keeps its method.
//
// # Errors
//
// Errors raised by the engine carry a stable SQLSTATE of class PQ and are
// returned as [*Error], which matches the sentinel of its code with errors.Is
// (never compare messages).  Each sentinel ([ErrQueueNotFound],
// [ErrInvalidArgument], ...) names its codes; a few are PostgreSQL's own:
// insufficient_privilege (42501) matches [ErrPermissionDenied], and
// invalid_schema_name (3F000), which every call meets in a database without
// pgque, matches [ErrNotInstalled].
//
//	if errors.Is(err, pgque.ErrQueueNotFound) { ... }
//
// Arguments the SDK rejects before reaching the server (an invalid payload, a
// negative delay, a non-positive interval) also match ErrInvalidArgument.
// Other errors (connections, for example) are returned wrapped, with the
// operation's name.
//
// # Testing
//
// Package [github.com/pgque/pgque/go/pgque/pgquetest] starts a throwaway PostgreSQL server with pgque
// installed in every database it creates, for tests of code that uses
// pgque.  Start one in TestMain and give each test a database of its own
// with its NewPool method.  PostgreSQL refuses to run as root, so run such tests
// as an ordinary user.
package pgque
