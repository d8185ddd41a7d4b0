package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/params"
)

// Names under which the parameter-change workflow is registered, signalled,
// updated and queried.
const (
	// ParamChangeWorkflow is the workflow type of ParamChange.
	ParamChangeWorkflow = "ParamChange"
	// ParamApplyWorkflow is the workflow type of ParamApply.
	ParamApplyWorkflow = "ParamApply"
	// ApproveSignal and RejectSignal carry a Decision:
	//
	//	temporal workflow signal --workflow-id param-credit-features-3 --name approve \
	//	  --input '{"reviewer":"bob","comment":"checked the backtest"}'
	//
	// A decision that is refused (self-approval, no approver role, already
	// decided) changes nothing and is recorded in the audit trail.
	ApproveSignal = "approve"
	RejectSignal  = "reject"
	// ApproveUpdate and RejectUpdate take a Decision and answer the
	// change's ParamChangeStatus once it is final (applied, conflict,
	// rejected), or an error at once if the decision is refused:
	// `temporal workflow update execute --workflow-id ID --name approve --input '{"reviewer":"bob"}'`.
	ApproveUpdate = "approve"
	RejectUpdate  = "reject"
	// ChangeQuery answers the change's ParamChangeStatus.
	ChangeQuery = "change"
	// DefaultChangeExpiry is how long a change waits for a decision.
	DefaultChangeExpiry = 7 * 24 * time.Hour
)

// SearchParamState is the State of a change, published with SearchJob so
// that pending changes list in the Temporal UI:
// `TidemarkParamState = "pending" AND TidemarkJob = "credit-features"`.
var SearchParamState = temporal.NewSearchAttributeKeyKeyword("TidemarkParamState")

// ChangeState is where a change is in its life.
type ChangeState string

// States of a change. Pending and approved are transient; the others final.
const (
	ChangePending  ChangeState = "pending"  // waiting for a decision
	ChangeApproved ChangeState = "approved" // approved, being applied
	ChangeApplied  ChangeState = "applied"  // the new version is stored and workers notified
	ChangeRejected ChangeState = "rejected"
	ChangeExpired  ChangeState = "expired"
	// ChangeConflict: the job moved past the change's base version (another
	// change was applied first); nothing was stored. Submit the change
	// again on the current version.
	ChangeConflict ChangeState = "conflict"
	// ChangeInvalid: the change broke the declarations (started by hand,
	// past the API's and the CLI's checks); nothing was stored.
	ChangeInvalid ChangeState = "invalid"
)

// Final reports whether s is a final state.
func (s ChangeState) Final() bool { return s != ChangePending && s != ChangeApproved }

// ParamChangeID is the workflow id of job's change number n.
func ParamChangeID(job string, n int64) string { return fmt.Sprintf("param-%s-%d", job, n) }

// ParamChangeInput submits a change of a job's parameters. It is JSON:
//
//	temporal workflow start --task-queue tidemark --type ParamChange --workflow-id param-credit-features-3 \
//	  --input '{"job":"credit-features","changes":{"max_dti":0.45},"reason":"Q4 policy","submitter":"alice","base":2}'
type ParamChangeInput struct {
	// Job is the job whose parameters change. Required.
	Job string `json:"job"`
	// Changes are the new values by parameter name; null sets a parameter
	// back to its declared default. At least one. Required.
	Changes params.Values `json:"changes"`
	// Reason says why, for the reviewer and the audit trail.
	Reason string `json:"reason,omitempty"`
	// Submitter is the principal id of whoever submits. Required.
	Submitter string `json:"submitter"`
	// Base is the version the change was written against. If the job is at
	// another version when the change starts or is applied, the change ends
	// in ChangeConflict. Default (absent): the version current at start.
	Base *params.Version `json:"base,omitempty"`
	// Expiry is how long the change waits for a decision. Default
	// DefaultChangeExpiry.
	Expiry Duration `json:"expiry,omitzero"`
}

// Decision is an approval or a rejection.
type Decision struct {
	// Reviewer is the principal id of the approver. Required; never the
	// submitter.
	Reviewer string `json:"reviewer"`
	Comment  string `json:"comment,omitempty"`
}

