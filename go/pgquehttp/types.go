package pgquehttp

import (
	"encoding/json"
	"time"

	"github.com/pgque/pgque/go/internal/errtable"
)

// The types below are the JSON bodies of pgque's HTTP API (docs/http.md).
// Durations are in seconds, times in RFC 3339.

// Queue describes a queue: its settings and its state.
type Queue struct {
	Name                    string    `json:"name"`
	Tables                  int       `json:"tables"`
	CurrentTable            int       `json:"current_table"`
	RotationPeriodSeconds   float64   `json:"rotation_period_seconds"`
	SwitchTime              time.Time `json:"switch_time"`
	TickerMaxCount          int       `json:"ticker_max_count"`
	TickerMaxLagSeconds     float64   `json:"ticker_max_lag_seconds"`
	TickerIdlePeriodSeconds float64   `json:"ticker_idle_period_seconds"`
	MaxRetries              int       `json:"max_retries"`
	RetryBackoffBaseSeconds float64   `json:"retry_backoff_base_seconds"`
	RetryBackoffCapSeconds  float64   `json:"retry_backoff_cap_seconds"`
	// TickerLagSeconds is the time since the queue's newest tick.
	TickerLagSeconds float64 `json:"ticker_lag_seconds"`
	EventsPerSecond  float64 `json:"events_per_second"`
	// NewEvents were sent since the newest tick (approximate).
	NewEvents int64 `json:"new_events"`
	// TotalEvents were sent since the queue was created (approximate).
	TotalEvents  int64 `json:"total_events"`
	LastTickID   int64 `json:"last_tick_id"`
	Consumers    int   `json:"consumers"`
	RetryPending int64 `json:"retry_pending"`
	DeadLetters  int64 `json:"dead_letters"`
	// Paused is true while the queue is paused: its consumers receive
	// nothing.  PausedAt is when it was paused, null while it runs.
	Paused   bool       `json:"paused"`
	PausedAt *time.Time `json:"paused_at"`
	// EventBytes is the disk size of the queue's event tables, indexes and
	// TOAST included; EventDeadTuples their dead rows (statistics estimate).
	EventBytes      int64 `json:"event_bytes"`
	EventDeadTuples int64 `json:"event_dead_tuples"`
	// KeepUnclaimed is the queue's keep_unclaimed setting: while it has no
	// consumer, its events are kept for the first one that subscribes.
	KeepUnclaimed bool `json:"keep_unclaimed"`
	// UnclaimedEvents estimates the events kept that way (0 while the
	// queue has consumers).  While it is above 0 the queue's tables cannot
	// rotate: subscribe a consumer, or turn keep_unclaimed off.
	UnclaimedEvents int64 `json:"unclaimed_events"`
	// UnclaimedSince is the time of the tick the unclaimed events were sent
	// after; null while the queue has consumers.
	UnclaimedSince *time.Time `json:"unclaimed_since"`
	// Errors counts the consecutive failures of the queue's periodic work
	// (ticks, table switches, retry and delayed moves), 0 when all is
	// well; LastError is the newest of them, null when Errors is 0.
	Errors    int64        `json:"errors"`
	LastError *StepFailure `json:"last_error"`
}

// QueueList answers GET /v1/queues.
type QueueList struct {
	Queues []Queue `json:"queues"`
}

// StepFailure is a recorded failure of one step of a queue's periodic work.
type StepFailure struct {
	Step     string    `json:"step"` // "tick", "rotate", "logs", "retry", "delayed", "delayed_store" or "dedup"
	SQLState string    `json:"sqlstate"`
	Message  string    `json:"message"`
	At       time.Time `json:"at"`
}

// PauseResponse answers POST /v1/queues/{queue}/pause and .../resume.
type PauseResponse struct {
	// Changed is false when the queue was paused (or running) already.
	Changed bool `json:"changed"`
}

// Config holds queue settings by their pgque.set_queue_config names
// (ticker_max_count, ticker_max_lag, ticker_idle_period, rotation_period,
// max_retries, retry_backoff_base, retry_backoff_cap, retry_jitter,
// keep_unclaimed).  Values are JSON strings, numbers or booleans; an
// interval given as a number is in seconds.
type Config map[string]any

