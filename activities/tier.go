package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
)

// Tier holds the activities of the tiering workflow (workflows.Tier): they
// move events older than the hot window into the cold tier's segments.
type Tier struct {
	// Store is the tiered event center. Nil: the worker has no cold tier,
	// and the activities fail (not retried) saying so.
	Store *tiered.Store
}

// TierPlan is what one tiering run moves: events stored before Cutoff, of
// Sources.
type TierPlan struct {
	Cutoff  time.Time
	Sources []string
}

// TierSourceInput asks to tier one source up to a cutoff.
type TierSourceInput struct {
	Source string
	Cutoff time.Time
}

// TierReport is what tiering one source moved (tiered.TierReport).
type TierReport struct {
	Source   string
	Events   int
	Segments int
	Bytes    int64
}

var errNoColdTier = temporal.NewNonRetryableApplicationError("this worker's event center has no cold tier (open it with a cold tier to run tiering)", "NoColdTier", nil)

// TierPlan fixes the cutoff of a run (now minus the store's hot window)
// and its sources: those given, or every source the cold tier knows.
func (a *Tier) TierPlan(ctx context.Context, sources []string) (TierPlan, error) {
	if a.Store == nil {
		return TierPlan{}, errNoColdTier
	}
	plan := TierPlan{Cutoff: a.Store.Cutoff(), Sources: sources}
	if len(sources) == 0 {
		var err error
		if plan.Sources, err = a.Store.Sources(ctx); err != nil {
			return plan, err
		}
	}
	return plan, nil
}

// TierSource moves the source's events stored before in.Cutoff from hot
// into verified segments and evicts them from hot (tiered.Store.TierSource).
// A retry, or a rerun after a crash at any point, completes the move.
func (a *Tier) TierSource(ctx context.Context, in TierSourceInput) (TierReport, error) {
	if a.Store == nil {
		return TierReport{}, errNoColdTier
	}
	// Heartbeats say the move is alive; a worker that dies is noticed
	// within the heartbeat timeout and the retry completes its move.
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	rep, err := a.Store.TierSource(ctx, in.Source, in.Cutoff)
	return TierReport{Source: in.Source, Events: rep.Events, Segments: rep.Segments, Bytes: rep.Bytes}, err
}
