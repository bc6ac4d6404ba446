package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// Scope is what a token may do; docs/http.md lists the endpoints of each.
// They follow the engine's privileges: read is the engine's "receive",
// write its "send".
type Scope int

const (
	// ScopeInspect describes queues, consumers and schedules.
	ScopeInspect Scope = iota + 1
	// ScopeRead consumes: subscribe, receive, stream, ack, nack, peek,
	// workers; and inspects.
	ScopeRead
	// ScopeWrite sends; and inspects.
	ScopeWrite
	// ScopeAdmin does everything: creates, configures, pauses and drops
	// queues, handles dead letters and schedules, reads and writes.
	ScopeAdmin
)

var scopeNames = map[string]Scope{"inspect": ScopeInspect, "read": ScopeRead, "write": ScopeWrite, "admin": ScopeAdmin}

func (s Scope) String() string {
	for n, v := range scopeNames {
		if v == s {
			return n
		}
	}
	return fmt.Sprintf("Scope(%d)", int(s))
}

// covers reports whether a grant of s allows what needs need.
func (s Scope) covers(need Scope) bool {
	return s == need || s == ScopeAdmin || need == ScopeInspect
}

// grant is one scope of a token, on every queue or on some.
type grant struct {
	scope      Scope
	all        bool
	queues     map[string]bool
	namespaces map[string]bool
}

// namespace is the namespace of a queue name (the part before its first
// '.'), "" for none, as the engine has it.
func namespace(queue string) string {
	if i := strings.IndexByte(queue, '.'); i > 0 {
		return queue[:i]
	}
	return ""
}

func (g grant) on(queue string) bool {
	if g.all || g.queues[queue] {
		return true
	}
	ns := namespace(queue)
	return ns != "" && g.namespaces[ns]
}

// token is a configured token: the SHA-256 of its secret, and its grants.
type token struct {
	hash   [sha256.Size]byte
	line   int // where it was configured, to name it in logs without its secret
	grants []grant
}

// may reports whether t allows need on queue.
func (t *token) may(need Scope, queue string) bool {
	for _, g := range t.grants {
		if g.scope.covers(need) && g.on(queue) {
			return true
		}
	}
	return false
}

// mayAll reports whether t allows need on every queue.
func (t *token) mayAll(need Scope) bool {
	for _, g := range t.grants {
		if g.scope.covers(need) && g.all {
			return true
		}
	}
	return false
}

// mayAny reports whether t allows need on some queue.
func (t *token) mayAny(need Scope) bool {
	for _, g := range t.grants {
		if g.scope.covers(need) {
			return true
		}
	}
	return false
}

// Tokens are the bearer tokens a Server accepts (see ParseTokens).
type Tokens struct {
	list []token
}

// Len is the number of tokens.
func (ts *Tokens) Len() int { return len(ts.list) }

// minTokenLen is the shortest secret accepted: shorter ones can be guessed.
const minTokenLen = 16

// hashPrefix marks a token given as the SHA-256 of its secret.
const hashPrefix = "sha256:"

// LoadTokens reads a token file (see ParseTokens).
func LoadTokens(path string) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	ts, err := ParseTokens(f)
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	return ts, nil
}

// ParseTokens reads tokens, one a line: the token, then one or more grants,
// separated by spaces.  Blank lines and lines starting with '#' are
// skipped.  The token is its secret (at least 16 characters) or
// "sha256:" and the hex SHA-256 of the secret.  A grant is a scope
// (inspect, read, write, admin), on every queue, or a scope, ':' and a
// comma-separated list of queue names and namespaces ("acme.*": every
// queue of namespace acme):
//
//	# token                           grants
//	8f14e45fceea167a5a36dedd4bea2543  admin
//	c9f0f895fb98ab9159f51fd0297e236d  write:acme.orders read:acme.*
//	sha256:7c71f44974a08cb005a0d5e8f03dc58c82395646b7a265743df9104a8e8a2bd1 inspect
//
// Errors name the line, never the secret.
func ParseTokens(r io.Reader) (*Tokens, error) {
	ts := &Tokens{}
	seen := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		t := token{line: n}
		if hx, ok := strings.CutPrefix(fields[0], hashPrefix); ok {
			b, err := hex.DecodeString(hx)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("line %d: %s must be followed by 64 hex digits", n, hashPrefix)
			}
			copy(t.hash[:], b)
		} else {
			if len(fields[0]) < minTokenLen {
				return nil, fmt.Errorf("line %d: the token is shorter than %d characters", n, minTokenLen)
			}
			t.hash = sha256.Sum256([]byte(fields[0]))
		}
		if prev, dup := seen[t.hash]; dup {
			return nil, fmt.Errorf("line %d: the token of line %d again", n, prev)
		}
		seen[t.hash] = n
		if len(fields) == 1 {
			return nil, fmt.Errorf("line %d: a token needs at least one grant (inspect, read, write or admin)", n)
		}
		for _, f := range fields[1:] {
			g, err := parseGrant(f)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			t.grants = append(t.grants, g)
		}
		ts.list = append(ts.list, t)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(ts.list) == 0 {
		return nil, fmt.Errorf("no tokens")
	}
	return ts, nil
}

