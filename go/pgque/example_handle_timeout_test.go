package pgque_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// HandleTimeout gives one type a bound of its own; a call past it has its
// context cancelled, and the message is retried.
func ExampleHandleTimeout() {
	ctx := context.Background()
	client, err := pgque.Connect(ctx, consumerExampleDSN())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if _, err := client.CreateQueue(ctx, "jobs"); err != nil {
		log.Fatal(err)
	}
	if err := client.SetQueueConfig(ctx, "jobs", "retry_backoff_base", "0"); err != nil {
		log.Fatal(err) // retries due at once, for the example
	}
	if _, err := client.Send(ctx, "jobs", pgque.Event{Type: "fetch", Payload: "https://example.com"}); err != nil {
		log.Fatal(err)
	}

	ctx, stop := context.WithCancel(ctx)
	c := client.NewConsumer("jobs", "worker", pgque.WithTicker(), pgque.WithHandlerTimeout(time.Minute))
	c.Handle("fetch", func(ctx context.Context, msg pgque.Message) error {
		if msg.RetryCount == nil {
			<-ctx.Done() // the first attempt hangs, as a stuck request would
			fmt.Println("first attempt cancelled:", ctx.Err())
			return ctx.Err()
		}
		fmt.Println("retry", *msg.RetryCount, "succeeds")
		stop()
		return nil
	}, pgque.HandleTimeout(10*time.Millisecond))
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// first attempt cancelled: context deadline exceeded
	// retry 1 succeeds
}
