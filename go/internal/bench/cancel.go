package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// The cancellations scenario: what 10,000 live cancellations cost receive.
// Two queues, one consumer each.  On one, 10,000 messages are sent, ticked
// and cancelled (pgque.cancel, one call each), and its consumer then reads
// past them (they are skipped), so their cancellations stay stored, live
// until rotation reclaims their table.  Then, in rounds, the same backlog
// is sent to both queues, ticked, and drained by Receive(100) + Ack, the
// two queues in alternating order; the measure is the drain time of the
// queue with cancellations over the one without.

const (
	cancelQueueNone = "bench_cancel_none"
	cancelQueueMany = "bench_cancel_10k"
	cancelCount     = 10_000
	cancelRound     = 20_000 // events per queue per round
	cancelReceive   = 100
	cancelMinRounds = 3
)

func runCancellations(ctx context.Context, env *Env) (Result, error) {
	return cancellations(ctx, env, cancelCount, cancelRound)
}

// cancellations runs the scenario with count cancellations and rounds of
// round events per queue (smaller in the smoke test).
func cancellations(ctx context.Context, env *Env, count, round int) (Result, error) {
	res := Result{Scenario: "cancellations"}
	client := env.Client
	for _, q := range []string{cancelQueueNone, cancelQueueMany} {
		if err := setupQueue(ctx, client, q); err != nil {
			return res, err
		}
	}
	payloads := make([]string, max(count, round))
	for i := range payloads {
		payloads[i] = env.Payload()
	}
	send := func(queue string, n int) ([]int64, error) {
		rows, err := env.Pool.Query(ctx, `SELECT pgque.send_batch($1::text, $2::text, $3::text[])`,
			queue, produceEventType, payloads[:n])
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var ids []int64
		for rows.Next() {
			var id []int64
			if err := rows.Scan(&id); err != nil {
				return nil, err
			}
			ids = append(ids, id...)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		_, err = client.ForceTick(ctx, queue)
		return ids, err
	}

	env.Logf("sending and cancelling %d messages on %s", count, cancelQueueMany)
	ids, err := send(cancelQueueMany, count)
	if err != nil {
		return res, fmt.Errorf("load: %w", err)
	}
	start := time.Now()
	for _, id := range ids {
		out, err := client.Cancel(ctx, cancelQueueMany, id, "")
		if err != nil {
			return res, fmt.Errorf("cancel %d: %w", id, err)
		}
		if len(out) != 1 || out[0].Outcome != "cancelled" {
			return res, fmt.Errorf("cancel %d: %+v, want cancelled", id, out)
		}
	}
	cancelTime := time.Since(start) / time.Duration(count)
	if n, err := cancelDrain(ctx, client, cancelQueueMany); err != nil || n != 0 {
		return res, fmt.Errorf("reading past the cancelled messages: %d delivered, %v; want none", n, err)
	}

	var times [2]time.Duration // none, many
	queues := [2]string{cancelQueueNone, cancelQueueMany}
	rounds := 0
	for began := time.Now(); rounds < cancelMinRounds || time.Since(began) < 2*env.Duration; rounds++ {
		for _, q := range queues {
			if _, err := send(q, round); err != nil {
				return res, fmt.Errorf("round %d: %w", rounds+1, err)
			}
		}
		for k := range 2 {
			side := (rounds + k) % 2 // alternate which queue goes first
			t0 := time.Now()
			n, err := cancelDrain(ctx, client, queues[side])
			d := time.Since(t0)
			if err != nil {
				return res, err
			}
			if n != round {
				return res, fmt.Errorf("%s delivered %d events, want %d", queues[side], n, round)
			}
			times[side] += d
		}
		env.Logf("round %d: without %v, with %d cancellations %v", rounds+1,
			times[0].Round(time.Millisecond), count, times[1].Round(time.Millisecond))
	}
	var stored int
	if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM pgque.cancelled`).Scan(&stored); err != nil {
		return res, err
	}
	ratio := times[1].Seconds() / times[0].Seconds()
	total := float64(rounds * round)
	res.Add("live cancellations", float64(stored), "rows")
	res.Add("cancel call", cancelTime.Seconds()*1000, "ms")
	res.Add("drain without cancellations", total/times[0].Seconds(), "events/s")
	res.Add("drain with cancellations", total/times[1].Seconds(), "events/s")
	res.Add("time ratio", ratio, "x")
	res.Check(fmt.Sprintf("receive with %d live cancellations within 5 %% of none (time ratio <= 1.05)", count), ratio <= 1.05)
	res.Notes = append(res.Notes, fmt.Sprintf("%d rounds of %d events per queue, Receive(%d) + Ack; the %d cancelled messages "+
		"were in an earlier batch of the same consumer", rounds, round, cancelReceive, count))
	return res, nil
}

// cancelDrain receives and acks queue's ticked messages until a receive
// returns none, and reports how many it got.
func cancelDrain(ctx context.Context, client *pgque.Client, queue string) (int, error) {
	n, empty := 0, 0
	for empty < 2 { // an empty answer may only close a batch whose rows were all skipped
		msgs, err := client.Receive(ctx, queue, benchConsumer, cancelReceive)
		if err != nil {
			return n, fmt.Errorf("receive %s: %w", queue, err)
		}
		if len(msgs) == 0 {
			empty++
			continue
		}
		empty = 0
		n += len(msgs)
		if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
			return n, fmt.Errorf("ack %s: %w", queue, err)
		}
	}
	return n, nil
}
