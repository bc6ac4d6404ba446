// Package wire converts between the SDK's types (package pgque) and the
// JSON bodies of the HTTP API (package pgquehttp).  The HTTP server answers
// with these bodies and the CLI prints them with --json, so both show one
// shape per object; the conversion lives here, once, because pgquehttp
// must not depend on the SDK (and through it on pgx).
package wire

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// seconds converts an optional duration; nil stays nil.
func seconds(d *time.Duration) *float64 {
	if d == nil {
		return nil
	}
	v := d.Seconds()
	return &v
}

// each converts a list; the result is never nil, so it marshals as [].
func each[T, J any](items []T, conv func(T) J) []J {
	out := make([]J, len(items))
	for i, it := range items {
		out[i] = conv(it)
	}
	return out
}

// Queue is a queue's body.
func Queue(q pgque.QueueInfo) pgquehttp.Queue {
	return pgquehttp.Queue{
		Name: q.Name, Tables: q.Tables, CurrentTable: q.CurrentTable,
		RotationPeriodSeconds: q.RotationPeriod.Seconds(), SwitchTime: q.SwitchTime,
		TickerMaxCount: q.TickerMaxCount, TickerMaxLagSeconds: q.TickerMaxLag.Seconds(),
		TickerIdlePeriodSeconds: q.TickerIdlePeriod.Seconds(), MaxRetries: q.MaxRetries,
		RetryBackoffBaseSeconds: q.RetryBackoffBase.Seconds(), RetryBackoffCapSeconds: q.RetryBackoffCap.Seconds(),
		TickerLagSeconds: q.TickerLag.Seconds(), EventsPerSecond: q.EventsPerSecond, NewEvents: q.NewEvents,
		TotalEvents: q.TotalEvents, LastTickID: q.LastTickID, Consumers: q.Consumers, RetryPending: q.RetryPending,
		DeadLetters: q.DeadLetters, Paused: q.Paused, PausedAt: q.PausedAt, EventBytes: q.EventBytes,
		EventDeadTuples: q.EventDeadTuples, KeepUnclaimed: q.KeepUnclaimed, UnclaimedEvents: q.UnclaimedEvents,
		UnclaimedSince: q.UnclaimedSince, Errors: q.Errors, LastError: stepFailure(q.LastError),
	}
}

// Queues is the body listing qs.
func Queues(qs []pgque.QueueInfo) pgquehttp.QueueList {
	return pgquehttp.QueueList{Queues: each(qs, Queue)}
}

func stepFailure(f *pgque.StepFailure) *pgquehttp.StepFailure {
	if f == nil {
		return nil
	}
	return &pgquehttp.StepFailure{Step: f.Step, SQLState: f.SQLState, Message: f.Message, At: f.At}
}

// Consumer is a subscription's body.
func Consumer(c pgque.ConsumerInfo) pgquehttp.Consumer {
	return pgquehttp.Consumer{
		Queue: c.Queue, Name: c.Name, LagSeconds: c.Lag.Seconds(), LastSeenSeconds: c.LastSeen.Seconds(),
		LastTick: c.LastTick, CurrentBatch: c.CurrentBatch, NextTick: c.NextTick,
		PendingEvents: c.PendingEvents, RetryPending: c.RetryPending, DeadLetters: c.DeadLetters,
		BlockingRotation: c.BlockingRotation, BatchAgeSeconds: seconds(c.BatchAge),
		WorkerBatches: c.WorkerBatches,
	}
}

// Consumers is the body listing cs.
func Consumers(cs []pgque.ConsumerInfo) pgquehttp.ConsumerList {
	return pgquehttp.ConsumerList{Consumers: each(cs, Consumer)}
}

// Worker is a cooperative worker's body.
func Worker(w pgque.WorkerInfo) pgquehttp.Worker {
	return pgquehttp.Worker{Name: w.Name, BatchID: w.BatchID, LeaseLeftSeconds: seconds(w.LeaseLeft),
		LastSeenSeconds: w.LastSeen.Seconds()}
}

// Workers is the body listing ws.
func Workers(ws []pgque.WorkerInfo) pgquehttp.WorkerList {
	return pgquehttp.WorkerList{Workers: each(ws, Worker)}
}

// Payload gives a stored payload as it goes out: as is, or, when sent as
// raw text through SQL, as a JSON string; nil (NULL) marshals as null.
func Payload(p json.RawMessage) json.RawMessage {
	if p != nil && !json.Valid(p) {
		p, _ = json.Marshal(string(p)) // a string always marshals
	}
	return p
}