// CreateQueueRequest is the body of POST /v1/queues.
type CreateQueueRequest struct {
	Name   string `json:"name"`
	Config Config `json:"config,omitempty"`
}

// Consumer describes a subscription.
type Consumer struct {
	Queue string `json:"queue"`
	Name  string `json:"name"`
	// LagSeconds is the time since the tick the consumer last finished.
	LagSeconds float64 `json:"lag_seconds"`
	// LastSeenSeconds is the time since it last opened, acked or finished a batch.
	LastSeenSeconds float64 `json:"last_seen_seconds"`
	LastTick        int64   `json:"last_tick"`
	CurrentBatch    *int64  `json:"current_batch"`
	NextTick        *int64  `json:"next_tick"`
	// PendingEvents were sent after its position (approximate).
	PendingEvents    int64 `json:"pending_events"`
	RetryPending     int64 `json:"retry_pending"`
	DeadLetters      int64 `json:"dead_letters"`
	BlockingRotation bool  `json:"blocking_rotation"`
	// BatchAgeSeconds is the time since the end tick of the oldest open
	// batch (its own, or a window of one of its workers); null without one.
	BatchAgeSeconds *float64 `json:"batch_age_seconds"`
	// WorkerBatches is how many windows its cooperative workers hold.
	WorkerBatches int `json:"worker_batches"`
}

// ConsumerList answers GET /v1/queues/{queue}/consumers.
type ConsumerList struct {
	Consumers []Consumer `json:"consumers"`
}

// Worker describes a cooperative worker of a consumer.
type Worker struct {
	Name string `json:"name"`
	// BatchID is the batch the worker holds (its window, not a piece id:
	// the pieces handed out of it have ids of their own); null when none.
	BatchID *int64 `json:"batch_id"`
	// LeaseLeftSeconds is the time until another worker may take the batch
	// over (negative: it may already); null without a batch.
	LeaseLeftSeconds *float64 `json:"lease_left_seconds"`
	// LastSeenSeconds is the time since it last received, acked or heartbeated.
	LastSeenSeconds float64 `json:"last_seen_seconds"`
}

// WorkerList answers GET .../consumers/{consumer}/workers.
type WorkerList struct {
	Workers []Worker `json:"workers"`
}

// SubscribeResponse is the body answering PUT .../consumers/{consumer}.
type SubscribeResponse struct {
	// Created is false when the consumer was subscribed already.
	Created bool `json:"created"`
}

// Event is an event to send.
type Event struct {
	Type string `json:"type"`
	// Payload is any JSON value; absent or null sends a NULL payload.
	Payload json.RawMessage `json:"payload,omitempty"`
	Extra1  *string         `json:"extra1,omitempty"`
	Extra2  *string         `json:"extra2,omitempty"`
	Extra3  *string         `json:"extra3,omitempty"`
	Extra4  *string         `json:"extra4,omitempty"`
}

// SendResponse answers POST /v1/queues/{queue}/events.
type SendResponse struct {
	ID int64 `json:"id"`
}

// SendBatchRequest is the body of POST /v1/queues/{queue}/events/batch.
type SendBatchRequest struct {
	Events []Event `json:"events"`
}

// SendBatchResponse holds the ids of a batch send, in the order of the events.
type SendBatchResponse struct {
	IDs []int64 `json:"ids"`
}

// Message is an event as a consumer receives it.
type Message struct {
	MsgID int64 `json:"msg_id"`
	// Queue is the queue the message was received from; absent where the
	// path names it (peek, dead letters).
	Queue string `json:"queue,omitempty"`
	// BatchID is the id of the piece the message was handed out in: what
	// ack, nack and heartbeat take.
	BatchID int64  `json:"batch_id"`
	Type    string `json:"type"`
	// Payload is the event's payload; null for a NULL payload.  A payload
	// that is not JSON (sent as raw text through SQL) comes as a JSON string.
	Payload json.RawMessage `json:"payload"`
	// RetryCount is null on first delivery and 1, 2, ... on retries.
	RetryCount *int      `json:"retry_count"`
	CreatedAt  time.Time `json:"created_at"`
	Extra1     *string   `json:"extra1,omitempty"`
	Extra2     *string   `json:"extra2,omitempty"`
	Extra3     *string   `json:"extra3,omitempty"`
	Extra4     *string   `json:"extra4,omitempty"`
}

