package pgque_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// Deliver an event later: it waits in the delayed store and goes to every
// consumer at the first tick after its due time.  Until then it can be
// cancelled.
func ExampleWithDelay() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()

	reminder, err := client.Send(ctx, "orders", pgque.Event{Type: "order.reminder", Payload: map[string]int{"id": 7}},
		pgque.WithDelay(24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	// The customer paid meanwhile: no reminder.
	cancelled, err := client.CancelScheduled(ctx, "orders", reminder)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("cancelled:", cancelled)
	// Output: cancelled: true
}

// Deliver an event at a given time.
func ExampleWithRunAt() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()

	at := time.Now().Add(200 * time.Millisecond)
	id, err := client.Send(ctx, "orders", pgque.Event{Type: "order.expire"}, pgque.WithRunAt(at))
	if err != nil {
		log.Fatal(err)
	}
	for {
		if _, err := client.Tick(ctx); err != nil { // a Ticker runner does this in production
			log.Fatal(err)
		}
		msgs, err := client.Receive(ctx, "orders", "processor", 10)
		if err != nil {
			log.Fatal(err)
		}
		if len(msgs) > 0 {
			fmt.Println(msgs[0].MsgID == id, !time.Now().Before(at))
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Output: true true
}

// Send at most one event per key: while the first is pending (or within
// the TTL), sending the key again returns the first id and enqueues nothing.
func ExampleWithUniqueKey() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()

	ev := pgque.Event{Type: "invoice.send", Payload: map[string]string{"invoice": "INV-1"}}
	first, err := client.Send(ctx, "orders", ev, pgque.WithUniqueKey("invoice:INV-1"), pgque.WithUniqueTTL(time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	second, err := client.Send(ctx, "orders", ev, pgque.WithUniqueKey("invoice:INV-1"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same event:", first == second)
	// Output: same event: true
}

// Give one event its own retry limit: it is dead-lettered after its first
// failure, whatever the queue's max_retries.
func ExampleWithMaxRetries() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()

	if _, err := client.Send(ctx, "orders", pgque.Event{Type: "payment.capture"}, pgque.WithMaxRetries(0)); err != nil {
		log.Fatal(err)
	}
	if _, err := client.ForceTick(ctx, "orders"); err != nil {
		log.Fatal(err)
	}
	msgs, err := client.Receive(ctx, "orders", "processor", 10)
	if err != nil {
		log.Fatal(err)
	}
	out, err := client.NackResult(ctx, msgs[0].BatchID, msgs[0], 0, "card declined")
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
		log.Fatal(err)
	}
	fmt.Println(out)
	// Output: dead
}
