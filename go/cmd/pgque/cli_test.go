package main

// End-to-end tests of the command-line tool: each runs the built binary
// against a database of the shared throwaway server, and checks its output
// (table and --json), its stderr and its exit status.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgque/pgque/extension"
	"github.com/pgque/pgque/go/pgque/pgquetest"
	"github.com/pgque/pgque/go/pgquehttp"
)

var (
	srv *pgquetest.Server
	bin string // the pgque binary under test
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pgque-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "pgque")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	srv, err = pgquetest.Start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Cleanup()
	return m.Run()
}

// result is what one run of the binary did.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs the binary on its own against a database; it has no $PGQUE_DSN.
type cli struct {
	t   *testing.T
	dsn string
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	dsn, err := srv.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &cli{t: t, dsn: dsn}
}

func command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PGQUE_DSN=") && !strings.HasPrefix(kv, "PGQUE_DIRECT_DSN=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	return cmd
}

func runBin(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := command(ctx, args...)
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errOut
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errOut.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("pgque %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// run runs pgque ARGS --dsn DSN with stdin.
func (c *cli) runIn(stdin string, args ...string) result {
	c.t.Helper()
	return runBin(c.t, stdin, append(args, "--dsn", c.dsn)...)
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	return c.runIn("", args...)
}

// ok runs a command that must succeed, and returns its stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 || r.stderr != "" {
		c.t.Fatalf("pgque %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// okJSON runs a command with --json that must succeed, into v.
func (c *cli) okJSON(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("pgque %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// received runs receive ARGS --json, which must succeed, and returns the
// piece's messages.
func (c *cli) received(args ...string) []pgquehttp.Message {
	c.t.Helper()
	var b pgquehttp.Batch
	c.okJSON(&b, append([]string{"receive"}, args...)...)
	return b.Messages
}

// fails runs a command that must exit with code, printing "pgque: ..." and
// stderrHas on stderr and nothing on stdout.
func (c *cli) fails(code int, stderrHas string, args ...string) {
	c.t.Helper()
	checkFails(c.t, c.run(args...), code, stderrHas, args)
}

func checkFails(t *testing.T, r result, code int, stderrHas string, args []string) {
	t.Helper()
	if r.code != code || !strings.HasPrefix(r.stderr, "pgque: ") || !strings.Contains(r.stderr, stderrHas) {
		t.Errorf("pgque %s: exit %d, stderr %q; want exit %d and %q", strings.Join(args, " "),
			r.code, r.stderr, code, stderrHas)
	}
	if strings.HasPrefix(r.stderr, "pgque: pgque:") {
		t.Errorf("pgque %s: stderr repeats the prefix: %q", strings.Join(args, " "), r.stderr)
	}
}

func (c *cli) sql(query string, args ...any) {
	c.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, query, args...); err != nil {
		c.t.Fatalf("%s: %v", query, err)
	}
}

// compact returns JSON without insignificant space.
func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return "invalid JSON: " + string(raw)
	}
	return b.String()
}

// bareDatabase creates a database without pgque and returns its DSN.
func (c *cli) bareDatabase(name string) string {
	c.t.Helper()
	name = fmt.Sprintf("%s_%d", name, time.Now().UnixNano()) // unique on the shared server
	c.sql("CREATE DATABASE " + name)
	dsn, err := withDatabase(c.dsn, name)
	if err != nil {
		c.t.Fatal(err)
	}
	return dsn
}

// tableRows splits a table's output into rows of fields, header first.
func tableRows(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		rows = append(rows, strings.Fields(line))
	}
	return rows
}

func TestQueueCommands(t *testing.T) {
	c := newCLI(t)
	if out := c.ok("queue", "create", "orders"); out != "queue 'orders' created\n" {
		t.Errorf("create: %q", out)
	}
	c.fails(exitConflict, "queue 'orders' already exists", "queue", "create", "orders")
	// Both print the queue, as the HTTP API answers its creation.
	var created pgquehttp.Queue
	c.okJSON(&created, "queue", "create", "orders", "--if-not-exists")
	if created.Name != "orders" || created.MaxRetries != 5 {
		t.Errorf("create --if-not-exists: %+v", created)
	}
	c.okJSON(&created, "queue", "create", "audit")
	if created.Name != "audit" || created.Tables != 3 {
		t.Errorf("create --json: %+v", created)
	}
	c.fails(exitUsage, "invalid queue name", "queue", "create", "bad name")

	rows := tableRows(c.ok("queues"))
	if len(rows) != 3 || rows[0][0] != "QUEUE" || rows[1][0] != "audit" || rows[2][0] != "orders" {
		t.Errorf("queues table: %q", rows)
	}
	var ql pgquehttp.QueueList
	c.okJSON(&ql, "queues")
	if qs := ql.Queues; len(qs) != 2 || qs[1].Name != "orders" || qs[1].MaxRetries != 5 || qs[1].RetryBackoffBaseSeconds != 10 ||
		qs[1].Tables != 3 || qs[1].RotationPeriodSeconds != 7200 {
		t.Errorf("queues --json: %+v", ql)
	}

	out := c.ok("queue", "config", "orders", "max_retries=7", "ticker_max_lag = 250ms", "retry_backoff_cap=1h30m")
	for _, want := range []string{"max_retries         7\n", "ticker_max_lag      250ms\n",
		"retry_backoff_cap   1h30m\n", "rotation_period     2h\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("config: no %q in\n%s", want, out)
		}
	}
	var q pgquehttp.Queue
	c.okJSON(&q, "queue", "config", "orders")
	if q.MaxRetries != 7 || q.TickerMaxLagSeconds != 0.25 || q.RetryBackoffCapSeconds != 5400 {
		t.Errorf("config --json: %+v", q)
	}
	// The values printed are valid input.
	c.ok("queue", "config", "orders", "ticker_max_lag=250ms", "retry_backoff_cap=1h30m", "ticker_idle_period=1m30s")
	c.fails(exitUsage, "invalid parameter", "queue", "config", "orders", "bogus=1")
	c.fails(exitUsage, `"max_retries" is not KEY=VALUE`, "queue", "config", "orders", "max_retries")
	c.fails(exitNotFound, "queue 'nope' does not exist", "queue", "config", "nope")

	c.ok("subscribe", "orders", "billing")
	c.fails(exitConflict, "still has consumers", "queue", "drop", "orders")
	if out := c.ok("queue", "drop", "orders", "--force"); out != "queue 'orders' dropped\n" {
		t.Errorf("drop: %q", out)
	}
	c.fails(exitNotFound, "queue 'orders' does not exist", "queue", "drop", "orders")
	dropped := deleted{true}
	c.okJSON(&dropped, "queue", "drop", "orders", "--if-exists")
	if dropped.Deleted {
		t.Errorf("drop --if-exists: %+v", dropped)
	}
}

func TestSubscriptions(t *testing.T) {
	c := newCLI(t)
	c.ok("queue", "create", "orders")
	if out := c.ok("subscribe", "orders", "billing"); out != "consumer 'billing' subscribed to queue 'orders'\n" {
		t.Errorf("subscribe: %q", out)
	}
	c.fails(exitConflict, "already subscribed", "subscribe", "orders", "billing")
	c.ok("subscribe", "orders", "billing", "--if-not-exists")
	c.ok("subscribe", "orders", "audit")
	c.fails(exitNotFound, "queue 'nope' does not exist", "subscribe", "nope", "billing")

	rows := tableRows(c.ok("consumers", "orders"))
	if len(rows) != 3 || rows[0][1] != "CONSUMER" || rows[1][1] != "audit" || rows[2][1] != "billing" ||
		rows[2][5] != "-" || rows[2][6] != "-" || rows[2][9] != "no" {
		t.Errorf("consumers table: %q", rows)
	}
	c.sql(`SELECT pgque.send('orders', 'x', '1'::jsonb)`)
	c.sql(`SELECT pgque.force_tick('orders')`)
	c.ok("receive", "orders", "billing", "--single-reader")
	var cl pgquehttp.ConsumerList
	c.okJSON(&cl, "consumers")
	if cs := cl.Consumers; len(cs) != 2 || cs[1].Name != "billing" || cs[1].Queue != "orders" || cs[1].CurrentBatch == nil ||
		cs[1].PendingEvents != 1 || cs[0].CurrentBatch != nil || cs[1].BlockingRotation ||
		cs[1].BatchAgeSeconds == nil || *cs[1].BatchAgeSeconds < 0 || cs[0].BatchAgeSeconds != nil {
		t.Errorf("consumers --json: %+v", cl)
	}
	c.fails(exitNotFound, "queue 'nope' does not exist", "consumers", "nope")

	var res deleted
	c.okJSON(&res, "unsubscribe", "orders", "billing")
	if !res.Deleted {
		t.Errorf("unsubscribe --json: %+v", res)
	}
	c.fails(exitNotFound, "consumer 'billing' is not subscribed", "unsubscribe", "orders", "billing")
	c.okJSON(&res, "unsubscribe", "orders", "billing", "--if-exists")
	if res.Deleted {
		t.Errorf("unsubscribe --if-exists: %+v", res)
	}
}

