// Package pgquehttp is a typed client for pgque's HTTP API, served by
// `pgque serve` (docs/http.md).  Use it where a program cannot or should not
// talk to PostgreSQL itself; with database access, the SDK in package pgque
// does the same work without the hop.
//
// Every method returns an *Error for an error response; errors.Is matches it
// against the SDK's sentinel errors (pgque.ErrQueueNotFound, ...) by its
// code, as it would match the SDK's own errors.  The package itself does not
// depend on the SDK (nor on pgx): it and the SDK share one table of errors.
package pgquehttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pgque/pgque/go/internal/errtable"
)

// Client calls one pgque server.  It is safe for concurrent use.
type Client struct {
	base  *url.URL
	http  *http.Client
	token string
}

// Option configures NewClient.
type Option func(*Client)

// WithHTTPClient makes the client send its requests with hc (default
// http.DefaultClient).  A timeout set on hc also bounds streams.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithToken makes the client authenticate with token (sent as
// "Authorization: Bearer <token>"), for a server that requires tokens.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// NewClient returns a client of the server at baseURL, e.g.
// "http://127.0.0.1:8080".
func NewClient(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("pgquehttp: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("pgquehttp: base URL %q is not an http(s) URL with a host", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c := &Client{base: u, http: http.DefaultClient}
	for _, opt := range opts {
		opt(c)
	}
	return c, nil
}

// Error is an error response of the server.
type Error struct {
	Status   int    // HTTP status; 0 for an error reported inside a stream
	Code     string // e.g. "queue_not_found"; see the Code constants
	Message  string
	SQLState string // the engine's SQLSTATE, when it raised the error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("pgquehttp: %s (HTTP %d, %s", e.Message, e.Status, e.Code)
	if e.SQLState != "" {
		s += ", SQLSTATE " + e.SQLState
	}
	return s + ")"
}

// Is reports whether target is the SDK sentinel error of e's code.
func (e *Error) Is(target error) bool {
	t := errtable.ByCode(e.Code)
	return t != nil && t.Err != nil && t.Err == target
}

// do sends a request with body in (nil for none) and decodes the answer
// into out (nil to ignore it).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	resp, err := c.send(ctx, method, path, query, in, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("pgquehttp: %s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns a successful response; an error
// response becomes an *Error.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, in any, header http.Header) (*http.Response, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("pgquehttp: %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("pgquehttp: %w", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("pgquehttp: %s %s: %w", method, path, err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	var eb ErrorBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if json.Unmarshal(raw, &eb) != nil || eb.Error.Code == "" {
		// Not our server's answer (a proxy's, say).
		return nil, &Error{Status: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode),
			Message: strings.TrimSpace(string(raw))}
	}
	return nil, &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message, SQLState: eb.Error.SQLState}
}

// esc escapes a name for a URL path.
func esc(name string) string { return url.PathEscape(name) }

func queuePath(queue string) string { return "/v1/queues/" + esc(queue) }

func consumerPath(queue, consumer string) string {
	return queuePath(queue) + "/consumers/" + esc(consumer)
}

// Queues describes every queue.
func (c *Client) Queues(ctx context.Context) ([]Queue, error) {
	var out QueueList
	err := c.do(ctx, http.MethodGet, "/v1/queues", nil, nil, &out)
	return out.Queues, err
}

// Queue describes one queue.
func (c *Client) Queue(ctx context.Context, queue string) (Queue, error) {
	var out Queue
	err := c.do(ctx, http.MethodGet, queuePath(queue), nil, nil, &out)
	return out, err
}

// CreateQueue creates a queue with the given settings (nil for the
// defaults), all or nothing.  It fails with pgque.ErrQueueExists when the
// queue exists.
func (c *Client) CreateQueue(ctx context.Context, queue string, cfg Config) (Queue, error) {
	var out Queue
	err := c.do(ctx, http.MethodPost, "/v1/queues", nil, CreateQueueRequest{Name: queue, Config: cfg}, &out)
	return out, err
}

// UpdateQueue changes settings of a queue, all or nothing, and returns it.
func (c *Client) UpdateQueue(ctx context.Context, queue string, cfg Config) (Queue, error) {
	var out Queue
	err := c.do(ctx, http.MethodPatch, queuePath(queue), nil, cfg, &out)
	return out, err
}

