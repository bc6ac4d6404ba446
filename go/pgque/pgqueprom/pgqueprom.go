// Package pgqueprom exports what pgque's Go SDK does in this process as
// Prometheus metrics: sends, receives, handlers, settled outcomes, acks and
// the ticker.  It is a pgque.Observer and a prometheus.Collector:
//
//	m := pgqueprom.New()
//	prometheus.MustRegister(m)
//	client = client.WithObserver(m)
//
// These are the process's own counters; `pgque serve`'s /metrics keeps the
// database's view (pending events, lag, dead letters waiting).  The metric
// names are listed in the Go guide (docs/go.md, "Metrics and tracing").
package pgqueprom

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgque/pgque/go/pgque"
)

// Metrics observes a pgque client and collects its metrics.
type Metrics struct {
	sends, sent                *prometheus.CounterVec
	received, receiveErrors    *prometheus.CounterVec
	receiveDuration, pieceSize *prometheus.HistogramVec
	handled                    *prometheus.CounterVec
	handleDuration             *prometheus.HistogramVec
	settled, deadLettered      *prometheus.CounterVec
	ackDuration                *prometheus.HistogramVec
	ackErrors                  *prometheus.CounterVec
	lag                        *prometheus.GaugeVec
	tickerCalls, tickerTicked  *prometheus.CounterVec
	tickerDuration             *prometheus.HistogramVec
	tickerLeader               prometheus.Gauge
	all                        []prometheus.Collector
}

var _ pgque.Observer = (*Metrics)(nil)

// New returns the metrics, all zero.  Register them once (they are a
// Collector) and give them to every client of the process with
// Client.WithObserver.
func New() *Metrics {
	qc := []string{"queue", "consumer"}
	m := &Metrics{
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgque_client_sends_total",
			Help: "Send calls (Send, SendBatch and their Tx forms), by queue and result (ok or error)."}, []string{"queue", "result"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgque_client_sent_events_total",
			Help: "Events sent by calls that succeeded (a Tx form's transaction may still roll back)."}, []string{"queue"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgque_consumer_received_messages_total",
			Help: "Messages handed out to this process (again after a crash or a takeover)."}, qc),
		receiveErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgque_consumer_receive_errors_total",
			Help: "Receive calls that failed."}, qc),
		receiveDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pgque_consumer_receive_duration_seconds",
			Help: "Time a receive call took, empty ones included.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, qc),
		pieceSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pgque_consumer_piece_messages",
			Help: "Messages per piece received (empty receives not counted).", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}, qc),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgque_consumer_handled_total",
			Help: "Handler runs of a Consumer, by result: ok, failed (an error, a panic, a timeout), or interrupted (shutdown, takeover)."},
			[]string{"queue", "consumer", "type", "result"}),
		handleDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pgque_consumer_handle_duration_seconds",
			Help: "Time a handler took.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 11)}, []string{"queue", "consumer", "type"}),
		settled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgque_consumer_settled_total",
			Help: "Messages of acknowledged pieces, by outcome: acked, retry, dead, snoozed, cancelled."},
			[]string{"queue", "consumer", "outcome"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgque_consumer_dead_lettered_total",
			Help: "Messages this process sent to the dead letters (retries exhausted, or rejected): a counter, which a replay does not lower."}, qc),
		ackDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pgque_consumer_ack_duration_seconds",
			Help: "Time acknowledging a piece took (its transaction's commit included, with WithTx).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, qc),
		ackErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgque_consumer_ack_errors_total",
			Help: "Acknowledgements that failed (the piece is delivered again)."}, qc),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgque_consumer_seen_lag_seconds",
			Help: "Age of the newest message of the last piece received, when it was received: how far behind the sends this process handles."}, qc),
		tickerCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgque_ticker_calls_total",
			Help: "Calls of the ticker's leader, by call (ticker(), maint()) and result (ok or error)."}, []string{"call", "result"}),
		tickerTicked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgque_ticker_work_total",
			Help: "Work the ticker's calls did: queues ticked by ticker(), steps done by maint()."}, []string{"call"}),
		tickerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pgque_ticker_call_duration_seconds",
			Help: "Time a call of the ticker's leader took.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"call"}),
		tickerLeader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pgque_ticker_leader",
			Help: "1 while a Ticker of this process leads (does the database's ticking), else 0."}),
	}
	m.all = []prometheus.Collector{m.sends, m.sent, m.received, m.receiveErrors, m.receiveDuration, m.pieceSize,
		m.handled, m.handleDuration, m.settled, m.deadLettered, m.ackDuration, m.ackErrors, m.lag,
		m.tickerCalls, m.tickerTicked, m.tickerDuration, m.tickerLeader}
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all {
		c.Collect(ch)
	}
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// StartSend implements pgque.Observer.
func (m *Metrics) StartSend(ctx context.Context, queue string, events []pgque.Event) (context.Context, func(error)) {
	return ctx, func(err error) {
		m.sends.WithLabelValues(queue, result(err)).Inc()
		if err == nil {
			m.sent.WithLabelValues(queue).Add(float64(len(events)))
		}
	}
}