func TestSendReceiveAck(t *testing.T) {
	c := newCLI(t)
	c.ok("queue", "create", "orders")
	c.ok("subscribe", "orders", "billing")

	if out := c.ok("send", "orders", "--type", "order.created", `{"id": 1}`, "--extra1", "eu", "--extra4", ""); out != "1\n" {
		t.Errorf("send: %q", out)
	}
	var sent pgquehttp.SendBatchResponse
	c.okJSON(&sent, "send", "orders", "-t", "note", `"hello"`)
	if len(sent.IDs) != 1 || sent.IDs[0] != 2 {
		t.Errorf("send --json: %+v", sent)
	}
	// From stdin, in batches of 100: 250 events, with a blank line.
	var lines strings.Builder
	for i := range 250 {
		if i == 100 {
			lines.WriteString("\n")
		}
		fmt.Fprintf(&lines, `{"payload": {"n": %d}, "extra2": "x%d"}`+"\n", i, i)
	}
	r := c.runIn(lines.String(), "send", "orders", "--type", "bulk")
	ids := strings.Fields(r.stdout)
	if r.code != 0 || len(ids) != 250 || ids[0] != "3" || ids[249] != "252" {
		t.Fatalf("send from stdin: exit %d, %d ids (%q...), stderr %q", r.code, len(ids), ids[:min(3, len(ids))], r.stderr)
	}
	// A type per line, payload absent (NULL), and --json.
	r = c.runIn(`{"type": "a"}`+"\n"+`{"type": "b", "payload": [1, 2], "extra3": "z"}`, "send", "orders", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &sent); r.code != 0 || err != nil || len(sent.IDs) != 2 || sent.IDs[0] != 253 {
		t.Fatalf("send from stdin --json: exit %d, %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// A text payload sent through SQL.
	c.sql(`SELECT pgque.send('orders', 'text', 'plain text')`)

	// Nothing before a tick.
	var msgs []pgquehttp.Message
	msgs = c.received("orders", "billing")
	if len(msgs) != 0 {
		t.Errorf("receive before a tick: %+v", msgs)
	}
	if out := c.ok("receive", "orders", "billing"); out != "MSG_ID  BATCH_ID  TYPE  RETRY  CREATED_AT  PAYLOAD\n" {
		t.Errorf("empty receive table: %q", out)
	}
	c.sql(`SELECT pgque.force_tick('orders')`)

	// Read as the consumer's one plain reader: the same messages come again
	// until they are acknowledged.
	rows := tableRows(c.ok("receive", "orders", "billing", "--single-reader", "--max", "2"))
	if len(rows) != 3 || rows[0][0] != "MSG_ID" || strings.Join(rows[1], " ") != strings.Join([]string{
		"1", rows[1][1], "order.created", "-", rows[1][4], `{"id":`, "1}"}, " ") || rows[2][2] != "note" ||
		rows[2][5] != `"hello"` || rows[1][1] != rows[2][1] {
		t.Errorf("receive table: %q", rows)
	}
	msgs = c.received("orders", "billing", "--single-reader", "--max", "1000")
	if len(msgs) != 255 {
		t.Fatalf("receive --json: %d messages, want 255", len(msgs))
	}
	first, bulk, last := msgs[0], msgs[102], msgs[254]
	if first.MsgID != 1 || first.BatchID == 0 || first.Type != "order.created" || compact(first.Payload) != `{"id":1}` ||
		first.RetryCount != nil || first.Extra1 == nil || *first.Extra1 != "eu" || first.Extra2 != nil ||
		first.Extra4 == nil || *first.Extra4 != "" || first.CreatedAt.IsZero() {
		t.Errorf("first message: %+v", first)
	}
	if bulk.MsgID != 103 || bulk.Type != "bulk" || compact(bulk.Payload) != `{"n":100}` || bulk.Extra2 == nil || *bulk.Extra2 != "x100" {
		t.Errorf("message 103: %+v", bulk)
	}
	if msgs[252].Type != "a" || string(msgs[252].Payload) != "null" || msgs[253].Extra3 == nil || *msgs[253].Extra3 != "z" {
		t.Errorf("messages 253, 254: %+v %+v", msgs[252], msgs[253])
	}
	if last.Type != "text" || string(last.Payload) != `"plain text"` {
		t.Errorf("text payload: %+v", last)
	}

	// Not acknowledged: the same messages again, as a new piece.
	piece := msgs[0].BatchID
	msgs = c.received("orders", "billing", "--single-reader", "--max", "1000")
	if len(msgs) != 255 || msgs[0].MsgID != 1 || msgs[0].BatchID == piece {
		t.Errorf("receive again: %d messages, first %+v", len(msgs), msgs[0])
	}
	// The id of the whole batch is not what ack takes.
	var cl pgquehttp.ConsumerList
	c.okJSON(&cl, "consumers", "orders")
	if len(cl.Consumers) != 1 || cl.Consumers[0].CurrentBatch == nil {
		t.Fatalf("consumers: %+v", cl)
	}
	c.fails(exitUsage, "is the id of a batch, not of a piece", "ack", fmt.Sprint(*cl.Consumers[0].CurrentBatch))
	var acked pgquehttp.AckResponse
	c.okJSON(&acked, "ack", fmt.Sprint(piece))
	if !acked.Acked {
		t.Errorf("ack --json: %+v", acked)
	}
	c.fails(exitNotFound, "nothing to acknowledge", "ack", fmt.Sprint(piece))
	c.fails(exitUsage, `batch id "x" is not a positive integer`, "ack", "x")

	// Readers compete by default: a second receive gets the next messages,
	// not the same ones, while peek shows both, held by their workers.
	for i := range 4 {
		c.ok("send", "orders", "-t", "y", fmt.Sprint(i))
	}
	c.sql(`SELECT pgque.force_tick('orders')`)
	var got1, got2 []pgquehttp.Message
	got1 = c.received("orders", "billing", "--max", "2")
	got2 = c.received("orders", "billing", "--max", "2")
	if len(got1) != 2 || len(got2) != 2 || got1[0].MsgID == got2[0].MsgID || got1[0].BatchID == got2[0].BatchID {
		t.Fatalf("two receives: %+v and %+v; want different messages", got1, got2)
	}
	var pr pgquehttp.PeekResponse
	c.okJSON(&pr, "peek", "orders", "billing")
	if peeked := pr.Messages; len(peeked) != 4 || !strings.HasPrefix(peeked[0].Worker, "cli-") || peeked[0].Worker == peeked[3].Worker {
		t.Errorf("peek: %+v", pr)
	}
	if rows := tableRows(c.ok("peek", "orders", "billing", "--max", "1")); len(rows) != 2 || rows[0][2] != "WORKER" {
		t.Errorf("peek table: %q", rows)
	}
	c.ok("ack", fmt.Sprint(got2[0].BatchID))
	c.ok("ack", fmt.Sprint(got1[0].BatchID))
	if out := c.ok("peek", "orders", "billing"); out != "MSG_ID  BATCH  WORKER  TYPE  RETRY  CREATED_AT  PAYLOAD\n" {
		t.Errorf("peek after the acks: %q", out)
	}

	// --ack: acknowledged, and its worker forgotten; the next receive has nothing.
	var ws pgquehttp.WorkerList
	c.okJSON(&ws, "workers", "orders", "billing")
	c.ok("send", "orders", "-t", "x", "1")
	c.sql(`SELECT pgque.force_tick('orders')`)
	msgs = c.received("orders", "billing", "--ack")
	if len(msgs) != 1 || msgs[0].Type != "x" {
		t.Errorf("receive --ack: %d messages, first %+v", len(msgs), msgs[0])
	}
	msgs = c.received("orders", "billing")
	if len(msgs) != 0 {
		t.Errorf("receive after --ack: %+v", msgs)
	}
	var after pgquehttp.WorkerList
	c.okJSON(&after, "workers", "orders", "billing")
	if len(after.Workers) != len(ws.Workers) {
		t.Errorf("workers before %+v, after receive --ack %+v; want the same", ws, after)
	}

	c.fails(exitNotFound, "queue 'nope' does not exist", "receive", "nope", "billing")
	c.fails(exitNotFound, "consumer 'nobody' is not subscribed", "receive", "orders", "nobody")
	c.fails(exitNotFound, "queue 'nope' does not exist", "send", "nope", "-t", "x", "1")
	c.fails(exitUsage, "--max must be at least 1", "receive", "orders", "billing", "--max", "0")
	c.fails(exitUsage, "--type is required", "send", "orders", "{}")
	c.fails(exitUsage, "PAYLOAD is not valid JSON", "send", "orders", "-t", "x", "{")
}

func TestPauseResume(t *testing.T) {
	c := newCLI(t)
	c.ok("queue", "create", "orders")
	c.ok("subscribe", "orders", "billing")
	if out := c.ok("queue", "pause", "orders"); out != "queue 'orders' paused\n" {
		t.Errorf("pause: %q", out)
	}
	if out := c.ok("queue", "pause", "orders"); out != "queue 'orders' is paused already\n" {
		t.Errorf("pause again: %q", out)
	}
	rows := tableRows(c.ok("queues"))
	if len(rows) != 2 || rows[0][8] != "PAUSED" || rows[1][8] != "yes" || rows[0][10] != "ERRORS" || rows[1][10] != "0" {
		t.Errorf("queues table: %q", rows)
	}
	var ql pgquehttp.QueueList
	c.okJSON(&ql, "queues")
	if qs := ql.Queues; len(qs) != 1 || !qs[0].Paused || qs[0].PausedAt == nil || qs[0].EventBytes <= 0 {
		t.Errorf("queues --json: %+v", ql)
	}
	// Nothing is handed out while paused.
	c.ok("send", "orders", "-t", "x", "1")
	c.sql(`SELECT pgque.force_tick('orders')`)
	var msgs []pgquehttp.Message
	msgs = c.received("orders", "billing")
	if len(msgs) != 0 {
		t.Errorf("received while paused: %+v", msgs)
	}
	var res pgquehttp.PauseResponse
	c.okJSON(&res, "queue", "resume", "orders")
	if !res.Changed {
		t.Errorf("resume --json: %+v", res)
	}
	if out := c.ok("queue", "resume", "orders"); out != "queue 'orders' is not paused\n" {
		t.Errorf("resume again: %q", out)
	}
	if rows := tableRows(c.ok("queues")); rows[1][8] != "no" {
		t.Errorf("queues table after resuming: %q", rows)
	}
	msgs = c.received("orders", "billing")
	if len(msgs) != 1 {
		t.Errorf("received after resuming: %+v", msgs)
	}
	c.fails(exitNotFound, "queue 'nope' does not exist", "queue", "pause", "nope")
	c.fails(exitNotFound, "queue 'nope' does not exist", "queue", "resume", "nope")
	c.fails(exitUsage, "needs 1 argument(s) (QUEUE)", "queue", "pause")
}

func TestScheduleCommands(t *testing.T) {
	c := newCLI(t)
	c.ok("queue", "create", "jobs")
	out := c.ok("schedule", "create", "cleanup", "jobs", "--type", "cleanup", "--every", "15m",
		"--start-at", "2020-01-01T00:05:00Z")
	if !regexp.MustCompile(`^schedule 'cleanup' created, first run \d{4}-\d\d-\d\dT\d\d:(05|20|35|50):00Z\n$`).MatchString(out) {
		t.Errorf("create: %q", out)
	}
	// It prints the schedule, as the HTTP API answers its creation.
	var created pgquehttp.Schedule
	c.okJSON(&created, "schedule", "create", "nightly", "jobs", "-t", "report", "--cron", "0 3 * * *",
		"--tz", "Europe/Berlin", `{"scope": "day"}`)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if created.Name != "nightly" || created.Queue != "jobs" || created.NextRun.In(berlin).Hour() != 3 || created.Runs != 0 {
		t.Errorf("create --json: %+v", created)
	}
	c.fails(exitConflict, "schedule 'nightly' already exists", "schedule", "create", "nightly", "jobs", "-t", "x", "--every", "1h")
	// With --if-not-exists, the existing one, unchanged.
	var existing pgquehttp.Schedule
	c.okJSON(&existing, "schedule", "create", "nightly", "jobs", "-t", "x", "--every", "1h", "--if-not-exists")
	if existing.Type != "report" || existing.Cron == nil || !existing.NextRun.Equal(created.NextRun) {
		t.Errorf("create --if-not-exists: %+v", existing)
	}

	rows := tableRows(c.ok("schedules"))
	if len(rows) != 3 || rows[0][0] != "SCHEDULE" || rows[1][0] != "cleanup" || rows[1][4] != "-" ||
		strings.Join(rows[1][7:], " ") != "every 15m" || rows[2][0] != "nightly" || rows[2][6] != "Europe/Berlin" ||
		strings.Join(rows[2][7:], " ") != "cron 0 3 * * *" {
		t.Errorf("schedules table: %q", rows)
	}
	var sl pgquehttp.ScheduleList
	c.okJSON(&sl, "schedules")
	if ss := sl.Schedules; len(ss) != 2 || ss[0].Name != "cleanup" || ss[0].EverySeconds == nil || *ss[0].EverySeconds != 900 ||
		ss[0].Cron != nil || string(ss[0].Payload) != "null" || ss[0].Type != "cleanup" || ss[0].Runs != 0 ||
		ss[1].Cron == nil || *ss[1].Cron != "0 3 * * *" || compact(ss[1].Payload) != `{"scope":"day"}` ||
		ss[1].EverySeconds != nil || ss[1].TimeZone != "Europe/Berlin" {
		t.Errorf("schedules --json: %+v", sl)
	}

	// A PAYLOAD of null is a NULL payload, as for send and over HTTP.
	c.ok("schedule", "create", "nullp", "jobs", "-t", "x", "--every", "1h", "null")
	c.sql(`DO $$ BEGIN
	         IF (SELECT payload IS NOT NULL FROM pgque.list_schedules() WHERE schedule_name = 'nullp') THEN
	           RAISE 'payload %', (SELECT payload FROM pgque.list_schedules() WHERE schedule_name = 'nullp');
	         END IF;
	       END $$`)
	c.ok("schedule", "drop", "nullp")
	c.fails(exitNotFound, "queue 'nope' does not exist", "schedule", "create", "x", "nope", "-t", "x", "--every", "1h")
	c.fails(exitUsage, "invalid cron expression", "schedule", "create", "x", "jobs", "-t", "x", "--cron", "61 * * * *")
	c.fails(exitUsage, "--type is required", "schedule", "create", "x", "jobs", "--every", "1h")
	c.fails(exitUsage, "exactly one of --every (whole seconds, at least 1s) and --cron", "schedule", "create", "x", "jobs", "-t", "x")
	c.fails(exitUsage, "exactly one of --every (whole seconds, at least 1s) and --cron", "schedule", "create", "x", "jobs", "-t", "x", "--every", "1h", "--cron", "@daily")
	c.fails(exitUsage, "PAYLOAD is not valid JSON", "schedule", "create", "x", "jobs", "-t", "x", "--every", "1h", "{")
	c.fails(exitUsage, "--start-at", "schedule", "create", "x", "jobs", "-t", "x", "--every", "1h", "--start-at", "tomorrow")
	c.fails(exitUsage, "StartAt applies to Every only", "schedule", "create", "x", "jobs", "-t", "x", "--cron", "@daily",
		"--start-at", "2020-01-01T00:00:00Z")

	if out := c.ok("schedule", "drop", "cleanup"); out != "schedule 'cleanup' dropped\n" {
		t.Errorf("drop: %q", out)
	}
	c.fails(exitNotFound, "schedule 'cleanup' does not exist", "schedule", "drop", "cleanup")
	dropped := deleted{true}
	c.okJSON(&dropped, "schedule", "drop", "cleanup", "--if-exists")
	if dropped.Deleted {
		t.Errorf("drop --if-exists: %+v", dropped)
	}
	sl = pgquehttp.ScheduleList{}
	c.okJSON(&sl, "schedules")
	if len(sl.Schedules) != 1 || sl.Schedules[0].Name != "nightly" {
		t.Errorf("schedules after the drop: %+v", sl)
	}
}

func TestWorkerCommands(t *testing.T) {
	c := newCLI(t)
	c.ok("queue", "create", "orders")
	c.ok("subscribe", "orders", "billing")
	if out := c.ok("workers", "orders", "billing"); out != "WORKER  BATCH  LEASE_LEFT  LAST_SEEN\n" {
		t.Errorf("no workers: %q", out)
	}
	c.ok("send", "orders", "-t", "a", "1")
	c.sql(`SELECT pgque.force_tick('orders')`)
	var msgs []pgquehttp.Message
	msgs = c.received("orders", "billing", "--worker", "w1", "--lease", "2m")
	if len(msgs) != 1 || msgs[0].Type != "a" {
		t.Fatalf("receive --worker: %+v", msgs)
	}
	// Nothing left for w2, which is not even made a worker row.
	msgs = c.received("orders", "billing", "--worker", "w2")
	if len(msgs) != 0 {
		t.Errorf("receive --worker w2: %+v", msgs)
	}
	rows := tableRows(c.ok("workers", "orders", "billing"))
	if len(rows) != 2 || rows[1][0] != "w1" || rows[1][1] == "-" || rows[1][2] != "2m0s" && !strings.HasPrefix(rows[1][2], "1m59") {
		t.Errorf("workers table: %q", rows)
	}
	var wl pgquehttp.WorkerList
	c.okJSON(&wl, "workers", "orders", "billing")
	if ws := wl.Workers; len(ws) != 1 || ws[0].Name != "w1" ||
		ws[0].BatchID == nil || ws[0].LeaseLeftSeconds == nil || *ws[0].LeaseLeftSeconds <= 60 {
		t.Errorf("workers --json: %+v", wl)
	}
	// --ack finishes the worker's batch.
	msgs = c.received("orders", "billing", "--worker", "w1", "--ack")
	if len(msgs) != 1 {
		t.Errorf("receive --worker --ack: %+v", msgs)
	}
	c.okJSON(&wl, "workers", "orders", "billing")
	if wl.Workers[0].BatchID != nil {
		t.Errorf("w1 after --ack: %+v", wl.Workers[0])
	}
	// A plain reader's batch open: workers must wait.
	c.ok("send", "orders", "-t", "b", "2")
	c.sql(`SELECT pgque.force_tick('orders')`)
	c.ok("receive", "orders", "billing", "--single-reader")
	c.fails(exitConflict, "its workers wait until it is finished", "receive", "orders", "billing", "--worker", "w1")

	c.fails(exitUsage, "--single-reader goes without --worker and --lease", "receive", "orders", "billing",
		"--single-reader", "--lease", "1m")
	c.fails(exitUsage, "--lease 0s is not in (0, 24h0m0s]", "receive", "orders", "billing", "--worker", "w1", "--lease", "0")
	c.fails(exitNotFound, "consumer 'nobody' is not subscribed", "workers", "orders", "nobody")
	c.fails(exitNotFound, "queue 'nope' does not exist", "workers", "nope", "billing")
	c.fails(exitUsage, "needs 2 argument(s)", "workers", "orders")
}

// receive QUEUE,QUEUE... asks the queues in order, names each message's
// queue, and with --ack forgets its worker on the queue that handed out.
func TestReceiveSeveralQueues(t *testing.T) {
	c := newCLI(t)
	for _, q := range []string{"urgent", "normal"} {
		c.ok("queue", "create", q)
		c.ok("subscribe", q, "billing")
		c.ok("send", q, "-t", q, "1")
		c.sql(`SELECT pgque.force_tick('` + q + `')`)
	}
	rows := tableRows(c.ok("receive", "urgent,normal", "billing", "--ack"))
	if len(rows) != 2 || rows[0][0] != "QUEUE" || rows[1][0] != "urgent" || rows[1][3] != "urgent" {
		t.Errorf("receive table: %q", rows)
	}
	var b pgquehttp.Batch
	c.okJSON(&b, "receive", "urgent,normal", "billing", "--worker", "w1")
	if b.Queue != "normal" || b.Worker != "w1" || len(b.Messages) != 1 || b.Messages[0].Queue != "normal" {
		t.Errorf("receive --json: %+v", b)
	}
	for q, want := range map[string]string{"urgent": "WORKER  BATCH  LEASE_LEFT  LAST_SEEN\n", "normal": ""} {
		out := c.ok("workers", q, "billing")
		if want != "" && out != want || want == "" && !strings.Contains(out, "w1") {
			t.Errorf("workers of %s: %q", q, out)
		}
	}
	if msgs := c.received("urgent,normal", "billing", "--single-reader"); len(msgs) != 0 {
		t.Errorf("receive with nothing new: %+v", msgs)
	}
	c.fails(exitNotFound, "queue 'nope' does not exist", "receive", "urgent,nope", "billing")
}

func TestSendStdinErrors(t *testing.T) {
	c := newCLI(t)
	c.ok("queue", "create", "q")
	// Batches before the bad line stay sent, and their ids are printed.
	in := "{\"type\": \"a\"}\n{\"type\": \"a\"}\n{\"type\": \"a\"}\n{\"type\": \"a\", \"bogus\": 1}\n"
	r := c.runIn(in, "send", "q", "--batch-size", "2")
	checkFails(t, r, exitUsage, `line 4: json: unknown field "bogus"`, []string{"send"})
	if r.stdout != "1\n2\n" {
		t.Errorf("ids before the bad line: %q", r.stdout)
	}
	r = c.runIn("{\"type\": \"a\"}\n{\"payload\": 1}\n", "send", "q", "--json")
	checkFails(t, r, exitUsage, `line 2: no type`, []string{"send", "--json"})
	if r.stdout != "{\n  \"ids\": []\n}\n" {
		t.Errorf("--json ids before the bad line: %q", r.stdout)
	}
	r = c.runIn("not json\n", "send", "q", "-t", "x")
	checkFails(t, r, exitUsage, "line 1:", []string{"send"})
	r = c.runIn("{\"type\": \"a\"}\n", "send", "nope")
	checkFails(t, r, exitNotFound, "lines 1-1: send batch: queue 'nope' does not exist", []string{"send", "nope"})
}

func TestNackAndDeadLetters(t *testing.T) {
	c := newCLI(t)
	c.ok("queue", "create", "orders")
	c.ok("queue", "config", "orders", "max_retries=1")
	c.ok("subscribe", "orders", "billing")
	c.ok("send", "orders", "-t", "a", `{"n": 1}`)
	c.ok("send", "orders", "-t", "b", `{"n": 2}`)
	c.sql(`SELECT pgque.force_tick('orders')`)
	var got []pgquehttp.Message
	got = c.received("orders", "billing")
	if len(got) != 2 {
		t.Fatalf("receive: %+v", got)
	}
	piece := fmt.Sprint(got[0].BatchID)

	if out := c.ok("nack", piece, "1", "--retry-after", "1500ms"); out != "retry\n" {
		t.Errorf("nack: %q", out)
	}
	c.fails(exitNotFound, "batch 999 is not open", "nack", "999", "1")
	c.fails(exitNotFound, "message 7 is not an unacknowledged message of batch "+piece, "nack", piece, "7")
	c.fails(exitUsage, "--retry-after -1s is negative", "nack", piece, "2", "--retry-after", "-1s")
	c.ok("ack", piece)
	// The retry of message 1 was due after 2 s (rounded up); make it due now.
	c.sql(`UPDATE pgque.retry_queue SET rq_due = now() - interval '1 second'`)
	c.sql(`SELECT pgque.maint()`)
	c.sql(`SELECT pgque.force_tick('orders')`)
	var msgs []pgquehttp.Message
	msgs = c.received("orders", "billing")
	if len(msgs) != 1 || msgs[0].MsgID != 1 || msgs[0].RetryCount == nil || *msgs[0].RetryCount != 1 {
		t.Fatalf("retry: %+v", msgs)
	}
	var nacked pgquehttp.NackResponse
	c.okJSON(&nacked, "nack", fmt.Sprint(msgs[0].BatchID), "1", "--reason", "still\tdown")
	if nacked.Outcome != pgquehttp.OutcomeDead {
		t.Errorf("nack --json: %+v", nacked)
	}
	c.ok("ack", fmt.Sprint(msgs[0].BatchID))

	rows := tableRows(c.ok("dlq", "list", "orders"))
	if len(rows) != 2 || rows[0][0] != "DL_ID" || rows[1][0] != "1" || rows[1][1] != "billing" ||
		rows[1][3] != `still\tdown` || rows[1][4] != "1" || rows[1][5] != "a" || rows[1][6] != "1" {
		t.Errorf("dlq list: %q", rows)
	}
	var dll pgquehttp.DeadLetterList
	c.okJSON(&dll, "dlq", "list", "orders")
	if dls := dll.DeadLetters; len(dls) != 1 || dls[0].ID != 1 || dls[0].Consumer != "billing" || dls[0].Reason == nil ||
		*dls[0].Reason != "still\tdown" || dls[0].Message.MsgID != 1 || compact(dls[0].Message.Payload) != `{"n":1}` ||
		dls[0].DeadAt.IsZero() || dls[0].Message.BatchID != 0 {
		t.Errorf("dlq list --json: %+v", dll)
	}
	c.fails(exitNotFound, "queue 'nope' does not exist", "dlq", "list", "nope")

	var replayed []pgquehttp.ReplayResponse
	c.okJSON(&replayed, "dlq", "replay", "1")
	if len(replayed) != 1 || replayed[0].ID != 1 || replayed[0].MsgID != 1 {
		t.Errorf("dlq replay --json: %+v", replayed)
	}
	c.fails(exitNotFound, "dead letter 1 does not exist", "dlq", "replay", "1")
	c.sql(`SELECT pgque.force_tick('orders')`)
	msgs = c.received("orders", "billing")
	if len(msgs) != 1 || msgs[0].MsgID != 1 || msgs[0].RetryCount != nil {
		t.Fatalf("replayed: %+v", msgs)
	}
	// Dead-letter it again, twice over (max_retries 0), and purge.
	c.ok("queue", "config", "orders", "max_retries=0")
	c.ok("nack", fmt.Sprint(msgs[0].BatchID), "1")
	c.ok("ack", fmt.Sprint(msgs[0].BatchID))
	c.fails(exitUsage, "give either --older-than or --all", "dlq", "purge", "orders")
	c.fails(exitUsage, "give either --older-than or --all", "dlq", "purge", "orders", "--all", "--older-than", "1h")
	if out := c.ok("dlq", "purge", "orders", "--older-than", "1h"); out != "0 dead letter(s) purged\n" {
		t.Errorf("purge --older-than: %q", out)
	}
	var purged pgquehttp.PurgeResponse
	c.okJSON(&purged, "dlq", "purge", "orders", "--all")
	if purged.Purged != 1 {
		t.Errorf("purge --all --json: %+v", purged)
	}
}

func TestMigrate(t *testing.T) {
	c := newCLI(t)
	// The database of newCLI has pgque: migrate is a no-op there.
	var res struct {
		Method  string `json:"method"`
		Version string `json:"version"`
	}
	c.okJSON(&res, "migrate")
	if res.Method != "extension" || res.Version == "" {
		t.Errorf("migrate on an installed database: %+v", res)
	}
	for _, method := range []string{"extension", "sql"} {
		fresh := &cli{t: t, dsn: c.bareDatabase("migrate_" + method)}
		fresh.fails(exitError, "pgque", "queues")
		args := []string{"install"}
		if method == "sql" {
			args = append(args, "--sql")
		}
		out := fresh.ok(args...)
		if want := "installed (as " + method + ")\n"; !strings.HasSuffix(out, want) {
			t.Errorf("%s: %q, want ...%q", method, out, want)
		}
		fresh.ok("queue", "create", "q")
		fresh.ok("migrate")
	}
}

func TestUsageErrors(t *testing.T) {
	c := newCLI(t)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"bogus"}, `unknown command "bogus" for "pgque"`},
		{[]string{"queue"}, "needs a subcommand: create, drop, config"},
		{[]string{"queue", "bogus"}, `unknown command "bogus" for "pgque queue"`},
		{[]string{"dlq", "bogus"}, `unknown command "bogus"`},
		{[]string{"queue", "create"}, "needs 1 argument(s) (QUEUE), got 0"},
		{[]string{"receive", "q"}, "needs 2 argument(s)"},
		{[]string{"queues", "x"}, "takes no arguments"},
		{[]string{"queues", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"receive", "q", "c", "--max", "x"}, "invalid argument"},
		{[]string{"nack", "1", "0"}, `message id "0" is not a positive integer`},
		{[]string{"demo", "--rate", "0"}, "--rate must be between"},
	} {
		r := c.run(tc.args...)
		checkFails(t, r, exitUsage, tc.msg, tc.args)
		if !strings.Contains(r.stderr, "for usage") {
			t.Errorf("%q: no pointer to --help in %q", tc.args, r.stderr)
		}
	}
	// A value the engine refuses (PQ006) is exit status 2 too, but the
	// command line was right: no pointer to --help.
	c.ok("queue", "create", "hintq")
	r0 := c.run("queue", "config", "hintq", "bogus=1")
	checkFails(t, r0, exitUsage, "bogus", []string{"queue", "config", "hintq", "bogus=1"})
	if strings.Contains(r0.stderr, "for usage") {
		t.Errorf("an engine refusal points to --help: %q", r0.stderr)
	}
	c.ok("queue", "drop", "hintq")
	// No database at all.
	r := runBin(t, "", "queues")
	checkFails(t, r, exitUsage, "no database: give --dsn or set PGQUE_DSN", []string{"queues"})
	// $PGQUE_DSN works, and help does not print it.
	cmd := command(context.Background(), "queues", "--json")
	cmd.Env = append(cmd.Env, "PGQUE_DSN="+c.dsn)
	if out, err := cmd.Output(); err != nil || compact(out) != `{"queues":[]}` {
		t.Errorf("queues with $PGQUE_DSN: %v, %q", err, out)
	}
	cmd = command(context.Background(), "--help")
	cmd.Env = append(cmd.Env, "PGQUE_DSN=secret-dsn")
	if out, err := cmd.Output(); err != nil || strings.Contains(string(out), "secret-dsn") ||
		!strings.Contains(string(out), "130  interrupted") {
		t.Errorf("help: %v\n%s", err, out)
	}
	// version needs no database.
	r = runBin(t, "", "version")
	// One number: the tool's, the engine's it embeds, the extension's.
	want := regexp.QuoteMeta(extension.Version)
	if r.code != 0 || !regexp.MustCompile(`^pgque `+want+`, engine `+want+` \(build [0-9a-f]{16}\), module \S+, go\S+ \w+/\w+\n$`).MatchString(r.stdout) {
		t.Errorf("version: %+v", r)
	}
	var v struct{ Version, Engine string }
	r = runBin(t, "", "version", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 0 || v.Engine != extension.Version || v.Version != extension.Version {
		t.Errorf("version --json: %+v, %v; want version and engine %s", r, err, extension.Version)
	}
	// A server that is not there.
	r = runBin(t, "", "queues", "--dsn", "postgres://u@127.0.0.1:1/x?connect_timeout=5")
	checkFails(t, r, exitError, "connect", []string{"queues"})
}

