package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/pgque/pgque/go/internal/wire"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// stream pushes a consumer's messages as Server-Sent Events (docs/http.md).
// A stream is a cooperative worker of the consumer: under a name from
// s.workers (or ?worker=NAME), so that streams and receives compete for
// the messages, or, with ?single_reader=true, the consumer's one reader.
//
// Each piece handed out is one "batch" event, whose id is
// "<first msg_id>-<last msg_id>".  The next piece follows once the client
// acknowledged this one (POST /v1/batches/{batch}/ack); meanwhile the
// stream renews the piece's lease every third of it; a renewal that finds
// the piece's batch gone (acknowledged elsewhere, or taken over) sends a
// "lost" event.  An ack made elsewhere is also noticed by the poll:
// receiving again as the same worker hands out the same messages again (as
// a new piece, not sent again) until they are acknowledged, and other ones
// after.  A stream releases its worker when it ends, so that a piece not
// acknowledged goes to the next stream or worker of the consumer at once.
//
// The stream wakes on the queue's NOTIFY (the client's one shared LISTEN
// connection, pgque.Client.Listen),
// on an ack through this server, and every poll interval as a fallback.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) error {
	st, err := s.newStreamer(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.closing, cancel)()

	// Subscribed before the first receive: a tick in between wakes the
	// stream (by its NOTIFY, or when the listener starts listening).
	wake, unlisten := s.client.Listen(st.queue)
	defer unlisten()
	// An unknown queue or consumer is answered as by any endpoint.
	msgs, err := st.receive(ctx)
	if err != nil {
		st.giveBack(err) // it was handed nothing
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
	writeBatch := func(event, id string, b pgquehttp.Batch) bool {
		data, err := json.Marshal(b)
		if err != nil {
			s.log.Error("pgque serve: stream: encoding a batch", "err", err)
			return false
		}
		head := ""
		if id != "" {
			head = "id: " + id + "\n"
		}
		return write(head + "event: " + event + "\ndata: " + string(data) + "\n\n")
	}

	lastEventID := r.Header.Get("Last-Event-ID")
	var cur *sentPiece // the piece sent and not acknowledged yet
	var endErr error   // why the stream ends, when the consumer is gone
	defer func() {
		cur.drop()
		st.end(endErr)
	}()
	// Reconnecting EventSource clients wait one poll interval.
	if !write(fmt.Sprintf("retry: %d\n\n", s.opts.PollInterval.Milliseconds())) {
		return nil
	}
	keepalive := time.NewTimer(s.opts.HeartbeatInterval)
	defer keepalive.Stop()
	renew := time.NewTimer(st.beat())
	renew.Stop()
	defer renew.Stop()
	fresh := true // msgs were just received
	for {
		switch {
		case !fresh:
			// The last receive failed: nothing new.
		case len(msgs) == 0:
			// Acknowledged elsewhere (or lost), and nothing new.
			cur.drop()
			cur = nil
		case cur != nil && msgs[0].MsgID == cur.first:
			// The same messages, not acknowledged yet, handed out again as
			// a new piece: the client has them.
		default:
			cur.drop()
			// Watching before sending: the client may ack at once.
			cur = &sentPiece{id: eventID(msgs), piece: msgs[0].BatchID, first: msgs[0].MsgID}
			cur.acked, cur.unwatch = s.acks.watch(cur.piece)
			b := wire.Batch(msgs, st.worker)
			b.Redelivered = cur.id == lastEventID
			s.log.Debug("pgque serve: stream: sending a piece", "queue", st.queue, "consumer", st.consumer,
				"worker", st.worker, "piece", cur.piece, "id", cur.id)
			if !writeBatch("batch", cur.id, b) {
				return nil
			}
			keepalive.Reset(s.opts.HeartbeatInterval)
			renew.Reset(st.beat())
		}

		// While a piece waits for its ack, ticks change nothing: the next
		// receive would hand out the same messages.  Its ack (or the poll,
		// for acks made elsewhere) is what moves on.
		ticked, acked, renewed := wake, (<-chan struct{})(nil), (<-chan time.Time)(nil)
		if cur != nil {
			ticked, acked, renewed = nil, cur.acked, renew.C
		}
		poll := time.NewTimer(s.opts.PollInterval)
	wait:
		for {
			select {
			case <-ctx.Done():
				poll.Stop()
				return nil
			case <-keepalive.C:
				if !write(": heartbeat\n\n") {
					poll.Stop()
					return nil
				}
				keepalive.Reset(s.opts.HeartbeatInterval)
			case <-ticked:
				break wait
			case <-acked:
				cur.drop()
				cur = nil
				break wait
			case <-renewed:
				held, err := st.heartbeat(ctx, cur.piece)
				if err != nil || held {
					if err != nil && ctx.Err() == nil {
						s.log.Warn("pgque serve: stream: heartbeat failed; retrying", "queue", st.queue,
							"consumer", st.consumer, "worker", st.worker, "err", err)
					}
					renew.Reset(st.beat())
					continue
				}
				// Finished (acknowledged elsewhere, unless the ack through
				// this server is just being signalled) or taken over.
				s.log.Debug("pgque serve: stream: piece lost", "queue", st.queue, "consumer", st.consumer,
					"worker", st.worker, "piece", cur.piece)
				select {
				case <-cur.acked:
				default:
					lost := pgquehttp.Batch{BatchID: cur.piece, Messages: []pgquehttp.Message{}, Worker: st.worker, Lost: true}
					if !writeBatch("lost", "", lost) {
						poll.Stop()
						return nil
					}
				}
				cur.drop()
				cur = nil
				break wait
			case <-poll.C:
				break wait
			}
		}
		poll.Stop()

		next, err := st.receive(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if status, d, ours := describe(err); !ours && status < 500 && !errors.Is(err, pgque.ErrConsumerBusy) {
				// The queue or the subscription is gone: retrying cannot help.
				body, _ := json.Marshal(pgquehttp.ErrorBody{Error: d})
				write("event: error\ndata: " + string(body) + "\n\n")
				endErr = err
				return nil
			}
			// Transient, or a single reader holds the consumer's batch (a
			// worker takes it over once nobody touched it for a lease).
			s.log.Warn("pgque serve: stream: receive failed; retrying", "queue", st.queue,
				"consumer", st.consumer, "worker", st.worker, "err", err)
			// Keep what was sent, so that it is not sent twice.
			fresh = false
			continue
		}
		msgs, fresh = next, true
	}
}

