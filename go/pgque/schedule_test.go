package pgque_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// A periodic schedule fires through the Ticker's maintenance, once per due
// time, and the consumer receives the events with the schedule's name and
// due times.
func TestScheduleFiresThroughTicker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := newClient(t, "jobs", "worker")
	first, err := client.CreateSchedule(ctx, pgque.Schedule{
		Name: "heartbeat", Queue: "jobs", Type: "beat", Payload: map[string]int{"v": 1}, Every: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(first); d <= 0 || d > time.Second {
		t.Fatalf("first run %v is %v from now, want within the next second", first, d)
	}

	got := make(chan pgque.Message, 10)
	runCtx, stop := context.WithCancel(ctx)
	c := client.NewConsumer("jobs", "worker", pgque.WithTicker(pgque.WithMaintInterval(20*time.Millisecond)))
	c.Handle("beat", func(ctx context.Context, msg pgque.Message) error {
		got <- msg
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- c.Start(runCtx) }()
	var msgs []pgque.Message
	for len(msgs) < 2 {
		select {
		case m := <-got:
			msgs = append(msgs, m)
		case err := <-done:
			t.Fatalf("consumer stopped: %v", err)
		case <-ctx.Done():
			t.Fatalf("received %d scheduled events before the deadline, want 2", len(msgs))
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The first event is for the first run; the next one for a later
	// second (later than the one after if the machine stalled: missed runs
	// collapse into one).
	prev := first.Add(-time.Second)
	for i, m := range msgs {
		name, due, ok := m.ScheduledRun()
		if !ok || name != "heartbeat" || (i == 0 && !due.Equal(first)) || !due.After(prev) || due.Sub(first)%time.Second != 0 {
			t.Errorf("event %d: ScheduledRun() = %q, %v, %v; want heartbeat, a second after %v", i, name, due, ok, prev)
		}
		prev = due
		if string(m.Payload) != `{"v":1}` {
			t.Errorf("event %d: payload %s", i, m.Payload)
		}
	}
	ss, err := client.Schedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 1 || ss[0].Runs < 2 || ss[0].LastEventID == nil || ss[0].LastRun == nil || !ss[0].NextRun.After(*ss[0].LastRun) {
		t.Fatalf("schedules after two runs: %+v", ss)
	}
}

// A schedule that is due fires once however often maintenance runs, and the
// event is delivered after the next tick.
func TestScheduleFiresOnceThroughMaint(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "jobs", "worker")
	if _, err := client.CreateSchedule(ctx, pgque.Schedule{Name: "s", Queue: "jobs", Type: "t", Every: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// Make it overdue, as after a long downtime: it must fire once, not once per missed hour.
	if _, err := client.Pool().Exec(ctx, `UPDATE pgque.schedule SET sched_next_run = date_trunc('second', now()) - interval '10 hours 30 minutes'`); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := client.Maint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.ForceTick(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	msgs, err := client.Receive(ctx, "jobs", "worker", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("received %d events, want 1", len(msgs))
	}
	ss, err := client.Schedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, due, _ := msgs[0].ScheduledRun(); !due.Equal(*ss[0].LastRun) || ss[0].Runs != 1 ||
		ss[0].NextRun.Before(time.Now()) || ss[0].NextRun.After(time.Now().Add(time.Hour)) {
		t.Fatalf("after missed runs: event due %v, schedule %+v", due, ss[0])
	}
}

func TestScheduleCreateListDrop(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "jobs")
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	first, err := client.CreateSchedule(ctx, pgque.Schedule{
		Name: "report", Queue: "jobs", Type: "report.run", Payload: json.RawMessage(`{"kind": "daily"}`),
		Cron: "0 9 * * mon-fri", TimeZone: "Europe/Berlin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if l := first.In(berlin); l.Hour() != 9 || l.Minute() != 0 || l.Weekday() == time.Saturday || l.Weekday() == time.Sunday || !first.After(time.Now()) {
		t.Fatalf("first run of the cron schedule: %v", l)
	}
	start := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	if got, err := client.CreateSchedule(ctx, pgque.Schedule{
		Name: "cleanup", Queue: "jobs", Type: "cleanup", Every: 90 * time.Second, StartAt: start.Add(300 * time.Millisecond),
	}); err != nil || !got.Equal(start) {
		t.Fatalf("periodic schedule: first run %v, %v; want %v", got, err, start)
	}
	ss, err := client.Schedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 2 {
		t.Fatalf("%d schedules, want 2", len(ss))
	}
	cl, rp := ss[0], ss[1]
	if cl.Name != "cleanup" || cl.Queue != "jobs" || cl.Type != "cleanup" || cl.Payload != nil || cl.Every != 90*time.Second ||
		cl.Cron != "" || cl.TimeZone != "UTC" || !cl.NextRun.Equal(start) || cl.LastRun != nil || cl.Runs != 0 || cl.CreatedAt.IsZero() {
		t.Errorf("cleanup: %+v", cl)
	}
	if rp.Name != "report" || string(rp.Payload) != `{"kind": "daily"}` || rp.Every != 0 || rp.Cron != "0 9 * * mon-fri" ||
		rp.TimeZone != "Europe/Berlin" || !rp.NextRun.Equal(first) {
		t.Errorf("report: %+v", rp)
	}

	if err := client.DropSchedule(ctx, "cleanup"); err != nil {
		t.Fatal(err)
	}
	if err := client.DropSchedule(ctx, "cleanup"); !errors.Is(err, pgque.ErrScheduleNotFound) {
		t.Fatalf("dropping it again: %v, want ErrScheduleNotFound", err)
	}
	// Dropping the queue drops its schedules.
	if err := client.DropQueue(ctx, "jobs", false); err != nil {
		t.Fatal(err)
	}
	if ss, err := client.Schedules(ctx); err != nil || len(ss) != 0 {
		t.Fatalf("after drop queue: %+v, %v", ss, err)
	}
}

// Schedule names are unique per namespace: a namespaced client drops its
// own, and a client that administers several names the queue.
func TestScheduleNamesPerNamespace(t *testing.T) {
	ctx := context.Background()
	admin := pgque.New(srv.NewPool(t))
	var ns []*pgque.Client
	for _, name := range []string{"sched1", "sched2"} {
		c, err := admin.WithNamespace(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateQueue(ctx, "jobs"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateSchedule(ctx, pgque.Schedule{Name: "nightly", Queue: "jobs", Type: "t", Every: time.Hour}); err != nil {
			t.Fatal(err)
		}
		ns = append(ns, c)
	}
	if err := admin.DropSchedule(ctx, "nightly"); !errors.Is(err, pgque.ErrInvalidArgument) {
		t.Fatalf("DropSchedule of a name in two namespaces: %v, want ErrInvalidArgument", err)
	}
	if err := ns[0].DropSchedule(ctx, "nightly"); err != nil {
		t.Fatalf("namespaced DropSchedule: %v", err)
	}
	if err := ns[0].DropSchedule(ctx, "nightly"); !errors.Is(err, pgque.ErrScheduleNotFound) {
		t.Fatalf("dropping it again: %v, want ErrScheduleNotFound", err)
	}
	if err := ns[0].DropSchedule(ctx, "bad name"); !errors.Is(err, pgque.ErrInvalidArgument) {
		t.Fatalf("a bad name: %v, want ErrInvalidArgument", err)
	}
	if ss, err := ns[1].Schedules(ctx); err != nil || len(ss) != 1 || ss[0].Queue != "jobs" {
		t.Fatalf("the other namespace's schedules: %+v, %v", ss, err)
	}
	if err := admin.DropQueueSchedule(ctx, "sched1.jobs", "nightly"); !errors.Is(err, pgque.ErrScheduleNotFound) {
		t.Fatalf("DropQueueSchedule of a dropped one: %v, want ErrScheduleNotFound", err)
	}
	if err := admin.DropQueueSchedule(ctx, "sched2.jobs", "nightly"); err != nil {
		t.Fatalf("DropQueueSchedule: %v", err)
	}
	if ss, err := admin.Schedules(ctx); err != nil || len(ss) != 0 {
		t.Fatalf("schedules left: %+v, %v", ss, err)
	}
}

func TestScheduleErrors(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "jobs")
	if _, err := client.CreateSchedule(ctx, pgque.Schedule{Name: "s", Queue: "jobs", Type: "t", Cron: "@hourly"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		s       pgque.Schedule
		want    error
		message string
	}{
		{"exists", pgque.Schedule{Name: "s", Queue: "jobs", Type: "t", Every: time.Minute}, pgque.ErrScheduleExists, "already exists"},
		{"unknown queue", pgque.Schedule{Name: "x", Queue: "nope", Type: "t", Cron: "@daily"}, pgque.ErrQueueNotFound, "nope"},
		{"bad cron", pgque.Schedule{Name: "x", Queue: "jobs", Type: "t", Cron: "61 * * * *"}, pgque.ErrInvalidArgument, "minute value 61"},
		{"never fires", pgque.Schedule{Name: "x", Queue: "jobs", Type: "t", Cron: "30 2 31 2 *"}, pgque.ErrInvalidArgument, "never fire"},
		{"bad time zone", pgque.Schedule{Name: "x", Queue: "jobs", Type: "t", Cron: "@daily", TimeZone: "Mars/Base"}, pgque.ErrInvalidArgument, "Mars/Base"},
		{"fraction of a second", pgque.Schedule{Name: "x", Queue: "jobs", Type: "t", Every: 1500 * time.Millisecond}, pgque.ErrInvalidArgument, "whole number of seconds"},
		{"negative", pgque.Schedule{Name: "x", Queue: "jobs", Type: "t", Every: -time.Second}, pgque.ErrInvalidArgument, "at least 1 second"},
		{"bad name", pgque.Schedule{Name: "a b", Queue: "jobs", Type: "t", Cron: "@daily"}, pgque.ErrInvalidArgument, "schedule name"},
		{"both", pgque.Schedule{Name: "x", Queue: "jobs", Type: "t", Cron: "@daily", Every: time.Hour}, pgque.ErrInvalidArgument, "exactly one"},
		{"neither", pgque.Schedule{Name: "x", Queue: "jobs", Type: "t"}, pgque.ErrInvalidArgument, "exactly one"},
		{"start with cron", pgque.Schedule{Name: "x", Queue: "jobs", Type: "t", Cron: "@daily", StartAt: time.Now()}, pgque.ErrInvalidArgument, "StartAt"},
		{"bad payload", pgque.Schedule{Name: "x", Queue: "jobs", Type: "t", Cron: "@daily", Payload: make(chan int)}, pgque.ErrInvalidArgument, "payload"},
	} {
		_, err := client.CreateSchedule(ctx, tc.s)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%s: %v; want %v mentioning %q", tc.name, err, tc.want, tc.message)
		}
	}
	if ss, err := client.Schedules(ctx); err != nil || len(ss) != 1 {
		t.Fatalf("failed creations left %+v, %v", ss, err)
	}
}

func TestMessageScheduledRun(t *testing.T) {
	ptr := func(s string) *string { return &s }
	for _, tc := range []struct {
		msg  pgque.Message
		name string
		due  time.Time
		ok   bool
	}{
		{pgque.Message{Extra1: ptr("nightly"), Extra2: ptr("2026-06-01T03:00:00Z")}, "nightly", time.Date(2026, 6, 1, 3, 0, 0, 0, time.UTC), true},
		{pgque.Message{}, "", time.Time{}, false},
		{pgque.Message{Extra1: ptr("nightly")}, "", time.Time{}, false},
		{pgque.Message{Extra1: ptr("x"), Extra2: ptr("yesterday")}, "", time.Time{}, false},
	} {
		name, due, ok := tc.msg.ScheduledRun()
		if name != tc.name || !due.Equal(tc.due) || ok != tc.ok {
			t.Errorf("ScheduledRun() = %q, %v, %v; want %q, %v, %v", name, due, ok, tc.name, tc.due, tc.ok)
		}
	}
}
