package pgque_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/pgque"
)

// exampleDatabase returns the connection string of a fresh database with
// pgque installed, on the test server.  A real program uses its own, for
// example os.Getenv("DATABASE_URL").
func exampleDatabase() string {
	dsn, err := srv.NewDatabase(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	return dsn
}

// exampleClient connects to a fresh database and creates the queue "orders"
// with the consumer "processor" subscribed.
func exampleClient(ctx context.Context) *pgque.Client {
	client, err := pgque.Connect(ctx, exampleDatabase())
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.CreateQueue(ctx, "orders"); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Subscribe(ctx, "orders", "processor"); err != nil {
		log.Fatal(err)
	}
	return client
}

// The low-level round trip: send, tick, receive, acknowledge.
func ExampleConnect() {
	ctx := context.Background()
	client, err := pgque.Connect(ctx, exampleDatabase())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// Once, at deployment: a queue and a consumer subscribed to it.
	if _, err := client.CreateQueue(ctx, "orders"); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Subscribe(ctx, "orders", "processor"); err != nil {
		log.Fatal(err)
	}

	type Order struct {
		ID    int     `json:"id"`
		Total float64 `json:"total"`
	}
	id, err := client.Send(ctx, "orders", pgque.Event{Type: "order.created", Payload: Order{ID: 42, Total: 99.5}})
	if err != nil {
		log.Fatal(err)
	}

	// A running Ticker ticks within milliseconds; here we tick by hand.
	if _, err := client.ForceTick(ctx, "orders"); err != nil {
		log.Fatal(err)
	}

	msgs, err := client.Receive(ctx, "orders", "processor", 100)
	if err != nil {
		log.Fatal(err)
	}
	for _, msg := range msgs {
		fmt.Println(msg.MsgID == id, msg.Type, string(msg.Payload))
	}
	// Done with what was received: acknowledge the batch.  Without the ack
	// the same messages would be received again.
	if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
		log.Fatal(err)
	}
	fmt.Println("acknowledged")
	// Output:
	// true order.created {"id":42,"total":99.5}
	// acknowledged
}

// An event sent in your own transaction exists only if the transaction
// commits: business data and the event announcing it never go one without
// the other.
func ExampleClient_SendTx() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()
	pool := client.Pool()
	if _, err := pool.Exec(ctx, `CREATE TABLE shop_order (id int PRIMARY KEY, total numeric)`); err != nil {
		log.Fatal(err)
	}

	placeOrder := func(id int, total float64, commit bool) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			log.Fatal(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
		if _, err := tx.Exec(ctx, `INSERT INTO shop_order VALUES ($1, $2)`, id, total); err != nil {
			log.Fatal(err)
		}
		if _, err := client.SendTx(ctx, tx, "orders", pgque.Event{Type: "order.created", Payload: map[string]int{"id": id}}); err != nil {
			log.Fatal(err)
		}
		if commit {
			if err := tx.Commit(ctx); err != nil {
				log.Fatal(err)
			}
		}
	}
	placeOrder(1, 10, true)
	placeOrder(2, 20, false) // rolled back: no order row, no event

	if _, err := client.ForceTick(ctx, "orders"); err != nil {
		log.Fatal(err)
	}
	msgs, err := client.Receive(ctx, "orders", "processor", 100)
	if err != nil {
		log.Fatal(err)
	}
	for _, msg := range msgs {
		fmt.Println(msg.Type, string(msg.Payload))
	}
	// Output:
	// order.created {"id":1}
}

// SendBatch sends many events in one round trip, all or none.
func ExampleClient_SendBatch() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()

	var events []pgque.Event
	for _, to := range []string{"ann@example.com", "bob@example.com", "cid@example.com"} {
		events = append(events, pgque.Event{Type: "email.send", Payload: map[string]string{"to": to}})
	}
	ids, err := client.SendBatch(ctx, "orders", events)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(ids), "events sent")

	if _, err := client.ForceTick(ctx, "orders"); err != nil {
		log.Fatal(err)
	}
	// Events of one transaction arrive in the order they were sent.
	msgs, err := client.Receive(ctx, "orders", "processor", 100)
	if err != nil {
		log.Fatal(err)
	}
	for i, msg := range msgs {
		fmt.Println(msg.MsgID == ids[i], string(msg.Payload))
	}
	// Output:
	// 3 events sent
	// true {"to":"ann@example.com"}
	// true {"to":"bob@example.com"}
	// true {"to":"cid@example.com"}
}

