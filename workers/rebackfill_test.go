package workers_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

// TestCorrectionRebackfill runs a real correction (the real MariaDB, a
// real Temporal server) of a table whose event center holds a wrong row, a
// row MySQL no longer has and none of the rest; a job opted into
// re-backfills (job.Rebackfill, published in the catalog) triggers on that
// table, another reads it but did not opt in. The correction starts one
// child Backfill, for the opted-in job, over [its first correction, the
// run's time), which replays the 6 corrections into the feature store
// (write replace); the child is a child of the correction in Temporal, and
// the summary names it and why. A second correction changes nothing and
// starts nothing. With TIDEMARK_UPDATE_HISTORIES=1 it writes the history
// of the replay test (workflows/testdata/correction_rebackfill.json).
func TestCorrectionRebackfill(t *testing.T) {
	ctx := context.Background()
	db, dbName := scratchDatabase(t, "corrrb",
		"CREATE TABLE %s.pairs (tenant VARCHAR(8) NOT NULL, seq INT NOT NULL, v VARCHAR(8), PRIMARY KEY (tenant, seq))",
		"INSERT INTO %s.pairs VALUES ('a', 0, 'ok'), ('a', 1, 'ok'), ('a', 2, 'ok'), ('a', 3, 'ok'), ('a', 4, 'ok')")
	reg, err := source.Parse([]byte(fmt.Sprintf("sources:\n  - {name: 'mysql.rb.{table}', kind: mysql, mysql: {database: %s, table: '*'}}\n", dbName)))
	if err != nil {
		t.Fatal(err)
	}
	const src = "mysql.rb.pairs"
	st := openStore(t, "")
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	pos := eventcenter.Position{Log: 1, Offset: 1 << 16}
	if err := st.Append(ctx, []eventcenter.Event{
		{Source: src, Key: `"a","0"`, Time: past, Pos: pos, Op: eventcenter.OpInsert, After: eventcenter.Row{"tenant": "a", "seq": int64(0), "v": "bad"}},
		{Source: src, Key: `"z","1"`, Time: past, Pos: pos, Op: eventcenter.OpInsert, After: eventcenter.Row{"tenant": "z", "seq": int64(1), "v": "gone"}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.AdvanceWatermark(ctx, src, 0, time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	echo := func(c *job.Context) (eventcenter.Row, error) {
		return eventcenter.Row{"v": c.Trigger().After["v"]}, nil
	}
	opted := job.MustNew("rb-echo", echo, job.Trigger(src), job.Rebackfill(job.RebackfillOptions{}))
	other := job.MustNew("rb-reader", echo, job.Trigger("rb.other"), job.Reads(src))
	if _, err := catalog.Publish(ctx, st, opted, other); err != nil {
		t.Fatal(err)
	}

	srv := server(t, false)
	c := dial(t, srv)
	queue := "rebackfill"
	startWorker(t, c, queue, workers.Deps{Store: st, Jobs: []*job.Job{opted, other}, Correction: &activities.Correction{DB: db, Store: st, Sources: reg}})

	in := workflows.CorrectionInput{ChunkRows: 10, KeyChunk: 5}
	started := time.Now()
	sum := runCorrection(t, c, "correction-rb-1", queue, in)
	if len(sum.Entries) != 1 || sum.Entries[0].Corrections != 6 {
		t.Fatalf("entries %+v", sum.Entries)
	}
	if len(sum.Rebackfill) != 1 {
		t.Fatalf("re-backfills %+v, want one (rb-echo)", sum.Rebackfill)
	}
	r := sum.Rebackfill[0]
	if r.Job != "rb-echo" || r.ID != "correction-rb-1/rebackfill/rb-echo" || r.Sink != "featurestore" || r.Write != "replace" ||
		len(r.Sources) != 1 || r.Sources[0].Source != src || r.Sources[0].Keys != 6 ||
		!r.From.Equal(r.Sources[0].First) || r.From.Before(started.Add(-time.Minute)) || !r.From.Before(r.To) || r.Error != "" {
		t.Errorf("re-backfill %+v", r)
	}
	if s := r.Summary; s == nil || s.Events != 6 || s.Outputs != 6 || s.Written+s.Replaced != 6 || s.Errors != 0 {
		t.Errorf("re-backfill summary %+v", r.Summary)
	}
	desc, err := c.DescribeWorkflowExecution(ctx, r.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if p := desc.WorkflowExecutionInfo.GetParentExecution(); p.GetWorkflowId() != "correction-rb-1" {
		t.Errorf("the re-backfill's parent is %v", p)
	}
	pdesc, err := c.DescribeWorkflowExecution(ctx, "correction-rb-1", "")
	if err != nil {
		t.Fatal(err)
	}
	var memo []workflows.Rebackfill
	if err := converter.GetDefaultDataConverter().FromPayload(pdesc.WorkflowExecutionInfo.GetMemo().GetFields()[workflows.RebackfillMemo], &memo); err != nil ||
		len(memo) != 1 || memo[0].ID != r.ID || memo[0].Summary == nil {
		t.Errorf("the correction's memo lists %+v (%v)", memo, err)
	}
	var features int
	for _, err := range st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{"feature.rb-echo"}, From: eventcenter.AllTime.From, To: eventcenter.AllTime.To}) {
		if err != nil {
			t.Fatal(err)
		}
		features++
	}
	if features != 6 {
		t.Errorf("%d feature records, want 6", features)
	}
	if os.Getenv("TIDEMARK_UPDATE_HISTORIES") == "1" {
		writeHistory(t, c, "correction-rb-1", "correction_rebackfill.json", nil)
	}
	again := runCorrection(t, c, "correction-rb-2", queue, in)
	if e := again.Entries[0]; e.Corrections != 0 || len(again.Rebackfill) != 0 {
		t.Errorf("second run: %+v, re-backfills %+v", e, again.Rebackfill)
	}
}
