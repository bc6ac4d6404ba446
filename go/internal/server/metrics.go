package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgque/pgque/go/pgque"
)

// httpMetrics are the server's own counters.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	streams  prometheus.Gauge
}

func newHTTPMetrics(reg *prometheus.Registry) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgque_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pgque_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern (streams excluded).",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pgque_http_streams_open",
			Help: "Server-Sent Events streams open.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.streams,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// statusRecorder remembers the status code of a response.  Unwrap lets
// http.ResponseController reach the underlying writer (flushes, deadlines).
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// instrument counts the requests of route and times those that are not streams.
func (s *Server) instrument(route string, h http.Handler) http.Handler {
	isStream := route == streamRoute
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
		if !isStream {
			s.metrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}
	})
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{ErrorLog: slogPrinter{s}})
}

// slogPrinter hands promhttp's errors to the server's logger.
type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) { p.s.log.Error("pgque serve: metrics", "err", v) }

// collector reads pgque's state from the database at every scrape.
type collector struct {
	s *Server

	scrapeOK, scrapeDuration *prometheus.Desc

	queueEvents, queueNewEvents, queueRate, queueTickAge, queueConsumers *prometheus.Desc
	queueRetry, queueDead, queueCurrentTable, queuePaused                *prometheus.Desc
	queueEventBytes, queueEventDead, queueUnclaimed                      *prometheus.Desc
	queueMaintErrors, queueMaintErrorAt                                  *prometheus.Desc
	tableBytes, tableLive, tableDead                                     *prometheus.Desc

	consPending, consLag, consLastSeen, consRetry, consDead, consBlocking *prometheus.Desc
	consBatchAge, consWorkers, consWorkerBatches, consWorkerExpired       *prometheus.Desc

	tickerRunning, tickerLeader *prometheus.Desc
}

func newCollector(s *Server) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	q, qc, t := []string{"queue"}, []string{"queue", "consumer"}, []string{"table"}
	return &collector{
		s:              s,
		scrapeOK:       d("pgque_scrape_success", "1 when the last scrape read pgque's state from the database, else 0."),
		scrapeDuration: d("pgque_scrape_duration_seconds", "Time the scrape's queries took."),

		queueEvents:       d("pgque_queue_events_total", "Events sent to the queue: the last event id handed out (rolled-back sends included).", q...),
		queueNewEvents:    d("pgque_queue_new_events", "Events sent since the queue's newest tick (approximate).", q...),
		queueRate:         d("pgque_queue_events_per_second", "Event rate over the ticks kept (about the last minute).", q...),
		queueTickAge:      d("pgque_queue_last_tick_age_seconds", "Time since the queue's newest tick.", q...),
		queueConsumers:    d("pgque_queue_consumers", "Consumers subscribed to the queue.", q...),
		queueRetry:        d("pgque_queue_retry_pending", "Events waiting in the retry store.", q...),
		queueDead:         d("pgque_queue_dead_letters", "Dead letters of the queue.", q...),
		queueCurrentTable: d("pgque_queue_current_table", "Number of the event table producers write to.", q...),
		queuePaused:       d("pgque_queue_paused", "1 while the queue is paused: its consumers receive nothing.", q...),
		queueEventBytes:   d("pgque_queue_event_bytes", "Size of the queue's event tables, indexes and TOAST included.", q...),
		queueEventDead:    d("pgque_queue_event_dead_tuples", "Dead rows of the queue's event tables (statistics collector estimate); only rolled-back sends leave any.", q...),
		queueUnclaimed:    d("pgque_queue_unclaimed_events", "Events kept for the first consumer of a queue that has none (approximate); while above 0 the queue's tables cannot rotate.", q...),
		queueMaintErrors:  d("pgque_queue_maintenance_errors", "Consecutive failures of the queue's periodic work (ticks, table switches, retry and delayed moves); the other queues go on. 0 when all is well.", q...),
		queueMaintErrorAt: d("pgque_queue_maintenance_last_error_timestamp_seconds", "Unix time of the queue's newest recorded maintenance failure (absent when none).", q...),
		tableBytes:        d("pgque_table_bytes", "Size of one of pgque's tables, its partitions, indexes and TOAST included.", t...),
		tableLive:         d("pgque_table_live_tuples", "Live rows of one of pgque's tables (statistics collector estimate).", t...),
		tableDead:         d("pgque_table_dead_tuples", "Dead rows of one of pgque's tables (statistics collector estimate); the logs and event tables leave none.", t...),

		consPending:       d("pgque_consumer_pending_events", "Events sent after the consumer's position (approximate).", qc...),
		consLag:           d("pgque_consumer_lag_seconds", "Time since the tick the consumer last finished.", qc...),
		consLastSeen:      d("pgque_consumer_last_seen_seconds", "Time since the consumer last opened, acked or finished a batch.", qc...),
		consRetry:         d("pgque_consumer_retry_pending", "The consumer's events waiting in the retry store.", qc...),
		consDead:          d("pgque_consumer_dead_letters", "The consumer's dead letters.", qc...),
		consBlocking:      d("pgque_consumer_blocking_rotation", "1 when the consumer keeps the queue's event tables from rotating.", qc...),
		consBatchAge:      d("pgque_consumer_batch_age_seconds", "Age of the consumer's open batch (absent when none).", qc...),
		consWorkers:       d("pgque_consumer_workers", "Cooperative workers of the consumer (made when first handed something; forgotten after an hour idle).", qc...),
		consWorkerBatches: d("pgque_consumer_worker_batches", "The consumer's workers that hold a batch.", qc...),
		consWorkerExpired: d("pgque_consumer_worker_leases_expired", "The consumer's workers whose batch lease ran out: stopped or too slow; another worker takes the batch over.", qc...),

		tickerRunning: d("pgque_ticker_running", "1 when this process runs a ticker."),
		tickerLeader:  d("pgque_ticker_leader", "1 when this process's ticker is the database's leader (the one ticking)."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.scrapeOK, c.scrapeDuration, c.queueEvents, c.queueNewEvents,
		c.queueRate, c.queueTickAge, c.queueConsumers, c.queueRetry, c.queueDead, c.queueCurrentTable,
		c.queuePaused, c.queueEventBytes, c.queueEventDead, c.queueUnclaimed, c.queueMaintErrors, c.queueMaintErrorAt, c.tableBytes, c.tableLive,
		c.tableDead, c.consPending, c.consLag, c.consLastSeen, c.consRetry, c.consDead, c.consBlocking, c.consBatchAge,
		c.consWorkers, c.consWorkerBatches, c.consWorkerExpired, c.tickerRunning, c.tickerLeader} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	t := c.s.opts.Ticker
	g(c.tickerRunning, b2f(c.s.tickerRunning.Load()))
	g(c.tickerLeader, b2f(t != nil && t.IsLeader()))

	start := time.Now()
	err := c.collectDB(ch, g)
	g(c.scrapeDuration, time.Since(start).Seconds())
	if err != nil {
		c.s.log.Error("pgque serve: metrics: reading pgque's state failed", "err", err)
	}
	g(c.scrapeOK, b2f(err == nil))
}