// DeleteQueue drops a queue with its events.  Without force it fails with
// pgque.ErrQueueHasConsumers while consumers are subscribed.
func (c *Client) DeleteQueue(ctx context.Context, queue string, force bool) error {
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	return c.do(ctx, http.MethodDelete, queuePath(queue), q, nil, nil)
}

// PauseQueue stops the queue's consumers from being handed anything until
// ResumeQueue; producers and ticks go on.  It reports false when the queue
// was paused already.
func (c *Client) PauseQueue(ctx context.Context, queue string) (bool, error) {
	var out PauseResponse
	err := c.do(ctx, http.MethodPost, queuePath(queue)+"/pause", nil, nil, &out)
	return out.Changed, err
}

// ResumeQueue lets the consumers of a paused queue receive again.  It
// reports false when the queue was not paused.
func (c *Client) ResumeQueue(ctx context.Context, queue string) (bool, error) {
	var out PauseResponse
	err := c.do(ctx, http.MethodPost, queuePath(queue)+"/resume", nil, nil, &out)
	return out.Changed, err
}

// Send sends one event and returns its id.
func (c *Client) Send(ctx context.Context, queue string, ev Event) (int64, error) {
	var out SendResponse
	err := c.do(ctx, http.MethodPost, queuePath(queue)+"/events", nil, ev, &out)
	return out.ID, err
}

// SendBatch sends events atomically and returns their ids in order.
func (c *Client) SendBatch(ctx context.Context, queue string, events []Event) ([]int64, error) {
	var out SendBatchResponse
	err := c.do(ctx, http.MethodPost, queuePath(queue)+"/events/batch", nil, SendBatchRequest{Events: events}, &out)
	return out.IDs, err
}

// Consumers describes the consumers of a queue.
func (c *Client) Consumers(ctx context.Context, queue string) ([]Consumer, error) {
	var out ConsumerList
	err := c.do(ctx, http.MethodGet, queuePath(queue)+"/consumers", nil, nil, &out)
	return out.Consumers, err
}

// Consumer describes one consumer of a queue.
func (c *Client) Consumer(ctx context.Context, queue, consumer string) (Consumer, error) {
	var out Consumer
	err := c.do(ctx, http.MethodGet, consumerPath(queue, consumer), nil, nil, &out)
	return out, err
}

// Subscribe subscribes consumer to queue; it reports false when it was
// subscribed already.
func (c *Client) Subscribe(ctx context.Context, queue, consumer string) (bool, error) {
	var out SubscribeResponse
	err := c.do(ctx, http.MethodPut, consumerPath(queue, consumer), nil, nil, &out)
	return out.Created, err
}

// Unsubscribe removes a subscription; pgque.ErrConsumerNotFound when there
// is none.
func (c *Client) Unsubscribe(ctx context.Context, queue, consumer string) error {
	return c.do(ctx, http.MethodDelete, consumerPath(queue, consumer), nil, nil, nil)
}

// Receive hands out up to max messages (0: the server's default, 100) of
// the consumer that nobody else was handed; none when nothing new was
// ticked.  The server receives as a cooperative worker whose name it picks
// (Batch.Worker), so concurrent callers get different messages; the piece
// is the caller's for the default lease (30 s; Heartbeat renews it).  Ack
// it (Batch.BatchID) once the messages are handled: until then, or until
// the lease ran out, nobody else gets them.
func (c *Client) Receive(ctx context.Context, queue, consumer string, max int) (Batch, error) {
	return c.ReceiveWith(ctx, queue, consumer, ReceiveRequest{Max: max})
}

// ReceiveWith is Receive with every option of the request: a lease
// (LeaseSeconds), a worker name of the caller's (Worker), or the single
// reader (SingleReader).
func (c *Client) ReceiveWith(ctx context.Context, queue, consumer string, req ReceiveRequest) (Batch, error) {
	var out Batch
	err := c.do(ctx, http.MethodPost, consumerPath(queue, consumer)+"/receive", nil, req, &out)
	return out, err
}

