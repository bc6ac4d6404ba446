package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pgque/pgque/go/pgquehttp"
)

// decode reads a JSON body into v.  Unknown fields and trailing data are
// errors, so that a misspelt field is not silently ignored.  An empty body
// leaves v alone when optional.
//
// Every error names the field at fault as the client wrote it, by its
// JSON path ("events[1].type"): encoding/json names Go's types and fields
// instead, and PostgreSQL's own errors for text it cannot hold name
// nothing.  So the checks that hold for every field of every request are
// made here, once: text that PostgreSQL can hold, and times within the
// engine's reach (see checkValues).
func decode(r *http.Request, v any, optional bool) error {
	body, err := io.ReadAll(r.Body)
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return err
	}
	if err != nil {
		// The client went away (or stalled past the read timeout): its
		// fault, and nobody reads the answer.
		return &apiError{code: pgquehttp.CodeMalformedJSON,
			msg: "reading the request body: " + err.Error()}
	}
	if !utf8.Valid(body) {
		return malformed("not valid UTF-8")
	}
	if optional && len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := strictDecoder(body)
	if err := dec.Decode(v); err != nil {
		// Unless it is not JSON at all, find the field at fault.
		var first json.RawMessage
		if json.NewDecoder(bytes.NewReader(body)).Decode(&first) == nil {
			if f, ok := locate(first, reflect.TypeOf(v).Elem(), ""); ok {
				return malformed(f.String())
			}
		}
		return malformed(err.Error())
	}
	if dec.More() {
		return malformed("data after the JSON value")
	}
	return checkValues(reflect.ValueOf(v).Elem())
}

func malformed(why string) error {
	return &apiError{code: pgquehttp.CodeMalformedJSON, msg: "malformed JSON body: " + why}
}

func strictDecoder(body []byte) *json.Decoder {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	return dec
}

// fault is a value of a body that does not decode into its field.
type fault struct {
	path    string
	t       reflect.Type
	raw     json.RawMessage
	unknown bool // no field has that name
}

func (f fault) String() string {
	if f.unknown {
		return fmt.Sprintf("%s is not a field", f.path)
	}
	kind := jsonKindOf(f.t)
	if isInt(f.t) && !integerLiteral(f.raw) {
		// Not an integer at all: the range the Go type can hold would only
		// mislead (the field's own range is checked once it decodes).
		kind = "an integer"
	}
	return fmt.Sprintf("%s must be %s, not %s", pathName(f.path), kind, clip(f.raw))
}

func isInt(t reflect.Type) bool { return t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64 }

// integerLiteral reports whether raw is a JSON integer (too big for its
// field, when it failed to decode).
func integerLiteral(raw json.RawMessage) bool {
	s := bytes.TrimPrefix(bytes.TrimSpace(raw), []byte("-"))
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// locate finds the innermost value of raw that does not decode into its
// field of t, decoding it piece by piece as decode does; false when raw
// decodes.  Only run on a body that failed, so its cost does not matter.
func locate(raw json.RawMessage, t reflect.Type, path string) (fault, bool) {
	if strictDecoder(raw).Decode(reflect.New(t).Interface()) == nil {
		return fault{}, false
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if !isLeaf(t) {
		switch t.Kind() {
		case reflect.Struct:
			var obj map[string]json.RawMessage
			if json.Unmarshal(raw, &obj) == nil {
				for _, k := range sortedKeys(obj) {
					f, ok := fieldNamed(t, k)
					if !ok {
						return fault{path: join(path, k), unknown: true}, true
					}
					if bad, ok := locate(obj[k], f.Type, join(path, k)); ok {
						return bad, true
					}
				}
			}
		case reflect.Map:
			var obj map[string]json.RawMessage
			if json.Unmarshal(raw, &obj) == nil {
				for _, k := range sortedKeys(obj) {
					if bad, ok := locate(obj[k], t.Elem(), join(path, k)); ok {
						return bad, true
					}
				}
			}
		case reflect.Slice, reflect.Array:
			var elems []json.RawMessage
			if json.Unmarshal(raw, &elems) == nil {
				for i, e := range elems {
					if bad, ok := locate(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); ok {
						return bad, true
					}
				}
			}
		}
	}
	return fault{path: path, t: t, raw: raw}, true
}

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	timeType        = reflect.TypeFor[time.Time]()
)

// isLeaf reports whether values of t decode whole (their own
// UnmarshalJSON: times, raw payloads) rather than field by field.
func isLeaf(t reflect.Type) bool {
	return t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType)
}

// jsonField is a field of a struct that JSON fills.
type jsonField struct {
	name string
	reflect.StructField
}

// fieldsOf caches jsonFields, which checkValues needs for every struct of
// every body (a batch holds up to 1000 events).
var fieldsOf sync.Map // reflect.Type -> []jsonField

