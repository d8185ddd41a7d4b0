package catalog_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/params"
)

func openStore(t *testing.T) *embedded.Store {
	t.Helper()
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

type namedOutput string

func (o namedOutput) Name() string                              { return string(o) }
func (o namedOutput) Write(context.Context, []job.Record) error { return nil }

func newJob(t *testing.T, name, version string) *job.Job {
	t.Helper()
	j, err := job.New(name, func(*job.Context) (eventcenter.Row, error) { return nil, nil },
		job.Trigger("mysql.loan.orders", job.Ops(eventcenter.OpInsert)),
		job.Trigger("mysql.loan.repayments", job.Where("amount > 0", func(e *eventcenter.Event) bool { return true })),
		job.Version(version), job.Owner("risk"), job.Reads("mysql.loan.users"),
		job.Param(params.Decl{Name: "window", Type: params.Duration, Default: 72 * time.Hour, Description: "look-back"}),
		job.Outputs(namedOutput("kafka:scores")), job.Consistency(job.FetchStrong))
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// Publishing stores a definition once per change, revisions count changes,
// and List and Get read what was published.
func TestPublish(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	count := func() int {
		n := 0
		for _, err := range st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{catalog.Source}, From: eventcenter.AllTime.From, To: eventcenter.AllTime.To}) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		return n
	}
	if _, err := catalog.Get(ctx, st, "scores"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("Get of an empty catalog: %v, want ErrNotFound", err)
	}
	for range 2 { // the second publish of the same jobs stores nothing
		if _, err := catalog.Publish(ctx, st, newJob(t, "scores", "1"), newJob(t, "alerts", "1")); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(); n != 2 {
		t.Fatalf("%d events after publishing two jobs twice, want 2", n)
	}
	changed, err := catalog.Publish(ctx, st, newJob(t, "scores", "2"), newJob(t, "alerts", "1"))
	if err != nil || len(changed) != 1 || changed[0] != "scores" {
		t.Fatalf("Publish of a new version: changed %v, %v", changed, err)
	}

	e, err := catalog.Get(ctx, st, "scores")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(e)
	want := `{"name":"scores","version":"2","owner":"risk",` +
		`"triggers":[{"source":"mysql.loan.orders","filters":["op in (insert)"]},{"source":"mysql.loan.repayments","filters":["amount \u003e 0"]}],` +
		`"reads":["mysql.loan.users"],"params":[{"name":"window","type":"duration","default":"72h0m0s","description":"look-back"}],` +
		`"outputs":[{"name":"kafka:scores","kind":"kafka"}],"consistency":"fetch-strong","revision":2,"published":`
	if len(got) < len(want) || string(got[:len(want)]) != want {
		t.Fatalf("entry\n%s\nwant it to start\n%s", got, want)
	}

	// Another process published the same definition at once: readers fold it.
	cur, err := st.AsOf(ctx, eventcenter.AsOf{Source: catalog.Source, Key: "scores", Time: eventcenter.MaxTime})
	if err != nil {
		t.Fatal(err)
	}
	cur.Time = cur.Time.Add(time.Millisecond)
	if err := st.Append(ctx, []eventcenter.Event{cur}); err != nil {
		t.Fatal(err)
	}
	es, err := catalog.List(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Name != "alerts" || es[0].Revision != 1 || es[1].Name != "scores" || es[1].Revision != 2 || !es[1].Published.Equal(e.Published) {
		t.Fatalf("List: %+v", es)
	}
}

// A job's re-backfill opt-in is in its entry, defaults filled in, and the
// entry's Sources are its triggers and reads, each once.
func TestRebackfillInEntry(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	logic := func(*job.Context) (eventcenter.Row, error) { return nil, nil }
	opted := job.MustNew("opted", logic, job.Trigger("a"), job.Reads("b", "a"), job.Rebackfill(job.RebackfillOptions{MaxRange: 48 * time.Hour}))
	if _, err := catalog.Publish(ctx, st, opted, newJob(t, "plain", "1")); err != nil {
		t.Fatal(err)
	}
	e, err := catalog.Get(ctx, st, "opted")
	if err != nil {
		t.Fatal(err)
	}
	if r := e.Rebackfill; r == nil || *r != (catalog.Rebackfill{Sink: "featurestore", Write: "replace", MaxRange: "48h0m0s"}) {
		t.Errorf("rebackfill %+v", r)
	}
	if s := e.Sources(); len(s) != 2 || s[0] != "a" || s[1] != "b" {
		t.Errorf("sources %v", s)
	}
	if e, err := catalog.Get(ctx, st, "plain"); err != nil || e.Rebackfill != nil {
		t.Errorf("plain: %+v, %v", e.Rebackfill, err)
	}
}
