package wire

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// fill sets every field of v (a pointer), however deep, to a value that
// is not the zero value.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(time.Second)) // a second as a time.Duration
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	}
}

// zeroFields lists the fields of v, however deep, left at their zero value.
func zeroFields(path string, v reflect.Value) []string {
	if v.IsZero() {
		return []string{path}
	}
	switch v.Kind() {
	case reflect.Pointer:
		return zeroFields(path, v.Elem())
	case reflect.Struct:
		var out []string
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				out = append(out, zeroFields(path+"."+v.Type().Field(i).Name, v.Field(i))...)
			}
		}
		return out
	}
	return nil
}

func filled[T any]() T {
	var v T
	fill(reflect.ValueOf(&v).Elem())
	return v
}

// Every field of every body is converted: a field added to a pgquehttp
// type and not filled here shows as zero.
func TestEveryFieldConverted(t *testing.T) {
	sched := filled[pgque.ScheduleInfo]()
	sched.Payload = json.RawMessage(`{"k": 1}`)
	periodic := sched
	periodic.Cron = ""
	for name, tc := range map[string]struct {
		body any
		// Fields that are zero by design for this value.
		zero []string
	}{
		"queue":      {Queue(filled[pgque.QueueInfo]()), nil},
		"consumer":   {Consumer(filled[pgque.ConsumerInfo]()), nil},
		"worker":     {Worker(filled[pgque.WorkerInfo]()), nil},
		"message":    {Message(filled[pgque.Message]()), nil},
		"peeked":     {Peek([]pgque.PeekedMessage{filled[pgque.PeekedMessage]()}).Messages[0], nil},
		"deadLetter": {DeadLetter(filled[pgque.DeadLetter]()), nil},
		// Redelivered and Lost are a stream's.
		"batch":              {Batch([]pgque.Message{filled[pgque.Message]()}, "w"), []string{".Redelivered", ".Lost"}},
		"schedule, cron":     {Schedule(sched), []string{".EverySeconds"}},
		"schedule, periodic": {Schedule(periodic), []string{".Cron"}},
		"event":              {Event(filled[pgquehttp.Event]()), nil},
	} {
		got := strings.Join(zeroFields("", reflect.ValueOf(tc.body)), " ")
		if want := strings.Join(tc.zero, " "); got != want {
			t.Errorf("%s: zero fields %q, want %q", name, got, want)
		}
	}
}

func TestPayload(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "null"},                     // NULL
		{`{"a": [1, 2]}`, `{"a":[1,2]}`}, // as sent; Marshal compacts it
		{"null", "null"},
		{"plain text", `"plain text"`},
	} {
		b, err := json.Marshal(Message(pgque.Message{Payload: tc.in}).Payload)
		if err != nil || string(b) != tc.want {
			t.Errorf("payload %q: %s (%v), want %s", tc.in, b, err, tc.want)
		}
	}
	for _, in := range []string{"", "null", " null "} {
		if p := InPayload(json.RawMessage(in)); p != nil {
			t.Errorf("InPayload(%q) = %v, want nil (NULL)", in, p)
		}
	}
}