// startBin starts the binary with stdout on a pipe read line by line.
func startBin(t *testing.T, args ...string) (*exec.Cmd, <-chan string, *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := command(ctx, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	return cmd, lines, &stderr
}

// waitLine reads lines until one matches re, and returns them all.
func waitLine(t *testing.T, lines <-chan string, re *regexp.Regexp) []string {
	t.Helper()
	var seen []string
	timeout := time.After(time.Minute)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before a line matching %v:\n%s", re, strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			if re.MatchString(l) {
				return seen
			}
		case <-timeout:
			t.Fatalf("no line matching %v within a minute:\n%s", re, strings.Join(seen, "\n"))
		}
	}
}

func rest(lines <-chan string) []string {
	var out []string
	for l := range lines {
		out = append(out, l)
	}
	return out
}

func TestTicker(t *testing.T) {
	c := newCLI(t)
	c.ok("queue", "create", "orders")
	c.ok("subscribe", "orders", "billing")
	ctx := context.Background()
	listener, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, `LISTEN pgque_orders`); err != nil {
		t.Fatal(err)
	}

	cmd, lines, stderr := startBin(t, "ticker", "--dsn", c.dsn, "--tick-interval", "10ms")
	c.ok("send", "orders", "-t", "x", "1")
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := listener.WaitForNotification(wctx); err != nil {
		t.Fatalf("no tick from `pgque ticker`: %v\nstderr:\n%s", err, stderr)
	}
	var msgs []pgquehttp.Message
	msgs = c.received("orders", "billing")
	if len(msgs) != 1 {
		t.Errorf("after the tick: %+v", msgs)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	out := rest(lines)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ticker after SIGINT: %v\nstderr:\n%s", err, stderr)
	}
	if len(out) != 0 || !strings.Contains(stderr.String(), "became leader") ||
		!strings.Contains(stderr.String(), "pgque ticker stopped") {
		t.Errorf("ticker output %q, stderr:\n%s", out, stderr)
	}

	// On a database without pgque it fails at once.
	r := runBin(t, "", "ticker", "--dsn", c.bareDatabase("ticker_bare"))
	checkFails(t, r, exitError, "not installed in this database", []string{"ticker"})
	// On a database with another build of the engine (stale extension
	// files: a function the ticker calls may be missing) too.
	c.sql(`CREATE OR REPLACE FUNCTION pgque.engine_id() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'feedfacefeedface' $$`)
	r = c.run("ticker")
	checkFails(t, r, exitError, "another build of the same version", []string{"ticker"})
}

