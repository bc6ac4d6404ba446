package pgque

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// listenerAppName is the application_name of the listening connection when
// the pool's configuration sets none.
const listenerAppName = "pgque-listener"

// listenHealthInterval is how long the listening connection may stay silent
// before it is pinged.
const listenHealthInterval = time.Minute

// channelPrefix is the NOTIFY channel of a queue minus its name: each tick
// of a queue notifies "pgque_<queue>".
const channelPrefix = "pgque_"

// notifier shares one LISTEN connection among everything of a client that
// waits for ticks (its Consumers, Listen's callers such as the HTTP
// server's streams): it listens on the channel of every queue someone
// waits on and wakes that queue's waiters.  It runs while it has waiters,
// reconnecting with backoff; while it is down they poll.
type notifier struct {
	cfg *pgx.ConnConfig // of the listening connection
	log *slog.Logger

	mu      sync.Mutex
	subs    map[string]map[chan struct{}]struct{} // queue → wake channels
	changed bool                                  // subs differ from what the connection listens to
	// interrupt ends the current wait for a notification, so that a change
	// of subs is applied at once.
	interrupt context.CancelFunc
	stop      context.CancelFunc // stops the running session loop; nil when none runs
	done      chan struct{}      // closed when that loop has returned
}

func newNotifier(cfg *pgx.ConnConfig) *notifier {
	return &notifier{cfg: cfg, log: slog.Default(), subs: map[string]map[chan struct{}]struct{}{}}
}

// Listen returns a channel that receives a value after each tick of queue
// (one pending value at most; a tick's notification may be missed, so poll
// too), and the function that ends the subscription.  It also receives one
// when the listening connection (re)starts listening, as ticks may have
// been missed meanwhile.  All of a client's listeners (and of the clients
// WithNamespace made from it), its Consumers among them, share one
// connection (application_name pgque-listener unless the pool's
// configuration sets one), opened with the first and closed after the last.
func (c *Client) Listen(queue string) (<-chan struct{}, func()) {
	return c.notifier.subscribe(c.qn(queue))
}

func (n *notifier) subscribe(queue string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.subs[queue] == nil {
		n.subs[queue] = map[chan struct{}]struct{}{}
		n.changedLocked()
	}
	n.subs[queue][ch] = struct{}{}
	if n.stop == nil {
		// The previous session (the last waiter left) may still be closing
		// its connection: the new one waits, so that one is open at a time.
		ctx, stop := context.WithCancel(context.Background())
		prev := n.done
		n.stop, n.done = stop, make(chan struct{})
		go n.run(ctx, prev, n.done)
	}
	var once sync.Once
	return ch, func() { once.Do(func() { n.unsubscribe(queue, ch) }) }
}

func (n *notifier) unsubscribe(queue string, ch chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.subs[queue], ch)
	if len(n.subs[queue]) == 0 {
		delete(n.subs, queue)
		n.changedLocked()
	}
	if len(n.subs) == 0 && n.stop != nil {
		n.stop()
		n.stop = nil
	}
}

func (n *notifier) changedLocked() {
	n.changed = true
	if n.interrupt != nil {
		n.interrupt()
	}
}

// wake signals the waiters of queue.
func (n *notifier) wake(queue string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.subs[queue] {
		signal(ch)
	}
}

// run keeps a connection up until ctx ends (the last waiter left), once
// the session before it (prev, when not nil) has ended.
func (n *notifier) run(ctx context.Context, prev <-chan struct{}, done chan struct{}) {
	defer close(done)
	if prev != nil {
		<-prev
	}
	reconnect(ctx, n.session, func(err error, wait time.Duration) {
		n.log.Warn("pgque: listening connection lost; consumers and streams poll until it is back", "err", err, "in", wait)
	})
}

// session runs one connection until it fails or ctx ends; it reports
// whether it got as far as listening.
func (n *notifier) session(ctx context.Context) (bool, error) {
	conn, err := dedicatedConn(ctx, n.cfg, listenerAppName)
	if err != nil {
		return false, err
	}
	defer closeConn(ctx, conn)
	listening := map[string]bool{}
	for {
		if err := n.sync(ctx, conn, listening); err != nil {
			return len(listening) > 0, err
		}
		wctx, cancel := context.WithTimeout(ctx, listenHealthInterval)
		n.mu.Lock()
		pending := n.changed
		n.interrupt = cancel
		n.mu.Unlock()
		var note *pgconn.Notification
		if !pending {
			note, err = conn.WaitForNotification(wctx)
		}
		n.mu.Lock()
		n.interrupt = nil
		pending = n.changed
		n.mu.Unlock()
		cancel()
		switch {
		case ctx.Err() != nil:
			return true, ctx.Err()
		case note != nil:
			n.wake(strings.TrimPrefix(note.Channel, channelPrefix))
		case pending:
			// Interrupted (or about to wait) for a change of channels.
		case wctx.Err() != nil:
			if err := ping(ctx, conn); err != nil {
				return true, err
			}
		default:
			return true, err
		}
	}
}

// sync makes the connection listen to the channels of exactly the queues
// waited on.  It wakes the waiters of each queue it starts listening to:
// they may have missed ticks notified before.
func (n *notifier) sync(ctx context.Context, conn *pgx.Conn, listening map[string]bool) error {
	n.mu.Lock()
	want := make(map[string]bool, len(n.subs))
	for q := range n.subs {
		want[q] = true
	}
	n.changed = false
	n.mu.Unlock()
	for q := range want {
		if !listening[q] {
			if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channelPrefix + q}.Sanitize()); err != nil {
				return err
			}
			listening[q] = true
			n.wake(q)
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

// dedicatedConn opens a connection outside the pool, with settings base
// (a Client's session configuration), for a session that outlives any
// call (listening, holding a lock); appName is its application_name
// unless base sets one.
func dedicatedConn(ctx context.Context, base *pgx.ConnConfig, appName string) (*pgx.Conn, error) {
	cfg := base.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = appName
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// closeConn closes a dedicated connection within a second, also after ctx
// ended.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	conn.Close(cctx)
}

// ping checks, within 10 s, that a dedicated connection silent for a while
// is still alive.
func ping(ctx context.Context, conn *pgx.Conn) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return conn.Ping(pctx)
}
