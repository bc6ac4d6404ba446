package pgque_test

// Go benchmarks of the SDK's hot paths, against the package's test server
// (main_test.go).  They run only with -bench, e.g.
//
//	go test ./go/pgque -run '^$' -bench . -benchtime 5s
//
// and report events/s beside ns/op; they assert nothing about time.  The
// comparisons against plain SQL that pgque's targets are about are in
// `pgque bench`.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgque/pgqueotel"
	"github.com/pgque/pgque/go/pgque/pgqueprom"
)

// benchPayload is a 100-byte JSON payload, the `pgque bench` default.
var benchPayload = json.RawMessage(`{"pad":"` + strings.Repeat("x", 100-10) + `"}`)

// benchClient returns a client on a fresh database with queue q and
// consumer "c" subscribed to it.
func benchClient(b *testing.B, q string) *pgque.Client {
	b.Helper()
	ctx := context.Background()
	client := pgque.New(srv.NewPool(b))
	if _, err := client.CreateQueue(ctx, q); err != nil {
		b.Fatal(err)
	}
	if _, err := client.Subscribe(ctx, q, "c"); err != nil {
		b.Fatal(err)
	}
	return client
}

// reportRate reports events/s.
func reportRate(b *testing.B, events int) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(events)/s, "events/s")
	}
}

// BenchmarkSend: one event per call (and transaction): plain, observed by
// pgqueprom, and traced by pgqueotel (OpenTelemetry's SDK with no
// exporter: spans are made and the traceparent written, then dropped).
func BenchmarkSend(b *testing.B) {
	for _, bc := range []struct {
		name string
		obs  pgque.Observer
	}{
		{"plain", nil},
		{"pgqueprom", pgqueprom.New()},
		{"pgqueotel", pgqueotel.New(sdktrace.NewTracerProvider())},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			client := benchClient(b, "q")
			if bc.obs != nil {
				client = client.WithObserver(bc.obs)
			}
			ev := pgque.Event{Type: "bench", Payload: benchPayload}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := client.Send(ctx, "q", ev); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b, b.N)
		})
	}
}

// BenchmarkSendParallel: Send from GOMAXPROCS goroutines at once.
func BenchmarkSendParallel(b *testing.B) {
	ctx := context.Background()
	client := benchClient(b, "q")
	ev := pgque.Event{Type: "bench", Payload: benchPayload}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.Send(ctx, "q", ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, b.N)
}

// BenchmarkSendBatch100: SendBatch of 100 events per call; an op is a batch.
func BenchmarkSendBatch100(b *testing.B) {
	ctx := context.Background()
	client := benchClient(b, "q")
	evs := make([]pgque.Event, 100)
	for i := range evs {
		evs[i] = pgque.Event{Type: "bench", Payload: benchPayload}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := client.SendBatch(ctx, "q", evs); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N*len(evs))
}

// BenchmarkReceiveAck: an op is one event received (in Receive calls of up
// to 1000, or 20,000: read straight from the event tables) and acked, from
// a backlog of b.N events sent and ticked beforehand.
func BenchmarkReceiveAck(b *testing.B) {
	for _, piece := range []int{1000, 20_000} {
		b.Run(fmt.Sprintf("piece=%d", piece), func(b *testing.B) { benchReceiveAck(b, piece) })
	}
}

func benchReceiveAck(b *testing.B, piece int) {
	ctx := context.Background()
	client := benchClient(b, "q")
	chunk := make([]pgque.Event, 10_000)
	for i := range chunk {
		chunk[i] = pgque.Event{Type: "bench", Payload: benchPayload}
	}
	for sent := 0; sent < b.N; sent += len(chunk) {
		if _, err := client.SendBatch(ctx, "q", chunk[:min(len(chunk), b.N-sent)]); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := client.ForceTick(ctx, "q"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for {
		msgs, err := client.Receive(ctx, "q", "c", piece)
		if err != nil {
			b.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		n += len(msgs)
		if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n != b.N {
		b.Fatalf("received %d events, want %d", n, b.N)
	}
	reportRate(b, n)
}