// ReceiveFirst receives for consumer from several queues in strict
// priority (POST /v1/consumers/{consumer}/receive): the piece of the first
// of req.Queues, in order, that hands out messages, with its Queue set;
// an empty Batch when none does.  req's other fields are as ReceiveWith's,
// applied on each queue.
func (c *Client) ReceiveFirst(ctx context.Context, consumer string, req ReceiveFirstRequest) (Batch, error) {
	var out Batch
	err := c.do(ctx, http.MethodPost, "/v1/consumers/"+esc(consumer)+"/receive", nil, req, &out)
	return out, err
}

// ReceiveSingleReader receives as the consumer's one reader, the PgQ way:
// up to max messages of its open or next batch, in order, with no lease.
// A second caller is handed the same messages again until they are
// acknowledged; use it when one process reads the consumer.
func (c *Client) ReceiveSingleReader(ctx context.Context, queue, consumer string, max int) (Batch, error) {
	return c.ReceiveWith(ctx, queue, consumer, ReceiveRequest{Max: max, SingleReader: true})
}

// ReceiveAsWorker is Receive as the cooperative worker named worker, a name
// the caller keeps (a process that restarts under the same name resumes its
// own batch at once): up to max messages of the worker's batch, or of a new
// one, held for lease from now (0: the server's default, 30 s; rounded to
// microseconds).  It fails with pgque.ErrConsumerBusy while a single reader
// has the consumer's own batch open.
func (c *Client) ReceiveAsWorker(ctx context.Context, queue, consumer, worker string, max int,
	lease time.Duration) (Batch, error) {
	if worker == "" {
		return Batch{}, fmt.Errorf("pgquehttp: receive as worker: no worker name: %w", errtable.ErrInvalidArgument)
	}
	return c.ReceiveWith(ctx, queue, consumer, ReceiveRequest{Max: max, Worker: worker, LeaseSeconds: lease.Seconds()})
}

// Peek returns up to max (0: 100) messages the consumer has not
// acknowledged, in the order they are handed out, moving nothing: those in
// open batches first (with their batch and worker), then those a receive
// would get next.
func (c *Client) Peek(ctx context.Context, queue, consumer string, max int) ([]PeekedMessage, error) {
	q := url.Values{}
	if max != 0 {
		q.Set("max", strconv.Itoa(max))
	}
	var out PeekResponse
	err := c.do(ctx, http.MethodGet, consumerPath(queue, consumer)+"/peek", q, nil, &out)
	return out.Messages, err
}

// Heartbeat keeps the batch that the piece batchID came from the caller's
// for lease from now (0: 30 s), while handling it takes long.  It reports
// false when that batch is no longer open: finished, or taken over by
// another worker after its lease ran out (stop handling it).  A batch id
// (of Workers or Consumer) is not a piece: pgque.ErrNotAPiece.
func (c *Client) Heartbeat(ctx context.Context, batchID int64, lease time.Duration) (bool, error) {
	var out HeartbeatResponse
	err := c.do(ctx, http.MethodPost, "/v1/batches/"+strconv.FormatInt(batchID, 10)+"/heartbeat", nil,
		HeartbeatRequest{LeaseSeconds: lease.Seconds()}, &out)
	return out.Held, err
}

// Workers lists the cooperative workers of a consumer, by name.
func (c *Client) Workers(ctx context.Context, queue, consumer string) ([]Worker, error) {
	var out WorkerList
	err := c.do(ctx, http.MethodGet, consumerPath(queue, consumer)+"/workers", nil, nil, &out)
	return out.Workers, err
}

// UnregisterWorker forgets a worker that will not come back.  It fails with
// pgque.ErrWorkerBusy while the worker holds a batch, and with an *Error of
// code CodeWorkerNotFound when there is no such worker.
func (c *Client) UnregisterWorker(ctx context.Context, queue, consumer, worker string) error {
	return c.do(ctx, http.MethodDelete, consumerPath(queue, consumer)+"/workers/"+esc(worker), nil, nil, nil)
}

