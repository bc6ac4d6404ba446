package pgqueprom_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgque/pgqueprom"
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

// await polls cond (a metric reaching a value) until it holds; the bound is
// a failure bound, never a measure.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// value returns the value of the series of metric whose label values, in
// the order of the metric's label names, are values; 0 when there is none.
func value(t *testing.T, reg *prometheus.Registry, metric string, values ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != metric {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for i, name := range labelNames[metric] {
				if got[name] != values[i] {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

var labelNames = map[string][]string{
	"pgque_client_sends_total":               {"queue", "result"},
	"pgque_client_sent_events_total":         {"queue"},
	"pgque_consumer_received_messages_total": {"queue", "consumer"},
	"pgque_consumer_handled_total":           {"queue", "consumer", "type", "result"},
	"pgque_consumer_dead_lettered_total":     {"queue", "consumer"},
	"pgque_consumer_ack_errors_total":        {"queue", "consumer"},
	"pgque_consumer_settled_total":           {"queue", "consumer", "outcome"},
	"pgque_ticker_leader":                    {},
	"pgque_ticker_calls_total":               {"call", "result"},
	"pgque_ticker_work_total":                {"call"},
	"pgque_consumer_seen_lag_seconds":        {"queue", "consumer"},
}

// A consumer with a ticker, observed: every counter says what happened.
func TestMetrics(t *testing.T) {
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
	m := pgqueprom.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	client := plain.WithObserver(m)

	if _, err := client.CreateQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	// No retries: a failure is dead at once.
	if _, err := client.Pool().Exec(ctx, `SELECT pgque.set_queue_config('q', 'max_retries', '0')`); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Subscribe(ctx, "q", "c"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := client.Send(ctx, "q", pgque.Event{Type: "ok", Payload: i}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.SendBatch(ctx, "q", []pgque.Event{{Type: "fail"}, {Type: "reject"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Send(ctx, "nope", pgque.Event{Type: "ok"}); !errors.Is(err, pgque.ErrQueueNotFound) {
		t.Fatalf("send to a missing queue: %v", err)
	}

	c := client.NewConsumer("q", "c", pgque.WithTicker(pgque.WithTickInterval(5*time.Millisecond),
		pgque.WithMaintInterval(20*time.Millisecond)))
	c.Handle("ok", func(context.Context, pgque.Message) error { return nil })
	c.Handle("fail", func(context.Context, pgque.Message) error { return errors.New("broken") })
	c.Handle("reject", func(context.Context, pgque.Message) error { return pgque.Reject(errors.New("unreadable")) })
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Start(cctx) }()
	// stopConsumer stops it once, when the test is done with it or fails.
	var stopOnce sync.Once
	stopConsumer := func() {
		stopOnce.Do(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("Start = %v", err)
			}
		})
	}
	defer stopConsumer()

	settled := func(outcome string) float64 {
		return value(t, reg, "pgque_consumer_settled_total", "q", "c", outcome)
	}
	await(t, "7 messages settled", func() bool { return settled("acked")+settled("dead") == 7 })
	for name, want := range map[string]float64{"acked": 5, "dead": 2, "retry": 0} {
		if got := settled(name); got != want {
			t.Errorf("settled %s = %v, want %v", name, got, want)
		}
	}
	for _, tc := range []struct {
		metric string
		labels []string
		want   float64
	}{
		{"pgque_client_sends_total", []string{"q", "ok"}, 6},
		{"pgque_client_sends_total", []string{"nope", "error"}, 1},
		{"pgque_client_sent_events_total", []string{"q"}, 7},
		{"pgque_consumer_received_messages_total", []string{"q", "c"}, 7},
		{"pgque_consumer_handled_total", []string{"q", "c", "ok", "ok"}, 5},
		{"pgque_consumer_handled_total", []string{"q", "c", "fail", "failed"}, 1},
		{"pgque_consumer_handled_total", []string{"q", "c", "reject", "failed"}, 1},
		{"pgque_consumer_dead_lettered_total", []string{"q", "c"}, 2},
		{"pgque_consumer_ack_errors_total", []string{"q", "c"}, 0},
	} {
		if got := value(t, reg, tc.metric, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.metric, tc.labels, got, tc.want)
		}
	}
	if got := value(t, reg, "pgque_ticker_leader"); got != 1 {
		t.Errorf("pgque_ticker_leader = %v, want 1", got)
	}
	if got := value(t, reg, "pgque_ticker_calls_total", "ticker()", "ok"); got < 1 {
		t.Errorf("ticker() calls = %v", got)
	}
	if got := value(t, reg, "pgque_ticker_work_total", "ticker()"); got < 1 {
		t.Errorf("queues ticked = %v", got)
	}
	if got := value(t, reg, "pgque_consumer_seen_lag_seconds", "q", "c"); got <= 0 || got > 60 {
		t.Errorf("lag seen = %v s", got)
	}
	// Histograms: every piece and handler run was timed.
	n, err := testutil.GatherAndCount(reg, "pgque_consumer_piece_messages", "pgque_consumer_handle_duration_seconds",
		"pgque_consumer_receive_duration_seconds", "pgque_consumer_ack_duration_seconds", "pgque_ticker_call_duration_seconds")
	if err != nil || n < 5 {
		t.Errorf("histogram series: %d, %v", n, err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v, %v", problems, err)
	}

	// Once the consumer stops, its ticker gives the lead up.
	stopConsumer()
	if got := value(t, reg, "pgque_ticker_leader"); got != 0 {
		t.Errorf("pgque_ticker_leader after the stop = %v, want 0", got)
	}
}

func Example() {
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

	// Once per process: register the metrics (served with promhttp, say),
	// and observe every client with them.
	metrics := pgqueprom.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics)
	client = client.WithObserver(metrics)

	if _, err := client.CreateQueue(ctx, "orders"); err != nil {
		log.Fatal(err)
	}
	if _, err := client.Send(ctx, "orders", pgque.Event{Type: "order.created", Payload: 42}); err != nil {
		log.Fatal(err)
	}
	n, err := testutil.GatherAndCount(reg, "pgque_client_sent_events_total")
	fmt.Println(n, err)
	// Output: 1 <nil>
}
