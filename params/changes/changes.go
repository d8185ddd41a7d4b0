// Package changes is the caller's side of parameter changes: what the CLI
// (`tidemark params`) and the HTTP API (package paramshttp) do for an
// authenticated principal. A change is a ParamChange workflow
// (workflows.ParamChange), the source of truth; this package checks the
// caller's roles, validates before it starts a workflow, numbers changes,
// and maps the workflow's answers to errors a caller can act on.
package changes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/workflows"
)

// Errors. Each wraps a detail; test with errors.Is. HTTP answers: ErrInvalid
// 400, auth.ErrForbidden 403, ErrNotFound 404, ErrConflict and ErrDecided 409.
var (
	// ErrInvalid: a value breaks its declaration, an undeclared parameter,
	// an empty change (params.ErrInvalid).
	ErrInvalid = params.ErrInvalid
	// ErrNotFound: no such job, or no such change.
	ErrNotFound = errors.New("params: not found")
	// ErrConflict: the job is no longer at the version the change was
	// written against (params.ErrConflict).
	ErrConflict = params.ErrConflict
	// ErrDecided: the change was already decided (or expired).
	ErrDecided = errors.New("params: change already decided")
)

// Service runs parameter changes for principals.
type Service struct {
	// Temporal runs the ParamChange workflows. Required.
	Temporal client.Client
	// TaskQueue of the workers. Default workflows.TaskQueue.
	TaskQueue string
	// Store is the event center: the catalog and the audit trail. Required
	// by Submit, Show and History; if set, Decide audits the decisions it
	// refuses (no approver role, self-approval).
	Store catalog.Store
	// Registry holds the parameter versions. Required.
	Registry params.Registry
	// Expiry of new changes. Default workflows.DefaultChangeExpiry.
	Expiry time.Duration
}

// Change is a submitted change: the workflow's status.
type Change = workflows.ParamChangeStatus

// Submission asks for a change.
type Submission struct {
	Changes params.Values `json:"changes"`
	Reason  string        `json:"reason"`
	// Base is the version the change was written against; nil: the
	// current one.
	Base *params.Version `json:"base,omitempty"`
}

// MaxText bounds a change's reason and a decision's comment, in bytes: they
// are written into the audit trail's events, which the event center bounds.
const MaxText = 4096

// Submit starts a change of job for p, who needs the operator role on it.
// The change is validated first (ErrNotFound for an unknown job, ErrInvalid
// for bad values, ErrConflict for a stale Base) and nothing starts if it
// fails. The change is numbered one past the job's highest: its id is
// workflows.ParamChangeID(job, n).
func (s *Service) Submit(ctx context.Context, p auth.Principal, job string, sub Submission) (Change, error) {
	if !p.Can(auth.RoleOperator, job) {
		return Change{}, fmt.Errorf("%w: %s has no operator role on %s", auth.ErrForbidden, p.ID, job)
	}
	if strings.TrimSpace(sub.Reason) == "" {
		return Change{}, fmt.Errorf("%w: a change needs a reason", ErrInvalid)
	}
	if len(sub.Reason) > MaxText {
		return Change{}, fmt.Errorf("%w: the reason has %d bytes, at most %d", ErrInvalid, len(sub.Reason), MaxText)
	}
	canon, err := activities.CheckChange(ctx, s.Store, job, sub.Changes)
	if err != nil {
		return Change{}, mapError(err)
	}
	cur, old, err := s.Registry.Current(ctx, job)
	if err != nil {
		return Change{}, err
	}
	if sub.Base != nil && *sub.Base != cur {
		return Change{}, fmt.Errorf("%w: %s is at version %d, the change was written against version %d", ErrConflict, job, cur, *sub.Base)
	}
	in := workflows.ParamChangeInput{Job: job, Changes: canon, Reason: sub.Reason, Submitter: p.ID, Base: &cur, Expiry: workflows.Duration(s.Expiry)}
	n, err := s.lastNumber(ctx, job)
	if err != nil {
		return Change{}, err
	}
	for {
		n++
		id := workflows.ParamChangeID(job, n)
		_, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: id, TaskQueue: s.taskQueue(),
			WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			WorkflowExecutionErrorWhenAlreadyStarted: true,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				workflows.SearchJob.ValueSet(job), workflows.SearchParamState.ValueSet(string(workflows.ChangePending))),
		}, workflows.ParamChangeWorkflow, in)
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &started) {
			continue // numbered by someone else meanwhile
		}
		if err != nil {
			return Change{}, fmt.Errorf("params: starting change %s: %w", id, err)
		}
		now := time.Now().UTC()
		expiry := s.Expiry
		if expiry <= 0 {
			expiry = workflows.DefaultChangeExpiry
		}
		return Change{ID: id, Job: job, State: workflows.ChangePending, Changes: canon, Old: params.Display(old), Base: cur,
			Reason: sub.Reason, Submitter: p.ID, Submitted: now, Expires: now.Add(expiry)}, nil
	}
}

