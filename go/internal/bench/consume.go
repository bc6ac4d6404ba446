package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgque/pgque/go/pgque"
)

// The consume scenario (docs/benchmarks.md, row 3): a backlog of Backlog events,
// sent with send_batch in committed chunks and ticked once, is read
//   - by the baseline: one plain SELECT of the same rows from the queue's
//     event tables through pgx, each row scanned into a struct;
//   - by pgque: the Go SDK's Consumer with a handler that does nothing but
//     the baseline's per-event work, with its default options (pieces grow
//     while it is behind, see pgque.WithMaxCatchUp); that is the measure;
//   - for comparison, by Receive(1000) + Ack in a loop, a second consumer.
// Both do the same per-event work: count it and add up its payload's size.
// The baseline runs before and after pgque (its rate is over both runs),
// after an unmeasured read that brings the rows into the caches.

const (
	consumeQueue    = "bench_consume"
	consumeConsumer = "bench"
	consumeLoop     = "bench_receive"
	consumeChunk    = 10_000
	consumeReceive  = 1000
)

// consumeRow is what the baseline decodes a row into: the columns of
// pgque.message (which the SDK's Message holds), bar the batch id.
type consumeRow struct {
	id                             int64
	typ                            string
	payload                        []byte
	retry                          *int
	created                        time.Time
	extra1, extra2, extra3, extra4 *string
}

