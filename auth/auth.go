// Package auth says who is calling tidemark and what they may do. The API
// server, the CLI and the console all check callers here, in one place.
//
// A caller presents a bearer token; an Authenticator maps it to a Principal,
// which holds Grants: a role, on every job or on the jobs named. The roles:
//
//	reader    reads (jobs, features, parameters, audit); every principal may read
//	owner     declares a job's parameters and runs its backfills (given jobs)
//	operator  submits parameter changes (given jobs)
//	approver  approves or rejects changes submitted by someone else (given jobs)
//	admin     everything, including creating and revoking tokens
//
// The Principal type is the one an OIDC authenticator would fill later: an
// ID (a subject), a display name, and grants derived from its claims.
package auth

import (
	"context"
	"errors"
	"slices"
)

// Role is what a grant lets a principal do.
type Role string

// Roles.
const (
	RoleReader   Role = "reader"
	RoleOwner    Role = "owner"
	RoleOperator Role = "operator"
	RoleApprover Role = "approver"
	RoleAdmin    Role = "admin"
)

// Roles lists every role, for validation and help texts.
var Roles = []Role{RoleReader, RoleOwner, RoleOperator, RoleApprover, RoleAdmin}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// Grant gives Role on Jobs; no Jobs means every job.
type Grant struct {
	Role Role     `json:"role" yaml:"role"`
	Jobs []string `json:"jobs,omitempty" yaml:"jobs,omitempty"`
}

// Principal is an authenticated caller.
type Principal struct {
	// ID identifies the caller durably (audit events name it): a token's
	// principal name today, an OIDC subject later.
	ID     string  `json:"id"`
	Name   string  `json:"name,omitempty"`
	Grants []Grant `json:"grants"`
}

// Can reports whether p holds role on job. An admin can do everything; every
// principal can read. job "" asks for the role on every job (a grant limited
// to some jobs does not give it).
func (p Principal) Can(role Role, job string) bool {
	if role == RoleReader && p.ID != "" {
		return true
	}
	for _, g := range p.Grants {
		if g.Role != role && g.Role != RoleAdmin {
			continue
		}
		if len(g.Jobs) == 0 || (job != "" && slices.Contains(g.Jobs, job)) {
			return true
		}
	}
	return false
}

// Errors. HTTP servers answer ErrNoToken and ErrBadToken with 401 and
// ErrForbidden with 403.
var (
	ErrNoToken   = errors.New("auth: no bearer token")
	ErrBadToken  = errors.New("auth: unknown or revoked token")
	ErrForbidden = errors.New("auth: not allowed")
)

// Authenticator maps a bearer token to its principal. It returns ErrBadToken
// (possibly wrapped) for a token it does not know or that was revoked.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Principal, error)
}

// ErrUnknownPrincipal: a Directory knows no principal with the id asked.
var ErrUnknownPrincipal = errors.New("auth: unknown principal")

// Directory finds principals by id, for checks made where no token is at
// hand: the parameter-change workflow checks that the reviewer a signal
// names holds the approver role. It returns ErrUnknownPrincipal (possibly
// wrapped) for an id it does not know or whose tokens are all revoked.
type Directory interface {
	Principal(ctx context.Context, id string) (Principal, error)
}

type principalKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal ctx carries, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
