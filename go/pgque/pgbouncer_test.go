package pgque_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/internal/localpg"
	"github.com/pgque/pgque/go/internal/server"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// bouncerSetup is a database with pgque installed and a PgBouncer in
// transaction mode in front of it, with three server connections to share.
type bouncerSetup struct {
	direct  string           // the database itself
	bouncer *localpg.Bouncer // in front of it
	db      string
}

// pooled is the bouncer's connection string with extra parameters.
func (b *bouncerSetup) pooled(extra ...string) string { return b.bouncer.DSN(b.db, "", extra...) }

// pooledExec is the connection string docs/operations.md tells users to
// give behind a transaction pooler.
func (b *bouncerSetup) pooledExec() string { return b.pooled("default_query_exec_mode=exec") }

func startBouncerSetup(t *testing.T) *bouncerSetup {
	t.Helper()
	ctx := context.Background()
	const db = "bounced"
	pg, direct := ownServer(t, db, map[string]string{"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
	s := &bouncerSetup{direct: direct, db: db}
	var err error
	if s.bouncer, err = pg.StartBouncer(ctx, localpg.BouncerOptions{PoolSize: 3}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.bouncer.Stop() })
	return s
}

// TestBehindPgBouncer runs pgque through PgBouncer in transaction mode:
// what breaks without the documented settings, and that with them
// nothing is lost or duplicated.
func TestBehindPgBouncer(t *testing.T) {
	b := startBouncerSetup(t)
	ctx := context.Background()
	connect := func(t *testing.T, dsn string) *pgx.Conn {
		t.Helper()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(ctx) })
		return c
	}
	backend := func(t *testing.T, tx pgx.Tx) int {
		t.Helper()
		var pid int
		if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		return pid
	}

	// Why the query mode matters: pgx's default caches prepared statements
	// per connection, and the next transaction may run on another server
	// connection, which never saw them.  This also proves the bouncer
	// really moves a client between server connections.
	t.Run("default statement cache fails", func(t *testing.T) {
		a, other := connect(t, b.pooled()), connect(t, b.pooled())
		const q = `SELECT count(*) FROM pgque.get_queue_info()`
		var n int
		if err := a.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		// other holds the server connection a used (the bouncer hands out
		// the most recently used one first), so a's next query gets another.
		hold, err := other.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer hold.Rollback(ctx) //nolint:errcheck
		if _, err := hold.Exec(ctx, `SELECT 1`); err != nil {
			t.Fatal(err)
		}
		err = a.QueryRow(ctx, q).Scan(&n)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "26000" {
			t.Fatalf("the cached statement on another server connection: err = %v, want SQLSTATE 26000 "+
				"(prepared statement does not exist)", err)
		}
	})

	// receive and ack in two transactions that run on different server
	// connections: the batch is the database's, not the session's.
	t.Run("receive and ack on different server connections", func(t *testing.T) {
		client, err := pgque.Connect(ctx, b.pooledExec(), pgque.WithDirectDSN(b.direct))
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		const queue = "split"
		if _, err := client.CreateQueue(ctx, queue); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Subscribe(ctx, queue, "c"); err != nil {
			t.Fatal(err)
		}
		for round := range 3 {
			want := "split " + strconv.Itoa(round)
			if _, err := client.Send(ctx, queue, pgque.Event{Type: "t", Payload: want}); err != nil {
				t.Fatal(err)
			}
			if _, err := client.ForceTick(ctx, queue); err != nil {
				t.Fatal(err)
			}
			a, other := connect(t, b.pooledExec()), connect(t, b.pooledExec())
			tx, err := a.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			receivedOn := backend(t, tx)
			msgs, err := client.ReceiveTx(ctx, tx, queue, "c", 10)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 1 || !strings.Contains(msgs[0].Payload, want) {
				t.Fatalf("round %d: received %v, want one message %q", round, msgs, want)
			}
			hold, err := other.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if held := backend(t, hold); held != receivedOn {
				t.Fatalf("round %d: the bouncer did not hand out the server connection just used (%d) but %d",
					round, receivedOn, held)
			}
			tx, err = a.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ackedOn := backend(t, tx); ackedOn == receivedOn {
				t.Fatalf("round %d: ack on server connection %d, the one receive ran on", round, ackedOn)
			}
			if err := client.AckTx(ctx, tx, msgs[0].BatchID); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			_ = hold.Rollback(ctx)
		}
		if msgs, err := client.Receive(ctx, queue, "c", 10); err != nil || len(msgs) != 0 {
			t.Fatalf("after the acks: %d messages, %v; want none", len(msgs), err)
		}
	})

	t.Run("producers, consumers and HTTP", func(t *testing.T) { bouncerLoad(t, b) })
}