// A failed message is nacked: it comes back later to this consumer with a
// higher RetryCount, and goes to the dead-letter store once it was retried
// the queue's max_retries times.  The batch is acknowledged either way.
func ExampleClient_Nack() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()
	// One retry, due at once (by default: 5 retries, backoff from 10 s).
	if err := client.SetQueueConfig(ctx, "orders", "max_retries", "1"); err != nil {
		log.Fatal(err)
	}
	if err := client.SetQueueConfig(ctx, "orders", "retry_backoff_base", "0"); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Send(ctx, "orders", pgque.Event{Type: "payment.capture", Payload: map[string]int{"order": 42}}); err != nil {
		log.Fatal(err)
	}

	for range 2 {
		// What a running Ticker does: maintenance moves due retries back
		// into the queue, and a tick delivers them.
		if _, err := client.Maint(ctx); err != nil {
			log.Fatal(err)
		}
		if _, err := client.ForceTick(ctx, "orders"); err != nil {
			log.Fatal(err)
		}
		msgs, err := client.Receive(ctx, "orders", "processor", 100)
		if err != nil {
			log.Fatal(err)
		}
		msg := msgs[0]
		retries := 0
		if msg.RetryCount != nil {
			retries = *msg.RetryCount
		}
		outcome, err := client.NackResult(ctx, msg.BatchID, msg, 0, "payment service down")
		if err != nil {
			log.Fatal(err)
		}
		if err := client.Ack(ctx, msg.BatchID); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s (retry %d): %s\n", msg.Type, retries, outcome)
	}

	dead, err := client.DeadLetters(ctx, "orders", 10)
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range dead {
		fmt.Println("dead letter:", d.Message.Type, string(d.Message.Payload), "-", *d.Reason)
	}
	// Output:
	// payment.capture (retry 0): retry
	// payment.capture (retry 1): dead
	// dead letter: payment.capture {"order":42} - payment service down
}

// Receiving, recording the work and acknowledging in one transaction: the
// work is recorded once per message, and a rollback (here, the first
// attempt fails) hands the same messages out again.
func ExampleClient_ReceiveTx() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()
	if _, err := client.Pool().Exec(ctx, `CREATE TABLE shipped (msg_id bigint PRIMARY KEY)`); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Send(ctx, "orders", pgque.Event{Type: "order.shipped", Payload: map[string]int{"order": 7}}); err != nil {
		log.Fatal(err)
	}
	if _, err := client.ForceTick(ctx, "orders"); err != nil {
		log.Fatal(err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		err := pgx.BeginFunc(ctx, client.Pool(), func(tx pgx.Tx) error {
			msgs, err := client.ReceiveTx(ctx, tx, "orders", "processor", 100)
			if err != nil || len(msgs) == 0 {
				return err
			}
			for _, m := range msgs {
				if _, err := tx.Exec(ctx, `INSERT INTO shipped VALUES ($1)`, m.MsgID); err != nil {
					return err
				}
			}
			if attempt == 1 {
				return errors.New("the shipping service is down") // rolls it all back
			}
			fmt.Println("received", len(msgs), "in attempt", attempt)
			return client.AckTx(ctx, tx, msgs[0].BatchID)
		})
		if err != nil {
			fmt.Println("attempt", attempt, "failed:", err)
		}
	}
	var n int
	if err := client.Pool().QueryRow(ctx, `SELECT count(*) FROM shipped`).Scan(&n); err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "recorded")
	// Output:
	// attempt 1 failed: the shipping service is down
	// received 1 in attempt 2
	// 1 recorded
}

