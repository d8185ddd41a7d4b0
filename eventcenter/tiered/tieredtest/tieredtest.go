// Package tieredtest runs the event center's conformance suite on tiered
// stores (eventcenter/tiered) over any hot backend: each backend's tests
// build the hot store, this package the rest.
package tieredtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/storetest"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
)

// Window is the hot window of the stores Run tests: three ticks of the
// suite's clock (each append advances it by a millisecond).
const Window = 3 * time.Millisecond

// Run runs storetest on tiered stores over the hot stores newHot opens (on
// the suite's clock, without a retention) and the cold tiers newCold
// returns (fresh and empty). Each store tiers after every append with a hot
// window of Window, so nearly every read crosses the horizon and merges the
// last appends in hot with segments in cold; slices are a second long (the
// suite's events crowd a few minutes) and row groups four rows.
func Run(t *testing.T, newHot func(t testing.TB, now func() time.Time) tiered.Hot, newCold func(t testing.TB) tiered.Blob, opts storetest.Options) {
	storetest.RunWith(t, func(t testing.TB, now func() time.Time) eventcenter.Store {
		return &everyAppend{Store: Open(t, newHot(t, now), newCold(t), now), t: t, now: now}
	}, opts)
}

// Open returns a tiered store over hot and cold with Run's settings, its
// hot window Window on the clock now, evicting without grace.
func Open(t testing.TB, hot tiered.Hot, cold tiered.Blob, now func() time.Time) *tiered.Store {
	t.Helper()
	s, err := tiered.New(tiered.Config{
		Hot: hot, Cold: cold, Now: now, HotWindow: Window,
		Slice: time.Second, RowGroupRows: 4, EvictGrace: tiered.EvictGraceNone,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// everyAppend is a tiered store that tiers after every append.
type everyAppend struct {
	*tiered.Store
	t   testing.TB
	now func() time.Time
}

func (s *everyAppend) Append(ctx context.Context, events []eventcenter.Event) error {
	if err := s.Store.Append(ctx, events); err != nil {
		return err
	}
	if _, err := s.Tier(ctx); err != nil && !errors.Is(err, eventcenter.ErrClosed) {
		s.t.Errorf("Tier: %v", err)
	}
	return nil
}