// ReleaseWorker is UnregisterWorker for a worker that stops, or gives up
// what it was handed: the batch it holds goes to the next worker that
// receives at once (after what it acknowledged), rather than once its lease
// ran out.  An *Error of code CodeWorkerNotFound when there is no such
// worker.
func (c *Client) ReleaseWorker(ctx context.Context, queue, consumer, worker string) error {
	q := url.Values{"release": {"true"}}
	return c.do(ctx, http.MethodDelete, consumerPath(queue, consumer)+"/workers/"+esc(worker), q, nil, nil)
}

// Ack acknowledges the messages of the piece batchID (Batch.BatchID); never
// messages handed out to others.  It reports false when the piece is
// unknown, its batch finished, or everything in it was acknowledged
// already.  It fails with pgque.ErrTakenOver when another worker took the
// piece's batch over (the lease ran out: nothing is acknowledged, and the
// messages are the other worker's), and with pgque.ErrNotAPiece for the id
// of a whole batch (of Workers or Consumer).
func (c *Client) Ack(ctx context.Context, batchID int64) (bool, error) {
	var out AckResponse
	err := c.do(ctx, http.MethodPost, "/v1/batches/"+strconv.FormatInt(batchID, 10)+"/ack", nil, nil, &out)
	return out.Acked, err
}

// Nack reports that a message of the piece batchID failed: it is retried
// after retryAfter (rounded up to seconds; 0: the queue's backoff), or
// dead-lettered once out of retries.  The piece must still be acked.  It
// fails with pgque.ErrTakenOver when another worker took its batch over.
func (c *Client) Nack(ctx context.Context, batchID, msgID int64, retryAfter time.Duration, reason string) (Outcome, error) {
	if retryAfter < 0 {
		return "", fmt.Errorf("pgquehttp: nack: retry delay %v is negative: %w", retryAfter, errtable.ErrInvalidArgument)
	}
	req := NackRequest{MsgID: msgID, RetryAfterSeconds: int((retryAfter + time.Second - 1) / time.Second), Reason: reason}
	var out NackResponse
	err := c.do(ctx, http.MethodPost, "/v1/batches/"+strconv.FormatInt(batchID, 10)+"/nack", nil, req, &out)
	return out.Outcome, err
}

// DeadLetters lists up to limit (0: 100) dead letters of queue, newest first.
func (c *Client) DeadLetters(ctx context.Context, queue string, limit int) ([]DeadLetter, error) {
	q := url.Values{}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out DeadLetterList
	err := c.do(ctx, http.MethodGet, queuePath(queue)+"/dead-letters", q, nil, &out)
	return out.DeadLetters, err
}

// Cancel takes message id of queue back before it is handled, for
// consumer only ("": every consumer).
func (c *Client) Cancel(ctx context.Context, queue string, id int64, consumer string) (CancelResponse, error) {
	q := url.Values{}
	if consumer != "" {
		q.Set("consumer", consumer)
	}
	var out CancelResponse
	err := c.do(ctx, http.MethodPost, queuePath(queue)+"/messages/"+strconv.FormatInt(id, 10)+"/cancel", q, nil, &out)
	return out, err
}

// ListOptions narrows ListMessages; zero values leave a filter out.
type ListOptions struct {
	Consumer     string
	Limit        int
	After        int64
	Type         string
	Since, Until time.Time
}

// ListMessages lists queue's messages in state (pending, retrying, dead or
// delayed), oldest first.
func (c *Client) ListMessages(ctx context.Context, queue, state string, opts ListOptions) ([]MessageState, error) {
	q := url.Values{"state": {state}}
	if opts.Consumer != "" {
		q.Set("consumer", opts.Consumer)
	}
	if opts.Limit != 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.After != 0 {
		q.Set("after", strconv.FormatInt(opts.After, 10))
	}
	if opts.Type != "" {
		q.Set("type", opts.Type)
	}
	if !opts.Since.IsZero() {
		q.Set("since", opts.Since.Format(time.RFC3339Nano))
	}
	if !opts.Until.IsZero() {
		q.Set("until", opts.Until.Format(time.RFC3339Nano))
	}
	var out MessageList
	err := c.do(ctx, http.MethodGet, queuePath(queue)+"/messages", q, nil, &out)
	return out.Messages, err
}

