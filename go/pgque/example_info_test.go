package pgque_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// Pause a queue, for example while the service that consumes it is
// migrated: producers carry on, consumers receive nothing until resume.
func ExampleClient_PauseQueue() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()

	if _, err := client.PauseQueue(ctx, "orders"); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Send(ctx, "orders", pgque.Event{Type: "order.created", Payload: map[string]int{"id": 1}}); err != nil {
		log.Fatal(err)
	}
	if _, err := client.ForceTick(ctx, "orders"); err != nil {
		log.Fatal(err)
	}
	msgs, err := client.Receive(ctx, "orders", "processor", 10)
	if err != nil {
		log.Fatal(err)
	}
	q, err := client.Queue(ctx, "orders")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("paused %v: %d received\n", q.Paused, len(msgs))

	// Resuming wakes running Consumers at once.
	if _, err := client.ResumeQueue(ctx, "orders"); err != nil {
		log.Fatal(err)
	}
	msgs, err = client.Receive(ctx, "orders", "processor", 10)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("resumed: %d received\n", len(msgs))
	// Output:
	// paused true: 0 received
	// resumed: 1 received
}

// What a monitoring job looks at: how far behind each consumer is, and
// whether pgque's tables stay free of dead rows.
func ExampleClient_Consumers() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()

	for i := range 3 {
		if _, err := client.Send(ctx, "orders", pgque.Event{Type: "order.created", Payload: map[string]int{"id": i}}); err != nil {
			log.Fatal(err)
		}
	}
	consumers, err := client.Consumers(ctx, "orders")
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range consumers {
		// Alert on a Lag that keeps growing: the consumer is stuck or gone.
		fmt.Printf("%s: %d pending, lagging %v, batch open %v\n", c.Name, c.PendingEvents, c.Lag > 0, c.BatchAge != nil)
	}

	tables, err := client.Tables(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range tables {
		if t.Name == "pgque.tick" || t.Name == "pgque.sub_state" || t.Name == "pgque.event" {
			fmt.Printf("%s: %d dead tuples\n", t.Name, t.DeadTuples)
		}
	}
	// Output:
	// processor: 3 pending, lagging true, batch open false
	// pgque.tick: 0 dead tuples
	// pgque.sub_state: 0 dead tuples
	// pgque.event: 0 dead tuples
}

// One consumer by name; errors.Is tells an unknown one.
func ExampleClient_Consumer() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()

	c, err := client.Consumer(ctx, "orders", "processor")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s on %s: %d pending\n", c.Name, c.Queue, c.PendingEvents)

	_, err = client.Consumer(ctx, "orders", "nobody")
	fmt.Println(errors.Is(err, pgque.ErrConsumerNotFound))
	// Output:
	// processor on orders: 0 pending
	// true
}

// Find the queues whose ticks, table switches or retry and delayed moves
// keep failing.  The ticker and maintenance go on for the other queues, so
// nothing else shows the failure; alert on Errors above 0.
func ExampleQueueInfo_lastError() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()

	queues, err := client.Queues(ctx)
	if err != nil {
		log.Fatal(err)
	}
	failing := 0
	for _, q := range queues {
		if q.Errors > 0 {
			failing++
			f := q.LastError
			fmt.Printf("%s: %s failed %d times, last at %s: %s (SQLSTATE %s)\n",
				q.Name, f.Step, q.Errors, f.At.Format(time.RFC3339), f.Message, f.SQLState)
		}
	}
	fmt.Printf("%d of %d queues failing\n", failing, len(queues))
	// Output:
	// 0 of 1 queues failing
}

// On start, a long-running process checks that the database has the engine
// it was built for: the one its Install installs, version and build.
func ExampleClient_CheckEngine() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()

	switch err := client.CheckEngine(ctx); {
	case errors.Is(err, pgque.ErrNotInstalled):
		log.Fatal("run 'pgque migrate' first: ", err)
	case errors.Is(err, pgque.ErrEngineMismatch):
		log.Fatal(err) // names both engines
	case err != nil:
		log.Fatal(err)
	}
	engine, err := client.InstalledEngine(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(engine == pgque.EmbeddedEngine(), len(engine.ID))
	// Output:
	// true 16
}

// Look for what was sent to a queue, for example from a test or while
// debugging a producer: newest first, by type.
func ExampleClient_FindEvents() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()

	for i := range 3 {
		if _, err := client.Send(ctx, "orders", pgque.Event{Type: "order.created", Payload: map[string]int{"id": i}}); err != nil {
			log.Fatal(err)
		}
	}
	evs, err := client.FindEvents(ctx, "orders", pgque.FindOptions{Type: "order.created", Max: 2})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range evs {
		fmt.Println(e.Type, e.Payload)
	}
	// Output:
	// order.created {"id":2}
	// order.created {"id":1}
}

// Follow one job: where it stands for each consumer, before and after a
// worker takes it.
func ExampleClient_MessageStatus() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()

	id, err := client.Send(ctx, "orders", pgque.Event{Type: "order.created", Payload: map[string]int{"id": 1}})
	if err != nil {
		log.Fatal(err)
	}
	show := func(when string) {
		states, err := client.MessageStatus(ctx, "orders", id)
		if err != nil {
			log.Fatal(err)
		}
		for _, s := range states {
			fmt.Printf("%s: %s %s", when, s.Consumer, s.State)
			if s.Worker != nil {
				fmt.Printf(" by %s", *s.Worker)
			}
			fmt.Println()
		}
	}
	show("sent")
	if _, err := client.ForceTick(ctx, "orders"); err != nil {
		log.Fatal(err)
	}
	show("ticked")
	if _, err := client.ReceiveAsWorker(ctx, "orders", "processor", "worker-1", 10, time.Minute); err != nil {
		log.Fatal(err)
	}
	show("received")
	// Output:
	// sent: processor not_ticked
	// ticked: processor pending
	// received: processor handed_out by worker-1
}