// A Ticker ticks queues within milliseconds of a commit and runs
// maintenance.  Run one (or several: they elect one leader) per database,
// in a service of its own or beside your consumers.
func ExampleNewTicker() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := exampleClient(ctx)
	defer client.Close()

	tickerCtx, stopTicker := context.WithCancel(ctx)
	ticker := pgque.NewTicker(client.Pool())
	done := make(chan error, 1)
	go func() { done <- ticker.Run(tickerCtx) }()

	if _, err := client.Send(ctx, "orders", pgque.Event{Type: "order.created", Payload: map[string]int{"id": 7}}); err != nil {
		log.Fatal(err)
	}
	// No ForceTick: the Ticker ticks the queue.  (A Consumer would wait for
	// the tick's notification instead of polling.)
	for {
		msgs, err := client.Receive(ctx, "orders", "processor", 100)
		if err != nil {
			log.Fatal(err)
		}
		if len(msgs) > 0 {
			fmt.Println(msgs[0].Type, string(msgs[0].Payload))
			if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
				log.Fatal(err)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	stopTicker()
	if err := <-done; err != nil { // nil once its context ends
		log.Fatal(err)
	}
	// Output:
	// order.created {"id":7}
}

// Tickers elect their leader with a lease in the database.  A shorter
// lease replaces a leader that stopped working (a frozen process, a stalled
// host) sooner: with 1 s, a standby takes over within about a second.  The
// leader releases the lease when it stops, so a standby takes over at once.
func ExampleWithLeaderLease() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := exampleClient(ctx)
	defer client.Close()

	runCtx, stop := context.WithCancel(ctx)
	leader := pgque.NewTicker(client.Pool(), pgque.WithLeaderLease(time.Second))
	done := make(chan error, 1)
	go func() { done <- leader.Run(runCtx) }()
	for !leader.IsLeader() {
		time.Sleep(10 * time.Millisecond)
	}
	var holder string
	var valid bool
	if err := client.Pool().QueryRow(ctx, `SELECT holder, valid FROM pgque.leader_info('ticker')`).Scan(&holder, &valid); err != nil {
		log.Fatal(err)
	}
	fmt.Println("lease held by this ticker:", holder == leader.Holder() && valid)

	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	var n int
	if err := client.Pool().QueryRow(ctx, `SELECT count(*) FROM pgque.leader_info('ticker')`).Scan(&n); err != nil {
		log.Fatal(err)
	}
	fmt.Println("leases left after it stopped:", n)
	// Output:
	// lease held by this ticker: true
	// leases left after it stopped: 0
}

// Errors the engine raises match pgque's sentinel errors with errors.Is,
// whatever their message says.
func Example_errors() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()

	_, err := client.Send(ctx, "no-such-queue", pgque.Event{Type: "t"})
	fmt.Println(errors.Is(err, pgque.ErrQueueNotFound))

	_, err = client.Receive(ctx, "orders", "nobody", 10)
	fmt.Println(errors.Is(err, pgque.ErrConsumerNotFound))

	_, err = client.CreateQueue(ctx, "orders")
	fmt.Println(err) // creating an existing queue is not an error: it reports false

	var pqErr *pgque.Error
	if errors.As(client.DropQueue(ctx, "orders", false), &pqErr) {
		fmt.Println(pqErr.Code, errors.Is(pqErr, pgque.ErrQueueHasConsumers))
	}
	// Output:
	// true
	// true
	// <nil>
	// PQ007 true
}

// Install is safe to run at every start: it installs pgque, or brings an
// existing install up to date, and says how pgque is installed.
func ExampleInstall() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, exampleDatabase())
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	method, err := pgque.Install(ctx, pool)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("pgque installed as", method)
	// Output:
	// pgque installed as extension
}

// ReceiveFirst serves several queues in strict priority: "urgent" whenever
// it has messages, "orders" otherwise.  Each message names its queue.
func ExampleClient_ReceiveFirst() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()
	if _, err := client.CreateQueue(ctx, "urgent"); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Subscribe(ctx, "urgent", "processor"); err != nil {
		log.Fatal(err)
	}
	for _, q := range []string{"orders", "urgent"} {
		if _, err := client.Send(ctx, q, pgque.Event{Type: "order.created", Payload: map[string]int{"id": 1}}); err != nil {
			log.Fatal(err)
		}
		if _, err := client.ForceTick(ctx, q); err != nil {
			log.Fatal(err)
		}
	}
	for range 2 {
		msgs, err := client.ReceiveFirst(ctx, []string{"urgent", "orders"}, "processor", 100,
			pgque.AsWorker("worker-1", pgque.DefaultLease))
		if err != nil {
			log.Fatal(err)
		}
		for _, m := range msgs {
			fmt.Println(m.Queue, m.Type)
		}
		// One call hands out one queue's piece.
		if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// urgent order.created
	// orders order.created
}

// Behind PgBouncer in transaction mode, the pool goes through the pooler
// (with a query mode that needs no prepared statements) and the sessions
// that listen for ticks connect to the database itself.
func ExampleWithDirectDSN() {
	ctx := context.Background()
	client, err := pgque.Connect(ctx,
		"host=pgbouncer port=6432 dbname=app user=app default_query_exec_mode=exec",
		pgque.WithDirectDSN("host=db port=5432 dbname=app user=app"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	// Its ticker, too, keeps its session on the direct connection.
	go func() { _ = client.RunTicker(ctx) }()
}