// ParamChangeStatus is a change as the workflow knows it: its query answer,
// its updates' answer and its result.
type ParamChangeStatus struct {
	ID        string         `json:"id"`
	Job       string         `json:"job"`
	State     ChangeState    `json:"state"`
	Changes   params.Values  `json:"changes"`
	Old       params.Values  `json:"old,omitempty"` // the overrides at Base
	Base      params.Version `json:"base"`
	Version   params.Version `json:"version,omitempty"` // made by the change (applied)
	Reason    string         `json:"reason,omitempty"`
	Submitter string         `json:"submitter"`
	Submitted time.Time      `json:"submitted"`
	Expires   time.Time      `json:"expires"`
	Reviewer  string         `json:"reviewer,omitempty"`
	Comment   string         `json:"comment,omitempty"`
	Decided   time.Time      `json:"decided,omitzero"`
	// Error says why the change is invalid or in conflict.
	Error string `json:"error,omitempty"`
}

// Errors of the decision updates (application error types).
const (
	ErrTypeSelfApproval = "SelfApproval"
	ErrTypeDecided      = "AlreadyDecided"
	ErrTypeNoReviewer   = "NoReviewer"
)

// ParamChange runs one parameter change: it validates the change against
// the job's declarations, records it, waits for an approve or reject
// decision (by signal or update) until it expires, and on approval stores
// the new version with a compare-and-set on the base version (through
// ParamApply, one per job at a time) and notifies the running workers.
// Every step is an audit event (params.AuditSource). The result is the
// final ParamChangeStatus; an invalid change fails the workflow.
func ParamChange(ctx workflow.Context, in ParamChangeInput) (ParamChangeStatus, error) {
	now := workflow.Now(ctx)
	expiry := time.Duration(in.Expiry)
	if expiry <= 0 {
		expiry = DefaultChangeExpiry
	}
	st := ParamChangeStatus{
		ID: workflow.GetInfo(ctx).WorkflowExecution.ID, Job: in.Job, State: ChangePending, Changes: in.Changes,
		Reason: in.Reason, Submitter: in.Submitter, Submitted: now, Expires: now.Add(expiry),
	}
	if in.Base != nil {
		st.Base = *in.Base
	}
	if err := workflow.SetQueryHandler(ctx, ChangeQuery, func() (ParamChangeStatus, error) { return st, nil }); err != nil {
		return st, err
	}
	var a *activities.ParamChange
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: 10 * time.Second},
	})
	setState := func(s ChangeState) error {
		st.State = s
		return workflow.UpsertTypedSearchAttributes(ctx, SearchJob.ValueSet(in.Job), SearchParamState.ValueSet(string(s)))
	}
	audit := func(step params.Step, by string, f func(e *params.AuditEntry)) workflow.Future {
		e := params.AuditEntry{Job: in.Job, Change: st.ID, Step: step, By: by, At: workflow.Now(ctx), Base: st.Base, Old: st.Old, New: st.Changes, Reason: in.Reason}
		if f != nil {
			f(&e)
		}
		return workflow.ExecuteActivity(actx, a.AuditParamChange, e)
	}
	// end records the change's last step, then publishes its final state
	// s (so an update answers once the step is in the audit trail), waits
	// for the update handlers still running, and ends the workflow.
	end := func(s ChangeState, step params.Step, by string, f func(e *params.AuditEntry)) (ParamChangeStatus, error) {
		if step != "" {
			if err := audit(step, by, f).Get(ctx, nil); err != nil {
				return st, err
			}
		}
		if err := setState(s); err != nil {
			return st, err
		}
		return st, workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	}

	// Decisions, by signal or update, are checked alike: the reviewer may
	// not be the submitter and must hold the approver role
	// (AuthorizeReview); the first accepted decision wins. They are heard
	// from the start, and wait for the change's validation.
	var decision *Decision
	validated := false
	approved := false
	// expired is set the moment the wait for a decision times out: a
	// decision heard while the expiry is being recorded (an activity) is
	// refused, not accepted into a change that ends expired.
	expired := false
	refuse := func(ctx workflow.Context, d Decision, why string) {
		if err := audit(params.StepRefused, d.Reviewer, func(e *params.AuditEntry) { e.Comment = why }).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("audit of a refused decision failed", "err", err)
		}
	}
	// validate is the check that needs no activity (updates run it as their
	// validator, before anything is written to the history).
	validate := func(d Decision) error {
		switch {
		case expired:
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("params: change %s has expired", st.ID), ErrTypeDecided, nil)
		case st.State != ChangePending || decision != nil:
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("params: change %s is already %s", st.ID, st.State), ErrTypeDecided, nil)
		case d.Reviewer == "":
			return temporal.NewNonRetryableApplicationError("params: a decision needs a reviewer", ErrTypeNoReviewer, nil)
		case d.Reviewer == in.Submitter:
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("params: %s submitted change %s and may not decide it", d.Reviewer, st.ID), ErrTypeSelfApproval, nil)
		}
		return nil
	}
	// decide checks d fully and, if it is accepted, records it.
	decide := func(ctx workflow.Context, d Decision, approve bool) error {
		if err := workflow.Await(ctx, func() bool { return validated || st.State.Final() }); err != nil {
			return err
		}
		if err := validate(d); err != nil {
			return err
		}
		if err := workflow.ExecuteActivity(actx, a.AuthorizeReview, activities.ReviewInput{Job: in.Job, Reviewer: d.Reviewer}).Get(ctx, nil); err != nil {
			refuse(ctx, d, errorMessage(err))
			return err
		}
		if err := validate(d); err != nil { // another decision won meanwhile
			return err
		}
		decision, approved = &d, approve
		return nil
	}
	for _, sig := range []struct {
		name    string
		approve bool
	}{{ApproveSignal, true}, {RejectSignal, false}} {
		ch := workflow.GetSignalChannel(ctx, sig.name)
		workflow.Go(ctx, func(ctx workflow.Context) {
			for {
				var d Decision
				ch.Receive(ctx, &d)
				if err := decide(ctx, d, sig.approve); err != nil {
					var appErr *temporal.ApplicationError
					if errors.As(err, &appErr) && appErr.Type() != activities.ErrTypeForbidden {
						refuse(ctx, d, errorMessage(err)) // Forbidden was recorded by decide
					}
				}
			}
		})
	}
	for _, upd := range []struct {
		name    string
		approve bool
	}{{ApproveUpdate, true}, {RejectUpdate, false}} {
		err := workflow.SetUpdateHandlerWithOptions(ctx, upd.name,
			func(ctx workflow.Context, d Decision) (ParamChangeStatus, error) {
				if err := decide(ctx, d, upd.approve); err != nil {
					return st, err
				}
				if err := workflow.Await(ctx, func() bool { return st.State.Final() }); err != nil {
					return st, err
				}
				if st.State == ChangeConflict {
					return st, temporal.NewNonRetryableApplicationError(st.Error, activities.ErrTypeConflict, nil)
				}
				return st, nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, d Decision) error { return validate(d) }})
		if err != nil {
			return st, err
		}
	}

	// Validate.
	if err := setState(ChangePending); err != nil {
		return st, err
	}
	var chk activities.CheckChangeResult
	err := workflow.ExecuteActivity(actx, a.CheckParamChange, activities.CheckChangeInput{Job: in.Job, Changes: in.Changes}).Get(ctx, &chk)
	if err == nil && in.Submitter == "" {
		err = temporal.NewNonRetryableApplicationError("params: a change needs a submitter", activities.ErrTypeInvalidChange, nil)
	}
	if err != nil {
		st.Error = errorMessage(err)
		if serr := setState(ChangeInvalid); serr != nil {
			return st, serr
		}
		return st, err
	}
	st.Changes, st.Old, st.Base = chk.Changes, chk.Old, chk.Current
	if in.Base != nil && *in.Base != chk.Current {
		st.Base = *in.Base
		st.Error = fmt.Sprintf("params: %s is at version %d, the change was written against version %d: submit it again on the current version", in.Job, chk.Current, *in.Base)
		return end(ChangeConflict, params.StepConflict, in.Submitter, func(e *params.AuditEntry) { e.Comment = st.Error })
	}
	if err := audit(params.StepSubmitted, in.Submitter, nil).Get(ctx, nil); err != nil {
		return st, err
	}
	validated = true

	// Wait for a decision.
	decidedInTime, err := workflow.AwaitWithTimeout(ctx, st.Expires.Sub(workflow.Now(ctx)), func() bool { return decision != nil })
	if err != nil {
		return st, err
	}
	if !decidedInTime {
		expired = true
		return end(ChangeExpired, params.StepExpired, st.ID, nil)
	}
	st.Reviewer, st.Comment, st.Decided = decision.Reviewer, decision.Comment, workflow.Now(ctx)
	withComment := func(e *params.AuditEntry) { e.Comment = decision.Comment }
	if !approved {
		return end(ChangeRejected, params.StepRejected, decision.Reviewer, withComment)
	}

	// Apply: the approval's audit and the apply run at once.
	if err := setState(ChangeApproved); err != nil {
		return st, err
	}
	approvedAudit := audit(params.StepApproved, decision.Reviewer, withComment)
	res, err := applyExclusive(ctx, activities.ApplyInput{Job: in.Job, Change: st.ID, Base: st.Base, Changes: st.Changes, By: decision.Reviewer})
	if aerr := approvedAudit.Get(ctx, nil); aerr != nil {
		return st, aerr
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == activities.ErrTypeConflict {
		st.Error = appErr.Message()
		return end(ChangeConflict, params.StepConflict, st.ID, func(e *params.AuditEntry) { e.Comment = st.Error })
	}
	if err != nil {
		return st, err
	}
	st.Version = res.Version
	// The notification is a hint (workers poll too): a Kafka outage must
	// not hold the change open, so its retries stop after a minute.
	nctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second, ScheduleToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{MaximumInterval: 10 * time.Second},
	})
	notified := workflow.ExecuteActivity(nctx, a.NotifyParamChange, activities.NotifyInput{Job: in.Job, Version: res.Version})
	applied := audit(params.StepApplied, st.ID, func(e *params.AuditEntry) {
		e.Version, e.New = res.Version, res.Values
		e.Comment = decision.Comment
	})
	if err := notified.Get(ctx, nil); err != nil {
		// The version is stored: workers learn it by polling.
		workflow.GetLogger(ctx).Warn("notifying workers failed; they will poll", "err", err)
	}
	if err := applied.Get(ctx, nil); err != nil {
		return st, err
	}
	return end(ChangeApplied, "", "", nil) // audited above, beside the notification
}