var summaryRe = regexp.MustCompile(`^Summary: (\d+) events sent`)

// checkDemo checks the demo's output after the summary line.
func checkDemo(t *testing.T, out []string, consumers int) {
	t.Helper()
	var sent int
	for i, l := range out {
		m := summaryRe.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		sent, _ = strconv.Atoi(m[1])
		if sent == 0 || len(out) < i+consumers+2 {
			t.Fatalf("summary:\n%s", strings.Join(out, "\n"))
		}
		for j := 1; j <= consumers; j++ {
			want := fmt.Sprintf("  demo-%d received %d: all of them", j, sent)
			if out[i+j] != want {
				t.Errorf("summary line %q, want %q", out[i+j], want)
			}
		}
		if lat := out[i+consumers+1]; !strings.Contains(lat, fmt.Sprintf("latency over %d deliveries: p50 ", sent*consumers)) {
			t.Errorf("latency line: %q", lat)
		}
		return
	}
	t.Fatalf("no summary:\n%s", strings.Join(out, "\n"))
}

func TestDemoWithDSN(t *testing.T) {
	c := newCLI(t)
	r := c.run("demo", "--duration", "2500ms", "--rate", "50", "--consumers", "2")
	out := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("demo: exit %d, stderr %q\n%s", r.code, r.stderr, r.stdout)
	}
	checkDemo(t, out, 2)
	if !regexp.MustCompile(`(?m)^ time +sent +demo-1 +demo-2 +pending +latency`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^ +1s +\d+ +\d+ +\d+ +\d+ +p50 `).MatchString(r.stdout) {
		t.Errorf("no status lines:\n%s", r.stdout)
	}
	if !regexp.MustCompile(`(?m)^Queue demo_[0-9a-f]{8} dropped\.$`).MatchString(r.stdout) {
		t.Errorf("queue not dropped:\n%s", r.stdout)
	}
	var ql pgquehttp.QueueList
	c.okJSON(&ql, "queues")
	if len(ql.Queues) != 0 {
		t.Errorf("queues left behind: %+v", ql)
	}

	// Interrupted: it stops cleanly, with a summary, and exits 0.
	cmd, lines, stderr := startBin(t, "demo", "--dsn", c.dsn, "--duration", "0", "--rate", "50", "--consumers", "1")
	seen := waitLine(t, lines, regexp.MustCompile(`^ +1s +\d+`))
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	seen = append(seen, rest(lines)...)
	if err := cmd.Wait(); err != nil || stderr.Len() > 0 {
		t.Fatalf("demo after SIGINT: %v, stderr %q\n%s", err, stderr, strings.Join(seen, "\n"))
	}
	checkDemo(t, seen, 1)
	if !strings.Contains(strings.Join(seen, "\n"), "Interrupted: stopping.") {
		t.Errorf("interrupt not reported:\n%s", strings.Join(seen, "\n"))
	}
	c.okJSON(&ql, "queues")
	if len(ql.Queues) != 0 {
		t.Errorf("queues left behind after SIGINT: %+v", ql)
	}

	// A reader that goes away does not keep it from cleaning up.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd = command(ctx, "demo", "--dsn", c.dsn, "--duration", "1500ms", "--rate", "20", "--consumers", "1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	stdout.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("demo with its reader gone: %v, stderr %q", err, stderr)
	}
	c.okJSON(&ql, "queues")
	if len(ql.Queues) != 0 {
		t.Errorf("queues left behind by the demo without a reader: %+v", ql)
	}

	// Without pgque in the database it says so.
	r = runBin(t, "", "demo", "--dsn", c.bareDatabase("demo_bare"), "--duration", "1s")
	checkFails(t, r, exitError, "pgque migrate", []string{"demo"})
}

// TestDemoThrowaway runs the demo as `make demo` does: no DSN, a server of
// its own, removed at the end.
func TestDemoThrowaway(t *testing.T) {
	r := runBin(t, "", "demo", "--duration", "1500ms", "--rate", "50", "--consumers", "2")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("demo: exit %d, stderr %q\n%s", r.code, r.stderr, r.stdout)
	}
	out := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	checkDemo(t, out, 2)
	m := regexp.MustCompile(`(?m)^PostgreSQL is at (postgres://\S+)\n\(data and log in (\S+), removed at the end\)$`).
		FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no DSN and directory in:\n%s", r.stdout)
	}
	if _, err := os.Stat(m[2]); !os.IsNotExist(err) {
		t.Errorf("server directory %s still there: %v", m[2], err)
	}
	if out[len(out)-1] != "Throwaway server stopped and removed." || !strings.Contains(r.stdout, "pgque installed (as ") {
		t.Errorf("output:\n%s", r.stdout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, m[1]); err == nil {
		conn.Close(ctx)
		t.Errorf("the throwaway server still accepts connections")
	}
}

// The exit statuses are a contract with scripts (docs/operations.md).
func TestExitCodesStable(t *testing.T) {
	got := []int{exitOK, exitError, exitUsage, exitNotFound, exitConflict, exitInterrupted}
	if fmt.Sprint(got) != "[0 1 2 3 4 130]" {
		t.Errorf("exit codes changed: %v", got)
	}
}

// Input PostgreSQL's text cannot hold, out-of-range flags and a malformed
// --dsn are usage errors (exit 2), named in the message, and nothing is
// sent; none is a server error (exit 1).
func TestBadInputIsUsage(t *testing.T) {
	c := newCLI(t)
	c.ok("queue", "create", "q")
	c.ok("subscribe", "q", "c")
	for _, tc := range []struct{ stdin, msg string }{
		{"{\"type\": \"a\x00b\"}\n", "line 1: NUL byte at column 12"},
		{"{\"type\": \"a\"}\n{\"type\": \"a\\u0000b\"}\n", "line 2: type holds a NUL character"},
		{"{\"type\": \"a\", \"extra2\": \"x\\u0000\"}\n", "line 1: extra2 holds a NUL character"},
		{"{\"type\": \"a\xffb\"}\n", "line 1: not valid UTF-8"},
		{"{\"type\": \"a\", \"payload\": \"\xc3\"}\n", "line 1: not valid UTF-8"},
	} {
		r := c.runIn(tc.stdin, "send", "q")
		checkFails(t, r, exitUsage, tc.msg, []string{"send", fmt.Sprintf("%q", tc.stdin)})
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"receive", "q", "c", "--max", "3000000000"}, "max 3000000000 is out of range"},
		{[]string{"receive", "q", "c", "--single-reader", "--max", "3000000000"}, "max 3000000000 is out of range"},
		{[]string{"peek", "q", "c", "--max", "3000000000"}, "max 3000000000 is out of range"},
		{[]string{"dlq", "list", "q", "--limit", "3000000000"}, "--limit 3000000000 is out of range"},
		{[]string{"receive", "q", "c", "--lease", "-1s"}, "--lease -1s is not in"},
		{[]string{"nack", "1", "1", "--retry-after", "-1s"}, "--retry-after -1s is negative"},
		{[]string{"nack", "1", "1", "--retry-after", "1000000h"}, "retry delay 3600000000 s is out of range"},
		{[]string{"dlq", "purge", "q", "--older-than", "-5s"}, "--older-than -5s is negative"},
		{[]string{"dlq", "purge", "q", "--older-than", "2000000h"}, "older_than"},
		{[]string{"schedule", "create", "s", "q", "-t", "x", "--every", "-1s"}, "must be at least 1 second"},
		{[]string{"schedule", "create", "s", "q", "-t", "x", "--every", "1h", "--start-at", "9999-01-01T00:00:00Z"},
			"start time 9999-01-01T00:00:00Z is out of range: must be from 100 years ago to 100 years from now"},
		{[]string{"schedule", "create", "s", "q", "-t", "x", "--every", "1h", "--start-at", "0001-01-01T00:00:00Z"},
			"--start-at \"0001-01-01T00:00:00Z\" is out of range"},
		{[]string{"queue", "create", "a\xffb"}, "argument \"a\\xffb\" is not valid UTF-8"},
		{[]string{"send", "q", "-t", "x\xff", "1"}, "--type \"x\\xff\" is not valid UTF-8"},
		{[]string{"send", "q", "-t", "x", "1", "--extra1", "\xfe"}, "--extra1 \"\\xfe\" is not valid UTF-8"},
	} {
		c.fails(exitUsage, tc.msg, tc.args...)
	}
	c.sql(`SELECT pgque.force_tick('q')`)
	if out := c.ok("peek", "q", "c"); strings.Count(out, "\n") != 1 {
		t.Errorf("something was sent: %q", out)
	}
	// A malformed DSN, from --dsn or $PGQUE_DSN, never echoing the password.
	for _, dsn := range []string{"postgres://u:hunter2@h:notaport/db", "host=h port=notaport password=hunter2",
		"postgres://%zz"} {
		r := runBin(t, "", "queues", "--dsn", dsn)
		checkFails(t, r, exitUsage, "invalid --dsn", []string{"queues", "--dsn", dsn})
		cmd := command(context.Background(), "queue", "create", "q2")
		cmd.Env = append(cmd.Env, "PGQUE_DSN="+dsn)
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitUsage ||
			!strings.Contains(errOut.String(), "invalid --dsn") {
			t.Errorf("$PGQUE_DSN=%q: %v, %q", dsn, err, errOut.String())
		}
		if strings.Contains(r.stderr+errOut.String(), "hunter2") {
			t.Errorf("the password is printed: %q %q", r.stderr, errOut.String())
		}
		args := []string{"queues", "--dsn", "host=h", "--direct-dsn", dsn}
		r = runBin(t, "", args...)
		checkFails(t, r, exitUsage, "invalid --direct-dsn", args)
		if strings.Contains(r.stderr, "hunter2") {
			t.Errorf("the password is printed: %q", r.stderr)
		}
	}
	// --pg-bin is for a server the command starts itself.
	for _, args := range [][]string{
		{"bench", "--dsn", "host=h", "--pg-bin", "/usr/lib/postgresql/15/bin"},
		{"serve", "--dsn", "host=h", "--pg-bin", "/usr/lib/postgresql/15/bin"},
		{"demo", "--dsn", "host=h", "--pg-bin", "/usr/lib/postgresql/15/bin"},
	} {
		checkFails(t, runBin(t, "", args...), exitUsage, "not go with --dsn", args)
	}
	args := []string{"demo", "--pg-bin", "/nonexistent/bin", "--duration", "1s"}
	checkFails(t, runBin(t, "", args...), exitError, "no initdb, pg_ctl and postgres in /nonexistent/bin", args)
	// A direct DSN is the database behind the pooler of --dsn: alone it
	// means nothing.
	args = []string{"queues", "--direct-dsn", "host=h"}
	cmd := command(context.Background(), args...) // without $PGQUE_DSN
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitUsage || !strings.Contains(errOut.String(), "goes with --dsn") {
		t.Errorf("pgque %s: %v, %q; want exit %d, goes with --dsn", strings.Join(args, " "), err, errOut.String(), exitUsage)
	}
}

