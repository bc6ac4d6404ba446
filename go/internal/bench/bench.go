// Package bench holds the scenarios of `pgque bench`.  Each scenario measures
// pgque and a plain-SQL baseline in the same run, against the same server,
// and reports the ratio against its target (docs/benchmarks.md): absolute numbers
// on a shared 2-core machine are noise, ratios are not.
package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/pgque"
)

// Config holds the knobs shared by the scenarios (the command's flags).
type Config struct {
	Duration    time.Duration // how long each measured phase runs
	Rate        int           // offered load in events/s, for the latency scenarios
	Conns       int           // producer connections
	PayloadSize int           // bytes of JSON payload per event
	Backlog     int           // events in the consume scenario's backlog
	Jobs        int           // jobs in the jobs scenario's burn-down
	JobWorkers  int           // worker processes in the jobs scenario
	Queues      int           // idle queues in the many-queues scenario
}

// DefaultConfig is what `pgque bench` uses without flags.
func DefaultConfig() Config {
	return Config{Duration: 10 * time.Second, Rate: 1000, Conns: 4, PayloadSize: 100, Backlog: 1_000_000,
		Jobs: 200_000, JobWorkers: 4, Queues: 2000}
}

// Payload returns a JSON object of exactly PayloadSize bytes (at least
// 10), the payload every scenario sends.
func (c Config) Payload() string {
	const head, tail = `{"pad":"`, `"}`
	n := c.PayloadSize - len(head) - len(tail)
	if n < 0 {
		n = 0
	}
	return head + strings.Repeat("x", n) + tail
}

// Env is what a scenario runs against.  Every scenario gets a fresh database
// with pgque installed, so scenarios do not disturb each other.
type Env struct {
	Config
	DSN    string
	Pool   *pgxpool.Pool
	Client *pgque.Client
	// Progress receives human-readable progress lines while the scenario runs.
	Progress io.Writer
	// WorkerCommand runs one worker process of the jobs scenario: this
	// binary and the arguments of `pgque bench worker` (the scenario adds
	// its flags; the DSN goes in $PGQUE_DSN).  The jobs scenario fails
	// without it.
	WorkerCommand []string
}

// Logf writes a progress line.
func (e *Env) Logf(format string, args ...any) {
	fmt.Fprintf(e.Progress, "  "+format+"\n", args...)
}

// Metric is one measured number.
type Metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Result is what a scenario found.
type Result struct {
	Scenario string   `json:"scenario"`
	Metrics  []Metric `json:"metrics"`
	// Target is the goal in words (e.g. "send >= 0.9 x INSERT"); Pass says
	// whether this run met it (nil when the scenario has no pass/fail target).
	Target string   `json:"target,omitempty"`
	Pass   *bool    `json:"pass,omitempty"`
	Notes  []string `json:"notes,omitempty"`
	// Error is set by `pgque bench` when the scenario failed.
	Error string `json:"error,omitempty"`
	// Seconds is the scenario's wall time, set by `pgque bench`.
	Seconds float64 `json:"seconds,omitempty"`
}

// Add appends a metric.
func (r *Result) Add(name string, value float64, unit string) {
	r.Metrics = append(r.Metrics, Metric{Name: name, Value: value, Unit: unit})
}

// Check records whether the target was met.
func (r *Result) Check(target string, ok bool) {
	r.Target, r.Pass = target, &ok
}

// Scenario is one benchmark.
type Scenario struct {
	Name        string // short name used by --scenarios, e.g. "produce"
	Description string
	Run         func(ctx context.Context, env *Env) (Result, error)
}

// Scenarios lists every scenario in the order `pgque bench` runs them (the
// order of the results table of docs/benchmarks.md).
func Scenarios() []Scenario {
	return []Scenario{
		{Name: "produce", Description: "send, one event per transaction, vs a single-row INSERT", Run: runProduce},
		{Name: "produce-batch", Description: "send_batch of 100 vs a 100-row INSERT", Run: runProduceBatch},
		{Name: "produce-options", Description: "send with 100k delayed events and unique keys pending, and send_at/send_unique vs send", Run: runProduceOptions},
		{Name: "consume", Description: "consume a backlog through the Go SDK vs a plain SELECT of the same rows", Run: runConsume},
		{Name: "latency", Description: "commit-to-handler latency at a fixed rate, Go ticker and LISTEN", Run: runLatency},
		{Name: "many-queues", Description: "create_queue, ticker(), maint() and the Ticker's CPU at 10 and at --queues idle queues, and latency with events spread over 100 of them", Run: runManyQueues},
		{Name: "cancellations", Description: "Receive(100)+Ack drain of a backlog with 10,000 live cancellations (of an earlier batch) vs none", Run: runCancellations},
		{Name: "jobs", Description: "worker processes sharing one consumer (default options), no-op handler: burn-down of a backlog of jobs, and commit-to-handler latency at a fixed rate", Run: runJobs},
		{Name: "xmin", Description: "sustained load with a transaction holding the xmin horizon: throughput, latency, dead tuples", Run: runXmin},
		{Name: "memory", Description: "Go consumer heap over a long run at a high rate", Run: runMemory},
	}
}
