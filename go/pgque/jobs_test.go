package pgque_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// One message followed through MessageStatus: not ticked, pending,
// handed out, retrying (snoozed), dead (rejected) for one consumer while
// the other has it done; none of the looks moves anything.
func TestMessageStatus(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "a", "b")
	id, err := client.Send(ctx, "q", pgque.Event{Type: "job", Payload: map[string]int{"n": 1}})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, want map[string]pgque.JobState) []pgque.MessageState {
		t.Helper()
		ss, err := client.MessageStatus(ctx, "q", id)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]pgque.JobState{}
		for _, s := range ss {
			got[s.Consumer] = s.State
			if s.Message == nil || s.Message.MsgID != id || s.Message.Type != "job" || s.Message.Payload != `{"n":1}` {
				t.Errorf("%s: %s's row has message %+v", what, s.Consumer, s.Message)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: states %v, want %v", what, got, want)
		}
		for c, w := range want {
			if got[c] != w {
				t.Fatalf("%s: states %v, want %v", what, got, want)
			}
		}
		return ss
	}
	check("sent", map[string]pgque.JobState{"a": pgque.JobNotTicked, "b": pgque.JobNotTicked})
	if _, err := client.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	check("ticked", map[string]pgque.JobState{"a": pgque.JobPending, "b": pgque.JobPending})
	check("looked at again", map[string]pgque.JobState{"a": pgque.JobPending, "b": pgque.JobPending})

	ma, err := client.Receive(ctx, "q", "a", 10)
	if err != nil || len(ma) != 1 {
		t.Fatalf("Receive a: %v, %v", ma, err)
	}
	mb, err := client.Receive(ctx, "q", "b", 10)
	if err != nil || len(mb) != 1 {
		t.Fatalf("Receive b: %v, %v", mb, err)
	}
	check("handed out", map[string]pgque.JobState{"a": pgque.JobHandedOut, "b": pgque.JobHandedOut})
	if _, err := client.Snooze(ctx, ma[0].BatchID, ma[0], time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, m := range [][]pgque.Message{ma, mb} {
		if err := client.Ack(ctx, m[0].BatchID); err != nil {
			t.Fatal(err)
		}
	}
	ss := check("snoozed by a, acked by b", map[string]pgque.JobState{"a": pgque.JobRetrying, "b": pgque.JobDone})
	for _, s := range ss {
		if s.Consumer == "a" && (s.DueAt == nil || time.Until(*s.DueAt) < 59*time.Minute || s.RetryCount != nil) {
			t.Errorf("a's snoozed row: due %v, retry count %v; want due in an hour, no failure counted", s.DueAt, s.RetryCount)
		}
	}

	if _, err := client.MessageStatus(ctx, "nope", id); !errors.Is(err, pgque.ErrQueueNotFound) {
		t.Errorf("MessageStatus of an unknown queue = %v, want ErrQueueNotFound", err)
	}
	ss, err = client.MessageStatus(ctx, "q", id+1000)
	if err != nil || len(ss) != 2 || ss[0].State != pgque.JobUnknown || ss[0].Message != nil {
		t.Errorf("MessageStatus of an unknown id = %+v, %v; want unknown for each consumer", ss, err)
	}
}

// ListMessages: pending for a consumer in id order with a cursor and a
// type filter, retrying (a snooze), dead (a rejection); bad arguments.
func TestListMessages(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "a")
	var ids []int64
	for i, typ := range []string{"x", "y", "x", "x"} {
		id, err := client.Send(ctx, "q", pgque.Event{Type: typ, Payload: i})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := client.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	list := func(state pgque.JobState, opts pgque.ListOptions) []int64 {
		t.Helper()
		ss, err := client.ListMessages(ctx, "q", state, opts)
		if err != nil {
			t.Fatalf("ListMessages(%s, %+v): %v", state, opts, err)
		}
		var got []int64
		for _, s := range ss {
			got = append(got, s.MsgID)
		}
		return got
	}
	same := func(what string, got, want []int64) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	same("pending", list(pgque.JobPending, pgque.ListOptions{Consumer: "a"}), ids)
	same("pending, first page", list(pgque.JobPending, pgque.ListOptions{Consumer: "a", Max: 2}), ids[:2])
	same("pending, next page", list(pgque.JobPending, pgque.ListOptions{Consumer: "a", Max: 2, After: ids[1]}), ids[2:])
	same("pending of type x", list(pgque.JobPending, pgque.ListOptions{Consumer: "a", Type: "x"}), []int64{ids[0], ids[2], ids[3]})
	same("pending again: nothing moved", list(pgque.JobPending, pgque.ListOptions{Consumer: "a"}), ids)

	msgs, err := client.Receive(ctx, "q", "a", 10)
	if err != nil || len(msgs) != 4 {
		t.Fatalf("Receive: %v, %v", msgs, err)
	}
	if _, err := client.Snooze(ctx, msgs[0].BatchID, msgs[0], time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reject(ctx, msgs[1].BatchID, msgs[1], "bad"); err != nil {
		t.Fatal(err)
	}
	if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
		t.Fatal(err)
	}
	same("retrying", list(pgque.JobRetrying, pgque.ListOptions{}), ids[:1])
	same("dead", list(pgque.JobDead, pgque.ListOptions{Consumer: "a"}), ids[1:2])
	same("pending after the ack", list(pgque.JobPending, pgque.ListOptions{Consumer: "a"}), nil)

	for _, c := range []struct {
		state pgque.JobState
		opts  pgque.ListOptions
	}{
		{"nonsense", pgque.ListOptions{}},
		{pgque.JobPending, pgque.ListOptions{}}, // pending needs a consumer
		{pgque.JobDead, pgque.ListOptions{Max: -1}},
	} {
		if _, err := client.ListMessages(ctx, "q", c.state, c.opts); !errors.Is(err, pgque.ErrInvalidArgument) {
			t.Errorf("ListMessages(%q, %+v) = %v, want ErrInvalidArgument", c.state, c.opts, err)
		}
	}
	if _, err := client.ListMessages(ctx, "q", pgque.JobPending, pgque.ListOptions{Consumer: "nobody"}); !errors.Is(err, pgque.ErrConsumerNotFound) {
		t.Errorf("pending of an unknown consumer = %v, want ErrConsumerNotFound", err)
	}
}

// Cancel: a pending message is never delivered to the consumer it was
// cancelled for, and still is to the other; a second cancel says the same.
func TestCancel(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "a", "b")
	id, err := client.Send(ctx, "q", pgque.Event{Type: "t", Payload: 1})
	if err != nil {
		t.Fatal(err)
	}
	keep, err := client.Send(ctx, "q", pgque.Event{Type: "t", Payload: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		rs, err := client.Cancel(ctx, "q", id, "a")
		if err != nil || len(rs) != 1 || rs[0] != (pgque.CancelResult{Consumer: "a", Outcome: "cancelled"}) {
			t.Fatalf("Cancel = %+v, %v", rs, err)
		}
	}
	for c, want := range map[string]string{"a": fmt.Sprint([]int64{keep}), "b": fmt.Sprint([]int64{id, keep})} {
		msgs, err := client.Receive(ctx, "q", c, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, m := range msgs {
			got = append(got, m.MsgID)
		}
		if fmt.Sprint(got) != want {
			t.Errorf("%s received %v, want %s", c, got, want)
		}
	}
	if _, err := client.Cancel(ctx, "q", id, "nobody"); !errors.Is(err, pgque.ErrConsumerNotFound) {
		t.Errorf("Cancel for an unknown consumer = %v, want ErrConsumerNotFound", err)
	}
}
