package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/pgque/pgque/go/internal/localpg"
	"github.com/pgque/pgque/go/pgque"
)

type demoConfig struct {
	duration   time.Duration
	rate       int
	consumers  int
	pgBin      string // server programs for the throwaway server
	sqlInstall bool   // install the embedded engine as plain SQL on the throwaway server
}

// demoDrainTimeout bounds the wait, after the producer stopped, for the
// consumers to receive what was sent.
const demoDrainTimeout = 10 * time.Second

func newDemoCmd(g *globals) *cobra.Command {
	cfg := demoConfig{duration: 15 * time.Second, rate: 200, consumers: 3}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Watch pgque work: a producer, consumers and the ticker, with live counts",
		Long: `demo runs a producer sending --rate events/s (one per transaction), --consumers
consumers each receiving every event, and the ticker, and prints every second
what was sent, what each consumer received, what is pending for it, and the
end-to-end latency (from just before the send to the handler) over that
second.  After --duration, or at Ctrl-C, it stops the producer, lets the
consumers catch up, stops everything and prints a summary.

Without --dsn (or $PGQUE_DSN) it starts a throwaway PostgreSQL server from the
installed server programs, installs pgque there and prints its DSN, and
removes the server at the end.  With a DSN it needs pgque installed there
('pgque migrate'); it creates a queue of its own, demo_<random>, and drops it
at the end.

The exit status is 0 when every consumer received every event.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := pgBinWithDSN(g.dsn, cfg.pgBin); err != nil {
				return err
			}
			switch {
			case cfg.duration < 0:
				return usageError{fmt.Errorf("--duration %v is negative", cfg.duration)}
			case cfg.rate < 1 || cfg.rate > 100000:
				return usageError{fmt.Errorf("--rate must be between 1 and 100000, not %d", cfg.rate)}
			case cfg.consumers < 1 || cfg.consumers > 20:
				return usageError{fmt.Errorf("--consumers must be between 1 and 20, not %d", cfg.consumers)}
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), g.dsn, cfg)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&cfg.duration, "duration", cfg.duration, "how long to produce (0: until Ctrl-C)")
	f.IntVar(&cfg.rate, "rate", cfg.rate, "events per second to send")
	f.IntVar(&cfg.consumers, "consumers", cfg.consumers, "consumers, each receiving every event")
	addPGBinFlag(f, &cfg.pgBin, "the throwaway server")
	f.BoolVar(&cfg.sqlInstall, "sql-install", false, "on the throwaway server, install the engine embedded in this "+
		"binary as plain SQL, even where the server has pgque's extension files (which may be of another version)")
	return cmd
}

func runDemo(ctx context.Context, w, errw io.Writer, dsn string, cfg demoConfig) (err error) {
	// Setup and cleanup must finish even after Ctrl-C: cleanup runs on a
	// context of its own, and an interrupt during the run only ends it early.
	cleanupCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	}
	installed := false
	if dsn == "" {
		fmt.Fprintln(w, "No --dsn given: starting a throwaway PostgreSQL server...")
		srv, err := localpg.Start(ctx, localpg.Options{BinDir: cfg.pgBin})
		if err != nil {
			return err
		}
		defer func() {
			if serr := srv.Stop(); serr != nil && err == nil {
				err = serr
			}
			fmt.Fprintln(w, "Throwaway server stopped and removed.")
		}()
		dsn = srv.DSN
		fmt.Fprintf(w, "PostgreSQL is at %s\n(data and log in %s, removed at the end)\n", dsn, srv.Dir)
		installed = true
	}

	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return usageError{fmt.Errorf("--dsn: %w", err)}
	}
	// Each consumer uses a pooled connection and one for LISTEN; the ticker
	// one; the producer and the status line one each.
	pcfg.MaxConns = int32(2*cfg.consumers + 4)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer pool.Close()
	if installed {
		var opts []pgque.InstallOption
		if cfg.sqlInstall {
			opts = append(opts, pgque.WithoutExtension())
		}
		method, err := pgque.Install(ctx, pool, opts...)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "pgque installed (as %s).\n", method)
	}
	client := pgque.New(pool)
	if err := client.CheckEngine(ctx); err != nil {
		return err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	queue := "demo_" + hex.EncodeToString(b[:])
	if _, err := client.CreateQueue(ctx, queue); err != nil {
		return err
	}
	defer func() {
		cctx, cancel := cleanupCtx()
		defer cancel()
		if derr := client.DropQueue(cctx, queue, true); derr != nil && err == nil {
			err = derr
		} else if derr == nil {
			fmt.Fprintf(w, "Queue %s dropped.\n", queue)
		}
	}()
	// The demo prints what happens itself; the log says only what goes wrong.
	log := slog.New(slog.NewTextHandler(errw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d := &demo{client: client, queue: queue, cfg: cfg, w: w, log: log}
	for i := range cfg.consumers {
		name := fmt.Sprintf("demo-%d", i+1)
		// Subscribed before the producer starts, so each sees every event.
		if _, err := client.Subscribe(ctx, queue, name); err != nil {
			return err
		}
		d.consumers = append(d.consumers, &demoConsumer{name: name})
	}
	until := "until Ctrl-C"
	if cfg.duration > 0 {
		until = "for " + cfg.duration.String()
	}
	fmt.Fprintf(w, "Queue %s with %d consumers; sending %d events/s %s.\n\n", queue, cfg.consumers, cfg.rate, until)
	return d.run(ctx)
}

// demo is one run of the demo.
type demo struct {
	client    *pgque.Client
	queue     string
	cfg       demoConfig
	w         io.Writer
	log       *slog.Logger
	consumers []*demoConsumer
	sent      atomic.Int64
}

type demoConsumer struct {
	name       string
	received   atomic.Int64 // distinct events
	duplicates atomic.Int64 // deliveries of events received before
	mu         sync.Mutex
	seen       []uint64    // bit n: event n was received
	window     latencyHist // since the last status line
	total      latencyHist
}

// demoPayload is what the producer sends.
type demoPayload struct {
	N      int64 `json:"n"`
	SentNs int64 `json:"sent_ns"` // wall clock just before the send, in this process
}

func (c *demoConsumer) handle(_ context.Context, msg pgque.Message) error {
	var p demoPayload
	if err := json.Unmarshal([]byte(msg.Payload), &p); err != nil || p.N < 1 {
		return fmt.Errorf("message %d is not a demo event: %s", msg.MsgID, msg.Payload)
	}
	lat := time.Since(time.Unix(0, p.SentNs))
	word, bit := int(p.N/64), uint64(1)<<(p.N%64)
	c.mu.Lock()
	defer c.mu.Unlock()
	if word >= len(c.seen) {
		c.seen = append(c.seen, make([]uint64, word+1-len(c.seen))...)
	}
	if c.seen[word]&bit != 0 {
		c.duplicates.Add(1)
		return nil
	}
	c.seen[word] |= bit
	c.window.add(lat)
	c.total.add(lat)
	c.received.Add(1)
	return nil
}

func (d *demo) run(ctx context.Context) error {
	// Everything the demo starts stops when work ends; failures end it too.
	work, stopWork := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopWork(nil)
	var wg sync.WaitGroup
	fail := func(what string, err error) {
		if err != nil && work.Err() == nil {
			stopWork(fmt.Errorf("%s: %w", what, err))
		}
	}
	wg.Go(func() { fail("ticker", d.client.NewTicker(pgque.WithTickerLogger(d.log)).Run(work)) })
	for _, c := range d.consumers {
		cons := d.client.NewConsumer(d.queue, c.name, pgque.WithLogger(d.log))
		cons.Handle("*", c.handle)
		wg.Go(func() { fail("consumer "+c.name, cons.Start(work)) })
	}
	produce, stopProducing := context.WithCancel(work)
	defer stopProducing()
	var prodWG sync.WaitGroup
	prodWG.Go(func() { fail("producer", d.produce(produce)) })

	start := time.Now()
	var end <-chan time.Time
	if d.cfg.duration > 0 {
		timer := time.NewTimer(d.cfg.duration)
		defer timer.Stop()
		end = timer.C
	}
	d.printHeader()
	status := time.NewTicker(time.Second)
	defer status.Stop()
	interrupted := false
loop:
	for {
		select {
		case <-ctx.Done():
			interrupted = true
			break loop
		case <-end:
			break loop
		case <-work.Done():
			break loop
		case <-status.C:
			d.printStatus(work, time.Since(start))
		}
	}
	stopProducing()
	prodWG.Wait()
	elapsed := time.Since(start)
	if interrupted {
		fmt.Fprintln(d.w, "\nInterrupted: stopping.")
	}
	sent := d.sent.Load()
	fmt.Fprintf(d.w, "\nProducer stopped after %d events; waiting for the consumers to catch up...\n", sent)
	caughtUp := d.drain(work, sent)
	stopWork(nil)
	wg.Wait()
	if err := context.Cause(work); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	d.printSummary(elapsed, sent)
	if !caughtUp {
		return fmt.Errorf("the consumers did not receive every event within %v", demoDrainTimeout)
	}
	return nil
}

// produce sends one event per transaction at the configured rate.  A send
// is not cut short when ctx ends, so that sent counts exactly what committed.
func (d *demo) produce(ctx context.Context) error {
	interval := time.Second / time.Duration(d.cfg.rate)
	next := time.Now()
	for n := int64(1); ; n++ {
		if wait := time.Until(next); wait > 0 && !sleepCtx(ctx, wait) {
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		next = next.Add(interval)
		// A producer that fell behind (a slow server) does not burst to catch up.
		if time.Since(next) > time.Second {
			next = time.Now()
		}
		payload, _ := json.Marshal(demoPayload{N: n, SentNs: time.Now().UnixNano()})
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_, err := d.client.Send(sctx, d.queue, pgque.Event{Type: "demo", Payload: json.RawMessage(payload)})
		cancel()
		if err != nil {
			return err
		}
		d.sent.Add(1)
	}
}

// drain waits until every consumer received sent events, and reports
// whether they did before the time limit or a failure ended the demo.  It
// runs after an interrupt too (work outlives it); a second one kills the
// process.
func (d *demo) drain(work context.Context, sent int64) bool {
	deadline := time.Now().Add(demoDrainTimeout)
	for time.Now().Before(deadline) {
		done := true
		for _, c := range d.consumers {
			done = done && c.received.Load() >= sent
		}
		if done {
			return true
		}
		if !sleepCtx(work, 20*time.Millisecond) {
			return false
		}
	}
	return false
}

func (d *demo) printHeader() {
	fmt.Fprintf(d.w, "%5s %8s", "time", "sent")
	for _, c := range d.consumers {
		fmt.Fprintf(d.w, " %8s", c.name)
	}
	fmt.Fprintf(d.w, " %8s   %s\n", "pending", "latency over the second")
}

// printStatus prints a line: events sent, received by each consumer,
// pending for them together (pgque.get_consumer_info), and latency.
func (d *demo) printStatus(ctx context.Context, elapsed time.Duration) {
	pending := "?"
	qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if cs, err := d.client.Consumers(qctx, d.queue); err == nil {
		var n int64
		for _, c := range cs {
			n += c.PendingEvents
		}
		pending = fmt.Sprint(n)
	}
	fmt.Fprintf(d.w, "%4.0fs %8d", elapsed.Seconds(), d.sent.Load())
	var window latencyHist
	for _, c := range d.consumers {
		c.mu.Lock()
		window.merge(&c.window)
		c.window = latencyHist{}
		c.mu.Unlock()
		fmt.Fprintf(d.w, " %8d", c.received.Load())
	}
	fmt.Fprintf(d.w, " %8s   %s\n", pending, window.summary())
}

func (d *demo) printSummary(elapsed time.Duration, sent int64) {
	var total latencyHist
	fmt.Fprintf(d.w, "\nSummary: %d events sent in %.1fs (%.0f/s) to queue %s.\n", sent, elapsed.Seconds(),
		float64(sent)/elapsed.Seconds(), d.queue)
	for _, c := range d.consumers {
		c.mu.Lock()
		total.merge(&c.total)
		c.mu.Unlock()
		got, note := c.received.Load(), "all of them"
		if got < sent {
			note = fmt.Sprintf("%d missing", sent-got)
		}
		if dup := c.duplicates.Load(); dup > 0 {
			// At-least-once: possible after a lost connection, never in a calm run.
			note += fmt.Sprintf(", and %d again", dup)
		}
		fmt.Fprintf(d.w, "  %s received %d: %s\n", c.name, got, note)
	}
	fmt.Fprintf(d.w, "  end-to-end latency over %d deliveries: %s\n", total.n, total.summary())
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// latencyHist is a histogram of latencies in buckets 2 % wide, so a long demo
// keeps constant memory; quantiles are accurate to about 2 %.
type latencyHist struct {
	counts map[int]int64
	n      int64
	max    time.Duration
}

const histBase = 1.02

func (h *latencyHist) add(d time.Duration) {
	if h.counts == nil {
		h.counts = map[int]int64{}
	}
	us := max(float64(d)/float64(time.Microsecond), 1)
	h.counts[int(math.Log(us)/math.Log(histBase))]++
	h.n++
	h.max = max(h.max, d)
}

func (h *latencyHist) merge(o *latencyHist) {
	for b, c := range o.counts {
		if h.counts == nil {
			h.counts = map[int]int64{}
		}
		h.counts[b] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h *latencyHist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	buckets := make([]int, 0, len(h.counts))
	for b := range h.counts {
		buckets = append(buckets, b)
	}
	slices.Sort(buckets)
	rank := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for _, b := range buckets {
		seen += h.counts[b]
		if seen >= rank {
			return min(time.Duration(math.Pow(histBase, float64(b+1))*float64(time.Microsecond)), h.max)
		}
	}
	return h.max
}

func (h *latencyHist) summary() string {
	if h.n == 0 {
		return "p50 -  p99 -"
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
	return fmt.Sprintf("p50 %s  p99 %s  max %s", ms(h.quantile(0.5)), ms(h.quantile(0.99)), ms(h.max))
}
