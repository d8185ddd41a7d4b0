package params

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// AuditSource holds the audit trail of parameter changes: one event per
// step of a change (see [Step]), key the job name, event time the step's
// moment, op message, After row the [AuditEntry]'s fields as columns (Old
// and New as JSON objects).
const AuditSource = "tidemark.audit"

// Step is one step of a parameter change's life.
type Step string

// Steps, in the order of a change's life.
const (
	StepSubmitted Step = "submitted" // an operator submitted the change
	StepApproved  Step = "approved"  // an approver approved it
	StepRejected  Step = "rejected"  // an approver rejected it
	StepRefused   Step = "refused"   // a decision was refused (self-approval, no approver role): nothing changed
	StepExpired   Step = "expired"   // nobody decided in time
	StepApplied   Step = "applied"   // the new version was stored
	StepConflict  Step = "conflict"  // the job moved past the change's base version: not applied
	StepPickedUp  Step = "picked-up" // a running worker switched to the version
)

var stepOrder = []Step{StepSubmitted, StepRefused, StepApproved, StepRejected, StepExpired, StepApplied, StepConflict, StepPickedUp}

func (s Step) order() int { return slices.Index(stepOrder, s) + 1 }

// AuditEntry is one step of one change.
type AuditEntry struct {
	Job string `json:"job"`
	// Change is the change's id (its workflow id, param-<job>-<n>).
	Change string `json:"change"`
	Step   Step   `json:"step"`
	// By is who took the step: the submitter, the reviewer; for applied
	// and expired the change's workflow; for picked-up the worker.
	By string    `json:"by"`
	At time.Time `json:"at"`
	// Base is the version the change was based on; Version the one it made
	// (applied, picked-up).
	Base    Version `json:"base"`
	Version Version `json:"version,omitempty"`
	// Old are the overrides at Base, New the overrides the change sets
	// (nil: back to the default).
	Old     Values `json:"old,omitempty"`
	New     Values `json:"new,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Comment string `json:"comment,omitempty"`
	// Worker names the worker that picked the version up.
	Worker string `json:"worker,omitempty"`
}

// AppendAudit stores e as an event of AuditSource. It is idempotent: the
// same entry (same job, change, step, by, worker and At) stored twice is one
// event, so an activity's retry does not repeat a step.
func AppendAudit(ctx context.Context, store eventcenter.Appender, e AuditEntry) error {
	old, err := json.Marshal(Display(e.Old))
	if err != nil {
		return fmt.Errorf("params: audit: %w", err)
	}
	nw, err := json.Marshal(Display(e.New))
	if err != nil {
		return fmt.Errorf("params: audit: %w", err)
	}
	h := fnv.New64a()
	for _, s := range []string{e.Change, string(e.Step), e.By, e.Worker, strconv.FormatInt(int64(e.Version), 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	ev := eventcenter.Event{
		Source: AuditSource, Key: e.Job, Time: e.At.UTC(), Op: eventcenter.OpMessage,
		// Steps stamped with the same instant (a workflow's clock stands
		// still within a task) read back in the order of a change's life.
		Pos: eventcenter.Position{Log: uint64(e.Step.order()), Offset: h.Sum64()},
		After: eventcenter.Row{
			"change": e.Change, "step": string(e.Step), "by": e.By,
			"base": int64(e.Base), "version": int64(e.Version),
			"old": string(old), "new": string(nw),
			"reason": e.Reason, "comment": e.Comment, "worker": e.Worker,
		},
	}
	if err := store.Append(ctx, []eventcenter.Event{ev}); err != nil {
		return fmt.Errorf("params: audit of %s: %w", e.Change, err)
	}
	return nil
}

// AuditHistory returns the audit trail of job's changes, oldest first.
func AuditHistory(ctx context.Context, store eventcenter.Reader, job string) ([]AuditEntry, error) {
	evs, err := store.History(ctx, eventcenter.HistoryQuery{Source: AuditSource, Key: job, From: eventcenter.AllTime.From, To: eventcenter.AllTime.To})
	if err != nil {
		return nil, fmt.Errorf("params: audit of %s: %w", job, err)
	}
	out := make([]AuditEntry, 0, len(evs))
	for _, ev := range evs {
		r := ev.After
		str := func(c string) string { s, _ := r[c].(string); return s }
		num := func(c string) Version { n, _ := r[c].(int64); return Version(n) }
		e := AuditEntry{
			Job: job, Change: str("change"), Step: Step(str("step")), By: str("by"), At: ev.Time,
			Base: num("base"), Version: num("version"), Reason: str("reason"), Comment: str("comment"), Worker: str("worker"),
		}
		for c, dst := range map[string]*Values{"old": &e.Old, "new": &e.New} {
			if s := str(c); s != "" && s != "null" {
				if err := json.Unmarshal([]byte(s), dst); err != nil {
					return nil, fmt.Errorf("params: audit of %s: %s: %w", job, c, err)
				}
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// Display returns vals for people: durations as text ("72h0m0s"), the
// rest as is.
func Display(vals Values) Values {
	if vals == nil {
		return nil
	}
	out := make(Values, len(vals))
	for k, v := range vals {
		if d, ok := v.(time.Duration); ok {
			v = d.String()
		}
		out[k] = v
	}
	return out
}