// lastNumber is the highest change number of job the audit trail knows
// (changes that failed validation in the workflow are not audited; Submit
// skips the numbers they took).
func (s *Service) lastNumber(ctx context.Context, job string) (int64, error) {
	es, err := params.AuditHistory(ctx, s.Store, job)
	if err != nil {
		return 0, err
	}
	prefix := workflows.ParamChangeID(job, 0)
	prefix = prefix[:len(prefix)-1]
	var n int64
	for _, e := range es {
		if k, err := strconv.ParseInt(strings.TrimPrefix(e.Change, prefix), 10, 64); err == nil && k > n {
			n = k
		}
	}
	return n, nil
}

// Decide approves (approve true) or rejects change id for p, who needs the
// approver role on the job and may not have submitted it. It waits until
// the change is final and returns it: applied, or ErrConflict if another
// change was applied since it was written. ErrNotFound: no such change;
// ErrDecided: decided already.
func (s *Service) Decide(ctx context.Context, p auth.Principal, id string, approve bool, comment string) (Change, error) {
	if len(comment) > MaxText {
		return Change{}, fmt.Errorf("%w: the comment has %d bytes, at most %d", ErrInvalid, len(comment), MaxText)
	}
	c, err := s.Get(ctx, id)
	if err != nil {
		return Change{}, err
	}
	var refused error
	switch {
	case !p.Can(auth.RoleApprover, c.Job):
		refused = fmt.Errorf("%w: %s has no approver role on %s", auth.ErrForbidden, p.ID, c.Job)
	case p.ID == c.Submitter:
		refused = fmt.Errorf("%w: %s submitted %s and may not decide it", auth.ErrForbidden, p.ID, id)
	case c.State != workflows.ChangePending:
		return c, fmt.Errorf("%w: %s is %s", ErrDecided, id, c.State)
	}
	if refused != nil {
		if s.Store != nil { // the API's service audits refusals; the CLI opens no store to decide
			e := params.AuditEntry{Job: c.Job, Change: id, Step: params.StepRefused, By: p.ID, At: time.Now(), Base: c.Base, Reason: c.Reason, Comment: refused.Error()}
			if err := params.AppendAudit(ctx, s.Store, e); err != nil {
				return c, errors.Join(refused, err)
			}
		}
		return c, refused
	}
	name := workflows.RejectUpdate
	if approve {
		name = workflows.ApproveUpdate
	}
	h, err := s.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: name, Args: []any{workflows.Decision{Reviewer: p.ID, Comment: comment}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, &c)
	}
	if err != nil {
		return c, mapError(err)
	}
	return c, nil
}

// Get returns change id as its workflow knows it (ErrNotFound if none).
func (s *Service) Get(ctx context.Context, id string) (Change, error) {
	if !strings.HasPrefix(id, "param-") {
		return Change{}, fmt.Errorf("%w: %q is not a change id (param-<job>-<n>)", ErrNotFound, id)
	}
	v, err := s.Temporal.QueryWorkflow(ctx, id, "", workflows.ChangeQuery)
	if err != nil {
		return Change{}, mapError(err)
	}
	var c Change
	if err := v.Get(&c); err != nil {
		return Change{}, err
	}
	return c, nil
}

