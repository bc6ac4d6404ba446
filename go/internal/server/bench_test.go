package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pgque/pgque/go/internal/server"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// benchAPI serves a fresh database with queue "q", consumer "c" and a
// running ticker, and returns a client of it.
func benchAPI(b *testing.B) *pgquehttp.Client {
	b.Helper()
	ctx := context.Background()
	pool := pg.NewPool(b)
	sdk := pgque.New(pool)
	if _, err := sdk.CreateQueue(ctx, "q"); err != nil {
		b.Fatal(err)
	}
	if _, err := sdk.Subscribe(ctx, "q", "c"); err != nil {
		b.Fatal(err)
	}
	srv := server.New(sdk, server.Options{Ticker: pgque.NewTicker(pool)})
	tctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.RunTicker(tctx) }()
	hs := httptest.NewServer(srv)
	b.Cleanup(func() {
		stop()
		<-done
		srv.Close()
		hs.Close()
	})
	c, err := pgquehttp.NewClient(hs.URL)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// One event per request, each committed.
func BenchmarkSend(b *testing.B) {
	c := benchAPI(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Send(ctx, "q", pgquehttp.Event{Type: "t"}); err != nil {
			b.Fatal(err)
		}
	}
}

// Send one event, have the stream deliver it (the ticker ticks it, NOTIFY
// wakes the stream) and acknowledge it: one round trip per operation.
func BenchmarkStreamRoundTrip(b *testing.B) {
	c := benchAPI(b)
	ctx := context.Background()
	s, err := c.Stream(ctx, "q", "c", pgquehttp.StreamOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		id, err := c.Send(ctx, "q", pgquehttp.Event{Type: "t"})
		if err != nil {
			b.Fatal(err)
		}
		batch, err := s.Next()
		if err != nil {
			b.Fatal(err)
		}
		if len(batch.Messages) != 1 || batch.Messages[0].MsgID != id {
			b.Fatalf("got %+v, want message %d", batch, id)
		}
		if _, err := c.Ack(ctx, batch.BatchID); err != nil {
			b.Fatal(err)
		}
	}
}

// One /metrics scrape of 10 queues with 5 consumers each (one
// get_worker_info call per consumer).
func BenchmarkScrape(b *testing.B) {
	ctx := context.Background()
	sdk := pgque.New(pg.NewPool(b))
	for i := range 10 {
		q := fmt.Sprintf("q%d", i)
		if _, err := sdk.CreateQueue(ctx, q); err != nil {
			b.Fatal(err)
		}
		for j := range 5 {
			if _, err := sdk.Subscribe(ctx, q, fmt.Sprintf("c%d", j)); err != nil {
				b.Fatal(err)
			}
		}
	}
	srv := server.New(sdk, server.Options{})
	hs := httptest.NewServer(srv)
	b.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	for b.Loop() {
		resp, err := http.Get(hs.URL + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), "pgque_scrape_success 1") {
			b.Fatalf("scrape: %v %d", err, resp.StatusCode)
		}
	}
}
