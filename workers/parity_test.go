package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/parity"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

// TestParityWorkflow runs the Parity workflow on a real Temporal server:
// three live runs of a job reading a profile, then a late profile change
// before the second trigger; the result, the memo and the difference file
// name the one late-data difference. With TIDEMARK_UPDATE_HISTORIES=1 it
// writes the history of the replay test (workflows/testdata/parity.json).
func TestParityWorkflow(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, "")
	fs := outputs.FeatureStore(st, "")
	j := job.MustNew("parity-wf", func(c *job.Context) (eventcenter.Row, error) {
		p, err := c.Get("test.profiles", c.Trigger().Key)
		if err != nil {
			return nil, err
		}
		return eventcenter.Row{"income": p["income"]}, nil
	}, job.Trigger("test.apps"), job.Lineage(), job.Outputs(fs))
	base := time.Now().Add(-time.Hour).Truncate(time.Hour)
	for i := range 3 {
		u := fmt.Sprint("u", i)
		prof := eventcenter.Event{Source: "test.profiles", Key: u, Time: base, Op: eventcenter.OpInsert, After: eventcenter.Row{"income": int64(100)}}
		tr := eventcenter.Event{Source: "test.apps", Key: u, Time: base.Add(time.Duration(i+1) * time.Minute), Pos: eventcenter.Position{Offset: uint64(i)}, Op: eventcenter.OpInsert, After: eventcenter.Row{}}
		if err := st.Append(ctx, []eventcenter.Event{prof, tr}); err != nil {
			t.Fatal(err)
		}
		if _, err := job.Run(ctx, j, tr, &job.Env{Mode: job.Live, Store: st}); err != nil {
			t.Fatal(err)
		}
	}
	late := eventcenter.Event{Source: "test.profiles", Key: "u1", Time: base.Add(time.Minute), Op: eventcenter.OpUpdate, After: eventcenter.Row{"income": int64(50)}}
	if err := st.Append(ctx, []eventcenter.Event{late}); err != nil {
		t.Fatal(err)
	}

	srv := server(t, false)
	c := dial(t, srv)
	queue := "parity"
	dir := t.TempDir()
	startWorker(t, c, queue, workers.Deps{Store: st, Jobs: []*job.Job{j}, ParityDest: outputs.Dir(dir)})
	in := workflows.ParityInput{Job: j.Name(), From: base, To: base.Add(time.Hour), Chunk: workflows.Duration(20 * time.Minute)}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "parity-1", TaskQueue: queue}, workflows.ParityWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	var sum workflows.ParitySummary
	if err := run.Get(ctx, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Triggers != 3 || sum.Agree != 2 || sum.Counts[parity.LateData] != 1 || len(sum.Examples) != 1 || sum.Examples[0].Trigger.Key != "u1" || len(sum.Objects) != 1 {
		t.Fatalf("summary %+v", sum)
	}
	b, err := os.ReadFile(strings.TrimPrefix(sum.Objects[0], "file://"))
	if err != nil {
		t.Fatal(err)
	}
	var d parity.Diff
	if err := json.Unmarshal(b, &d); err != nil || d.Cause != parity.LateData || len(d.Late) != 1 || d.Late[0].Event.Key != "u1" {
		t.Fatalf("difference file %s: %v (%v)", b, d, err)
	}
	desc, err := c.DescribeWorkflowExecution(ctx, "parity-1", "")
	if err != nil {
		t.Fatal(err)
	}
	var memo workflows.ParitySummary
	if f := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()[workflows.ParityMemo]; f == nil || json.Unmarshal(f.GetData(), &memo) != nil || memo.Counts[parity.LateData] != 1 {
		t.Fatalf("memo %v", f)
	}
	if os.Getenv("TIDEMARK_UPDATE_HISTORIES") == "1" {
		writeHistory(t, c, "parity-1", "parity.json", nil)
	}
}