// workerStats are the worker metrics of one consumer.
type workerStats struct{ workers, batches, expired int }

func (c *collector) collectDB(ch chan<- prometheus.Metric, g func(*prometheus.Desc, float64, ...string)) error {
	ctx, cancel := context.WithTimeout(c.s.closing, c.s.opts.ScrapeTimeout)
	defer cancel()
	// Read everything first: a failed scrape reports no half state.
	qs, err := c.s.client.Queues(ctx)
	if err != nil {
		return err
	}
	cs, err := c.s.client.Consumers(ctx, "")
	if err != nil {
		return err
	}
	tables, err := c.s.client.Tables(ctx)
	if err != nil {
		return err
	}
	workers := make([]workerStats, len(cs))
	for i, ci := range cs {
		ws, err := c.s.client.Workers(ctx, ci.Queue, ci.Name)
		if errors.Is(err, pgque.ErrConsumerNotFound) || errors.Is(err, pgque.ErrQueueNotFound) {
			continue // unsubscribed since it was listed
		}
		if err != nil {
			return err
		}
		for _, w := range ws {
			workers[i].workers++
			if w.BatchID != nil {
				workers[i].batches++
			}
			if w.LeaseLeft != nil && *w.LeaseLeft < 0 {
				workers[i].expired++
			}
		}
	}

	for _, q := range qs {
		ch <- prometheus.MustNewConstMetric(c.queueEvents, prometheus.CounterValue, float64(q.TotalEvents), q.Name)
		g(c.queueNewEvents, float64(q.NewEvents), q.Name)
		g(c.queueRate, q.EventsPerSecond, q.Name)
		g(c.queueTickAge, q.TickerLag.Seconds(), q.Name)
		g(c.queueConsumers, float64(q.Consumers), q.Name)
		g(c.queueRetry, float64(q.RetryPending), q.Name)
		g(c.queueDead, float64(q.DeadLetters), q.Name)
		g(c.queueCurrentTable, float64(q.CurrentTable), q.Name)
		g(c.queuePaused, b2f(q.Paused), q.Name)
		g(c.queueEventBytes, float64(q.EventBytes), q.Name)
		g(c.queueEventDead, float64(q.EventDeadTuples), q.Name)
		g(c.queueUnclaimed, float64(q.UnclaimedEvents), q.Name)
		g(c.queueMaintErrors, float64(q.Errors), q.Name)
		if q.LastError != nil {
			g(c.queueMaintErrorAt, float64(q.LastError.At.UnixNano())/1e9, q.Name)
		}
	}
	for _, t := range tables {
		g(c.tableBytes, float64(t.TotalBytes), t.Name)
		g(c.tableLive, float64(t.LiveTuples), t.Name)
		g(c.tableDead, float64(t.DeadTuples), t.Name)
	}
	for i, ci := range cs {
		g(c.consPending, float64(ci.PendingEvents), ci.Queue, ci.Name)
		g(c.consLag, ci.Lag.Seconds(), ci.Queue, ci.Name)
		g(c.consLastSeen, ci.LastSeen.Seconds(), ci.Queue, ci.Name)
		g(c.consRetry, float64(ci.RetryPending), ci.Queue, ci.Name)
		g(c.consDead, float64(ci.DeadLetters), ci.Queue, ci.Name)
		g(c.consBlocking, b2f(ci.BlockingRotation), ci.Queue, ci.Name)
		if ci.BatchAge != nil {
			g(c.consBatchAge, ci.BatchAge.Seconds(), ci.Queue, ci.Name)
		}
		g(c.consWorkers, float64(workers[i].workers), ci.Queue, ci.Name)
		g(c.consWorkerBatches, float64(workers[i].batches), ci.Queue, ci.Name)
		g(c.consWorkerExpired, float64(workers[i].expired), ci.Queue, ci.Name)
	}
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
