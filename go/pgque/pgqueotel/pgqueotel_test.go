package pgqueotel_test

import (
	"context"
	"log"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgque/pgqueotel"
	"github.com/pgque/pgque/go/pgque/pgquetest"
)

var srv *pgquetest.Server

func TestMain(m *testing.M) {
	var err error
	if srv, err = pgquetest.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	code := m.Run()
	srv.Cleanup()
	os.Exit(code)
}

// The handler's span is a child of the send's, through the event's extra4;
// an event that sets extra4 itself keeps it.
func TestTracePropagation(t *testing.T) {
	ctx := context.Background()
	dsn, err := srv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := pgque.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	client := plain.WithObserver(pgqueotel.New(tp))
	if _, err := client.CreateQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Subscribe(ctx, "q", "c"); err != nil {
		t.Fatal(err)
	}

	// The sender's own span, as an application would have one.
	appCtx, app := tp.Tracer("app").Start(ctx, "checkout")
	if _, err := client.Send(appCtx, "q", pgque.Event{Type: "traced"}); err != nil {
		t.Fatal(err)
	}
	app.End()
	mine := "kept"
	if _, err := client.Send(ctx, "q", pgque.Event{Type: "own", Extra4: &mine}); err != nil {
		t.Fatal(err)
	}

	type seen struct {
		sc    trace.SpanContext
		extra *string
	}
	var mu sync.Mutex
	got := map[string]seen{}
	all := make(chan struct{})
	c := client.NewConsumer("q", "c", pgque.WithTicker(pgque.WithTickInterval(5*time.Millisecond)))
	c.Handle("*", func(ctx context.Context, msg pgque.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got[msg.Type] = seen{trace.SpanContextFromContext(ctx), msg.Extra4}
		if len(got) == 2 {
			close(all)
		}
		return nil
	})
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Start(cctx) }()
	select {
	case <-all:
	case <-time.After(20 * time.Second):
		t.Fatal("the messages were not handled")
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	spans := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		spans[s.Name()] = append(spans[s.Name()], s)
	}
	if len(spans["send q"]) != 2 || len(spans["process q"]) != 2 || len(spans["receive q"]) == 0 || len(spans["ack q"]) == 0 {
		t.Fatalf("spans: %v", spans)
	}
	send := spans["send q"][0]
	if send.Parent().SpanID() != app.SpanContext().SpanID() || send.SpanKind() != trace.SpanKindProducer {
		t.Errorf("the send's span is not the application's child: parent %v", send.Parent())
	}
	traced := got["traced"]
	if traced.extra == nil || !regexp.MustCompile(`^00-`+send.SpanContext().TraceID().String()+`-`+send.SpanContext().SpanID().String()+`-01$`).MatchString(*traced.extra) {
		t.Errorf("extra4 %v, want the send's traceparent", traced.extra)
	}
	if traced.sc.TraceID() != app.SpanContext().TraceID() {
		t.Errorf("the handler runs in trace %v, want the sender's %v", traced.sc.TraceID(), app.SpanContext().TraceID())
	}
	for _, p := range spans["process q"] {
		if p.SpanContext().SpanID() == traced.sc.SpanID() {
			if p.Parent().SpanID() != send.SpanContext().SpanID() || !p.Parent().IsRemote() {
				t.Errorf("the handler's span's parent is %v, want the send's span %v", p.Parent(), send.SpanContext())
			}
			attrs := map[string]string{}
			for _, a := range p.Attributes() {
				attrs[string(a.Key)] = a.Value.Emit()
			}
			if attrs["messaging.destination.name"] != "q" || attrs["messaging.consumer.group.name"] != "c" || attrs["pgque.message.type"] != "traced" {
				t.Errorf("attributes of the handler's span: %v", attrs)
			}
		}
	}
	own := got["own"]
	if own.extra == nil || *own.extra != "kept" {
		t.Errorf("an event's own extra4 became %v", own.extra)
	}
	if own.sc.TraceID() == app.SpanContext().TraceID() || !own.sc.IsValid() {
		t.Errorf("the handler of an event without a trace context is in trace %v", own.sc.TraceID())
	}
}

func ExampleNew() {
	ctx := context.Background()
	pg, err := pgquetest.Start(ctx) // a throwaway server; a program connects to its own
	if err != nil {
		log.Fatal(err)
	}
	defer pg.Cleanup()
	dsn, err := pg.NewDatabase(ctx)
	if err != nil {
		log.Fatal(err)
	}
	client, err := pgque.Connect(ctx, dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// A program gives its tracer provider (otel.GetTracerProvider()); both
	// the sender and the consumers observe with the same carrier field.
	tp := sdktrace.NewTracerProvider()
	client = client.WithObserver(pgque.Observers(pgqueotel.New(tp, pgqueotel.WithCarrier(4))))
	if _, err := client.CreateQueue(ctx, "orders"); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Send(ctx, "orders", pgque.Event{Type: "order.created", Payload: 42}); err != nil {
		log.Fatal(err)
	}
	// A handler's ctx now carries a span that continues the sender's trace:
	// trace.SpanFromContext(ctx) in the handler.
}
