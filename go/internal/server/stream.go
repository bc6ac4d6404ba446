package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// stream pushes a consumer's messages as Server-Sent Events (docs/http.md):
// each piece of a batch is one "batch" event, whose id is
// "<batch_id>-<first msg_id>".  The next piece follows once the client
// acknowledged this one (POST /v1/batches/{batch}/ack); a piece that is not
// acknowledged is sent again to the next stream of the consumer, because
// the engine hands out what was not acked again.
//
// The stream wakes on the queue's NOTIFY (one shared LISTEN connection),
// on an ack through this server, and every poll interval as a fallback.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) error {
	queue, name := r.PathValue("queue"), r.PathValue("consumer")
	max, err := queryInt(r, "max", s.defaultMax(), s.opts.MaxBatch)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.closing, cancel)()

	// Subscribed before the first receive: a tick in between wakes the
	// stream (by its NOTIFY, or when the listener starts listening).
	wake, unlisten := s.listener.subscribe(s, queue)
	defer unlisten()
	receive := func() ([]pgque.Message, error) {
		rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		defer cancel()
		return s.client.Receive(rctx, queue, name, max)
	}
	// An unknown queue or consumer is answered as by any endpoint.
	msgs, err := receive()
	if err != nil {
		return err
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()

	rc := http.NewResponseController(w)
	write := func(text string) bool {
		// Without a deadline a client that stopped reading would hold the stream forever.
		_ = rc.SetWriteDeadline(time.Now().Add(s.opts.RequestTimeout))
		if _, err := fmt.Fprint(w, text); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// Reconnecting EventSource clients wait one poll interval.
	if !write(fmt.Sprintf("retry: %d\n\n", s.opts.PollInterval.Milliseconds())) {
		return nil
	}

	lastEventID := r.Header.Get("Last-Event-ID")
	sent := ""                // id of the piece handed out and not acknowledged yet
	var acked <-chan struct{} // closed when that piece's batch is acked here
	unwatch := func() {}      // stops watching for that ack
	defer func() { unwatch() }()
	heartbeat := time.NewTimer(s.opts.HeartbeatInterval)
	defer heartbeat.Stop()
	for {
		switch {
		case len(msgs) == 0:
			sent = ""
			unwatch()
			unwatch, acked = func() {}, nil
		case pieceID(msgs) != sent:
			id := pieceID(msgs)
			b := batchJSON(msgs)
			b.Redelivered = id == lastEventID
			data, err := json.Marshal(b)
			if err != nil {
				s.log.Error("pgque serve: stream: encoding a batch", "err", err)
				return nil
			}
			// Watching before sending: the client may ack at once.
			unwatch()
			acked, unwatch = s.acks.watch(msgs[0].BatchID)
			if !write("id: " + id + "\nevent: batch\ndata: " + string(data) + "\n\n") {
				return nil
			}
			sent = id
			heartbeat.Reset(s.opts.HeartbeatInterval)
		}

		// While a piece waits for its ack, ticks change nothing: the next
		// receive would hand out the same piece.  Its ack (or the poll, for
		// acks made elsewhere) is what moves on.
		ticked := wake
		if sent != "" {
			ticked = nil
		}
		poll := time.NewTimer(s.opts.PollInterval)
	wait:
		for {
			select {
			case <-ctx.Done():
				poll.Stop()
				return nil
			case <-heartbeat.C:
				if !write(": heartbeat\n\n") {
					poll.Stop()
					return nil
				}
				heartbeat.Reset(s.opts.HeartbeatInterval)
			case <-ticked:
				break wait
			case <-acked:
				acked = nil // closed for good: wait on it once
				break wait
			case <-poll.C:
				break wait
			}
		}
		poll.Stop()

		next, err := receive()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			status, d, ours := describe(err)
			if !ours && status < 500 {
				// The queue or the subscription is gone: retrying cannot help.
				body, _ := json.Marshal(pgquehttp.ErrorBody{Error: d})
				write("event: error\ndata: " + string(body) + "\n\n")
				return nil
			}
			s.log.Warn("pgque serve: stream: receive failed; retrying", "queue", queue, "consumer", name, "err", err)
			// Keep what was sent, so that it is not sent twice.
			continue
		}
		msgs = next
	}
}

// pieceID identifies a piece of a batch: the batch and its first message.
// A piece handed out again because it was not acked has the same id.
func pieceID(msgs []pgque.Message) string {
	return strconv.FormatInt(msgs[0].BatchID, 10) + "-" + strconv.FormatInt(msgs[0].MsgID, 10)
}
