package server

import "sync"

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