// jsonFields are the fields of struct type t that JSON fills, embedded
// structs' included, by name.
func jsonFields(t reflect.Type) []jsonField {
	if fs, ok := fieldsOf.Load(t); ok {
		return fs.([]jsonField)
	}
	var out []jsonField
	for _, f := range reflect.VisibleFields(t) {
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || tag == "-" || f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		out = append(out, jsonField{tag, f})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	fieldsOf.Store(t, out)
	return out
}

// fieldNamed is the field of t that the key k fills: encoding/json takes
// a key of another case when no field has it exactly.
func fieldNamed(t reflect.Type, k string) (reflect.StructField, bool) {
	fs := jsonFields(t)
	for _, f := range fs {
		if f.name == k {
			return f.StructField, true
		}
	}
	for _, f := range fs {
		if strings.EqualFold(f.name, k) {
			return f.StructField, true
		}
	}
	return reflect.StructField{}, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func pathName(path string) string {
	if path == "" {
		return "the body"
	}
	return path
}

// jsonKindOf says what JSON a value of t is written as.
func jsonKindOf(t reflect.Type) string {
	switch {
	case t == timeType:
		return `an RFC 3339 time such as "2026-01-02T15:04:05Z"`
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		max := int64(math.MaxInt64) >> (64 - t.Bits())
		return fmt.Sprintf("an integer from %d to %d", -max-1, max)
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		return fmt.Sprintf("an integer from 0 to %d", uint64(math.MaxUint64)>>(64-t.Bits()))
	}
	switch t.Kind() {
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "a JSON value"
}

// clip is a value of a body as it is quoted in an error.
func clip(raw json.RawMessage) string {
	const max = 60
	s := string(bytes.TrimSpace(raw))
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "..."
	}
	return s
}

// timeSlack widens the bound on times beyond the engine's 100 years, so
// that the clocks of this server and the database's never make this check
// refuse a time the engine would take; a time within it gets the engine's
// PQ006, which names the argument as the body does.  It is narrower than
// the SDK's (a day), whose messages name its Go fields.
const timeSlack = 23 * time.Hour

// checkValues refuses, naming the field, what no field of a request can
// take: text with a NUL character or invalid UTF-8 (which PostgreSQL's text
// cannot hold), and times more than 100 years from now.  Request types
// hold times as pointers, nil when absent: a time given is checked, the
// zero time included, which the SDK would take for "not given".
func checkValues(v reflect.Value) error {
	if bad := badIn(v); bad != nil {
		return badRequest("%s%s%s", bad.before, pathName(bad.path), bad.after)
	}
	return nil
}

// badValue is what badIn found: the message is before, the value's path,
// after.  The path is built on the way out, so that a good body (a batch
// of a thousand events) costs no paths.
type badValue struct{ before, path, after string }

// under puts b's path under seg, a field's name or an index "[i]".
func (b *badValue) under(seg string) *badValue {
	if b.path != "" && b.path[0] != '[' {
		seg += "."
	}
	b.path = seg + b.path
	return b
}

// badIn is the first value in v that checkValues refuses, or nil.
func badIn(v reflect.Value) *badValue {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return badIn(v.Elem())
		}
	case reflect.String:
		if why := textFault(v.String()); why != "" {
			return &badValue{after: " " + why}
		}
	case reflect.Struct:
		if v.Type() == timeType {
			return badTime(v.Interface().(time.Time))
		}
		for _, jf := range jsonFields(v.Type()) {
			f, err := v.FieldByIndexErr(jf.Index)
			if err != nil {
				continue // in a nil embedded pointer: not given
			}
			if bad := badIn(f); bad != nil {
				return bad.under(jf.name)
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // payloads: JSON text, stored as sent
		}
		for i := range v.Len() {
			if bad := badIn(v.Index(i)); bad != nil {
				return bad.under(fmt.Sprintf("[%d]", i))
			}
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			if why := textFault(k.String()); why != "" {
				return &badValue{before: fmt.Sprintf("key %q of ", k.String()), after: " " + why}
			}
			if bad := badIn(v.MapIndex(k)); bad != nil {
				return bad.under(k.String())
			}
		}
	}
	return nil
}

// badTime refuses a time beyond the engine's reach: it adds 100 years to
// now() on the calendar.
func badTime(t time.Time) *badValue {
	if now := time.Now(); t.Before(now.AddDate(-100, 0, 0).Add(-timeSlack)) ||
		t.After(now.AddDate(100, 0, 0).Add(timeSlack)) {
		return &badValue{after: " " + t.Format(time.RFC3339Nano) +
			" is out of range: must be a finite time within 100 years of now"}
	}
	return nil
}
