package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/parity"
)

// LateImpactID is the workflow ID of the impact run of the late event id
// (workflows.LateImpact): one run per event, so that a second start (ingest
// consuming a batch again) is refused as a duplicate.
func LateImpactID(id eventcenter.ID) string {
	return "late-impact-" + strconv.FormatUint(job.EventHash(&eventcenter.Event{Source: id.Source, Key: id.Key, Time: id.Time, Pos: id.Pos}), 16)
}

// ParityAffected is a live record a late event changes (parity.Affected).
type ParityAffected = parity.Affected

// LateImpactFindInput asks which live records of which jobs a late event
// changes.
type LateImpactFindInput struct {
	Event eventcenter.ID `json:"event"`
	// Horizon bounds how late an event may be (stored after its time) for
	// its impact to be looked at (parity.ImpactOf).
	Horizon time.Duration `json:"horizon"`
	// MaxReruns bounds the triggers one job re-runs for one event: a job
	// with more is listed without its records and not re-run (a backfill's
	// work, not a late event's).
	MaxReruns int `json:"max_reruns"`
}

// LateImpactJob is what a late event changes of one job.
type LateImpactJob struct {
	Job string `json:"job"`
	// Rerun: the job opted in (job.RerunLateData) and Affected is within
	// MaxReruns.
	Rerun    bool             `json:"rerun"`
	Affected []ParityAffected `json:"affected,omitempty"`
	// Count is the number of affected records (Affected may be empty when
	// over MaxReruns); Skipped says why a job is not re-run.
	Count   int    `json:"count"`
	Skipped string `json:"skipped,omitempty"`
}

// LateImpactFind lists, for every job that may read the late event's
// source (it records lineage, which says what each run read, or declares
// the source with job.Reads, or triggers on it), the live records the
// event changes (parity.ImpactOf), in job name order; a job none of whose
// records it changes is listed with a count of 0. An event too late for the horizon fails without retry.
func (a *Parity) LateImpactFind(ctx context.Context, in LateImpactFindInput) ([]LateImpactJob, error) {
	names := make([]string, 0, len(a.Jobs))
	for name, j := range a.Jobs {
		if j.RecordsLineage() || slices.Contains(j.Reads(), in.Event.Source) || j.Triggered(in.Event.Source) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out []LateImpactJob
	for _, name := range names {
		cfg, err := a.config(a.Jobs[name])
		if err != nil {
			return nil, err
		}
		_, affected, err := parity.ImpactOf(ctx, cfg, in.Event, in.Horizon)
		if errors.Is(err, parity.ErrTooLate) {
			return nil, temporal.NewNonRetryableApplicationError(err.Error(), "TooLate", nil)
		}
		if err != nil {
			return nil, err
		}
		ji := LateImpactJob{Job: name, Count: len(affected), Affected: affected}
		switch {
		case len(affected) == 0:
		case !a.Jobs[name].RerunsLateData():
			ji.Skipped = "the job does not re-run late data (job.RerunLateData)"
		case len(affected) > in.MaxReruns:
			ji.Affected, ji.Skipped = nil, fmt.Sprintf("%d affected records, over the bound of %d: backfill them", len(affected), in.MaxReruns)
		default:
			ji.Rerun = true
		}
		out = append(out, ji)
	}
	return out, nil
}

// LateImpactRerunInput asks to re-run a job's affected triggers.
type LateImpactRerunInput struct {
	// Run names the writer of the superseding records (job.ColBackfill):
	// the workflow's ID.
	Run      string           `json:"run"`
	Job      string           `json:"job"`
	Affected []ParityAffected `json:"affected"`
}

// LateImpactRerunResult counts a re-run's records.
type LateImpactRerunResult struct {
	Job string `json:"job"`
	// Replaced live records (superseded); Written in all; Unchanged those
	// whose latest record already equals the re-run (parity.Rerun); Failed
	// triggers whose re-run was not OK, not published.
	Replaced  int              `json:"replaced"`
	Written   int              `json:"written"`
	Unchanged int              `json:"unchanged,omitempty"`
	Failed    []eventcenter.ID `json:"failed,omitempty"`
}

// LateImpactRerun re-runs exactly the affected triggers and publishes
// records superseding the live ones (parity.Rerun). Publishing is
// idempotent per record version, so a retry publishes nothing twice.
func (a *Parity) LateImpactRerun(ctx context.Context, in LateImpactRerunInput) (LateImpactRerunResult, error) {
	j, ok := a.Jobs[in.Job]
	if !ok {
		return LateImpactRerunResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("parity: unknown job %q", in.Job), "UnknownJob", nil)
	}
	cfg, err := a.config(j)
	if err != nil {
		return LateImpactRerunResult{}, err
	}
	counts, failed, err := parity.Rerun(ctx, cfg, in.Affected, in.Run)
	if err != nil {
		return LateImpactRerunResult{}, err
	}
	res := LateImpactRerunResult{Job: in.Job, Replaced: counts.Replaced, Written: counts.Written, Unchanged: counts.Unchanged}
	for _, f := range failed {
		res.Failed = append(res.Failed, f.Trigger)
	}
	return res, nil
}

// config is the parity configuration of j.
func (a *Parity) config(j *job.Job) (parity.Config, error) {
	cfg := parity.Config{Job: j, Store: a.Store, DeadLetters: a.DeadLetters}
	if a.Params != nil {
		reg, ok := a.Params.(parity.Registry)
		if !ok {
			return cfg, temporal.NewNonRetryableApplicationError(fmt.Sprintf("parity: the parameter registry (%T) does not keep versions", a.Params), "BadRegistry", nil)
		}
		cfg.Params = reg
	}
	return cfg, nil
}
