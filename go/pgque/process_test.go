package pgque_test

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/pgque"
)

// Consumers in OS processes of their own: this test binary, started again
// with PGQUE_TEST_CHILD_DSN set, runs one Consumer (childMain) whose handler
// records every message it starts in the table handled, and stops on
// SIGTERM.  The tests kill, freeze and restart such processes.

// childEnv names the settings of a child process.
const (
	childDSN      = "PGQUE_TEST_CHILD_DSN"      // database; its presence makes the binary a child
	childQueue    = "PGQUE_TEST_CHILD_QUEUE"    // queue and consumer name
	childConsumer = "PGQUE_TEST_CHILD_CONSUMER" //
	childLease    = "PGQUE_TEST_CHILD_LEASE"    // WithLease, when set
	childSleep    = "PGQUE_TEST_CHILD_SLEEP"    // how long the handler takes per message
	childTx       = "PGQUE_TEST_CHILD_TX"       // when set: WithTransaction, the handler writes to effects first
)

// ledgerSQL creates the table children record handled messages in: who
// (pid), which message, from which piece, and when the handler started.
const ledgerSQL = `CREATE TABLE handled (n bigserial PRIMARY KEY, pid int NOT NULL, msg_id bigint NOT NULL,
                                         piece bigint NOT NULL, started timestamptz NOT NULL DEFAULT clock_timestamp())`

// childMain runs a child process's Consumer until SIGTERM; it never returns.
func childMain() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	fail := func(err error) {
		log.Error("child failed", "err", err)
		os.Exit(2)
	}
	pool, err := pgxpool.New(ctx, os.Getenv(childDSN))
	if err != nil {
		fail(err)
	}
	client := pgque.New(pool)
	opts := []pgque.Option{pgque.WithLogger(log), pgque.WithPollInterval(20 * time.Millisecond)}
	if s := os.Getenv(childLease); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			fail(err)
		}
		opts = append(opts, pgque.WithLease(d))
	}
	var work time.Duration
	if s := os.Getenv(childSleep); s != "" {
		if work, err = time.ParseDuration(s); err != nil {
			fail(err)
		}
	}
	inTx := os.Getenv(childTx) != ""
	if inTx {
		opts = append(opts, pgque.WithTransaction())
	}
	c := client.NewConsumer(os.Getenv(childQueue), os.Getenv(childConsumer), opts...)
	pid := os.Getpid()
	c.Handle("*", func(hctx context.Context, m pgque.Message) error {
		if inTx {
			if _, err := pgque.TxFromContext(hctx).Exec(hctx, `INSERT INTO effects VALUES ($1, 'tx')`, m.MsgID); err != nil {
				return err
			}
		}
		if _, err := pool.Exec(context.WithoutCancel(hctx), `INSERT INTO handled (pid, msg_id, piece) VALUES ($1, $2, $3)`,
			pid, m.MsgID, m.BatchID); err != nil {
			return err
		}
		select {
		case <-time.After(work):
			return nil
		case <-hctx.Done():
			return hctx.Err()
		}
	})
	if err := c.Start(ctx); err != nil {
		fail(err)
	}
	pool.Close()
	os.Exit(0)
}

// child is a running child process.
type child struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
}

// syncBuffer is a bytes.Buffer safe for a process's writes and our reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startChild starts a child running a Consumer of queue/consumer on dsn,
// with extra settings (childLease, childSleep).
func startChild(t *testing.T, dsn, queue, consumer string, extra ...string) *child {
	t.Helper()
	return spawnChild(t, nil, append([]string{childDSN + "=" + dsn, childQueue + "=" + queue, childConsumer + "=" + consumer}, extra...)...)
}

// spawnChild starts this test binary again as a child (its TestMain picks
// the role from env), with stdout written to stdout (nil: discarded); the
// child is killed if still running when the test ends.
func spawnChild(t *testing.T, stdout *syncBuffer, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	c := &child{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = c.stderr
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill() //nolint:errcheck
			<-c.done
		}
	})
	return c
}

