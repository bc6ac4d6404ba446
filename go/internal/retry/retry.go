// Package retry holds the backoff that pgque's long-running loops (the
// Ticker, the Consumer, the HTTP server's listener) wait with between
// attempts, so that they all recover from an outage alike.
package retry

import (
	"math/rand/v2"
	"time"
)

// First and Max bound the waits of Backoff: the first wait is about First,
// each next one about twice the last, up to Max.  They are short because a
// restarted server should be used again within a second of accepting
// connections; a wait is cheap for the server (one failed connection or
// call), so a short cap costs little even when the outage is long.
const (
	First = 50 * time.Millisecond
	Max   = 500 * time.Millisecond
)

// Backoff gives the waits between attempts: doubling from First up to Max,
// each with jitter (between half of it and all of it), so that many clients
// that lost the server at the same moment do not come back in step.  The
// zero value is ready to use; a Backoff is not safe for concurrent use.
type Backoff struct{ cur time.Duration }

// Next returns the wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = First
	} else {
		b.cur = min(2*b.cur, Max)
	}
	return b.cur/2 + rand.N(b.cur/2+1)
}

// Reset starts the waits over, after an attempt succeeded.
func (b *Backoff) Reset() { b.cur = 0 }