// ReceiveRequest is the (optional) body of POST .../receive.  Without
// Worker or SingleReader the server receives as a cooperative worker whose
// name it picks (competing consumers: concurrent callers get different
// messages).
type ReceiveRequest struct {
	// Max is how many messages to hand out at most (default 100).
	Max int `json:"max,omitempty"`
	// Worker, when set, receives as that cooperative worker of the
	// consumer, a name the caller keeps.
	Worker string `json:"worker,omitempty"`
	// LeaseSeconds is how long the worker's batch stays its own without a
	// receive or heartbeat (default 30, at most 86400).
	LeaseSeconds float64 `json:"lease_seconds,omitempty"`
	// SingleReader receives as the consumer's one reader, the PgQ way:
	// whole batches in order, no lease, and a second caller is handed the
	// same unacknowledged messages again.  Not with Worker or LeaseSeconds.
	SingleReader bool `json:"single_reader,omitempty"`
}

// ReceiveFirstRequest is the body of POST /v1/consumers/{consumer}/receive:
// receive from several queues in strict priority.  The first of Queues,
// in order, that hands out messages gives the call's piece (one queue's
// piece per call; its Batch says which queue); a queue is read only while
// every queue before it has nothing.  The token must allow reading every
// queue named.
type ReceiveFirstRequest struct {
	// Queues are the queues to ask, most urgent first (one or more; the
	// consumer subscribed to each).
	Queues []string `json:"queues"`
	// ReceiveRequest says how much to receive and as whom, on each queue.
	ReceiveRequest
}

// HeartbeatRequest is the (optional) body of POST /v1/batches/{batch}/heartbeat.
type HeartbeatRequest struct {
	// LeaseSeconds is how long the batch stays the worker's from now
	// (default 30, at most 86400).
	LeaseSeconds float64 `json:"lease_seconds,omitempty"`
}

// HeartbeatResponse answers POST /v1/batches/{batch}/heartbeat.
type HeartbeatResponse struct {
	// Held is false when the batch is no longer open: finished, or taken
	// over by another worker after its lease ran out.
	Held bool `json:"held"`
}

// Batch is a piece of a consumer's batch: what one receive handed out.
// Acknowledge it with POST /v1/batches/{batch_id}/ack once its messages are
// handled; until then the same messages come again.
type Batch struct {
	// BatchID is the piece's id, to ack, nack and heartbeat; 0 (and
	// Messages empty) when nothing new was ticked.
	BatchID int64 `json:"batch_id"`
	// Queue is the queue of the piece; absent when nothing was handed out.
	Queue    string    `json:"queue,omitempty"`
	Messages []Message `json:"messages"`
	// Worker is the cooperative worker the piece was handed out to: the
	// name the server picked, or the one the request gave; absent for a
	// single reader.
	Worker string `json:"worker,omitempty"`
	// Redelivered is set on a stream's batch whose event id is the
	// Last-Event-ID the client reconnected with: it saw these messages
	// already and did not acknowledge them.
	Redelivered bool `json:"redelivered,omitempty"`
	// Lost is set on a stream's "lost" event (Messages empty): the stream
	// no longer holds the piece BatchID, because it was acknowledged
	// elsewhere or, its lease run out, taken over by another worker.  Stop
	// handling it if you still are.
	Lost bool `json:"lost,omitempty"`
}

// PeekedMessage is a message GET .../peek shows.
type PeekedMessage struct {
	// Message is the message; its BatchID is the open batch holding it (a
	// worker's window or the consumer's own batch, as the workers and
	// consumer listings show them), not a piece to acknowledge, and 0 for a
	// message in no open batch yet.
	Message
	// Worker is the worker whose window holds the message; absent for the
	// consumer's own batch and for messages not handed out yet.
	Worker string `json:"worker,omitempty"`
}

// PeekResponse answers GET .../peek.
type PeekResponse struct {
	Messages []PeekedMessage `json:"messages"`
}

