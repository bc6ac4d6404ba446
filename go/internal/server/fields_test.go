package server_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgque/pgque/go/internal/server"
	"github.com/pgque/pgque/go/pgquehttp"
)

// goNames matches what names Go's side of a request, not the client's:
// encoding/json's "Go struct field X.y" and Go types, and the SDK's field
// names.
var goNames = regexp.MustCompile(`Go (struct|value)|pgquehttp\.|of type |\b(Every|StartAt|Cron|TimeZone|Extra[1-4]|MsgID)\b`)

// wantField checks a 400 answer: its code, a message naming the field as
// the client wrote it (and nothing of Go's), and no sqlstate but want's.
func (e *env) wantField(t *testing.T, method, path, body, code, sqlstate, want string) {
	t.Helper()
	status, text, _ := e.call(t, method, path, body)
	var eb pgquehttp.ErrorBody
	if err := json.Unmarshal([]byte(text), &eb); err != nil {
		t.Fatalf("%s %s %s: %d %q: %v", method, path, body, status, text, err)
	}
	d := eb.Error
	if status != 400 || d.Code != code || d.SQLState != sqlstate || !strings.Contains(d.Message, want) ||
		goNames.MatchString(d.Message) {
		t.Errorf("%s %s %s:\n got %d %+v\nwant 400 %s %q naming %q", method, path, body, status, d, code, sqlstate, want)
	}
}

// Bodies that are not the JSON expected are answered with the path of the
// field at fault, as sent: encoding/json's own messages name Go's struct
// fields and types.
func TestMalformedBodyNamesField(t *testing.T) {
	e := newEnv(t, server.Options{})
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/v1/schedules", `{"name":"s","queue":"q","type":"t","every_seconds":"60"}`,
			`every_seconds must be an integer, not "60"`},
		{"POST", "/v1/schedules", `{"name":"s","queue":"q","type":"t","every_seconds":1.5}`,
			`every_seconds must be an integer, not 1.5`},
		{"POST", "/v1/schedules", `{"name":"s","queue":"q","type":"t","every_seconds":99999999999999999999}`,
			`every_seconds must be an integer from -9223372036854775808 to 9223372036854775807, not 99999999999999999999`},
		{"POST", "/v1/schedules", `{"name":"s","queue":"q","type":"t","every_seconds":60,"start_at":"soon"}`,
			`start_at must be an RFC 3339 time such as "2026-01-02T15:04:05Z", not "soon"`},
		{"POST", "/v1/schedules", `{"name":"s","queue":"q","type":"t","every_seconds":60,"start_at":12}`,
			`start_at must be an RFC 3339 time`},
		{"POST", "/v1/queues/q/events", `{"type":5}`, "type must be a string, not 5"},
		{"POST", "/v1/queues/q/events/batch", `{"events":[{"type":"t"},{"type":"t","extra3":[1]}]}`,
			"events[1].extra3 must be a string, not [1]"},
		{"POST", "/v1/queues/q/events/batch", `{"events":[{"type":"t"},{"type":"t","bogus":1}]}`,
			"events[1].bogus is not a field"},
		{"POST", "/v1/queues/q/events/batch", `{"events":{}}`, "events must be an array, not {}"},
		{"POST", "/v1/queues/q/consumers/c/receive", `{"max":"10"}`, `max must be an integer`},
		{"POST", "/v1/batches/1/nack", `{"msg_id":1.5}`, "msg_id must be an integer"},
		{"POST", "/v1/batches/1/nack", `{"msg_id":1,"retry_after_seconds":18446744073709551616}`,
			"retry_after_seconds must be an integer"},
		{"POST", "/v1/batches/1/heartbeat", `{"lease_seconds":"x"}`, `lease_seconds must be a number, not "x"`},
		{"POST", "/v1/batches/1/heartbeat", `[]`, "the body must be an object, not []"},
		{"POST", "/v1/queues", `{"name":"x","config":[]}`, "config must be an object, not []"},
	} {
		e.wantField(t, c.method, c.path, c.body, "malformed_json", "", c.want)
	}
}

// The server's own checks name the fields too: POST /v1/schedules checks
// what the SDK would check with messages naming its Go fields (Every,
// StartAt), and a batch's events are named by their index.
func TestChecksNameFields(t *testing.T) {
	e := newEnv(t, server.Options{})
	for _, c := range []struct{ body, want string }{
		{`{"name":"s","queue":"q","type":"t"}`, "set exactly one of every_seconds (from 1 to 3110400000) and cron"},
		{`{"name":"s","queue":"q","type":"t","every_seconds":60,"cron":"@daily"}`, "set exactly one of every_seconds (from 1 to 3110400000) and cron"},
		{`{"name":"s","queue":"q","type":"t","cron":"@daily","start_at":"2030-01-01T00:00:00Z"}`,
			"start_at goes with every_seconds only"},
		{`{"name":"s","queue":"q","type":"","every_seconds":60}`, "type is required"},
	} {
		e.wantField(t, "POST", "/v1/schedules", c.body, "invalid_argument", "", c.want)
	}
	e.wantField(t, "POST", "/v1/queues/q/events/batch", `{"events":[{"type":"t"},{"type":""}]}`,
		"invalid_argument", "", "events[1].type is required")
	e.wantField(t, "POST", "/v1/queues/q/events/batch", `{"events":[]}`,
		"invalid_argument", "", "events must hold 1 to 1000 events, not 0")
}