// sentPiece is a piece a stream sent and is waiting for the ack of.
type sentPiece struct {
	id      string // its event id
	piece   int64  // its id, which the client acks
	first   int64  // its first message
	acked   <-chan struct{}
	unwatch func()
}

// drop stops watching for the piece's ack; p may be nil.
func (p *sentPiece) drop() {
	if p != nil {
		p.unwatch()
	}
}

// eventID identifies a piece by its first and last message: the same
// messages handed out again (not acknowledged) have the same id, on this
// stream or the next.
func eventID(msgs []pgque.Message) string {
	return strconv.FormatInt(msgs[0].MsgID, 10) + "-" + strconv.FormatInt(msgs[len(msgs)-1].MsgID, 10)
}

// streamer is how one stream reads its consumer.
type streamer struct {
	s               *Server
	queue, consumer string
	max             int
	worker          string // "" for a single reader
	pooled          bool   // worker is a name of s.workers
	lease           time.Duration
}

// newStreamer reads a stream's parameters: max, worker, single_reader,
// lease_seconds.
func (s *Server) newStreamer(r *http.Request) (*streamer, error) {
	st := &streamer{s: s, queue: r.PathValue("queue"), consumer: r.PathValue("consumer")}
	var err error
	if st.max, err = queryInt(r, "max", s.defaultMax(), s.opts.MaxBatch); err != nil {
		return nil, err
	}
	single, err := queryBool(r, "single_reader")
	if err != nil {
		return nil, err
	}
	var secs float64
	if v := r.URL.Query().Get("lease_seconds"); v != "" {
		if secs, err = strconv.ParseFloat(v, 64); err != nil {
			return nil, badRequest("lease_seconds %q is not a number", v)
		}
	}
	st.worker = r.URL.Query().Get("worker")
	if st.lease, err = s.readAs(single, st.worker, secs); err != nil {
		return nil, err
	}
	if !single && st.worker == "" {
		st.worker, st.pooled = s.workers.take(consumerKey{st.queue, st.consumer}), true
	}
	return st, nil
}

// beat is how often the stream renews its piece's lease.
func (st *streamer) beat() time.Duration { return max(st.lease/3, time.Millisecond) }

// receive hands out the stream's next piece.  A client that goes away does
// not cut a receive in progress short: cancelled on the client, it may still
// commit on the server after end() released the worker, and its piece would
// then wait out a whole lease with nobody to send it to.  Finished, its piece
// is released by end() like any piece not acknowledged.
func (st *streamer) receive(ctx context.Context) ([]pgque.Message, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), st.s.opts.RequestTimeout)
	defer cancel()
	var msgs []pgque.Message
	var err error
	if st.worker == "" {
		msgs, err = st.s.client.Receive(ctx, st.queue, st.consumer, st.max)
	} else {
		msgs, err = st.s.client.ReceiveAsWorker(ctx, st.queue, st.consumer, st.worker, st.max, st.lease)
	}
	st.s.handedOut(st.queue, msgs)
	return msgs, err
}

func (st *streamer) heartbeat(ctx context.Context, piece int64) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, st.s.opts.RequestTimeout)
	defer cancel()
	return st.s.client.Heartbeat(ctx, piece, st.lease)
}

// end finishes the stream's use of its worker, err being why it ended
// (nil for none).  The worker is released: a piece it holds, not
// acknowledged (or handed out and not sent, when the stream broke off), goes
// to the next stream or worker of the consumer now rather than once its
// lease ran out, and the engine's notification of the release wakes the
// streams and workers of the queue (of every process) to take it; a worker that holds nothing is forgotten (a later one of the name
// is made again when handed something).  A name of the pool is free again.
func (st *streamer) end(err error) {
	s := st.s
	if st.worker != "" && !consumerGone(err) {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.RequestTimeout)
		released, rerr := s.client.ReleaseWorker(ctx, st.queue, st.consumer, st.worker)
		cancel()
		s.log.Debug("pgque serve: stream: released its worker", "queue", st.queue, "consumer", st.consumer,
			"worker", st.worker, "released", released, "err", rerr)
		if rerr != nil {
			s.log.Warn("pgque serve: stream: releasing its worker failed; another worker takes its batch over when its lease runs out",
				"queue", st.queue, "consumer", st.consumer, "worker", st.worker, "err", rerr)
			err = rerr
		}
	}
	st.giveBack(err)
}

// giveBack makes a name of the pool free again, after err.
func (st *streamer) giveBack(err error) {
	if st.pooled {
		st.s.workers.giveBack(consumerKey{st.queue, st.consumer}, st.worker, err)
	}
}