// AckResponse answers POST /v1/batches/{batch}/ack.
type AckResponse struct {
	// Acked is false when the piece is unknown, its batch finished, or
	// everything in it was acknowledged already.  (A piece whose batch
	// another worker took over is answered 409 taken_over.)
	Acked bool `json:"acked"`
}

// NackRequest is the body of POST /v1/batches/{batch}/nack.
type NackRequest struct {
	MsgID int64 `json:"msg_id"`
	// RetryAfterSeconds delays the retry; 0 or absent: the queue's backoff.
	RetryAfterSeconds int    `json:"retry_after_seconds,omitempty"`
	Reason            string `json:"reason,omitempty"`
}

// Outcome is what became of a nacked message: "retry" or "dead".
type Outcome string

const (
	OutcomeRetry Outcome = "retry"
	OutcomeDead  Outcome = "dead"
)

// NackResponse answers POST /v1/batches/{batch}/nack.
type NackResponse struct {
	Outcome Outcome `json:"outcome"`
}

// DeadLetter is an event that exhausted its retries for one consumer.  Its
// message has BatchID 0.
type DeadLetter struct {
	ID       int64     `json:"id"`
	Consumer string    `json:"consumer"`
	DeadAt   time.Time `json:"dead_at"`
	Reason   *string   `json:"reason"`
	Message  Message   `json:"message"`
}

// MessageState is where one message stands for one consumer of its queue
// (GET /v1/queues/{queue}/messages/{id}).  State is one of not_ticked,
// pending, handed_out, done, retrying, dead, delayed, cancelled,
// unclaimed, unknown.
type MessageState struct {
	MsgID      int64      `json:"msg_id"`
	Consumer   string     `json:"consumer"` // "" in the one row of a queue without consumers
	State      string     `json:"state"`
	Worker     *string    `json:"worker,omitempty"`
	LeaseUntil *time.Time `json:"lease_until,omitempty"`
	RetryCount *int       `json:"retry_count,omitempty"`
	DueAt      *time.Time `json:"due_at,omitempty"`
	Reason     *string    `json:"reason,omitempty"`
	DeadAt     *time.Time `json:"dead_at,omitempty"`
	PositionAt *time.Time `json:"position_at,omitempty"`
	// Message is the message while a table or store holds it.
	Message *Message `json:"message,omitempty"`
}

// MessageList answers GET /v1/queues/{queue}/messages: the messages in one
// state, oldest first (a message may have a row per consumer).
type MessageList struct {
	Messages []MessageState `json:"messages"`
}

// CancelResult is what a cancel did for one consumer: outcome cancelled,
// handed_out (being handled: cancelled too), done or dead (too late), or
// unknown.
type CancelResult struct {
	Consumer string `json:"consumer"`
	Outcome  string `json:"outcome"`
}

// CancelResponse answers POST /v1/queues/{queue}/messages/{id}/cancel.
type CancelResponse struct {
	MsgID     int64          `json:"msg_id"`
	Consumers []CancelResult `json:"consumers"`
}

// MessageStatus answers GET /v1/queues/{queue}/messages/{id}.
type MessageStatus struct {
	MsgID     int64          `json:"msg_id"`
	Consumers []MessageState `json:"consumers"`
}

// DeadLetterList answers GET /v1/queues/{queue}/dead-letters.
type DeadLetterList struct {
	DeadLetters []DeadLetter `json:"dead_letters"`
}

// ReplayResponse answers POST /v1/dead-letters/{id}/replay.
type ReplayResponse struct {
	// ID is the dead letter replayed, MsgID the message delivered again.
	ID    int64 `json:"id"`
	MsgID int64 `json:"msg_id"`
}

// PurgeResponse answers DELETE /v1/queues/{queue}/dead-letters.
type PurgeResponse struct {
	Purged int `json:"purged"`
}

