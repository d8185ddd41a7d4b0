package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/activity"

	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/params"
)

// Errors of the parameter-change activities (Temporal application error
// types; non-retryable). ErrTypeUnknownJob is shared with the backfill.
const (
	// ErrTypeInvalidChange: a value breaks its declaration (type, bounds),
	// names an undeclared parameter, or the change is empty.
	ErrTypeInvalidChange = "InvalidChange"
	// ErrTypeForbidden: the reviewer may not decide the change.
	ErrTypeForbidden = "Forbidden"
	// ErrTypeConflict: the job is no longer at the change's base version.
	ErrTypeConflict = "Conflict"
)

// ParamChange holds the activities of the parameter-change workflow and
// their dependencies.
type ParamChange struct {
	// Store is the event center: the catalog (the jobs' declarations) and
	// the audit trail. Required.
	Store catalog.Store
	// Registry keeps the parameter versions; it must implement
	// params.CompareAndSet. Required.
	Registry params.Registry
	// Directory checks that a reviewer holds the approver role on the job.
	// Default nil: no check here (the API and the CLI check the caller's
	// token before they signal; the stock Temporal CLI is then trusted).
	Directory auth.Directory
	// Notify tells running workers that job is at version v (the Kafka
	// control topic, see params/notify). Default nil: workers learn it by
	// polling the registry.
	Notify func(ctx context.Context, job string, v params.Version) error
}

// CheckChangeInput is a submitted change to validate.
type CheckChangeInput struct {
	Job     string        `json:"job"`
	Changes params.Values `json:"changes"`
}

// CheckChangeResult is a valid change.
type CheckChangeResult struct {
	// Changes are the changes canonicalized, durations as text (see
	// params.Display): they survive JSON without loss.
	Changes params.Values `json:"changes"`
	// Current is the job's version now and Old its overrides.
	Current params.Version `json:"current"`
	Old     params.Values  `json:"old"`
}

// CheckParamChange validates a change against the job's declarations in
// the catalog: an unknown job (ErrTypeUnknownJob), an undeclared parameter,
// a wrongly typed or out-of-bounds value, or no change at all
// (ErrTypeInvalidChange) fail without retry.
func (a *ParamChange) CheckParamChange(ctx context.Context, in CheckChangeInput) (CheckChangeResult, error) {
	if a.Registry == nil || a.Store == nil {
		return CheckChangeResult{}, permanent(ErrTypeBadInput, "params: this worker has no parameter registry or store")
	}
	canon, err := CheckChange(ctx, a.Store, in.Job, in.Changes)
	if err != nil {
		return CheckChangeResult{}, err
	}
	v, old, err := a.Registry.Current(ctx, in.Job)
	if err != nil {
		return CheckChangeResult{}, err
	}
	return CheckChangeResult{Changes: canon, Current: v, Old: params.Display(old)}, nil
}

// CheckChange validates changes to job against its declarations in the
// catalog and returns them canonicalized for display and JSON (see
// CheckParamChange for the errors). The API and the CLI call it before they
// start a change, the workflow again at its start.
func CheckChange(ctx context.Context, store catalog.Store, job string, changes params.Values) (params.Values, error) {
	canon, err := checkChange(ctx, store, job, changes)
	return params.Display(canon), err
}

// checkChange is CheckChange returning each value as its declared type's Go
// type (see params.Type).
func checkChange(ctx context.Context, store catalog.Store, job string, changes params.Values) (params.Values, error) {
	e, err := catalog.Get(ctx, store, job)
	if errors.Is(err, catalog.ErrNotFound) {
		known, lerr := catalog.Names(ctx, store)
		if lerr != nil {
			return nil, lerr
		}
		return nil, permanent(ErrTypeUnknownJob, "params: unknown job %q (the catalog knows: %s)", job, strings.Join(known, ", "))
	}
	if err != nil {
		return nil, err
	}
	decls := slices.Clone(e.Params)
	if err := params.ValidateDecls(decls); err != nil {
		return nil, fmt.Errorf("params: the catalog's declarations of %s: %w", job, err)
	}
	if len(decls) == 0 {
		return nil, permanent(ErrTypeInvalidChange, "params: job %q declares no parameters", job)
	}
	if len(changes) == 0 {
		return nil, permanent(ErrTypeInvalidChange, "params: the change to %s sets no parameter", job)
	}
	canon, err := params.Check(decls, changes)
	if err != nil {
		names := make([]string, len(decls))
		for i, d := range decls {
			names[i] = d.Name
		}
		return nil, permanent(ErrTypeInvalidChange, "%v (%s declares: %s)", err, job, strings.Join(names, ", "))
	}
	return canon, nil
}