// "payload": null on stdin, and a PAYLOAD argument null, send a NULL
// payload (as an absent payload does, and as over HTTP), not the JSON text
// null; the table prints a NULL payload as nothing.
func TestSendNullPayload(t *testing.T) {
	c := newCLI(t)
	c.ok("queue", "create", "q")
	c.ok("subscribe", "q", "c")
	r := c.runIn("{\"type\": \"a\", \"payload\": null}\n{\"type\": \"a\"}\n{\"type\": \"a\", \"payload\": 1}\n", "send", "q")
	if r.code != 0 || r.stdout != "1\n2\n3\n" {
		t.Fatalf("send: %+v", r)
	}
	c.ok("send", "q", "-t", "a", "null")
	c.sql(`DO $$ BEGIN
	         IF (SELECT count(*) FROM pgque.peek('q', 'c', 10)) <> 0 THEN RAISE 'ticked already'; END IF;
	       END $$`)
	c.sql(`SELECT pgque.force_tick('q')`)
	// What the engine stored, as SQL sees it.
	c.sql(`DO $$ BEGIN
	         IF (SELECT array_agg(payload IS NULL ORDER BY msg_id) FROM pgque.peek('q', 'c', 10))
	            IS DISTINCT FROM ARRAY[true, true, false, true] THEN
	           RAISE 'payloads: %', (SELECT array_agg(coalesce(payload, 'NULL') ORDER BY msg_id) FROM pgque.peek('q', 'c', 10));
	         END IF;
	       END $$`)
	rows := tableRows(c.ok("receive", "q", "c", "--ack"))
	if len(rows) != 5 || len(rows[1]) != 5 || len(rows[3]) != 6 || rows[3][5] != "1" {
		t.Errorf("receive: %q", rows)
	}
}