// applyExclusive runs ParamApply as a child workflow whose id is fixed per
// job: Temporal runs at most one workflow per id, so the compare-and-set of
// two approved changes of one job never interleave, whichever workers run
// them. A change that finds the id taken waits and tries again (about a
// second: Temporal fires short timers at its own granularity).
func applyExclusive(ctx workflow.Context, in activities.ApplyInput) (activities.ApplyResult, error) {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: "paramapply-" + in.Job})
	for {
		var res activities.ApplyResult
		err := workflow.ExecuteChildWorkflow(cctx, ParamApplyWorkflow, in).Get(ctx, &res)
		var busy *temporal.ChildWorkflowExecutionAlreadyStartedError
		if !errors.As(err, &busy) {
			return res, err
		}
		if err := workflow.Sleep(ctx, 50*time.Millisecond); err != nil {
			return res, err
		}
	}
}

// ParamApply stores an approved change (see ParamChange): one activity,
// ApplyParamChange, failing with ErrTypeConflict if the job moved past the
// change's base version.
func ParamApply(ctx workflow.Context, in activities.ApplyInput) (activities.ApplyResult, error) {
	var a *activities.ParamChange
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: 10 * time.Second},
	})
	var res activities.ApplyResult
	err := workflow.ExecuteActivity(actx, a.ApplyParamChange, in).Get(ctx, &res)
	return res, err
}