// Message is a message's body.  The SDK's NULL payload is "".
func Message(m pgque.Message) pgquehttp.Message {
	var p json.RawMessage
	if m.Payload != "" {
		p = Payload(json.RawMessage(m.Payload))
	}
	return pgquehttp.Message{
		MsgID: m.MsgID, Queue: m.Queue, BatchID: m.BatchID, Type: m.Type, Payload: p, RetryCount: m.RetryCount,
		CreatedAt: m.CreatedAt, Extra1: m.Extra1, Extra2: m.Extra2, Extra3: m.Extra3, Extra4: m.Extra4,
	}
}

// Batch is the piece msgs, handed out to worker ("" for a single reader).
func Batch(msgs []pgque.Message, worker string) pgquehttp.Batch {
	b := pgquehttp.Batch{Messages: each(msgs, Message), Worker: worker}
	if len(msgs) > 0 {
		b.BatchID, b.Queue = msgs[0].BatchID, msgs[0].Queue
	}
	return b
}

// Peek is the body showing the peeked messages ms.
func Peek(ms []pgque.PeekedMessage) pgquehttp.PeekResponse {
	return pgquehttp.PeekResponse{Messages: each(ms, func(m pgque.PeekedMessage) pgquehttp.PeekedMessage {
		return pgquehttp.PeekedMessage{Message: Message(m.Message), Worker: m.Worker}
	})}
}

// DeadLetter is a dead letter's body.
func DeadLetter(d pgque.DeadLetter) pgquehttp.DeadLetter {
	return pgquehttp.DeadLetter{ID: d.ID, Consumer: d.Consumer, DeadAt: d.DeadAt, Reason: d.Reason,
		Message: Message(d.Message)}
}

// DeadLetters is the body listing ds.
func DeadLetters(ds []pgque.DeadLetter) pgquehttp.DeadLetterList {
	return pgquehttp.DeadLetterList{DeadLetters: each(ds, DeadLetter)}
}

// MessageState is one message's state for one consumer.
func MessageState(s pgque.MessageState) pgquehttp.MessageState {
	ms := pgquehttp.MessageState{MsgID: s.MsgID, Consumer: s.Consumer, State: string(s.State), Worker: s.Worker,
		LeaseUntil: s.LeaseUntil, RetryCount: s.RetryCount, DueAt: s.DueAt, Reason: s.Reason,
		DeadAt: s.DeadAt, PositionAt: s.PositionAt}
	if s.Message != nil {
		m := Message(*s.Message)
		ms.Message = &m
	}
	return ms
}

// MessageStatus is the body telling where message id stands (ss).
func MessageStatus(id int64, ss []pgque.MessageState) pgquehttp.MessageStatus {
	return pgquehttp.MessageStatus{MsgID: id, Consumers: each(ss, MessageState)}
}

// Cancel is the body telling what cancelling message id did (rs).
func Cancel(id int64, rs []pgque.CancelResult) pgquehttp.CancelResponse {
	return pgquehttp.CancelResponse{MsgID: id, Consumers: each(rs, func(r pgque.CancelResult) pgquehttp.CancelResult {
		return pgquehttp.CancelResult{Consumer: r.Consumer, Outcome: r.Outcome}
	})}
}

// MessageList is the body listing ss.
func MessageList(ss []pgque.MessageState) pgquehttp.MessageList {
	return pgquehttp.MessageList{Messages: each(ss, MessageState)}
}

// Schedule is a schedule's body.
func Schedule(si pgque.ScheduleInfo) pgquehttp.Schedule {
	sc := pgquehttp.Schedule{
		Name: si.Name, Queue: si.Queue, Type: si.Type, Payload: Payload(si.Payload), TimeZone: si.TimeZone,
		NextRun: si.NextRun, LastRun: si.LastRun, LastFiredAt: si.LastFiredAt, LastEventID: si.LastEventID,
		Runs: si.Runs, CreatedAt: si.CreatedAt,
	}
	if si.Cron != "" {
		sc.Cron = &si.Cron
	} else {
		sc.EverySeconds = seconds(&si.Every)
	}
	return sc
}

// Schedules is the body listing ss.
func Schedules(ss []pgque.ScheduleInfo) pgquehttp.ScheduleList {
	return pgquehttp.ScheduleList{Schedules: each(ss, Schedule)}
}

// InPayload gives a payload as it comes in to the SDK: absent or a JSON
// null is a NULL payload.
func InPayload(p json.RawMessage) any {
	if len(p) == 0 || string(bytes.TrimSpace(p)) == "null" {
		return nil
	}
	return p
}

// Event is the event e to send.  It does not check e: the server and the
// CLI each name the faulty field their own way.
func Event(e pgquehttp.Event) pgque.Event {
	return pgque.Event{Type: e.Type, Payload: InPayload(e.Payload),
		Extra1: e.Extra1, Extra2: e.Extra2, Extra3: e.Extra3, Extra4: e.Extra4}
}