// pgque version and pgque.version() agree: the engine version and build
// printed are the embedded engine's, read from its script, and with a
// database the CLI prints the database's too and warns when they differ.
func TestVersionAgrees(t *testing.T) {
	c := newCLI(t)
	var v struct {
		Version, Module, Engine, Database string
		EngineBuild                       string `json:"engine_build"`
		DatabaseBuild                     string `json:"database_build"`
	}
	r := runBin(t, "", "version", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 0 || r.stderr != "" {
		t.Fatalf("version --json: %+v, %v", r, err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var db, id string
	if err := conn.QueryRow(ctx, `SELECT pgque.version(), pgque.engine_id()`).Scan(&db, &id); err != nil {
		t.Fatal(err)
	}
	if v.Engine != db || v.EngineBuild != id || v.Database != "" || v.Version != db || v.Module == "" {
		t.Errorf("version --json without a database: %+v; the database's engine is %q %q", v, db, id)
	}
	engine := db + " (build " + id + ")"
	out := c.ok("version")
	if !strings.Contains(out, ", engine "+engine+", ") || !strings.HasSuffix(out, "\ndatabase engine "+engine+"\n") {
		t.Errorf("version with a database: %q", out)
	}
	c.okJSON(&v, "version")
	if v.Database != db || v.DatabaseBuild != id {
		t.Errorf("version --json with a database: %+v", v)
	}
	// Another build of the same version (stale extension files): a warning.
	c.sql(`CREATE OR REPLACE FUNCTION pgque.engine_id() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'feedfacefeedface' $$`)
	r = c.run("version")
	if r.code != 0 || !strings.HasSuffix(r.stdout, "\ndatabase engine "+db+" (build feedfacefeedface)\n") ||
		!strings.Contains(r.stderr, "warning: the database's engine is not this program's: the database has pgque "+
			db+" (build feedfacefeedface), this program's is "+engine+": another build of the same version") {
		t.Errorf("version with another build: %+v", r)
	}
	// A database whose engine is another version: a warning, and still exit 0.
	c.sql(`CREATE OR REPLACE FUNCTION pgque.version() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT '0.0.1' $$`)
	r = c.run("version")
	if r.code != 0 || !strings.HasSuffix(r.stdout, "\ndatabase engine 0.0.1 (build feedfacefeedface)\n") ||
		!strings.Contains(r.stderr, "the database has pgque 0.0.1 (build feedfacefeedface), this program's is "+engine+" (the older") {
		t.Errorf("version with an older database: %+v", r)
	}
	// A database without pgque, or none reachable: a warning, and exit 0.
	r = runBin(t, "", "version", "--dsn", c.bareDatabase("nopgque"))
	if r.code != 0 || !strings.Contains(r.stderr, "warning: no version from the database: not installed in this database ('pgque migrate' installs it)") {
		t.Errorf("version without pgque: %+v", r)
	}
}

// A database without pgque: commands fail with exit 1 and say so, naming
// the command that would install it.
func TestNotInstalled(t *testing.T) {
	c := newCLI(t)
	dsn := c.bareDatabase("bare")
	for _, args := range [][]string{
		{"send", "orders", "-t", "x", "{}"},
		{"receive", "orders", "billing"},
		{"queues"},
	} {
		args = append(args, "--dsn", dsn)
		checkFails(t, runBin(t, "", args...), exitError,
			"pgque is not installed in this database ('pgque migrate' installs it)", args)
	}
}

func TestJobCommand(t *testing.T) {
	c := newCLI(t)
	c.ok("queue", "create", "orders")
	c.ok("subscribe", "orders", "billing")
	c.ok("subscribe", "orders", "mailer")
	c.ok("send", "orders", "-t", "a", `{"n": 1}`)
	rows := tableRows(c.ok("job", "orders", "1"))
	if len(rows) != 3 || rows[0][0] != "CONSUMER" || rows[1][0] != "billing" || rows[1][1] != "not_ticked" ||
		rows[2][0] != "mailer" || rows[2][1] != "not_ticked" || rows[1][7] != "a" {
		t.Errorf("job before a tick: %q", rows)
	}
	c.sql(`SELECT pgque.force_tick('orders')`)
	if got := c.received("orders", "billing"); len(got) != 1 {
		t.Fatalf("receive: %+v", got)
	}
	var st pgquehttp.MessageStatus
	c.okJSON(&st, "job", "orders", "1")
	if st.MsgID != 1 || len(st.Consumers) != 2 || st.Consumers[0].State != "handed_out" ||
		st.Consumers[1].State != "pending" || st.Consumers[1].PositionAt == nil ||
		st.Consumers[0].Message == nil || compact(st.Consumers[0].Message.Payload) != `{"n":1}` {
		t.Errorf("job --json after billing received: %+v", st)
	}
	rows = tableRows(c.ok("job", "orders", "99"))
	if len(rows) != 3 || rows[1][1] != "unknown" || rows[1][8] != "-" {
		t.Errorf("job of an unknown id: %q", rows)
	}
	c.fails(exitNotFound, "queue 'nope' does not exist", "job", "nope", "1")
	c.fails(exitUsage, `message id "x" is not a positive integer`, "job", "orders", "x")
	c.fails(exitUsage, "needs 2 argument(s)", "job", "orders")

	c.ok("send", "orders", "-t", "b", `{"n": 2}`)
	c.sql(`SELECT pgque.force_tick('orders')`)
	rows = tableRows(c.ok("jobs", "orders", "--state", "pending", "--consumer", "mailer"))
	if len(rows) != 3 || rows[0][0] != "MSG_ID" || rows[1][0] != "1" || rows[1][2] != "pending" || rows[2][0] != "2" {
		t.Errorf("jobs --state pending: %q", rows)
	}
	var ml pgquehttp.MessageList
	c.okJSON(&ml, "jobs", "orders", "--state", "pending", "--consumer", "mailer", "--after", "1", "--type", "b")
	if len(ml.Messages) != 1 || ml.Messages[0].MsgID != 2 || ml.Messages[0].Consumer != "mailer" {
		t.Errorf("jobs --after 1 --type b --json: %+v", ml)
	}
	if rows = tableRows(c.ok("jobs", "orders", "--state", "dead")); len(rows) != 1 {
		t.Errorf("jobs --state dead: %q", rows)
	}
	c.fails(exitUsage, "--state is required", "jobs", "orders")
	c.fails(exitUsage, "--limit 0 is out of range", "jobs", "orders", "--state", "dead", "--limit", "0")
	c.fails(exitUsage, "list_state", "jobs", "orders", "--state", "bogus")
	c.fails(exitNotFound, "queue 'nope' does not exist", "jobs", "nope", "--state", "dead")

	var cr pgquehttp.CancelResponse
	c.okJSON(&cr, "cancel", "orders", "2", "--consumer", "mailer")
	if cr.MsgID != 2 || len(cr.Consumers) != 1 || cr.Consumers[0] != (pgquehttp.CancelResult{Consumer: "mailer", Outcome: "cancelled"}) {
		t.Errorf("cancel --json: %+v", cr)
	}
	// --consumer "" is refused, never read as every consumer: billing's
	// copy is still there for the cancel below
	c.fails(exitUsage, "--consumer must not be empty", "cancel", "orders", "2", "--consumer", "")
	c.fails(exitUsage, "--consumer must not be empty", "jobs", "orders", "--state", "pending", "--consumer", "")
	if rows = tableRows(c.ok("cancel", "orders", "2")); len(rows) != 3 || rows[1][0] != "billing" || rows[1][1] != "cancelled" ||
		rows[2][1] != "cancelled" {
		t.Errorf("cancel for every consumer: %q", rows)
	}
	c.fails(exitNotFound, "", "cancel", "orders", "2", "--consumer", "nobody")

	// a delayed job from the command line
	var sent pgquehttp.SendBatchResponse
	c.okJSON(&sent, "send", "orders", "--type", "later", "--delay", "1h", `{"n": 1}`)
	ml = pgquehttp.MessageList{}
	c.okJSON(&ml, "jobs", "orders", "--state", "delayed")
	if len(sent.IDs) != 1 || len(ml.Messages) != 1 || ml.Messages[0].MsgID != sent.IDs[0] {
		t.Errorf("send --delay 1h: %+v, then jobs --state delayed: %+v", sent, ml)
	}
	c.okJSON(&sent, "send", "orders", "--type", "later", "--at", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), `{}`)
	ml = pgquehttp.MessageList{}
	if c.okJSON(&ml, "jobs", "orders", "--state", "delayed"); len(ml.Messages) != 2 {
		t.Errorf("send --at: delayed %+v", ml)
	}
	c.fails(exitUsage, `--at "tomorrow" is not an RFC 3339 time`, "send", "orders", "--type", "x", "--at", "tomorrow", "{}")
	c.fails(exitUsage, "--delay and --at cannot go together", "send", "orders", "--type", "x", "--delay", "1m",
		"--at", "2030-01-01T00:00:00Z", "{}")
	c.fails(exitUsage, "--delay and --at go with a PAYLOAD argument", "send", "orders", "--delay", "1m")
}
