package pgque_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
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
		if err := json.Unmarshal(msg.Payload, &o); err != nil {
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

// Several processes share one consumer's messages as cooperative workers:
// each runs this with a worker name of its own (here "worker-1").
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
	// Subscribe before sending, so the consumer gets this job.
	if _, err := client.Subscribe(ctx, "jobs", "resizer"); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Send(ctx, "jobs", pgque.Event{Type: "resize", Payload: map[string]int{"w": 640}}); err != nil {
		log.Fatal(err)
	}

	ctx, stop := context.WithCancel(ctx)
	c := client.NewConsumer("jobs", "resizer",
		pgque.WithWorker("worker-1"),
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
