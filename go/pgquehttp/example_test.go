package pgquehttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/pgque/pgque/go/internal/server"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// exampleServer serves a fresh database, with a ticker, the way
// `pgque serve` does, and returns its URL.  A real program has the URL of a
// running `pgque serve`, e.g. "http://127.0.0.1:8080".
func exampleServer(ctx context.Context) (string, func()) {
	dsn, err := pg.NewDatabase(ctx)
	if err != nil {
		log.Fatal(err)
	}
	sdk, err := pgque.Connect(ctx, dsn)
	if err != nil {
		log.Fatal(err)
	}
	ticker := pgque.NewTicker(sdk.Pool())
	srv := server.New(sdk, server.Options{Ticker: ticker})
	tctx, stop := context.WithCancel(ctx)
	go srv.RunTicker(tctx)
	hs := httptest.NewServer(srv)
	return hs.URL, func() {
		stop()
		srv.Close()
		hs.Close()
		sdk.Close()
	}
}

// Create a queue, subscribe, send, and consume over HTTP.
func ExampleClient() {
	ctx := context.Background()
	url, done := exampleServer(ctx)
	defer done()

	c, err := pgquehttp.NewClient(url)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.CreateQueue(ctx, "orders", pgquehttp.Config{"max_retries": 3}); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "orders", "processor"); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Send(ctx, "orders", pgquehttp.Event{Type: "order.created", Payload: json.RawMessage(`{"id": 42}`)}); err != nil {
		log.Fatal(err)
	}

	// The stream pushes messages as soon as the server's ticker ticks them.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := c.Stream(sctx, "orders", "processor", pgquehttp.StreamOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	batch, err := stream.Next()
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range batch.Messages {
		fmt.Println(m.Type, string(m.Payload))
	}
	// Handled: acknowledge, or the batch comes again.
	if _, err := c.Ack(ctx, batch.BatchID); err != nil {
		log.Fatal(err)
	}

	// Errors match the SDK's sentinels.
	_, err = c.Queue(ctx, "nope")
	fmt.Println(errors.Is(err, pgque.ErrQueueNotFound))
	// Output:
	// order.created {"id":42}
	// true
}

// Send an event every hour, at a quarter past.
func ExampleClient_CreateSchedule() {
	ctx := context.Background()
	url, done := exampleServer(ctx)
	defer done()

	c, err := pgquehttp.NewClient(url)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.CreateQueue(ctx, "jobs", nil); err != nil {
		log.Fatal(err)
	}
	start := time.Date(2020, 1, 1, 0, 15, 0, 0, time.UTC)
	s, err := c.CreateSchedule(ctx, pgquehttp.CreateScheduleRequest{
		Name: "hourly-sync", Queue: "jobs", Type: "sync", Payload: json.RawMessage(`{"full": false}`),
		EverySeconds: 3600, StartAt: &start,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Name, *s.EverySeconds, s.NextRun.Minute())
	// Output:
	// hourly-sync 3600 15
}
