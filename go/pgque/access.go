package pgque

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Privilege is what a role may do to the queues of a namespace or to one
// queue (Client.GrantAccess).
type Privilege string

const (
	PrivilegeSend    Privilege = "send"    // send events
	PrivilegeReceive Privilege = "receive" // subscribe, receive, ack, nack, work as a worker
	PrivilegeInspect Privilege = "inspect" // see the queues, consumers and schedules (send and receive include it)
	PrivilegeAdmin   Privilege = "admin"   // all of the above, and create, drop, configure, pause queues, dead letters, schedules
)

// Scope names what a grant covers: every queue of Namespace, or the one
// queue Queue (which need not exist yet).  Exactly one is set.
type Scope struct {
	Namespace string
	Queue     string
}

func (s Scope) args() (ns, queue *string) {
	if s.Namespace != "" {
		ns = &s.Namespace
	}
	if s.Queue != "" {
		queue = &s.Queue
	}
	return ns, queue
}

// GrantAccess lets members of role do p to the queues in scope; it reports
// false when that was granted already.  role must also be a member of the
// pgque_tenant role to call pgque at all.  Only members of pgque_admin may
// grant.  Access is checked against the session's login role and its
// memberships (see the SQL reference, "Namespaces and access").
func (c *Client) GrantAccess(ctx context.Context, role string, p Privilege, scope Scope) (bool, error) {
	ns, queue := scope.args()
	n, err := c.exec1(ctx, "pgque: grant access", `SELECT pgque.grant_access($1, $2, $3, $4)`, role, string(p), ns, queue)
	return n == 1, err
}

// GrantAccessTx is GrantAccess inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) GrantAccessTx(ctx context.Context, tx DBTX, role string, p Privilege, scope Scope) (bool, error) {
	return c.inTx(tx).GrantAccess(ctx, role, p, scope)
}

// RevokeAccess undoes GrantAccess; it reports false when there was no such grant.
func (c *Client) RevokeAccess(ctx context.Context, role string, p Privilege, scope Scope) (bool, error) {
	ns, queue := scope.args()
	n, err := c.exec1(ctx, "pgque: revoke access", `SELECT pgque.revoke_access($1, $2, $3, $4)`, role, string(p), ns, queue)
	return n == 1, err
}

// RevokeAccessTx is RevokeAccess inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) RevokeAccessTx(ctx context.Context, tx DBTX, role string, p Privilege, scope Scope) (bool, error) {
	return c.inTx(tx).RevokeAccess(ctx, role, p, scope)
}

// AccessGrant is one GrantAccess grant.
type AccessGrant struct {
	Role      string
	Privilege Privilege
	Scope     Scope
}

// Access lists every grant made with GrantAccess (pgque_admin only).
func (c *Client) Access(ctx context.Context) ([]AccessGrant, error) {
	const op = "pgque: access"
	rows, err := c.q().Query(ctx, `SELECT role_name, privilege, coalesce(namespace, ''), coalesce(queue_name, '')
	                                  FROM pgque.list_access()`)
	if err != nil {
		return nil, wrap(op, err)
	}
	gs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AccessGrant, error) {
		var g AccessGrant
		err := row.Scan(&g.Role, &g.Privilege, &g.Scope.Namespace, &g.Scope.Queue)
		return g, err
	})
	return gs, wrap(op, err)
}

// AccessTx is Access inside tx (a pgx.Tx, or a database/sql transaction
// through SQLTx).
func (c *Client) AccessTx(ctx context.Context, tx DBTX) ([]AccessGrant, error) {
	return c.inTx(tx).Access(ctx)
}
