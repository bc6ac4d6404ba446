package server

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgque/pgque/go/internal/retry"
)

// listener shares one LISTEN connection among all streams: it listens on
// the channel of every queue some stream reads ("pgque_<queue>", notified by
// each tick) and wakes that queue's streams.  It starts with the first
// stream and runs until the server closes, reconnecting with backoff; while
// it is down the streams poll.
type listener struct {
	cfg *pgx.ConnConfig
	log *slog.Logger

	mu      sync.Mutex
	subs    map[string]map[chan struct{}]struct{} // queue → wake channels
	changed bool                                  // subs differ from what the connection listens to
	// interrupt ends the current wait for a notification, so that a change
	// of subs is applied at once.
	interrupt context.CancelFunc
	started   bool
}

func newListener(cfg *pgx.ConnConfig, log *slog.Logger) *listener {
	cfg = cfg.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "pgque-serve-listener"
	}
	return &listener{cfg: cfg, log: log, subs: map[string]map[chan struct{}]struct{}{}}
}

// channelPrefix is the NOTIFY channel of a queue minus its name.
const channelPrefix = "pgque_"

// subscribe returns a channel that receives a value after a tick of queue
// (one pending value at most), and the function that ends the subscription.
// The first subscription starts the connection in s's background.
func (l *listener) subscribe(s *Server, queue string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	if l.subs[queue] == nil {
		l.subs[queue] = map[chan struct{}]struct{}{}
		l.changedLocked()
	}
	l.subs[queue][ch] = struct{}{}
	if !l.started {
		l.started = true
		s.wg.Go(func() { l.run(s.closing) })
	}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.subs[queue], ch)
		if len(l.subs[queue]) == 0 {
			delete(l.subs, queue)
			l.changedLocked()
		}
	}
}

func (l *listener) changedLocked() {
	l.changed = true
	if l.interrupt != nil {
		l.interrupt()
	}
}

// wake signals the streams of queue.
func (l *listener) wake(queue string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ch := range l.subs[queue] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// run keeps the connection up until ctx ends.  It waits as the SDK's
// loops do (package retry: 50 ms doubling to 500 ms), so that streams are
// woken by notifications again within about half a second of the server's
// return.
func (l *listener) run(ctx context.Context) {
	var b retry.Backoff
	for ctx.Err() == nil {
		listened, err := l.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if listened {
			b.Reset()
		}
		wait := b.Next()
		l.log.Warn("pgque serve: LISTEN connection lost; streams poll until it is back", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// healthInterval is how long the connection may stay silent before it is pinged.
const healthInterval = time.Minute

// session runs one connection until it fails or ctx ends; it reports
// whether it got as far as listening.
func (l *listener) session(ctx context.Context) (bool, error) {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	listening := map[string]bool{}
	for {
		if err := l.sync(ctx, conn, listening); err != nil {
			return len(listening) > 0, err
		}
		wctx, cancel := context.WithTimeout(ctx, healthInterval)
		l.mu.Lock()
		pending := l.changed
		l.interrupt = cancel
		l.mu.Unlock()
		var n *pgconn.Notification
		if !pending {
			n, err = conn.WaitForNotification(wctx)
		}
		l.mu.Lock()
		l.interrupt = nil
		pending = l.changed
		l.mu.Unlock()
		cancel()
		switch {
		case ctx.Err() != nil:
			return true, ctx.Err()
		case n != nil:
			l.wake(strings.TrimPrefix(n.Channel, channelPrefix))
		case pending:
			// Interrupted (or about to wait) for a change of channels.
		case wctx.Err() != nil:
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return true, err
			}
		default:
			return true, err
		}
	}
}

// sync makes the connection listen to the channels of exactly the queues
// subscribed.  It wakes the streams of each queue it starts listening to:
// they may have missed ticks notified before.
func (l *listener) sync(ctx context.Context, conn *pgx.Conn, listening map[string]bool) error {
	l.mu.Lock()
	want := make(map[string]bool, len(l.subs))
	for q := range l.subs {
		want[q] = true
	}
	l.changed = false
	l.mu.Unlock()
	for q := range want {
		if !listening[q] {
			if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channelPrefix + q}.Sanitize()); err != nil {
				return err
			}
			listening[q] = true
			l.wake(q)
		}
	}
	for q := range listening {
		if !want[q] {
			if _, err := conn.Exec(ctx, "UNLISTEN "+pgx.Identifier{channelPrefix + q}.Sanitize()); err != nil {
				return err
			}
			delete(listening, q)
		}
	}
	return nil
}

// ackSignals lets a stream wait for the ack of the batch it handed out, so
// it sends the next piece as soon as the client acknowledged (through this
// server; acks that bypass it are seen at the next poll or tick).
type ackSignals struct {
	mu      sync.Mutex
	waiting map[int64]*ackWait
}

type ackWait struct {
	ch      chan struct{}
	holders int
}

func newAckSignals() *ackSignals { return &ackSignals{waiting: map[int64]*ackWait{}} }

// watch returns a channel closed when batch is acked, and the function that
// stops watching.
func (a *ackSignals) watch(batch int64) (<-chan struct{}, func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.waiting[batch]
	if w == nil {
		w = &ackWait{ch: make(chan struct{})}
		a.waiting[batch] = w
	}
	w.holders++
	return w.ch, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		w.holders--
		if w.holders == 0 && a.waiting[batch] == w {
			delete(a.waiting, batch)
		}
	}
}

// fire wakes the streams watching batch.
func (a *ackSignals) fire(batch int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w := a.waiting[batch]; w != nil {
		close(w.ch)
		delete(a.waiting, batch)
	}
}