// List returns the changes of job (every job if ""), newest first; only
// those in state if it is not "". It reads Temporal's visibility, which
// may lag a change started an instant ago.
func (s *Service) List(ctx context.Context, job string, state workflows.ChangeState) ([]Change, error) {
	q := fmt.Sprintf("WorkflowType = %q", workflows.ParamChangeWorkflow)
	if job != "" {
		q += fmt.Sprintf(" AND %s = %q", workflows.SearchJob.GetName(), job)
	}
	if state != "" {
		q += fmt.Sprintf(" AND %s = %q", workflows.SearchParamState.GetName(), state)
	}
	var out []Change
	var token []byte
	for {
		resp, err := s.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("params: listing changes: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			c, err := s.Get(ctx, e.GetExecution().GetWorkflowId())
			if errors.Is(err, ErrNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return nil, err
			}
			if state == "" || c.State == state {
				out = append(out, c)
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	slices.SortFunc(out, func(a, b Change) int { return b.Submitted.Compare(a.Submitted) })
	return out, nil
}

// History returns the audit trail of job's changes, oldest first.
func (s *Service) History(ctx context.Context, job string) ([]params.AuditEntry, error) {
	if _, err := s.entry(ctx, job); err != nil {
		return nil, err
	}
	return params.AuditHistory(ctx, s.Store, job)
}

// entry returns job's catalog entry; ErrNotFound names the jobs known.
func (s *Service) entry(ctx context.Context, job string) (catalog.Entry, error) {
	e, err := catalog.Get(ctx, s.Store, job)
	if errors.Is(err, catalog.ErrNotFound) {
		known, lerr := catalog.Names(ctx, s.Store)
		if lerr != nil {
			return e, lerr
		}
		return e, fmt.Errorf("%w: unknown job %q (the catalog knows: %s)", ErrNotFound, job, strings.Join(known, ", "))
	}
	return e, err
}

// JobParams is a job's parameters: declarations and the current version.
type JobParams struct {
	Job     string         `json:"job"`
	Version params.Version `json:"version"`
	Decls   []params.Decl  `json:"params"`
	// Values are every parameter's value in force (overrides or defaults),
	// Overrides those that differ from the declared defaults.
	Values    params.Values `json:"values"`
	Overrides params.Values `json:"overrides"`
}

// Show returns job's declarations (from the catalog) and current values.
func (s *Service) Show(ctx context.Context, job string) (JobParams, error) {
	e, err := s.entry(ctx, job)
	if err != nil {
		return JobParams{}, err
	}
	decls := slices.Clone(e.Params)
	if err := params.ValidateDecls(decls); err != nil {
		return JobParams{}, err
	}
	v, over, err := s.Registry.Current(ctx, job)
	if err != nil {
		return JobParams{}, err
	}
	vals, err := params.Resolve(decls, over)
	if err != nil {
		return JobParams{}, err
	}
	return JobParams{Job: job, Version: v, Decls: e.Params, Values: params.Display(vals), Overrides: params.Display(over)}, nil
}

func (s *Service) taskQueue() string {
	if s.TaskQueue == "" {
		return workflows.TaskQueue
	}
	return s.TaskQueue
}

// mapError turns the errors of the catalog, the activities, the workflow
// and Temporal into this package's.
func mapError(err error) error {
	var appErr *temporal.ApplicationError
	var nf *serviceerror.NotFound
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	case errors.As(err, &nf):
		return fmt.Errorf("%w: %v", ErrNotFound, nf.Message)
	case errors.As(err, &appErr):
		msg := appErr.Message()
		switch appErr.Type() {
		case activities.ErrTypeUnknownJob:
			return fmt.Errorf("%w: %s", ErrNotFound, msg)
		case activities.ErrTypeInvalidChange:
			return fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(msg, "params: invalid: "))
		case activities.ErrTypeForbidden, workflows.ErrTypeSelfApproval:
			return fmt.Errorf("%w: %s", auth.ErrForbidden, msg)
		case workflows.ErrTypeNoReviewer:
			return fmt.Errorf("%w: %s", ErrInvalid, msg)
		case workflows.ErrTypeDecided:
			return fmt.Errorf("%w: %s", ErrDecided, msg)
		case activities.ErrTypeConflict:
			return fmt.Errorf("%w: %s", ErrConflict, msg)
		}
	}
	return err
}