func runConsume(ctx context.Context, env *Env) (Result, error) {
	res := Result{Scenario: "consume"}
	client := env.Client
	if _, err := client.CreateQueue(ctx, consumeQueue); err != nil {
		return res, err
	}
	for _, c := range []string{consumeConsumer, consumeLoop} {
		if _, err := client.Subscribe(ctx, consumeQueue, c); err != nil {
			return res, err
		}
	}

	// Load.
	backlog := max(env.Backlog, 1)
	payloads := make([]string, consumeChunk)
	for i := range payloads {
		payloads[i] = env.Payload()
	}
	env.Logf("loading %d events (send_batch of %d per transaction)", backlog, consumeChunk)
	start, nextLog := time.Now(), time.Now().Add(5*time.Second)
	for sent := 0; sent < backlog; {
		n := min(consumeChunk, backlog-sent)
		if _, err := env.Pool.Exec(ctx, `SELECT pgque.send_batch($1::text, $2::text, $3::text[])`,
			consumeQueue, produceEventType, payloads[:n]); err != nil {
			return res, fmt.Errorf("load: %w", err)
		}
		sent += n
		if time.Now().After(nextLog) || sent == backlog {
			env.Logf("loaded %d/%d", sent, backlog)
			nextLog = time.Now().Add(5 * time.Second)
		}
	}
	loadTime := time.Since(start)
	if _, err := client.ForceTick(ctx, consumeQueue); err != nil {
		return res, err
	}

	tables, err := consumeTables(ctx, env)
	if err != nil {
		return res, err
	}
	var union []string
	for _, t := range tables {
		union = append(union, "SELECT * FROM "+t)
	}
	from := "(" + strings.Join(union, " UNION ALL ") + ") e"
	var size int64
	if err := env.Pool.QueryRow(ctx, `SELECT sum(pg_total_relation_size(t::regclass))::bigint FROM unnest($1::text[]) t`,
		tables).Scan(&size); err != nil {
		return res, err
	}
	env.Logf("backlog in %s: %d MB; warming the caches", strings.Join(tables, ", "), size>>20)
	var warm int64
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM `+from).Scan(&warm); err != nil {
		return res, err
	}
	if warm != int64(backlog) {
		return res, fmt.Errorf("the event tables hold %d events, want %d", warm, backlog)
	}

	baseSQL := `SELECT ev_id, ev_type, ev_data, ev_retry, ev_time, ev_extra1, ev_extra2, ev_extra3, ev_extra4
	              FROM ` + from + ` ORDER BY ev_id`
	baseline := func(run int) (time.Duration, error) {
		start := time.Now()
		n, bytes, err := consumeSelect(ctx, env, baseSQL)
		d := time.Since(start)
		if err == nil && n != backlog {
			err = fmt.Errorf("plain SELECT read %d events, want %d", n, backlog)
		}
		if err == nil {
			env.Logf("baseline SELECT, run %d: %d events (%d MB of payload) in %v: %.0f events/s",
				run, n, bytes>>20, d.Round(time.Millisecond), float64(n)/d.Seconds())
		}
		return d, err
	}

	b1, err := baseline(1)
	if err != nil {
		return res, err
	}
	env.Logf("SDK Consumer, no-op handler")
	start = time.Now()
	cst, err := consumeConsumerRun(ctx, env, backlog)
	consumerTime := time.Since(start)
	if err != nil {
		return res, err
	}
	env.Logf("Consumer: %d events (%d MB of payload) in %v: %.0f events/s",
		cst.n, cst.bytes>>20, consumerTime.Round(time.Millisecond), float64(cst.n)/consumerTime.Seconds())
	b2, err := baseline(2)
	if err != nil {
		return res, err
	}
	env.Logf("SDK Receive(%d) + Ack", consumeReceive)
	start = time.Now()
	st, err := consumeLoopRun(ctx, env)
	loopTime := time.Since(start)
	if err != nil {
		return res, err
	}
	if st.n != backlog {
		return res, fmt.Errorf("Receive returned %d events, want %d", st.n, backlog)
	}
	env.Logf("Receive+Ack: %d events in %v, %d receive calls: %.0f events/s",
		st.n, loopTime.Round(time.Millisecond), st.calls, float64(st.n)/loopTime.Seconds())

	base := float64(2*backlog) / (b1 + b2).Seconds()
	consumer := float64(backlog) / consumerTime.Seconds()
	loop := float64(backlog) / loopTime.Seconds()
	ratio := consumer / base
	res.Add("backlog", float64(backlog), "events")
	res.Add("baseline SELECT", base, "events/s")
	res.Add("Consumer", consumer, "events/s")
	res.Add("ratio", ratio, "x")
	res.Add("baseline time", ((b1 + b2) / 2).Seconds(), "s")
	res.Add("Consumer time", consumerTime.Seconds(), "s")
	res.Add(fmt.Sprintf("Receive(%d)+Ack", consumeReceive), loop, "events/s")
	res.Add(fmt.Sprintf("Receive(%d)+Ack ratio", consumeReceive), loop/base, "x")
	res.Add(fmt.Sprintf("Receive(%d) call", consumeReceive), st.receive.Seconds()*1000/float64(st.calls), "ms")
	res.Add("Ack call", st.ack.Seconds()*1000/float64(max(st.calls-1, 1)), "ms")
	res.Add("load (send_batch 10k)", float64(backlog)/loadTime.Seconds(), "events/s")
	res.Check("Consumer >= 0.7 x SELECT", ratio >= 0.7)
	res.Notes = append(res.Notes,
		fmt.Sprintf("%d-byte payloads, %d MB of event tables; Consumer with a no-op handler and default options; "+
			"baseline: one SELECT ... ORDER BY ev_id, runs of %v and %v around the Consumer's", env.PayloadSize, size>>20,
			b1.Round(time.Millisecond), b2.Round(time.Millisecond)))
	return res, nil
}

// consumeTables returns the queue's event tables (pgque.event_<queue id>_<n>).
func consumeTables(ctx context.Context, env *Env) ([]string, error) {
	rows, err := env.Pool.Query(ctx, `
		SELECT c.oid::regclass::text
		  FROM pgque.queue q
		  JOIN pg_class c ON c.relnamespace = 'pgque'::regnamespace AND c.relkind = 'r'
		                 AND c.relname ~ ('^event_' || q.queue_id || '_[0-9]+$')
		 WHERE q.queue_name = $1
		 ORDER BY c.relname`, consumeQueue)
	if err != nil {
		return nil, err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err == nil && len(tables) == 0 {
		err = fmt.Errorf("no event tables found for queue %s", consumeQueue)
	}
	return tables, err
}

// consumeSelect reads every row of sql, as the baseline does.
func consumeSelect(ctx context.Context, env *Env, sql string) (n int, bytes int64, err error) {
	rows, err := env.Pool.Query(ctx, sql)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	var r consumeRow
	for rows.Next() {
		if err := rows.Scan(&r.id, &r.typ, &r.payload, &r.retry, &r.created,
			&r.extra1, &r.extra2, &r.extra3, &r.extra4); err != nil {
			return n, bytes, err
		}
		n++
		bytes += int64(len(r.payload))
	}
	return n, bytes, rows.Err()
}

// sdkStats is what consumeLoopRun and consumeConsumerRun measured.
type sdkStats struct {
	n, calls     int           // events, receive calls (loop only; the last one empty)
	bytes        int64         // payload bytes
	receive, ack time.Duration // time spent in Receive and in Ack (loop only)
}

// consumeConsumerRun drains the backlog with a Consumer, stopping it once
// every event was handled (it acknowledges the last piece as it stops).
func consumeConsumerRun(ctx context.Context, env *Env, backlog int) (st sdkStats, err error) {
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	c := env.Client.NewConsumer(consumeQueue, consumeConsumer)
	nextLog := time.Now().Add(5 * time.Second)
	// One handler at a time (the default): no locking needed.
	c.Handle(produceEventType, func(_ context.Context, m pgque.Message) error {
		st.n++
		st.bytes += int64(len(m.Payload))
		if st.n == backlog {
			stop()
		}
		if time.Now().After(nextLog) {
			env.Logf("handled %d", st.n)
			nextLog = time.Now().Add(5 * time.Second)
		}
		return nil
	})
	if err := c.Start(cctx); err != nil {
		return st, err
	}
	if st.n != backlog {
		return st, fmt.Errorf("the Consumer handled %d events, want %d", st.n, backlog)
	}
	var pending int64
	if err := env.Pool.QueryRow(ctx, `SELECT pending_events FROM pgque.get_consumer_info($1, $2)`,
		consumeQueue, consumeConsumer).Scan(&pending); err != nil {
		return st, err
	}
	if pending != 0 {
		return st, fmt.Errorf("the Consumer left %d events unacknowledged", pending)
	}
	return st, nil
}

// consumeLoopRun drains the second consumer's backlog with Receive + Ack.
func consumeLoopRun(ctx context.Context, env *Env) (st sdkStats, err error) {
	nextLog := time.Now().Add(5 * time.Second)
	for {
		t0 := time.Now()
		msgs, err := env.Client.Receive(ctx, consumeQueue, consumeLoop, consumeReceive)
		t1 := time.Now()
		st.calls++
		st.receive += t1.Sub(t0)
		if err != nil || len(msgs) == 0 {
			return st, err
		}
		for _, m := range msgs {
			st.n++
			st.bytes += int64(len(m.Payload))
		}
		t2 := time.Now()
		err = env.Client.Ack(ctx, msgs[0].BatchID)
		st.ack += time.Since(t2)
		if err != nil {
			return st, err
		}
		if time.Now().After(nextLog) {
			env.Logf("received %d", st.n)
			nextLog = time.Now().Add(5 * time.Second)
		}
	}
}
