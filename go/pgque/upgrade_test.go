package pgque_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/pgque/pgque/extension"
	"github.com/pgque/pgque/go/pgque"
)

// engineFingerprintSQL describes the installed engine as the catalog sees
// it: every function (definition, privileges, comment), relation, column
// (in order), index, constraint, trigger and type of the pgque schema, the
// schema's privileges, and (with $1) which objects belong to the
// extension.  An upgraded engine must be the fresh one exactly.  Per-queue
// tables are left out: the databases compared have no queues.
const engineFingerprintSQL = `
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'pgque'),
member AS (SELECT d.classid, d.objid FROM pg_depend d, ext WHERE d.refclassid = 'pg_extension'::regclass
            AND d.refobjid = ext.oid AND d.deptype = 'e'),
rel AS (SELECT c.* FROM pg_class c WHERE c.relnamespace = 'pgque'::regnamespace AND c.relname <> 'schema_version')
SELECT string_agg(x, E'\n' ORDER BY x) FROM (
  SELECT 'schema acl=' || coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'pgque'
  UNION ALL
  SELECT 'function ' || p.oid::regprocedure || ' acl=' || coalesce(p.proacl::text, '') ||
         ' member=' || ($1 AND EXISTS (SELECT FROM member m WHERE m.classid = 'pg_proc'::regclass AND m.objid = p.oid)) ||
         ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '') || E'\n' ||
         CASE WHEN p.prokind IN ('f', 'p', 'w') THEN pg_get_functiondef(p.oid) ELSE p.prokind::text END
    FROM pg_proc p WHERE p.pronamespace = 'pgque'::regnamespace
  UNION ALL
  SELECT 'relation ' || c.relname || ' kind=' || c.relkind::text || ' acl=' || coalesce(c.relacl::text, '') ||
         ' options=' || coalesce(c.reloptions::text, '') || ' persistence=' || c.relpersistence::text ||
         ' member=' || ($1 AND EXISTS (SELECT FROM member m WHERE m.classid = 'pg_class'::regclass AND m.objid = c.oid))
    FROM rel c WHERE c.relkind NOT IN ('i', 'I')
  UNION ALL
  SELECT 'column ' || c.relname || ' #' || row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) || ' ' ||
         a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull ||
         ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' acl=' || coalesce(a.attacl::text, '')
    FROM rel c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN rel c ON c.oid = i.indrelid
  UNION ALL
  SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = 'pgque'::regnamespace AND conrelid <> 'pgque.schema_version'::regclass
  UNION ALL
  SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN rel c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal
  UNION ALL
  SELECT 'type ' || t.typname || ' ' || t.typtype::text || ' acl=' || coalesce(t.typacl::text, '')
    FROM pg_type t WHERE t.typnamespace = 'pgque'::regnamespace AND t.typtype NOT IN ('b') AND t.typrelid = 0
) s(x)`

func engineFingerprint(t *testing.T, pool *pgxpool.Pool, membership bool) string {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `CREATE TABLE IF NOT EXISTS pgque.schema_version (version int)`); err != nil {
		t.Fatal(err) // so that the query plans alike with and without tern's table
	}
	var fp string
	if err := pool.QueryRow(context.Background(), engineFingerprintSQL, membership).Scan(&fp); err != nil {
		t.Fatalf("fingerprint: %v", err)
	}
	return fp
}

// installPrevious installs the first release, as an extension or as the
// first plain-SQL migration (what Install applied before the next
// release).
func installPrevious(t *testing.T, pool *pgxpool.Pool, sql bool) {
	t.Helper()
	ctx := context.Background()
	if !sql {
		if _, err := pool.Exec(ctx, `CREATE EXTENSION pgque VERSION '`+extension.FirstRelease+`'`); err != nil {
			t.Fatalf("create extension %s: %v", extension.FirstRelease, err)
		}
		return
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `CREATE SCHEMA pgque`); err != nil {
		t.Fatal(err)
	}
	m, err := migrate.NewMigrator(ctx, conn.Conn(), "pgque.schema_version")
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range extension.Migrations() {
		m.AppendMigration(step.Name, step.SQL, "")
	}
	if err := m.MigrateTo(ctx, 1); err != nil {
		t.Fatalf("migrate to %s: %v", extension.FirstRelease, err)
	}
}

