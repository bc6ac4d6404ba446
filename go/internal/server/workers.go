package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// workerPool holds the names of the cooperative workers this server
// receives as for callers that name none: receives without "worker" and
// streams (docs/http.md).  Every receive of such a caller is a worker's, so
// concurrent callers compete for the consumer's messages; names are reused,
// so that however many receives come, the consumer has only about as many
// worker rows as it has callers at a time.
//
// Names are "http-<instance>-<n>", instance being random per Server: no
// two servers share one.  Per (queue, consumer) the pool keeps the names
// that hold nothing for a caller (free), and for each piece handed out to a
// receive, the name it was handed out as, until that piece is acknowledged
// through this server or its lease is over; then the name is free again.
// A free name may still hold the rest of a batch in the database (a piece
// not acknowledged, its caller gone): whoever takes the name next gets
// those messages again, as another worker would once the lease ran out.
// A stream holds its name for as long as it runs.
type workerPool struct {
	prefix string // "http-<instance>-"

	mu        sync.Mutex
	n         uint64                   // names made so far
	free      map[consumerKey][]string // used last first
	held      map[int64]*heldPiece     // piece id → its holder
	lastSweep time.Time
}

// consumerKey names a consumer as the requests do.
type consumerKey struct{ queue, consumer string }

// heldPiece is a piece handed out to a receive under a name of the pool.
type heldPiece struct {
	key   consumerKey
	name  string
	until time.Time // end of its lease, by this server's clock
}

// sweepEvery is how often the pool looks for pieces whose lease is over.
const sweepEvery = time.Second

func newWorkerPool() *workerPool {
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return &workerPool{
		prefix: "http-" + hex.EncodeToString(b[:]) + "-",
		free:   map[consumerKey][]string{},
		held:   map[int64]*heldPiece{},
	}
}

// ours reports whether name is of the form of this pool's names.
func (p *workerPool) ours(name string) bool { return strings.HasPrefix(name, p.prefix) }

// take returns a free name of key, or a new one.  The caller gives it back
// with put, or hands it to hold.
func (p *workerPool) take(key consumerKey) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweepLocked(time.Now())
	if f := p.free[key]; len(f) > 0 {
		name := f[len(f)-1]
		if len(f) == 1 {
			delete(p.free, key)
		} else {
			p.free[key] = f[:len(f)-1]
		}
		return name
	}
	p.n++
	return p.prefix + strconv.FormatUint(p.n, 10)
}

// put makes name free again.
func (p *workerPool) put(key consumerKey, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free[key] = append(p.free[key], name)
}

// giveBack ends a caller's use of name after err (nil: success): the name
// is free again, unless the consumer or its queue is gone, so that names
// are kept for real consumers only.
func (p *workerPool) giveBack(key consumerKey, name string, err error) {
	if !consumerGone(err) {
		p.put(key, name)
	}
}

// consumerGone reports whether err says the consumer or its queue no
// longer exists.
func consumerGone(err error) bool {
	return errors.Is(err, pgque.ErrConsumerNotFound) || errors.Is(err, pgque.ErrQueueNotFound)
}

// hold records that piece was handed out as name, with its lease running
// until until.
func (p *workerPool) hold(key consumerKey, name string, piece int64, until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held[piece] = &heldPiece{key: key, name: name, until: until}
}

// done ends the hold of piece (acknowledged, or no longer the worker's):
// its name is free again.  It reports whether piece was held.
func (p *workerPool) done(piece int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.held[piece]
	if h == nil {
		return false
	}
	p.releaseLocked(piece, h)
	return true
}

// doneName ends the hold of whatever piece name holds (the worker was
// released or unregistered); it reports whether there was one.
func (p *workerPool) doneName(key consumerKey, name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for piece, h := range p.held {
		if h.key == key && h.name == name {
			p.releaseLocked(piece, h)
			return true
		}
	}
	return false
}

// renew moves the end of piece's lease to until (a heartbeat).
func (p *workerPool) renew(piece int64, until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h := p.held[piece]; h != nil && until.After(h.until) {
		h.until = until
	}
}

// sweepLocked frees the names of pieces whose lease is over: their callers
// did not acknowledge them in time (or did elsewhere).
func (p *workerPool) sweepLocked(now time.Time) {
	if now.Sub(p.lastSweep) < sweepEvery {
		return
	}
	p.lastSweep = now
	for piece, h := range p.held {
		if now.After(h.until) {
			p.releaseLocked(piece, h)
		}
	}
}

// releaseLocked ends the hold h of piece: its name is free again.
func (p *workerPool) releaseLocked(piece int64, h *heldPiece) {
	delete(p.held, piece)
	p.free[h.key] = append(p.free[h.key], h.name)
}
