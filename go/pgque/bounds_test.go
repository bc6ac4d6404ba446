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

// Values PostgreSQL's types cannot take, or beyond the engine's ranges, are
// ErrInvalidArgument naming the value, never pgx's encoding error or a
// wrapped time; text PostgreSQL cannot hold is ErrInvalidArgument too,
// naming the argument (PostgreSQL's own 22021 names neither it nor the value).
// Nothing is sent.
func TestArgumentBounds(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, "q", "c")
	ev := pgque.Event{Type: "t"}
	far := time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC) // past what pgx encodes without wrapping
	century := 36001 * 24 * time.Hour
	for _, tc := range []struct {
		name, msg string
		call      func() error
	}{
		{"receive max", "max 3000000000 is out of range", func() error {
			_, err := c.Receive(ctx, "q", "c", 3000000000)
			return err
		}},
		{"worker max", "max 3000000000 is out of range", func() error {
			_, err := c.ReceiveAsWorker(ctx, "q", "c", "w", 3000000000, time.Second)
			return err
		}},
		{"peek max", "max 3000000000 is out of range", func() error {
			_, err := c.Peek(ctx, "q", "c", 3000000000)
			return err
		}},
		{"dead letters limit", "limit 3000000000 is out of range", func() error {
			_, err := c.DeadLetters(ctx, "q", 3000000000)
			return err
		}},
		{"max retries", "max retries 3000000000 is out of range", func() error {
			_, err := c.Send(ctx, "q", ev, pgque.WithMaxRetries(3000000000))
			return err
		}},
		{"delay", "delay 864024h0m0s is out of range", func() error {
			_, err := c.Send(ctx, "q", ev, pgque.WithDelay(century))
			return err
		}},
		{"run at", "run-at time 300000-01-01T00:00:00Z is out of range", func() error {
			_, err := c.Send(ctx, "q", ev, pgque.WithRunAt(far))
			return err
		}},
		{"unique ttl", "unique TTL -1s is out of range", func() error {
			_, err := c.Send(ctx, "q", ev, pgque.WithUniqueKey("k"), pgque.WithUniqueTTL(-time.Second))
			return err
		}},
		{"nack delay", "retry delay 3600000000 s is out of range", func() error {
			err := c.Nack(ctx, 1, pgque.Message{MsgID: 1}, 3600000000, "")
			return err
		}},
		{"schedule period", "period 864024h0m0s is out of range", func() error {
			_, err := c.CreateSchedule(ctx, pgque.Schedule{Name: "s", Queue: "q", Type: "t", Every: century})
			return err
		}},
		{"schedule start", "start time -300000-01-01T00:00:00Z is out of range", func() error {
			_, err := c.CreateSchedule(ctx, pgque.Schedule{Name: "s", Queue: "q", Type: "t", Every: time.Hour,
				StartAt: time.Date(-300000, 1, 1, 0, 0, 0, 0, time.UTC)})
			return err
		}},
		{"NUL in a type", `event type "a\x00b" holds a NUL character`, func() error {
			_, err := c.Send(ctx, "q", pgque.Event{Type: "a\x00b"})
			return err
		}},
		{"NUL in an extra", `extra3 of "a" event "x\x00" holds a NUL character`, func() error {
			x := "x\x00"
			_, err := c.Send(ctx, "q", pgque.Event{Type: "a", Extra3: &x}, pgque.WithMaxRetries(1))
			return err
		}},
		{"invalid UTF-8 in an extra", `extra2 of "a" event "\xff" is not valid UTF-8`, func() error {
			x := "\xff"
			_, err := c.SendBatch(ctx, "q", []pgque.Event{{Type: "a", Extra2: &x}})
			return err
		}},
		{"invalid UTF-8 in a payload", `payload of "a" event "\"\xc3\"" is not valid UTF-8`, func() error {
			_, err := c.Send(ctx, "q", pgque.Event{Type: "a", Payload: json.RawMessage("\"\xc3\"")})
			return err
		}},
		{"NUL in a nack reason", `reason "r\x00" holds a NUL character`, func() error {
			return c.Nack(ctx, 1, pgque.Message{MsgID: 1}, 0, "r\x00")
		}},
		{"NUL in a schedule's type", `event type "t\x00" holds a NUL character`, func() error {
			_, err := c.CreateSchedule(ctx, pgque.Schedule{Name: "s", Queue: "q", Type: "t\x00", Every: time.Hour})
			return err
		}},
		{"NUL in a cron", `cron "@daily\x00" holds a NUL character`, func() error {
			_, err := c.CreateSchedule(ctx, pgque.Schedule{Name: "s", Queue: "q", Type: "t", Cron: "@daily\x00"})
			return err
		}},
		{"invalid UTF-8 in a time zone", `time zone "\xc3" is not valid UTF-8`, func() error {
			_, err := c.CreateSchedule(ctx, pgque.Schedule{Name: "s", Queue: "q", Type: "t", Every: time.Hour,
				TimeZone: "\xc3"})
			return err
		}},
		{"malformed DSN", "invalid port", func() error {
			_, err := pgque.Connect(ctx, "postgres://u:pw@h:notaport/db")
			return err
		}},
	} {
		err := tc.call()
		if !errors.Is(err, pgque.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v; want ErrInvalidArgument and %q", tc.name, err, tc.msg)
		}
	}
	if _, err := c.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if msgs, err := c.Peek(ctx, "q", "c", 10); err != nil || len(msgs) != 0 {
		t.Errorf("sent after all: %v, %v", msgs, err)
	}
}

// Times are bounded as the engine bounds them: 100 years on the calendar
// from now, which is some 524 days more than the 36,000 days of durations.
func TestTimesWithinCalendarCentury(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, "q", "c")
	ahead := time.Now().AddDate(100, 0, -2)
	if _, err := c.CreateSchedule(ctx, pgque.Schedule{Name: "s", Queue: "q", Type: "t", Every: time.Hour,
		StartAt: time.Now().AddDate(-100, 0, 2)}); err != nil {
		t.Errorf("start time 100 years less 2 days ago: %v", err)
	}
	if _, err := c.Send(ctx, "q", pgque.Event{Type: "t"}, pgque.WithRunAt(ahead)); err != nil {
		t.Errorf("run-at time 100 years less 2 days ahead: %v", err)
	}
}