// A start_at given is checked, the zero time (year 1) included, which
// used to be taken for an absent one: SQL refuses it (PQ006).  Nothing is
// created.
func TestScheduleStartAtRange(t *testing.T) {
	e := newEnv(t, server.Options{})
	body := func(name string, at time.Time) string {
		return fmt.Sprintf(`{"name":%q,"queue":"q","type":"t","every_seconds":60,"start_at":%q}`,
			name, at.UTC().Format(time.RFC3339))
	}
	for _, at := range []string{"0001-01-01T00:00:00Z", "0000-01-01T00:00:00Z", "3001-01-01T00:00:00Z",
		time.Now().AddDate(100, 0, 2).UTC().Format(time.RFC3339)} {
		e.wantField(t, "POST", "/v1/schedules",
			fmt.Sprintf(`{"name":"s","queue":"q","type":"t","every_seconds":60,"start_at":%q}`, at),
			"invalid_argument", "", "start_at "+at+" is out of range")
	}
	// Past the engine's bound, inside the clock slack: the engine's PQ006,
	// naming start_at too.
	e.wantField(t, "POST", "/v1/schedules", body("s", time.Now().AddDate(100, 0, 0).Add(12*time.Hour)),
		"invalid_argument", "PQ006", "start_at")
	e.wantError(t, "GET", "/v1/schedules/s", "", 404, "schedule_not_found", "PQ016")
	// In range, ahead or behind, and null (absent) are taken.
	for i, at := range []time.Time{time.Now().Add(time.Hour), time.Now().AddDate(-100, 0, 2)} {
		if status, text, _ := e.call(t, "POST", "/v1/schedules", body(fmt.Sprint("ok", i), at)); status != 201 {
			t.Errorf("start_at %v: %d %s", at, status, text)
		}
	}
	if status, text, _ := e.call(t, "POST", "/v1/schedules",
		`{"name":"null","queue":"q","type":"t","every_seconds":60,"start_at":null}`); status != 201 {
		t.Errorf("start_at null: %d %s", status, text)
	}
}

// A NUL character in any text of a body is 400 naming the field, caught
// before the database (whose 22021 names neither field nor value).
func TestNULNamesField(t *testing.T) {
	e := newEnv(t, server.Options{})
	const sched = `"queue":"q","every_seconds":60`
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/v1/queues/q/events", `{"type":"t\u0000"}`, "type holds a NUL character"},
		{"POST", "/v1/queues/q/events", `{"type":"t","extra1":"\u0000"}`, "extra1 holds a NUL character"},
		{"POST", "/v1/queues/q/events", `{"type":"t","extra2":"\u0000"}`, "extra2 holds a NUL character"},
		{"POST", "/v1/queues/q/events", `{"type":"t","extra3":"\u0000"}`, "extra3 holds a NUL character"},
		{"POST", "/v1/queues/q/events", `{"type":"t","extra4":"a\u0000b"}`, "extra4 holds a NUL character"},
		{"POST", "/v1/queues/q/events/batch", `{"events":[{"type":"t"},{"type":"t","extra2":"\u0000"}]}`,
			"events[1].extra2 holds a NUL character"},
		{"POST", "/v1/queues/q/events/batch", `{"events":[{"type":"t\u0000"}]}`, "events[0].type holds a NUL character"},
		{"POST", "/v1/queues", `{"name":"h\u0000x"}`, "name holds a NUL character"},
		{"POST", "/v1/queues", `{"name":"x","config":{"max_retries":"1\u0000"}}`, "config.max_retries holds a NUL character"},
		{"POST", "/v1/queues", `{"name":"x","config":{"max\u0000":"1"}}`, `key "max\x00" of config holds a NUL character`},
		{"PATCH", "/v1/queues/q", `{"max_retries":"1\u0000"}`, "max_retries holds a NUL character"},
		{"POST", "/v1/queues/q/consumers/c/receive", `{"worker":"w\u0000"}`, "worker holds a NUL character"},
		{"POST", "/v1/batches/1/nack", `{"msg_id":1,"reason":"r\u0000"}`, "reason holds a NUL character"},
		{"POST", "/v1/schedules", `{"name":"s\u0000","type":"t",` + sched + `}`, "name holds a NUL character"},
		{"POST", "/v1/schedules", `{"name":"s","type":"t\u0000",` + sched + `}`, "type holds a NUL character"},
		{"POST", "/v1/schedules", `{"name":"s","type":"t","time_zone":"UTC\u0000",` + sched + `}`,
			"time_zone holds a NUL character"},
		{"POST", "/v1/schedules", `{"name":"s","queue":"q","type":"t","cron":"@daily\u0000"}`, "cron holds a NUL character"},
		{"GET", "/v1/queues/q/consumers/c/peek?max=1&x=a%00", "", `query parameter "x" holds a NUL character`},
		{"PUT", "/v1/queues/q/consumers/c%00", "", `consumer "c\x00" in the path holds a NUL character`},
		{"GET", "/v1/queues/q%FF", "", `queue "q\xff" in the path is not valid UTF-8`},
		{"DELETE", "/v1/queues/q/consumers/c/workers/w%00", "", `worker "w\x00" in the path holds a NUL character`},
		{"GET", "/v1/no%00where", "", "the path holds a NUL character"},
	} {
		e.wantField(t, c.method, c.path, c.body, "invalid_argument", "", c.want)
	}
	if _, err := e.sdk.Queue(t.Context(), "x"); err == nil {
		t.Error("queue x was created")
	}
}