// ReviewInput names a reviewer of a change of Job.
type ReviewInput struct {
	Job      string `json:"job"`
	Reviewer string `json:"reviewer"`
}

// AuthorizeReview fails with ErrTypeForbidden unless the Directory says the
// reviewer holds the approver role on the job (always passes without a
// Directory). The workflow itself refuses self-approval.
func (a *ParamChange) AuthorizeReview(ctx context.Context, in ReviewInput) error {
	if a.Directory == nil {
		return nil
	}
	p, err := a.Directory.Principal(ctx, in.Reviewer)
	if errors.Is(err, auth.ErrUnknownPrincipal) {
		return permanent(ErrTypeForbidden, "params: %q is not a known principal", in.Reviewer)
	}
	if err != nil {
		return err
	}
	if !p.Can(auth.RoleApprover, in.Job) {
		return permanent(ErrTypeForbidden, "params: %q may not approve or reject changes of %s (no approver role on it)", in.Reviewer, in.Job)
	}
	return nil
}

// ApplyInput is an approved change to store.
type ApplyInput struct {
	Job     string         `json:"job"`
	Change  string         `json:"change"` // the change's id
	Base    params.Version `json:"base"`
	Changes params.Values  `json:"changes"`
	By      string         `json:"by"` // the approver
}

// ApplyResult is the version an applied change made and its overrides.
type ApplyResult struct {
	Version params.Version `json:"version"`
	Values  params.Values  `json:"values"`
}

// ApplyParamChange stores the change as a new version if the job is still
// at its base version (params.CompareAndSet); otherwise it fails with
// ErrTypeConflict and stores nothing. The values are checked against the
// catalog's declarations again and stored as their declared types (they
// come through JSON: durations as text, integral floats as integers), also
// in a registry that holds no declarations. A retry after a lost reply returns the
// version the change made. It notifies the workers at once (best effort:
// a failure is logged, and the workflow's NotifyParamChange repeats the
// notification with retries), sparing the approval-to-output path a
// workflow task.
func (a *ParamChange) ApplyParamChange(ctx context.Context, in ApplyInput) (ApplyResult, error) {
	cas, ok := a.Registry.(params.CompareAndSet)
	if !ok {
		return ApplyResult{}, permanent(ErrTypeBadInput, "params: the registry %T cannot compare-and-set", a.Registry)
	}
	changes, err := checkChange(ctx, a.Store, in.Job, in.Changes)
	if err != nil {
		return ApplyResult{}, err
	}
	v, err := cas.SetIf(ctx, in.Job, in.Base, changes, in.By, in.Change)
	switch {
	case errors.Is(err, params.ErrConflict):
		return ApplyResult{}, permanent(ErrTypeConflict, "%v: submit the change again on the current version", err)
	case errors.Is(err, params.ErrInvalid):
		return ApplyResult{}, permanent(ErrTypeInvalidChange, "%v", err)
	case err != nil:
		return ApplyResult{}, err
	}
	if a.Notify != nil {
		if err := a.Notify(ctx, in.Job, v); err != nil {
			activity.GetLogger(ctx).Warn("notifying workers failed; the workflow retries", "job", in.Job, "version", v, "err", err)
		}
	}
	// The overrides v holds; nil if another version came since (the
	// registry reads the current version only).
	cur, vals, err := a.Registry.Current(ctx, in.Job)
	if err != nil {
		return ApplyResult{}, err
	}
	if cur != v {
		vals = nil
	}
	return ApplyResult{Version: v, Values: params.Display(vals)}, nil
}

// NotifyInput names a job's new version.
type NotifyInput struct {
	Job     string         `json:"job"`
	Version params.Version `json:"version"`
}

// NotifyParamChange tells running workers of the job's new version (a
// no-op without Notify).
func (a *ParamChange) NotifyParamChange(ctx context.Context, in NotifyInput) error {
	if a.Notify == nil {
		return nil
	}
	return a.Notify(ctx, in.Job, in.Version)
}

// AuditParamChange stores one step of a change in the audit trail
// (idempotently: a retry stores it once).
func (a *ParamChange) AuditParamChange(ctx context.Context, e params.AuditEntry) error {
	return params.AppendAudit(ctx, a.Store, e)
}
