package pgque_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// Schedules send events periodically: maintenance (here the consumer's own
// Ticker) fires them, and handlers see which schedule and due time sent
// each one.
func ExampleClient_CreateSchedule() {
	ctx := context.Background()
	client := exampleClient(ctx) // the queue "orders", with the consumer "processor"
	defer client.Close()

	// Every weekday at 06:30, Berlin time.
	next, err := client.CreateSchedule(ctx, pgque.Schedule{
		Name: "daily-summary", Queue: "orders", Type: "summary.build",
		Payload: map[string]string{"scope": "yesterday"},
		Cron:    "30 6 * * mon-fri", TimeZone: "Europe/Berlin",
	})
	if err != nil {
		log.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("summary at", next.In(berlin).Format("15:04"))

	// Every second, from a second from now.
	if _, err := client.CreateSchedule(ctx, pgque.Schedule{
		Name: "heartbeat", Queue: "orders", Type: "heartbeat", Every: time.Second,
	}); err != nil {
		log.Fatal(err)
	}

	ctx, stop := context.WithCancel(ctx)
	c := client.NewConsumer("orders", "processor", pgque.WithTicker())
	c.Handle("heartbeat", func(ctx context.Context, msg pgque.Message) error {
		name, due, _ := msg.ScheduledRun()
		fmt.Println("sent by", name, "on time:", time.Since(due) < time.Minute)
		stop()
		return nil
	})
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// summary at 06:30
	// sent by heartbeat on time: true
}