// MessageStatus tells where message id of queue stands for each of its
// consumers.
func (c *Client) MessageStatus(ctx context.Context, queue string, id int64) (MessageStatus, error) {
	var out MessageStatus
	err := c.do(ctx, http.MethodGet, queuePath(queue)+"/messages/"+strconv.FormatInt(id, 10), nil, nil, &out)
	return out, err
}

// ReplayDeadLetter delivers a dead letter again to its consumer and returns
// its message id.
func (c *Client) ReplayDeadLetter(ctx context.Context, id int64) (int64, error) {
	var out ReplayResponse
	err := c.do(ctx, http.MethodPost, "/v1/dead-letters/"+strconv.FormatInt(id, 10)+"/replay", nil, nil, &out)
	return out.MsgID, err
}

// PurgeDeadLetters deletes the queue's dead letters older than olderThan
// (all with 0) and returns how many.
func (c *Client) PurgeDeadLetters(ctx context.Context, queue string, olderThan time.Duration) (int, error) {
	q := url.Values{}
	if olderThan != 0 {
		q.Set("older_than", olderThan.String())
	}
	var out PurgeResponse
	err := c.do(ctx, http.MethodDelete, queuePath(queue)+"/dead-letters", q, nil, &out)
	return out.Purged, err
}

// Schedules describes every schedule, by name.
func (c *Client) Schedules(ctx context.Context) ([]Schedule, error) {
	var out ScheduleList
	err := c.do(ctx, http.MethodGet, "/v1/schedules", nil, nil, &out)
	return out.Schedules, err
}

// Schedule describes one schedule; pgque.ErrScheduleNotFound when there is
// none by that name, pgque.ErrInvalidArgument when the name is used in
// several namespaces (QueueSchedule names the queue).
func (c *Client) Schedule(ctx context.Context, name string) (Schedule, error) {
	return c.QueueSchedule(ctx, "", name)
}

// QueueSchedule describes the schedule name that sends to queue ("": any).
func (c *Client) QueueSchedule(ctx context.Context, queue, name string) (Schedule, error) {
	var out Schedule
	err := c.do(ctx, http.MethodGet, "/v1/schedules/"+esc(name), scheduleQuery(queue), nil, &out)
	return out, err
}

func scheduleQuery(queue string) url.Values {
	if queue == "" {
		return nil
	}
	return url.Values{"queue": {queue}}
}

// CreateSchedule creates a schedule and returns it.  It fails with
// pgque.ErrScheduleExists when the name is taken.
func (c *Client) CreateSchedule(ctx context.Context, req CreateScheduleRequest) (Schedule, error) {
	var out Schedule
	err := c.do(ctx, http.MethodPost, "/v1/schedules", nil, req, &out)
	return out, err
}

// DropSchedule deletes a schedule; pgque.ErrScheduleNotFound when there is
// none by that name, pgque.ErrInvalidArgument when the name is used in
// several namespaces (DropQueueSchedule names the queue).
func (c *Client) DropSchedule(ctx context.Context, name string) error {
	return c.DropQueueSchedule(ctx, "", name)
}

// DropQueueSchedule deletes the schedule name that sends to queue ("": any).
func (c *Client) DropQueueSchedule(ctx context.Context, queue, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/schedules/"+esc(name), scheduleQuery(queue), nil, nil)
}

// Ready reports whether the server is ready (GET /readyz): nil when it is,
// else an *Error with code "unavailable" whose message lists the checks.
func (c *Client) Ready(ctx context.Context) error {
	resp, err := c.send(ctx, http.MethodGet, "/readyz", nil, nil, nil)
	var he *Error
	if errors.As(err, &he) && he.Status == http.StatusServiceUnavailable {
		var h Health
		if json.Unmarshal([]byte(he.Message), &h) == nil && h.Status != "" {
			keys := make([]string, 0, len(h.Checks))
			for k := range h.Checks {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var b strings.Builder
			b.WriteString("not ready:")
			for _, k := range keys {
				fmt.Fprintf(&b, " %s %s;", k, h.Checks[k])
			}
			he.Code, he.Message = CodeUnavailable, strings.TrimSuffix(b.String(), ";")
		}
		return he
	}
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
