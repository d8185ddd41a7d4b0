package job_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
)

// lineageFixture stores a profile, two orders of user u1 (indexed) and a
// trigger, and returns the store, the trigger and the stored events.
func lineageFixture(t *testing.T) (*eventEnv, eventcenter.Event) {
	t.Helper()
	ctx := context.Background()
	st := openStore(t)
	if err := st.DeclareIndex(ctx, eventcenter.Index{Source: "test.orders", Name: "user", Column: "user"}); err != nil {
		t.Fatal(err)
	}
	ev := func(src, key string, at time.Time, off uint64, row eventcenter.Row) eventcenter.Event {
		return eventcenter.Event{Source: src, Key: key, Time: at, Pos: eventcenter.Position{Offset: off}, Op: eventcenter.OpInsert, After: row}
	}
	fx := &eventEnv{store: st,
		profile: ev("test.profiles", "u1", t0.Add(-time.Hour), 1, eventcenter.Row{"age": int64(30)}),
		orders: []eventcenter.Event{
			ev("test.orders", "o1", t0.Add(-2*time.Hour), 1, eventcenter.Row{"user": "u1"}),
			ev("test.orders", "o2", t0.Add(-time.Hour), 2, eventcenter.Row{"user": "u1"}),
		},
	}
	tr := trigger("a1", t0, 9)
	if err := st.Append(ctx, append([]eventcenter.Event{fx.profile, tr}, fx.orders...)); err != nil {
		t.Fatal(err)
	}
	return fx, tr
}

type eventEnv struct {
	store interface {
		job.Store
		eventcenter.Appender
		eventcenter.Reader
	}
	profile eventcenter.Event
	orders  []eventcenter.Event
}

func lineageLogic(c *job.Context) (eventcenter.Row, error) {
	if _, err := c.Get("test.profiles", "u1"); err != nil {
		return nil, err
	}
	if _, err := c.Get("test.profiles", "nobody"); !errors.Is(err, job.ErrNotFound) {
		return nil, fmt.Errorf("nobody: %v", err)
	}
	orders, err := c.Lookup("test.orders", "user", "u1")
	if err != nil {
		return nil, err
	}
	hist, err := c.History("test.orders", "o2", 24*time.Hour, job.Ago(time.Minute))
	if err != nil {
		return nil, err
	}
	return eventcenter.Row{"orders": int64(len(orders)), "hist": int64(len(hist))}, nil
}

// TestLineageRecordsEachFetch: a job with Lineage lists every fetch with
// its kind, source, key, asked time and the identities of what it read
// (none for not-found); a job without it records nothing.
func TestLineageRecordsEachFetch(t *testing.T) {
	ctx := context.Background()
	fx, tr := lineageFixture(t)
	env := &job.Env{Store: fx.store}

	plain := job.MustNew("plain", lineageLogic, job.Trigger("test.apps"))
	res, err := job.Evaluate(ctx, plain, tr, env)
	if err != nil {
		t.Fatal(err)
	}
	if res.Record.Lineage != nil || plain.RecordsLineage() {
		t.Fatalf("a job without Lineage recorded %+v", res.Record.Lineage)
	}

	j := job.MustNew("traced", lineageLogic, job.Trigger("test.apps"), job.Lineage())
	res, err = job.Evaluate(ctx, j, tr, env)
	if err != nil {
		t.Fatal(err)
	}
	h := job.EventHash
	want := []job.Fetch{
		{Kind: job.FetchAsOf, Source: "test.profiles", Key: "u1", At: t0, Events: []uint64{h(&fx.profile)}},
		{Kind: job.FetchAsOf, Source: "test.profiles", Key: "nobody", At: t0},
		{Kind: job.FetchLookup, Source: "test.orders", Key: "user=u1", At: t0, Events: []uint64{h(&fx.orders[0]), h(&fx.orders[1])}},
		{Kind: job.FetchHistory, Source: "test.orders", Key: "o2", At: t0.Add(-time.Minute), Events: []uint64{h(&fx.orders[1])}},
	}
	got := res.Record.Lineage
	if got == nil || got.Truncated || !reflect.DeepEqual(got.Fetches, want) {
		t.Fatalf("lineage:\n got %+v\nwant %+v", got, want)
	}
}

// TestLineageLimitTruncates: past the limit, fetches are listed without
// their identities and the lineage says it was cut.
func TestLineageLimitTruncates(t *testing.T) {
	fx, tr := lineageFixture(t)
	j := job.MustNew("traced", lineageLogic, job.Trigger("test.apps"), job.LineageLimit(2))
	res, err := job.Evaluate(context.Background(), j, tr, &job.Env{Store: fx.store})
	if err != nil {
		t.Fatal(err)
	}
	l := res.Record.Lineage
	n := 0
	for _, f := range l.Fetches {
		n += len(f.Events)
	}
	if !l.Truncated || n != 2 || len(l.Fetches) != 4 {
		t.Fatalf("limit 2: truncated %v, %d identities over %d fetches", l.Truncated, n, len(l.Fetches))
	}
	if _, err := job.New("bad", lineageLogic, job.Trigger("test.apps"), job.LineageLimit(0)); err == nil {
		t.Fatal("LineageLimit(0) accepted")
	}
}

// TestLineageStoredWithTheRecord: the live feature store output stores the
// lineage in the record's feature event; it reads back whole, and the
// record read back does not show it as a feature.
func TestLineageStoredWithTheRecord(t *testing.T) {
	ctx := context.Background()
	fx, tr := lineageFixture(t)
	j := job.MustNew("traced", lineageLogic, job.Trigger("test.apps"), job.Lineage(), job.Outputs(outputs.FeatureStore(fx.store, "")))
	res, err := job.Run(ctx, j, tr, &job.Env{Store: fx.store})
	if err != nil {
		t.Fatal(err)
	}
	e, err := fx.store.AsOf(ctx, eventcenter.AsOf{Source: job.FeatureSource("traced"), Key: res.Record.Entity, Time: t0})
	if err != nil {
		t.Fatal(err)
	}
	l, err := job.LineageOf(&e)
	if err != nil {
		t.Fatal(err)
	}
	if l == nil || !reflect.DeepEqual(l.Fetches, res.Record.Lineage.Fetches) {
		t.Fatalf("read back %+v, want %+v", l, res.Record.Lineage.Fetches)
	}
	if r := job.RecordFromEvent("traced", &e); !reflect.DeepEqual(r.Features, res.Record.Features) {
		t.Fatalf("record read back: features %v, want %v", r.Features, res.Record.Features)
	}
	var bad job.FetchLineage
	if err := bad.UnmarshalBinary(append(res.Record.Lineage.MarshalBinary(), 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	t.Logf("lineage bytes for 4 fetches, 4 events: %d", len(res.Record.Lineage.MarshalBinary()))
}