// StartReceive implements pgque.Observer.
func (m *Metrics) StartReceive(_ context.Context, queue, consumer string) func([]pgque.Message, error) {
	began := time.Now()
	return func(msgs []pgque.Message, err error) {
		m.receiveDuration.WithLabelValues(queue, consumer).Observe(time.Since(began).Seconds())
		switch {
		case err != nil:
			m.receiveErrors.WithLabelValues(queue, consumer).Inc()
		case len(msgs) > 0:
			m.received.WithLabelValues(queue, consumer).Add(float64(len(msgs)))
			m.pieceSize.WithLabelValues(queue, consumer).Observe(float64(len(msgs)))
			newest := msgs[0].CreatedAt
			for _, msg := range msgs[1:] {
				if msg.CreatedAt.After(newest) {
					newest = msg.CreatedAt
				}
			}
			m.lag.WithLabelValues(queue, consumer).Set(max(began.Sub(newest).Seconds(), 0))
		}
	}
}

// StartHandle implements pgque.Observer.
func (m *Metrics) StartHandle(ctx context.Context, consumer string, msg pgque.Message) (context.Context, func(string)) {
	began := time.Now()
	return ctx, func(failure string) {
		m.handleDuration.WithLabelValues(msg.Queue, consumer, msg.Type).Observe(time.Since(began).Seconds())
		res := "ok"
		switch {
		case failure == pgque.FailureInterrupted:
			res = "interrupted"
		case failure != "":
			res = "failed"
		}
		m.handled.WithLabelValues(msg.Queue, consumer, msg.Type, res).Inc()
	}
}

// Settled implements pgque.Observer.
func (m *Metrics) Settled(consumer string, msg pgque.Message, outcome pgque.Outcome) {
	m.settled.WithLabelValues(msg.Queue, consumer, string(outcome)).Inc()
	if outcome == pgque.OutcomeDead {
		m.deadLettered.WithLabelValues(msg.Queue, consumer).Inc()
	}
}

// StartAck implements pgque.Observer.
func (m *Metrics) StartAck(_ context.Context, queue, consumer string, _ int) func(error) {
	began := time.Now()
	return func(err error) {
		m.ackDuration.WithLabelValues(queue, consumer).Observe(time.Since(began).Seconds())
		if err != nil {
			m.ackErrors.WithLabelValues(queue, consumer).Inc()
		}
	}
}

// TickerCall implements pgque.Observer.
func (m *Metrics) TickerCall(call string, n int, took time.Duration, err error) {
	m.tickerCalls.WithLabelValues(call, result(err)).Inc()
	m.tickerDuration.WithLabelValues(call).Observe(took.Seconds())
	if err == nil && n > 0 {
		m.tickerTicked.WithLabelValues(call).Add(float64(n))
	}
}

// TickerLeading implements pgque.Observer.
func (m *Metrics) TickerLeading(leading bool) {
	if leading {
		m.tickerLeader.Set(1)
	} else {
		m.tickerLeader.Set(0)
	}
}