// bouncerLoad sends events through the bouncer from Go and over HTTP and
// has every kind of consumer receive them through it: a plain consumer,
// two cooperative workers, and two single readers that have no direct
// connection (their reader lock goes through the bouncer too).  Every
// event must arrive once at each consumer, and no call may fail.
func bouncerLoad(t *testing.T, b *bouncerSetup) {
	ctx := context.Background()
	var logs errorLog
	log := slog.New(&logs)
	withConfig := pgque.WithPoolConfig(func(c *pgxpool.Config) { c.MaxConns = 8 })
	client, err := pgque.Connect(ctx, b.pooledExec(), pgque.WithDirectDSN(b.direct), withConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pooledOnly, err := pgque.Connect(ctx, b.pooledExec(), withConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer pooledOnly.Close()
	const queue = "bounced"
	if _, err := client.CreateQueue(ctx, queue); err != nil {
		t.Fatal(err)
	}
	groups := []string{"plain", "coop", "single"}
	for _, g := range groups {
		if _, err := client.Subscribe(ctx, queue, g); err != nil {
			t.Fatal(err)
		}
	}

	const perProducer, producers = 150, 4
	total := perProducer * (producers + 1) // + the HTTP producer
	var mu sync.Mutex
	seen := map[string]map[string]int{} // group → payload → deliveries
	complete := make(chan string, len(groups))
	handler := func(group string) pgque.HandlerFunc {
		return func(_ context.Context, m pgque.Message) error {
			mu.Lock()
			defer mu.Unlock()
			if seen[group] == nil {
				seen[group] = map[string]int{}
			}
			seen[group][string(m.Payload)]++
			if len(seen[group]) == total && seen[group][string(m.Payload)] == 1 {
				complete <- group
			}
			return nil
		}
	}
	run := func(cl *pgque.Client, group string, opts ...pgque.Option) {
		c := cl.NewConsumer(queue, group, append(opts, pgque.WithLogger(log), pgque.WithPollInterval(50*time.Millisecond))...)
		c.Handle("t", handler(group))
		consumerRun(t, c)
	}
	run(client, "plain", pgque.WithTicker(pgque.WithTickInterval(5*time.Millisecond)))
	run(client, "coop", pgque.WithWorker("w1"))
	run(client, "coop", pgque.WithWorker("w2"))
	run(pooledOnly, "single", pgque.WithSingleReader())
	run(pooledOnly, "single", pgque.WithSingleReader())

	hs := httptest.NewServer(server.New(client, server.Options{Logger: log}))
	defer hs.Close()
	hc, err := pgquehttp.NewClient(hs.URL)
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, producers+1)
	for p := range producers {
		wg.Go(func() {
			for i := 0; i < perProducer; i += 5 {
				var evs []pgque.Event
				for j := i; j < i+5; j++ {
					evs = append(evs, pgque.Event{Type: "t", Payload: fmt.Sprintf("go-%d-%d", p, j)})
				}
				var err error
				if i%2 == 0 {
					_, err = client.SendBatch(ctx, queue, evs)
				} else {
					for _, ev := range evs {
						if _, err = client.Send(ctx, queue, ev); err != nil {
							break
						}
					}
				}
				if err != nil {
					errs <- fmt.Errorf("producer %d: %w", p, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range perProducer {
			if _, err := hc.Send(ctx, queue, pgquehttp.Event{Type: "t", Payload: []byte(fmt.Sprintf("%q", fmt.Sprintf("http-%d", i)))}); err != nil {
				errs <- fmt.Errorf("HTTP producer: %w", err)
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	deadline := time.After(2 * time.Minute)
	for done := 0; done < len(groups); done++ {
		select {
		case <-complete:
		case <-deadline:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("after 2 minutes: %d of %d events per group seen: plain %d, coop %d, single %d",
				done, total, len(seen["plain"]), len(seen["coop"]), len(seen["single"]))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, g := range groups {
		for payload, n := range seen[g] {
			if n != 1 {
				t.Errorf("%s: %s delivered %d times", g, payload, n)
			}
		}
	}
	if msgs := logs.matching("prepared statement", "lost the single reader", "error"); len(msgs) > 0 {
		t.Errorf("logged behind the bouncer:\n%s", strings.Join(msgs, "\n"))
	}
}

// errorLog keeps the warnings and errors logged to it.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errorLog) Enabled(_ context.Context, level slog.Level) bool { return level >= slog.LevelWarn }

func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.msgs = append(l.msgs, b.String())
	l.mu.Unlock()
	return nil
}

func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *errorLog) WithGroup(string) slog.Handler      { return l }

// matching returns the records that contain any of words.
func (l *errorLog) matching(words ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.msgs {
		for _, w := range words {
			if strings.Contains(strings.ToLower(m), w) {
				out = append(out, m)
				break
			}
		}
	}
	return out
}
