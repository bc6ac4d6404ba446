package pgquehttp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// StreamOptions configures Client.Stream.
type StreamOptions struct {
	// Max is how many messages one batch event holds at most (0: 100).
	Max int
	// LastEventID is the id of the last event a previous stream delivered
	// (Stream.LastEventID); the server marks that piece Redelivered if it
	// comes again.
	LastEventID string
	// Worker makes the stream the cooperative worker of that name (by
	// default the server picks one of its own).
	Worker string
	// Lease is how long a piece stays the stream's without a renewal (0:
	// 30 s); the server renews it every third of it while the stream is
	// open.
	Lease time.Duration
	// SingleReader makes the stream the consumer's one reader, the PgQ
	// way: whole batches in order, and a second stream of the consumer
	// gets the same messages.  Not with Worker or Lease.
	SingleReader bool
}

// Stream reads a consumer's messages pushed by the server (Server-Sent
// Events).  A stream is a cooperative worker of the consumer, so streams
// (and receives) of one consumer get different messages.  After Next
// returns a batch, the server sends the next one only once the batch was
// acknowledged (Client.Ack); a batch not acknowledged when the stream ends
// goes to another stream or worker of the consumer at once.
type Stream struct {
	resp   *http.Response
	r      *bufio.Reader
	lastID string
}

// Stream opens the consumer's stream.  An unknown queue or consumer fails
// here, with the same errors as Receive.
func (c *Client) Stream(ctx context.Context, queue, consumer string, opts StreamOptions) (*Stream, error) {
	q := url.Values{}
	if opts.Max != 0 {
		q.Set("max", strconv.Itoa(opts.Max))
	}
	if opts.Worker != "" {
		q.Set("worker", opts.Worker)
	}
	if opts.Lease != 0 {
		q.Set("lease_seconds", strconv.FormatFloat(opts.Lease.Seconds(), 'f', -1, 64))
	}
	if opts.SingleReader {
		q.Set("single_reader", "true")
	}
	h := http.Header{"Accept": {"text/event-stream"}}
	if opts.LastEventID != "" {
		h.Set("Last-Event-ID", opts.LastEventID)
	}
	resp, err := c.send(ctx, http.MethodGet, consumerPath(queue, consumer)+"/stream", q, nil, h)
	if err != nil {
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		return nil, fmt.Errorf("pgquehttp: stream: answer of type %q, not text/event-stream", ct)
	}
	return &Stream{resp: resp, r: bufio.NewReader(resp.Body), lastID: opts.LastEventID}, nil
}

// Next waits for the next batch.  A batch with Lost set (and no messages)
// reports that the stream no longer holds the piece BatchID it sent before:
// it was acknowledged elsewhere, or taken over by another worker after its
// lease ran out; stop handling it if you still are, and call Next again.
// Next returns io.EOF when the server ended the stream (it shuts down), an
// *Error when the server reported one (the queue or subscription is gone),
// and the transport's error when the connection broke or the stream's
// context ended.
func (s *Stream) Next() (Batch, error) {
	var event, id string
	var data strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" {
				return Batch{}, io.EOF
			}
			return Batch{}, fmt.Errorf("pgquehttp: stream: %w", err)
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				event = value
			case "id":
				id = value
			case "data":
				if data.Len() > 0 {
					data.WriteByte('\n')
				}
				data.WriteString(value)
			}
			// "" (a comment such as the heartbeat) and "retry" need nothing.
			continue
		}
		switch event {
		case "batch", "lost":
			var b Batch
			if err := json.Unmarshal([]byte(data.String()), &b); err != nil {
				return Batch{}, fmt.Errorf("pgquehttp: stream: decoding a %s event: %w", event, err)
			}
			if event == "lost" {
				b.Lost = true
			} else {
				s.lastID = id
			}
			return b, nil
		case "error":
			var eb ErrorBody
			if err := json.Unmarshal([]byte(data.String()), &eb); err != nil {
				return Batch{}, fmt.Errorf("pgquehttp: stream: decoding an error: %w", err)
			}
			return Batch{}, &Error{Code: eb.Error.Code, Message: eb.Error.Message, SQLState: eb.Error.SQLState}
		}
		event, id = "", ""
		data.Reset()
	}
}

// LastEventID is the id of the last batch Next returned; pass it as
// StreamOptions.LastEventID when reconnecting.
func (s *Stream) LastEventID() string { return s.lastID }

// Close ends the stream.
func (s *Stream) Close() error { return s.resp.Body.Close() }