func parseGrant(s string) (grant, error) {
	name, limits, limited := strings.Cut(s, ":")
	scope, ok := scopeNames[name]
	if !ok {
		return grant{}, fmt.Errorf("grant %q: scope %q is not inspect, read, write or admin", s, name)
	}
	g := grant{scope: scope, all: !limited}
	if !limited {
		return g, nil
	}
	g.queues, g.namespaces = map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(limits, ",") {
		switch ns, isNS := strings.CutSuffix(l, ".*"); {
		case isNS && ns != "" && !strings.ContainsAny(ns, ".*"):
			g.namespaces[ns] = true
		case l != "" && !strings.Contains(l, "*"):
			g.queues[l] = true
		default:
			return grant{}, fmt.Errorf("grant %q: %q is neither a queue name nor a namespace such as acme.*", s, l)
		}
	}
	return g, nil
}

// find returns the token whose secret is secret, or nil.  Every token is
// compared, in constant time, so that the time taken tells nothing of
// which one (or how much of one) matched.
func (ts *Tokens) find(secret string) *token {
	h := sha256.Sum256([]byte(secret))
	var found *token
	for i := range ts.list {
		if subtle.ConstantTimeCompare(h[:], ts.list[i].hash[:]) == 1 {
			found = &ts.list[i]
		}
	}
	return found
}

type tokenKey struct{}

// authenticate finds the request's token; with no tokens configured
// every request is let through.  It answers 401 for a missing or unknown
// token.
func (s *Server) authenticate(r *http.Request) (*http.Request, error) {
	if s.opts.Tokens == nil {
		return r, nil
	}
	scheme, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return r, &apiError{code: pgquehttp.CodeUnauthenticated,
			msg: "this server needs a token: send the header Authorization: Bearer <token>"}
	}
	t := s.opts.Tokens.find(strings.TrimSpace(secret))
	if t == nil {
		return r, &apiError{code: pgquehttp.CodeUnauthenticated,
			msg: "the token is not one of this server's"}
	}
	return r.WithContext(context.WithValue(r.Context(), tokenKey{}, t)), nil
}

// tokenOf is the request's token; nil when the server takes none.
func tokenOf(r *http.Request) *token {
	t, _ := r.Context().Value(tokenKey{}).(*token)
	return t
}

func forbidden(format string, args ...any) error {
	return &apiError{code: pgquehttp.CodeForbidden, msg: fmt.Sprintf(format, args...)}
}

// authorize checks that the request's token allows need on queue.
func authorize(r *http.Request, need Scope, queue string) error {
	if t := tokenOf(r); t != nil && !t.may(need, queue) {
		return forbidden("the token has no %s scope on queue %q", need, queue)
	}
	return nil
}

// authorizeAll checks that the request's token allows need on every queue.
func authorizeAll(r *http.Request, need Scope, what string) error {
	if t := tokenOf(r); t != nil && !t.mayAll(need) {
		return forbidden("%s needs a token with %s scope on every queue", what, need)
	}
	return nil
}

// authorizeAny checks that the request's token allows need on some queue:
// the gate of endpoints whose queue is not in the path, which check it
// once they know it.
func authorizeAny(r *http.Request, need Scope) error {
	if t := tokenOf(r); t != nil && !t.mayAny(need) {
		return forbidden("the token has no %s scope", need)
	}
	return nil
}

// visible reports whether the request's token may inspect queue: list
// endpoints show only those.
func visible(r *http.Request, queue string) bool {
	t := tokenOf(r)
	return t == nil || t.may(ScopeInspect, queue)
}

// pieceOwners remembers the queue of each piece this server handed out,
// so that a token limited to some queues can acknowledge, nack and renew
// its pieces (whose endpoints name no queue) and no others: the engine has
// no way to tell a piece's queue.  A piece is forgotten once acknowledged,
// or a day (the longest lease) after it was handed out or renewed; when
// maxPieces are remembered the oldest-looking ones go first.
type pieceOwners struct {
	mu        sync.Mutex
	queue     map[int64]pieceOwner
	lastSweep time.Time
}

type pieceOwner struct {
	queue string
	until time.Time
}

// maxPieces bounds the pieces remembered: a client that never acknowledges
// must not grow the server without end.
const maxPieces = 100_000

func newPieceOwners() *pieceOwners { return &pieceOwners{queue: map[int64]pieceOwner{}} }

func (p *pieceOwners) record(piece int64, queue string) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) >= maxPieces || now.Sub(p.lastSweep) > time.Minute {
		p.lastSweep = now
		for id, o := range p.queue {
			if now.After(o.until) {
				delete(p.queue, id)
			}
		}
		for id := range p.queue {
			if len(p.queue) < maxPieces {
				break
			}
			delete(p.queue, id)
		}
	}
	p.queue[piece] = pieceOwner{queue: queue, until: now.Add(pgque.MaxLease)}
}

func (p *pieceOwners) lookup(piece int64) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o, ok := p.queue[piece]
	if ok {
		o.until = time.Now().Add(pgque.MaxLease)
		p.queue[piece] = o
	}
	return o.queue, ok
}

func (p *pieceOwners) forget(piece int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.queue, piece)
}

// handedOut records that msgs, a piece of queue, were handed out.
func (s *Server) handedOut(queue string, msgs []pgque.Message) {
	if s.opts.Tokens != nil && len(msgs) > 0 {
		s.pieces.record(msgs[0].BatchID, queue)
	}
}

// authorizePiece checks that the request's token may read the queue of
// piece.
func (s *Server) authorizePiece(r *http.Request, piece int64) error {
	t := tokenOf(r)
	if t == nil || t.mayAll(ScopeRead) {
		return nil
	}
	queue, ok := s.pieces.lookup(piece)
	if !ok {
		return forbidden("piece %d was not handed out by this server to a queue the token may read "+
			"(a token limited to queues can acknowledge only the pieces this server process handed out)", piece)
	}
	return authorize(r, ScopeRead, queue)
}