// An upgraded engine is the fresh one: the upgrade scripts leave nothing
// out and add nothing, by either road (ALTER EXTENSION UPDATE, or the
// plain-SQL migrations Install runs).
func TestUpgradeIsFreshInstall(t *testing.T) {
	if extension.Version == extension.FirstRelease {
		t.Fatalf("nothing to upgrade: version %s is the first release", extension.Version)
	}
	ctx := context.Background()
	fresh := emptyDatabase(t)
	if _, err := fresh.Exec(ctx, `CREATE EXTENSION pgque`); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []bool{false, true} {
		t.Run(fmt.Sprintf("sql=%v", sql), func(t *testing.T) {
			pool := emptyDatabase(t)
			installPrevious(t, pool, sql)
			if old := engineFingerprint(t, pool, !sql); old == engineFingerprint(t, fresh, !sql) {
				t.Fatalf("release %s has the fingerprint of %s: the fingerprint sees nothing", extension.FirstRelease, extension.Version)
			}
			m, err := pgque.Install(ctx, pool)
			if want := map[bool]pgque.InstallMethod{false: pgque.InstalledExtension, true: pgque.InstalledSQL}[sql]; err != nil || m != want {
				t.Fatalf("Install = %q, %v; want %q", m, err, want)
			}
			got, want := engineFingerprint(t, pool, !sql), engineFingerprint(t, fresh, !sql)
			if got != want {
				t.Fatalf("the upgraded engine differs from a fresh install of %s:\n%s", extension.Version, lineDiff(got, want))
			}
		})
	}
}