// CreateScheduleRequest is the body of POST /v1/schedules.  Give exactly
// one of EverySeconds and Cron.
type CreateScheduleRequest struct {
	Name  string `json:"name"`
	Queue string `json:"queue"`
	Type  string `json:"type"`
	// Payload is any JSON value; absent or null: a NULL payload.
	Payload json.RawMessage `json:"payload,omitempty"`
	// EverySeconds is the period, whole seconds.
	EverySeconds int64 `json:"every_seconds,omitempty"`
	// Cron is a 5-field cron expression or a shortcut such as "@daily".
	Cron string `json:"cron,omitempty"`
	// TimeZone is an IANA time zone name; absent: UTC.
	TimeZone string `json:"time_zone,omitempty"`
	// StartAt, for a period only, is the first run.
	StartAt *time.Time `json:"start_at,omitempty"`
}

// Schedule describes a schedule.
type Schedule struct {
	Name    string          `json:"name"`
	Queue   string          `json:"queue"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
	// EverySeconds is the period, null for a cron schedule; Cron is null
	// for a periodic one.
	EverySeconds *float64  `json:"every_seconds"`
	Cron         *string   `json:"cron"`
	TimeZone     string    `json:"time_zone"`
	NextRun      time.Time `json:"next_run"`
	// LastRun is the due time of the last event sent, LastFiredAt when it
	// was sent, LastEventID its id; null before the first run.
	LastRun     *time.Time `json:"last_run"`
	LastFiredAt *time.Time `json:"last_fired_at"`
	LastEventID *int64     `json:"last_event_id"`
	Runs        int64      `json:"runs"`
	CreatedAt   time.Time  `json:"created_at"`
}

// ScheduleList answers GET /v1/schedules.
type ScheduleList struct {
	Schedules []Schedule `json:"schedules"`
}

// Health answers /healthz and /readyz.
type Health struct {
	Status string            `json:"status"` // "ok", "ready" or "unavailable"
	Checks map[string]string `json:"checks,omitempty"`
}

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail describes an error.
type ErrorDetail struct {
	// Code is stable and machine-readable, e.g. "queue_not_found".
	Code    string `json:"code"`
	Message string `json:"message"`
	// SQLState is the engine's SQLSTATE (e.g. "PQ001") when it raised the error.
	SQLState string `json:"sqlstate,omitempty"`
}

// Error codes (docs/http.md lists each with its status and SQLSTATE).
// Those of engine errors match the SDK's sentinel errors.
const (
	CodeQueueNotFound        = errtable.CodeQueueNotFound
	CodeQueueExists          = errtable.CodeQueueExists
	CodeConsumerNotFound     = errtable.CodeConsumerNotFound
	CodeBatchNotFound        = errtable.CodeBatchNotFound
	CodeMessageNotFound      = errtable.CodeMessageNotFound
	CodeInvalidArgument      = errtable.CodeInvalidArgument
	CodeQueueHasConsumers    = errtable.CodeQueueHasConsumers
	CodeDeadLetterNotFound   = errtable.CodeDeadLetterNotFound
	CodeScheduleExists       = errtable.CodeScheduleExists
	CodeScheduleNotFound     = errtable.CodeScheduleNotFound
	CodeConsumerBusy         = errtable.CodeConsumerBusy
	CodeWorkerBusy           = errtable.CodeWorkerBusy
	CodeNotAPiece            = errtable.CodeNotAPiece
	CodeTakenOver            = errtable.CodeTakenOver
	CodeWorkerNotFound       = errtable.CodeWorkerNotFound
	CodePermissionDenied     = errtable.CodePermissionDenied
	CodeMalformedJSON        = errtable.CodeMalformedJSON
	CodeBodyTooLarge         = errtable.CodeBodyTooLarge
	CodeNotFound             = errtable.CodeNotFound
	CodeMethodNotAllowed     = errtable.CodeMethodNotAllowed
	CodeUnavailable          = errtable.CodeUnavailable
	CodeInternal             = errtable.CodeInternal
	CodeUnauthenticated      = errtable.CodeUnauthenticated
	CodeForbidden            = errtable.CodeForbidden
	CodeUnsupportedMediaType = errtable.CodeUnsupportedMediaType
	CodeWrongTransactionMode = errtable.CodeWrongTransactionMode
	CodeNotScheduled         = errtable.CodeNotScheduled
	CodeNotInstalled         = errtable.CodeNotInstalled
)
