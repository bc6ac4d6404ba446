package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgque/pgquetest"
)

// testWriter turns progress lines into test log lines.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestScenarioLoad is a smoke test of the load scenarios (latency, xmin,
// memory, many-queues, and cancellations, smaller): each runs briefly against a throwaway server and must return
// metrics without error.  It asserts no timings: the numbers come from
// `pgque bench`.
func TestScenarioLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server and runs load for several seconds")
	}
	ctx := context.Background()
	srv, err := pgquetest.Start(ctx, pgque.WithoutExtension())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Cleanup)

	for _, sc := range []struct {
		name string
		run  func(context.Context, *Env) (Result, error)
		want []string // metrics that must be there
	}{
		{"latency", runLatency, []string{"p50", "p99", "achieved rate"}},
		{"xmin", runXmin, []string{"clean delivered", "held p99", "event tables max dead tuples", "consumer dead tuples held end", "sub_state_0 dead tuples held end"}},
		{"memory", runMemory, []string{"consumed", "heap in use, last quarter mean"}},
		{"many-queues", runManyQueues, []string{"queues", "create_queue last/first", "ticker() ratio", "maint() ratio",
			"ticker backend CPU", "latency p99"}},
		{"cancellations", func(ctx context.Context, env *Env) (Result, error) { return cancellations(ctx, env, 200, 2000) },
			[]string{"live cancellations", "drain without cancellations", "drain with cancellations", "time ratio"}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			dsn, err := srv.NewDatabase(ctx)
			if err != nil {
				t.Fatal(err)
			}
			env := &Env{
				Config:   Config{Duration: time.Second, Rate: 200, Conns: 2, PayloadSize: 100, Queues: 30},
				DSN:      dsn,
				Progress: testWriter{t},
			}
			client, err := pgque.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			env.Pool, env.Client = client.Pool(), client

			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			res, err := sc.run(cctx, env)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, m := range res.Metrics {
				got[m.Name] = true
				t.Logf("%-40s %10.2f %s", m.Name, m.Value, m.Unit)
			}
			for _, n := range res.Notes {
				t.Log("note:", n)
			}
			for _, w := range sc.want {
				if !got[w] {
					t.Errorf("metric %q missing", w)
				}
			}
			if res.Pass == nil {
				t.Error("no target checked")
			}
		})
	}
}