// stop ends the child with SIGTERM (graceful) and waits for it.
func (c *child) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			t.Errorf("child %d: %v; its log:\n%s", c.cmd.Process.Pid, err, c.stderr)
		}
	case <-time.After(consumerTimeout):
		t.Fatalf("child %d did not stop; its log:\n%s", c.cmd.Process.Pid, c.stderr)
	}
}

// kill ends the child with SIGKILL, as a crash, and waits for it.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	c.done <- <-c.done
}

// takenOver lists the pieces a child logged as taken over by another worker
// (its lease ran out while it lived): their messages may be handled twice.
func (c *child) takenOver() map[int64]bool {
	out := map[int64]bool{}
	for _, m := range takenOverRE.FindAllStringSubmatch(c.stderr.String(), -1) {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		out[id] = true
	}
	return out
}

var takenOverRE = regexp.MustCompile(`taken over by another worker.*batch_id=(\d+)`)

// handling is one row of the ledger.
type handling struct {
	pid          int
	msgID, piece int64
	started      time.Time
}

// ledger reads the handled table in the order the handlings were recorded.
func ledger(t *testing.T, pool *pgxpool.Pool) []handling {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT pid, msg_id, piece, started FROM handled ORDER BY n`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var hs []handling
	for rows.Next() {
		var h handling
		if err := rows.Scan(&h.pid, &h.msgID, &h.piece, &h.started); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return hs
}

// waitHandled waits until every id in want was handled at least once.
func waitHandled(t *testing.T, pool *pgxpool.Pool, want []int64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var missing int
		if err := pool.QueryRow(context.Background(),
			`SELECT count(*) FROM unnest($1::bigint[]) id WHERE NOT EXISTS (SELECT 1 FROM handled h WHERE h.msg_id = id)`,
			want).Scan(&missing); err != nil {
			t.Fatal(err)
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events never handled within %v", missing, len(want), d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newProcessDB returns a database with queue q, subscribed consumer "c"
// and the ledger, its DSN, and a Ticker running on it.
func newProcessDB(t *testing.T, q string) (*pgque.Client, *pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	pool := srv.NewPool(t)
	dsn := pool.Config().ConnString()
	client := pgque.New(pool)
	if _, err := client.CreateQueue(ctx, q); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Subscribe(ctx, q, "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, ledgerSQL); err != nil {
		t.Fatal(err)
	}
	tctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		client.RunTicker(tctx, pgque.WithTickInterval(5*time.Millisecond), pgque.WithMaintInterval(50*time.Millisecond)) //nolint:errcheck
	}()
	t.Cleanup(func() { stop(); <-done })
	return client, pool, dsn
}

// sendJobs sends n events in transactions of up to per events and returns
// their ids.
func sendJobs(t *testing.T, client *pgque.Client, q string, n, per int, rng *rand.Rand) []int64 {
	t.Helper()
	var ids []int64
	for len(ids) < n {
		evs := make([]pgque.Event, min(1+rng.IntN(per), n-len(ids)))
		for i := range evs {
			evs[i] = pgque.Event{Type: "job", Payload: len(ids) + i}
		}
		got, err := client.SendBatch(context.Background(), q, evs)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	return ids
}

// Two processes run the same consumer with default options: 200 events are
// handled 200 times, each once.
func TestConsumerReplicasExactlyOnce(t *testing.T) {
	client, pool, dsn := newProcessDB(t, "q")
	a, b := startChild(t, dsn, "q", "c"), startChild(t, dsn, "q", "c")
	ids := sendJobs(t, client, "q", 200, 10, rand.New(rand.NewPCG(1, 2)))
	waitHandled(t, pool, ids, consumerTimeout)
	a.stop(t)
	b.stop(t)
	hs := ledger(t, pool)
	times := map[int64]int{}
	for _, h := range hs {
		times[h.msgID]++
	}
	for _, id := range ids {
		if times[id] != 1 {
			t.Errorf("event %d handled %d times", id, times[id])
		}
	}
	if len(hs) != len(ids) {
		t.Errorf("%d handlings of %d events; want each once", len(hs), len(ids))
	}
	if ws, err := client.Workers(context.Background(), "q", "c"); err != nil || len(ws) != 0 {
		t.Errorf("workers after both stopped = %+v, %v; want none (they unregister)", ws, err)
	}
}

// Three processes share a consumer while a random one is killed with
// SIGKILL every few hundred milliseconds and started again.  Every
// committed event is handled at least once; an event handled twice was
// first handled in the piece its process was working on when killed (or in
// one its process reported taken over): only work that was handed out and
// not acknowledged is repeated.
func TestConsumerProcessesKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes for several seconds; skipped in -short mode")
	}
	client, pool, dsn := newProcessDB(t, "q")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	start := func() *child {
		return startChild(t, dsn, "q", "c", childLease+"=1s", childSleep+"=1ms")
	}
	children := []*child{start(), start(), start()}
	var dead []*child // killed, with what they logged
	killed := map[int]bool{}

	var ids []int64
	sendUntil := time.Now().Add(5 * time.Second)
	nextKill := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(sendUntil) {
		ids = append(ids, sendJobs(t, client, "q", 20, 20, rng)...)
		time.Sleep(5 * time.Millisecond)
		if time.Now().After(nextKill) {
			i := rng.IntN(len(children))
			children[i].kill(t)
			killed[children[i].cmd.Process.Pid] = true
			dead = append(dead, children[i])
			children[i] = start()
			nextKill = time.Now().Add(time.Duration(200+rng.IntN(300)) * time.Millisecond)
		}
	}
	waitHandled(t, pool, ids, 60*time.Second)
	for _, c := range children {
		c.stop(t)
	}

	hs := ledger(t, pool)
	lastPiece := map[int]int64{} // per process, the piece it handled last
	first := map[int64]handling{}
	pids := map[int]bool{}
	for _, h := range hs {
		lastPiece[h.pid] = h.piece
		pids[h.pid] = true
		if _, ok := first[h.msgID]; !ok {
			first[h.msgID] = h
		}
	}
	takenOver := map[int64]bool{}
	for _, c := range append(dead, children...) {
		for p := range c.takenOver() {
			takenOver[p] = true
		}
	}
	seen := map[int64]int{}
	dups := 0
	for _, h := range hs {
		seen[h.msgID]++
		if seen[h.msgID] != 2 {
			continue
		}
		dups++
		f := first[h.msgID]
		if !(killed[f.pid] && f.piece == lastPiece[f.pid]) && !takenOver[f.piece] {
			t.Errorf("event %d handled again by %d; first by %d (killed %v) in piece %d, its last piece %d: "+
				"that piece was not one it lost", h.msgID, h.pid, f.pid, killed[f.pid], f.piece, lastPiece[f.pid])
		}
	}
	t.Logf("%d events, %d handlings, %d events handled twice or more, %d kills, %d processes handled some",
		len(ids), len(hs), dups, len(killed), len(pids))
	if len(killed) < 5 {
		t.Errorf("only %d kills; the test did not exercise crashes", len(killed))
	}
	if len(pids) < 3 {
		t.Errorf("only %d processes handled events; want them to share the work", len(pids))
	}
}

// A worker frozen (SIGSTOP) for longer than its lease, in the middle of a
// piece, loses its batch to the other worker; once it runs again it starts
// none of that piece's remaining messages.
func TestConsumerFrozenWorkerStops(t *testing.T) {
	if testing.Short() {
		t.Skip("freezes a process for seconds; skipped in -short mode")
	}
	client, pool, dsn := newProcessDB(t, "q")
	slow := []string{childLease + "=600ms", childSleep + "=200ms"}
	evs := make([]pgque.Event, 6)
	for i := range evs {
		evs[i] = pgque.Event{Type: "job", Payload: i}
	}
	ids, err := client.SendBatch(context.Background(), "q", evs) // one transaction: one batch
	if err != nil {
		t.Fatal(err)
	}
	a := startChild(t, dsn, "q", "c", slow...)
	waitHandled(t, pool, ids[:1], consumerTimeout) // a holds the batch and works on it
	b := startChild(t, dsn, "q", "c", slow...)
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // past a's lease: b takes the batch over
	var resumed time.Time
	if err := pool.QueryRow(context.Background(), `SELECT clock_timestamp()`).Scan(&resumed); err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitHandled(t, pool, ids, consumerTimeout)
	time.Sleep(600 * time.Millisecond) // time for a to (wrongly) go on
	a.stop(t)
	b.stop(t)
	byB := 0
	for _, h := range ledger(t, pool) {
		switch {
		case h.pid == a.cmd.Process.Pid && h.started.After(resumed):
			t.Errorf("a started event %d at %v, after it resumed (%v) and had lost its batch", h.msgID, h.started, resumed)
		case h.pid == b.cmd.Process.Pid:
			byB++
		}
	}
	if byB != len(ids) {
		t.Errorf("b handled %d events; want all %d (it took the whole batch over)", byB, len(ids))
	}
	if len(a.takenOver()) == 0 {
		t.Errorf("a did not log that its batch was taken over; its log:\n%s", a.stderr)
	}
}

func init() {
	if os.Getenv(childDSN) != "" {
		childMain()
	}
}

// Consumers WithTransaction in processes killed with SIGKILL between a
// handler's write and the commit of its piece: every event's write is
// committed exactly once.  First a process whose handler blocks after its
// write is killed (that write is undone and made again by the next
// process); then two processes are killed at random while events are sent.
func TestConsumerTransactionKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes for several seconds; skipped in -short mode")
	}
	ctx := context.Background()
	client, pool, dsn := newProcessDB(t, "q")
	if _, err := pool.Exec(ctx, effectsSQL); err != nil {
		t.Fatal(err)
	}
	start := func(sleep string) *child {
		return startChild(t, dsn, "q", "c", childTx+"=1", childLease+"=1s", childSleep+"="+sleep)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	ids := sendJobs(t, client, "q", 20, 5, rng)

	blocked := start("1h")
	waitFor(t, "the blocked handler's write", func() bool { return len(ledger(t, pool)) > 0 })
	blocked.kill(t)
	undone := ledger(t, pool)[0]
	if undone.pid != blocked.cmd.Process.Pid {
		t.Fatalf("ledger %+v, want the blocked process %d", undone, blocked.cmd.Process.Pid)
	}

	children := []*child{start("20ms"), start("20ms")}
	kills := 0
	for until := time.Now().Add(4 * time.Second); time.Now().Before(until); {
		ids = append(ids, sendJobs(t, client, "q", 10, 10, rng)...)
		time.Sleep(time.Duration(100+rng.IntN(200)) * time.Millisecond)
		i := rng.IntN(len(children))
		children[i].kill(t)
		children[i] = start("20ms")
		kills++
	}
	waitFor(t, "every event's write", func() bool {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(DISTINCT msg_id) FROM effects WHERE msg_id = ANY ($1)`, ids).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == len(ids)
	})
	for _, c := range children {
		c.stop(t)
	}

	var dups []int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(array_agg(msg_id), '{}') FROM (SELECT msg_id FROM effects GROUP BY msg_id HAVING count(*) > 1) d`).Scan(&dups); err != nil {
		t.Fatal(err)
	}
	if len(dups) > 0 {
		t.Errorf("events whose writes were committed more than once: %v", dups)
	}
	handled := map[int64]int{}
	hs := ledger(t, pool)
	for _, h := range hs {
		handled[h.msgID]++
	}
	if handled[undone.msgID] < 2 {
		t.Errorf("event %d, whose handler was killed after its write, was handled %d times; want again after the kill",
			undone.msgID, handled[undone.msgID])
	}
	t.Logf("%d events, %d handlings, %d kills", len(ids), len(hs), kills+1)
	if len(hs) <= len(ids) {
		t.Errorf("%d handlings of %d events: no handling was interrupted by a kill", len(hs), len(ids))
	}
}