// lineDiff lists the lines only one of a and b has.
func lineDiff(a, b string) string {
	count := map[string]int{}
	for _, l := range splitLines(a) {
		count[l]++
	}
	for _, l := range splitLines(b) {
		count[l]--
	}
	var out string
	for l, n := range count {
		switch {
		case n > 0:
			out += "upgraded only: " + l + "\n"
		case n < 0:
			out += "fresh only:    " + l + "\n"
		}
	}
	return out
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

// An upgrade under a running producer and consumer loses nothing and
// repeats nothing, and what the previous release left (an open batch, a
// worker's batch, a retry, a delayed event, a dead letter, a schedule) goes
// on where it was.
func TestUpgradeUnderLoad(t *testing.T) {
	for _, sql := range []bool{false, true} {
		t.Run(fmt.Sprintf("sql=%v", sql), func(t *testing.T) { upgradeUnderLoad(t, sql) })
	}
}

func upgradeUnderLoad(t *testing.T, sql bool) {
	ctx := context.Background()
	pool := emptyDatabase(t)
	installPrevious(t, pool, sql)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	scalar := func(q string, args ...any) (v int64) {
		t.Helper()
		if err := pool.QueryRow(ctx, q, args...).Scan(&v); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return v
	}
	if e, err := pgque.New(pool).InstalledEngine(ctx); err != nil || e.Version != extension.FirstRelease {
		t.Fatalf("previous release: engine %v, %v; want %s", e, err, extension.FirstRelease)
	}

	// What the previous release leaves behind, on queue "left".
	exec(`SELECT pgque.create_queue('left')`)
	for _, c := range []string{"reader", "jobs", "failing"} {
		exec(`SELECT pgque.subscribe('left', $1)`, c)
	}
	exec(`SELECT pgque.send_batch('left', 'old', ARRAY['o1', 'o2', 'o3'])`)
	exec(`SELECT pgque.force_tick('left')`)
	// an open batch of a plain reader, not acknowledged
	if n := scalar(`SELECT count(*) FROM pgque.receive('left', 'reader', 10)`); n != 3 {
		t.Fatalf("reader got %d, want 3", n)
	}
	// a worker's batch, not acknowledged
	if n := scalar(`SELECT count(*) FROM pgque.receive('left', 'jobs', 10, 'w1')`); n != 3 {
		t.Fatalf("worker got %d, want 3", n)
	}
	// a retry (due at once) and a dead letter
	var piece, o1, o3 int64
	if err := pool.QueryRow(ctx, `SELECT min(batch_id), min(msg_id) FILTER (WHERE payload = 'o1'),
		min(msg_id) FILTER (WHERE payload = 'o3') FROM pgque.receive('left', 'failing', 10)`).Scan(&piece, &o1, &o3); err != nil {
		t.Fatal(err)
	}
	exec(`SELECT pgque.nack($1, $2, interval '0', 'again')`, piece, o1)
	exec(`SELECT pgque.reject($1, $2, 'bad')`, piece, o3)
	exec(`SELECT pgque.ack($1)`, piece)
	// a delayed event, due soon after the upgrade
	exec(`SELECT pgque.send_at('left', 'delayed', 'd1', now() + interval '1 second')`)
	// a schedule, every second
	exec(`SELECT pgque.create_schedule('every_second', 'left', 'scheduled', 's', interval '1 second')`)

	// The load: a producer sends numbered events, one per transaction, and a
	// consumer of cooperative workers handles them, both through the upgrade.
	client := pgque.New(pool)
	if _, err := client.CreateQueue(ctx, "live"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Subscribe(ctx, "live", "workers"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[int]int{}
	c := client.NewConsumer("live", "workers", fastTicker(), consumerLogger(t), pgque.WithConcurrency(2))
	c.Handle("n", func(ctx context.Context, msg pgque.Message) error {
		n, err := strconv.Atoi(msg.Payload)
		if err != nil {
			return err
		}
		mu.Lock()
		seen[n]++
		mu.Unlock()
		return nil
	})
	consumerRun(t, c)
	prodCtx, stopProducer := context.WithCancel(ctx)
	sent := make(chan int, 1)
	upgraded := make(chan struct{})
	var sentAfter int // events sent after the upgrade committed
	go func() {
		n := 0
		defer func() { sent <- n }()
		for prodCtx.Err() == nil {
			if _, err := client.Send(ctx, "live", pgque.Event{Type: "n", Payload: n + 1}); err != nil {
				t.Errorf("send %d: %v", n+1, err)
				return
			}
			n++
			select {
			case <-upgraded:
				if sentAfter++; sentAfter >= 200 {
					return
				}
			default:
			}
		}
	}()
	// Upgrade once some events are in and handled.
	deadline := time.Now().Add(consumerTimeout)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("before the upgrade: %d events handled", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	m, err := pgque.Install(ctx, pool)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	close(upgraded)
	if e, err := client.InstalledEngine(ctx); err != nil || pgque.EngineMismatch(e, pgque.EmbeddedEngine()) != nil {
		t.Fatalf("after the upgrade (%s): engine %v, %v; want %v", m, e, err, pgque.EmbeddedEngine())
	}
	total := <-sent
	stopProducer()
	if sentAfter < 200 {
		t.Fatalf("the producer stopped %d events after the upgrade", sentAfter)
	}
	deadline = time.Now().Add(consumerTimeout)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events handled", n, total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	for i := 1; i <= total; i++ {
		if seen[i] != 1 {
			t.Errorf("event %d handled %d times, want once", i, seen[i])
		}
	}
	mu.Unlock()

	// What the previous release left goes on.
	ids := func(q string, args ...any) []string {
		t.Helper()
		rows, err := pool.Query(ctx, q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// the unacknowledged batches come again, to the reader and the worker
	if got := fmt.Sprint(ids(`SELECT payload FROM pgque.receive('left', 'reader', 10) ORDER BY msg_id`)); got != "[o1 o2 o3]" {
		t.Errorf("reader after the upgrade: %s, want its open batch again", got)
	}
	if got := fmt.Sprint(ids(`SELECT payload FROM pgque.receive('left', 'jobs', 10, 'w1') ORDER BY msg_id`)); got != "[o1 o2 o3]" {
		t.Errorf("worker after the upgrade: %s, want its batch again", got)
	}
	exec(`SELECT pgque.ack(batch_id) FROM pgque.receive('left', 'reader', 1)`)
	exec(`SELECT pgque.ack(batch_id) FROM pgque.receive('left', 'jobs', 1, 'w1')`)
	// the dead letter is replayed to its consumer; the retry and the delayed
	// and scheduled events arrive
	exec(`SELECT pgque.dlq_replay(dl_id) FROM pgque.dlq_list('left', 10)`)
	want := map[string]bool{"o1": false, "o3": false, "d1": false, "s": false}
	deadline = time.Now().Add(consumerTimeout)
	for {
		exec(`SELECT pgque.maint()`)
		exec(`SELECT pgque.force_tick('left')`)
		for _, p := range ids(`SELECT payload FROM pgque.receive('left', 'failing', 100)`) {
			if _, ok := want[p]; ok {
				want[p] = true
			}
		}
		exec(`SELECT pgque.ack(batch_id) FROM pgque.receive('left', 'failing', 1)`)
		done := true
		for _, got := range want {
			done = done && got
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the upgrade, consumer failing got (payload: got) %v", want)
		}
		time.Sleep(50 * time.Millisecond) // the delayed and scheduled events are due by the clock
	}
}
