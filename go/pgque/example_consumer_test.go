package pgque_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// consumerExampleDSN returns the connection string of a fresh database with
// pgque installed; a real program reads its own (e.g. from DATABASE_URL).
func consumerExampleDSN() string {
	dsn, err := srv.NewDatabase(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	return dsn
}

func ExampleClient_NewConsumer() {
	ctx := context.Background()
	client, err := pgque.Connect(ctx, consumerExampleDSN())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if _, err := client.CreateQueue(ctx, "orders"); err != nil {
		log.Fatal(err)
	}

	type Order struct {
		ID    int     `json:"id"`
		Total float64 `json:"total"`
	}
	for _, ev := range []pgque.Event{
		{Type: "order.created", Payload: Order{ID: 42, Total: 99.5}},
		{Type: "order.shipped", Payload: Order{ID: 42}},
	} {
		if _, err := client.Send(ctx, "orders", ev); err != nil {
			log.Fatal(err)
		}
	}

	// Start subscribes "processor" and, with WithTicker, also ticks the
	// queue, so this process needs nothing else.  It runs until ctx ends.
	ctx, stop := context.WithCancel(ctx)
	c := client.NewConsumer("orders", "processor", pgque.WithTicker())
	c.Handle("order.created", func(ctx context.Context, msg pgque.Message) error {
		var o Order
		if err := json.Unmarshal([]byte(msg.Payload), &o); err != nil {
			return err // nacked: retried later, dead-lettered in the end
		}
		fmt.Printf("order %d created, total %.2f\n", o.ID, o.Total)
		return nil
	})
	c.Handle("*", func(ctx context.Context, msg pgque.Message) error {
		fmt.Println("other event:", msg.Type)
		stop() // the example ends here; a service stops on a signal
		return nil
	})
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// order 42 created, total 99.50
	// other event: order.shipped
}

// Consumers with the same queue and name share the messages: run this in
// as many processes as you like (here two Consumers in one), and each job is
// handled by one of them.  Jobs sent before any consumer subscribed are kept
// for the first one.
func ExampleClient_NewConsumer_replicas() {
	ctx := context.Background()
	client, err := pgque.Connect(ctx, consumerExampleDSN())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if _, err := client.CreateQueue(ctx, "jobs"); err != nil {
		log.Fatal(err)
	}
	for i := range 10 {
		if _, err := client.Send(ctx, "jobs", pgque.Event{Type: "resize", Payload: i}); err != nil {
			log.Fatal(err)
		}
	}

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var mu sync.Mutex
	handled := map[int64]int{}
	var replicas sync.WaitGroup
	for range 2 {
		c := client.NewConsumer("jobs", "resizer", pgque.WithTicker())
		c.Handle("resize", func(ctx context.Context, msg pgque.Message) error {
			mu.Lock()
			defer mu.Unlock()
			if handled[msg.MsgID]++; len(handled) == 10 {
				stop()
			}
			return nil
		})
		replicas.Go(func() {
			if err := c.Start(ctx); err != nil {
				log.Fatal(err)
			}
		})
	}
	replicas.Wait()
	twice := 0
	for _, n := range handled {
		if n > 1 {
			twice++
		}
	}
	fmt.Printf("%d jobs handled, %d twice\n", len(handled), twice)
	// Output:
	// 10 jobs handled, 0 twice
}

// A worker name of your own (a pod's name, say) lets a process that crashed
// resume its own window at once when it restarts.
func ExampleWithWorker() {
	ctx := context.Background()
	client, err := pgque.Connect(ctx, consumerExampleDSN())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if _, err := client.CreateQueue(ctx, "jobs"); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Send(ctx, "jobs", pgque.Event{Type: "resize", Payload: map[string]int{"w": 640}}); err != nil {
		log.Fatal(err)
	}

	ctx, stop := context.WithCancel(ctx)
	c := client.NewConsumer("jobs", "resizer",
		pgque.WithWorker("resizer-0"),
		pgque.WithLease(time.Minute),
		pgque.WithTicker())
	c.Handle("resize", func(ctx context.Context, msg pgque.Message) error {
		fmt.Printf("resizing to %s\n", msg.Payload)
		stop()
		return nil
	})
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// resizing to {"w":640}
}

// A single reader handles every message of the consumer in delivery order;
// other instances with the option stand by until it stops.
func ExampleWithSingleReader() {
	ctx := context.Background()
	client, err := pgque.Connect(ctx, consumerExampleDSN())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if _, err := client.CreateQueue(ctx, "ledger"); err != nil {
		log.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := client.Send(ctx, "ledger", pgque.Event{Type: "entry", Payload: i}); err != nil {
			log.Fatal(err)
		}
	}

	ctx, stop := context.WithCancel(ctx)
	c := client.NewConsumer("ledger", "books", pgque.WithSingleReader(), pgque.WithTicker())
	c.Handle("entry", func(ctx context.Context, msg pgque.Message) error {
		fmt.Printf("entry %s\n", msg.Payload)
		if string(msg.Payload) == "3" {
			stop()
		}
		return nil
	})
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// entry 1
	// entry 2
	// entry 3
}

// Peek shows what a consumer has not acknowledged, and which worker holds
// it, without taking anything.
func ExampleClient_Peek() {
	ctx := context.Background()
	client, err := pgque.Connect(ctx, consumerExampleDSN())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if _, err := client.CreateQueue(ctx, "jobs"); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Subscribe(ctx, "jobs", "resizer"); err != nil {
		log.Fatal(err)
	}
	for _, w := range []int{640, 1280} {
		if _, err := client.Send(ctx, "jobs", pgque.Event{Type: "resize", Payload: w}); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := client.ForceTick(ctx, "jobs"); err != nil {
		log.Fatal(err)
	}
	// A worker takes the first job and has not acknowledged it yet.
	if _, err := client.ReceiveAsWorker(ctx, "jobs", "resizer", "worker-1", 1, time.Minute); err != nil {
		log.Fatal(err)
	}
	msgs, err := client.Peek(ctx, "jobs", "resizer", 10)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range msgs {
		holder := m.Worker
		if holder == "" {
			holder = "nobody yet"
		}
		fmt.Printf("%s held by %s\n", m.Payload, holder)
	}
	// Output:
	// 640 held by worker-1
	// 1280 held by nobody yet
}

// A consumer that finds a backlog drains it in growing pieces; here
// they may grow to 5,000 messages.  The handler sees every message once,
// in order, whatever the piece size.
func ExampleWithMaxCatchUp() {
	ctx := context.Background()
	client, err := pgque.Connect(ctx, consumerExampleDSN())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if _, err := client.CreateQueue(ctx, "clicks"); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Subscribe(ctx, "clicks", "counter"); err != nil {
		log.Fatal(err)
	}
	backlog := make([]pgque.Event, 20_000)
	for i := range backlog {
		backlog[i] = pgque.Event{Type: "click", Payload: i}
	}
	if _, err := client.SendBatch(ctx, "clicks", backlog); err != nil {
		log.Fatal(err)
	}

	ctx, stop := context.WithCancel(ctx)
	c := client.NewConsumer("clicks", "counter", pgque.WithTicker(),
		pgque.WithMaxMessages(100), pgque.WithMaxCatchUp(5000))
	n := 0
	c.Handle("click", func(ctx context.Context, msg pgque.Message) error {
		if n++; n == len(backlog) {
			stop()
		}
		return nil
	})
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("handled", n)
	// Output:
	// handled 20000
}

// A handler whose writes commit with the acknowledgement of its message:
// the invoice exists once per order, whatever crashes, and the event
// announcing it is sent in the same transaction (an outbox).
func ExampleWithTransaction() {
	ctx := context.Background()
	client, err := pgque.Connect(ctx, consumerExampleDSN())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	for _, q := range []string{"orders", "invoices"} {
		if _, err := client.CreateQueue(ctx, q); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := client.Pool().Exec(ctx, `CREATE TABLE invoices (order_id bigint PRIMARY KEY)`); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Send(ctx, "orders", pgque.Event{Type: "order.created", Payload: map[string]int{"id": 42}}); err != nil {
		log.Fatal(err)
	}

	run, stop := context.WithCancel(ctx)
	c := client.NewConsumer("orders", "billing", pgque.WithTransaction(), pgque.WithTicker())
	c.Handle("order.created", func(ctx context.Context, msg pgque.Message) error {
		defer stop() // the example ends after one message
		tx := pgque.TxFromContext(ctx)
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO invoices SELECT ($1::jsonb->>'id')::bigint RETURNING order_id`,
			msg.Payload).Scan(&id)
		if err != nil {
			return err // the insert is rolled back, the message nacked
		}
		_, err = client.SendTx(ctx, tx, "invoices", pgque.Event{Type: "invoice.created", Payload: map[string]int64{"order_id": id}})
		return err
	})
	if err := c.Start(run); err != nil {
		log.Fatal(err)
	}
	sent, err := client.FindEvents(ctx, "invoices", pgque.FindOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(sent), sent[0].Type)
	// Output:
	// 1 invoice.created
}

// A handler that cannot do its work yet puts its message off with Snooze:
// it comes back after the delay without counting as a failure, so waiting
// never uses up its retries.  (Snoozed messages are moved back by
// maintenance, which the Ticker runs every second.)
func ExampleSnooze() {
	ctx := context.Background()
	client, err := pgque.Connect(ctx, consumerExampleDSN())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if _, err := client.CreateQueue(ctx, "invoices"); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Send(ctx, "invoices", pgque.Event{Type: "invoice.send", Payload: map[string]int{"order": 7}}); err != nil {
		log.Fatal(err)
	}

	ctx, stop := context.WithCancel(ctx)
	pdfReady := false
	c := client.NewConsumer("invoices", "mailer", pgque.WithTicker())
	c.Handle("invoice.send", func(ctx context.Context, msg pgque.Message) error {
		if !pdfReady {
			fmt.Println("the PDF is not rendered yet: snoozing")
			pdfReady = true
			return pgque.Snooze(0)
		}
		fmt.Println("invoice sent; no failure counted:", msg.RetryCount == nil)
		stop()
		return nil
	})
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// the PDF is not rendered yet: snoozing
	// invoice sent; no failure counted: true
}

// A message that can never succeed goes to the dead letters at once with
// Reject, instead of being retried max_retries times first.
func ExampleReject() {
	ctx := context.Background()
	client, err := pgque.Connect(ctx, consumerExampleDSN())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if _, err := client.CreateQueue(ctx, "orders"); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Send(ctx, "orders", pgque.Event{Type: "order.created", Payload: "not json"}); err != nil {
		log.Fatal(err)
	}

	ctx, stop := context.WithCancel(ctx)
	c := client.NewConsumer("orders", "billing", pgque.WithTicker())
	c.Handle("order.created", func(ctx context.Context, msg pgque.Message) error {
		defer stop() // Start settles the message before it returns
		var order struct{ ID int }
		if err := json.Unmarshal([]byte(msg.Payload), &order); err != nil {
			return pgque.Reject(fmt.Errorf("unreadable order: %w", err))
		}
		return nil
	})
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	dead, err := client.DeadLetters(context.Background(), "orders", 10)
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range dead {
		fmt.Printf("dead letter for %s: %s\n", d.Consumer, *d.Reason)
	}
	// Output:
	// dead letter for billing: unreadable order: json: cannot unmarshal string into Go value of type struct { ID int }
}

// A handler cancels a job whose work no longer needs doing: not retried,
// not dead-lettered, and MessageStatus says cancelled.
func ExampleCancel() {
	ctx := context.Background()
	client, err := pgque.Connect(ctx, consumerExampleDSN())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if _, err := client.CreateQueue(ctx, "shipments"); err != nil {
		log.Fatal(err)
	}
	id, err := client.Send(ctx, "shipments", pgque.Event{Type: "ship", Payload: map[string]any{"order": 7, "withdrawn": true}})
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := context.WithCancel(ctx)
	c := client.NewConsumer("shipments", "warehouse", pgque.WithTicker())
	c.Handle("ship", func(ctx context.Context, msg pgque.Message) error {
		defer stop() // Start settles the message before it returns
		var order struct{ Withdrawn bool }
		if err := json.Unmarshal([]byte(msg.Payload), &order); err != nil {
			return pgque.Reject(err)
		}
		if order.Withdrawn {
			return pgque.Cancel(errors.New("order withdrawn"))
		}
		return nil
	})
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	states, err := client.MessageStatus(context.Background(), "shipments", id)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range states {
		fmt.Printf("%s: %s\n", s.Consumer, s.State)
	}
	// Output:
	// warehouse: cancelled
}

// One Consumer serves several queues with one concurrency limit: the
// urgent queue first, the bulk queue only while the urgent one is empty.
func ExampleWithQueues() {
	ctx := context.Background()
	client, err := pgque.Connect(ctx, consumerExampleDSN())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	for _, q := range []string{"urgent", "bulk"} {
		if _, err := client.CreateQueue(ctx, q); err != nil {
			log.Fatal(err)
		}
		if _, err := client.Subscribe(ctx, q, "worker"); err != nil {
			log.Fatal(err)
		}
	}
	// The bulk job was sent first; both are waiting when the worker starts.
	if _, err := client.Send(ctx, "bulk", pgque.Event{Type: "resize", Payload: "all images"}); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Send(ctx, "urgent", pgque.Event{Type: "email", Payload: "password reset"}); err != nil {
		log.Fatal(err)
	}
	for _, q := range []string{"urgent", "bulk"} {
		if _, err := client.ForceTick(ctx, q); err != nil {
			log.Fatal(err)
		}
	}

	ctx, stop := context.WithCancel(ctx)
	c := client.NewConsumer("urgent", "worker", pgque.WithQueues("bulk"), pgque.WithTicker())
	c.Handle("email", func(ctx context.Context, msg pgque.Message) error {
		fmt.Println("email:", msg.Payload)
		return nil
	})
	c.Handle("resize", func(ctx context.Context, msg pgque.Message) error {
		fmt.Println("resize:", msg.Payload)
		stop()
		return nil
	})
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// email: "password reset"
	// resize: "all images"
}
