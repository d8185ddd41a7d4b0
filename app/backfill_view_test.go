package app

import (
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/workflows"
)

// TestChunkOfHeartbeat: a running chunk's progress is its last
// heartbeat's cursor: consumed so far, committed (kept by a retry).
func TestChunkOfHeartbeat(t *testing.T) {
	details, err := converter.GetDefaultDataConverter().ToPayloads(activities.Cursor{
		Ordinal: 8192, Consumed: 10000, Result: activities.ChunkResult{Index: 7}})
	if err != nil {
		t.Fatal(err)
	}
	beat := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	ch := chunkOf(&workflowpb.PendingActivityInfo{
		ActivityType: &commonpb.ActivityType{Name: chunkActivity}, Attempt: 2,
		HeartbeatDetails: details, LastHeartbeatTime: timestamppb.New(beat),
	})
	if want := (chunkView{index: 7, attempt: 2, consumed: 10000, committed: 8192, heartbeat: beat}); ch != want {
		t.Errorf("chunkOf = %+v, want %+v", ch, want)
	}
	if ch := chunkOf(&workflowpb.PendingActivityInfo{Attempt: 1}); ch.index != -1 || ch.consumed != 0 {
		t.Errorf("a chunk without a heartbeat: %+v", ch)
	}
}

// TestViewTimes: elapsed and the ETA are computed on the client, so they
// move between the workflow's publications; the running chunks' events
// count in the progress.
func TestViewTimes(t *testing.T) {
	started := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	v := backfillView{
		status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, published: true,
		progress: workflows.Progress{Job: "j", State: "running", Chunks: 10, Done: 5, Percent: 50, Events: 500, Started: started},
		chunks:   []chunkView{{index: 5, attempt: 1, consumed: 40, committed: 30, heartbeat: started.Add(9 * time.Minute)}},
	}
	now := started.Add(10 * time.Minute)
	if el := v.elapsed(now); el != 10*time.Minute {
		t.Errorf("elapsed %v", el)
	}
	if eta, ok := v.eta(now); !ok || eta != 10*time.Minute {
		t.Errorf("eta %v %v, want 10m (half done in 10m)", eta, ok)
	}
	line := v.line(now)
	for _, want := range []string{"5/10 chunks", "1 running", "540 events", "10m0s elapsed", "ETA 10m0s", "running"} {
		if !strings.Contains(line, want) {
			t.Errorf("line lacks %q: %s", want, line)
		}
	}
	if later := v.line(now.Add(time.Minute)); !strings.Contains(later, "11m0s elapsed") {
		t.Errorf("a minute later, with no new publication: %s", later)
	}
	var b strings.Builder
	v.writeChunks(&b, now)
	if want := "  chunk 5: 40 events (30 committed), attempt 1, heartbeat 1m0s ago\n"; b.String() != want {
		t.Errorf("chunks:\n%q\nwant\n%q", b.String(), want)
	}

	if bar := v.bar(); bar != "[==============>               ]" {
		t.Errorf("bar at 50 %%: %s", bar)
	}
	// A sample table's progress counts rows, running chunks' included in
	// the ETA; its Percent (of finished chunks' rows) fills the bar.
	v.progress.Rows, v.progress.Percent = 1080, 40
	if line := v.line(now); !strings.Contains(line, "5/10 chunks  40.0% of rows") {
		t.Errorf("sample line: %s", line)
	}
	if bar := v.bar(); bar != "[===========>                  ]" {
		t.Errorf("bar at 40 %%: %s", bar)
	}
	if eta, ok := v.eta(now); !ok || eta != 10*time.Minute {
		t.Errorf("sample eta %v %v, want 10m (540 of 1080 rows in 10m)", eta, ok)
	}
	// Ended: elapsed stops at the close, no ETA.
	v.status, v.close = enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, started.Add(12*time.Minute)
	if el := v.elapsed(now.Add(time.Hour)); el != 12*time.Minute {
		t.Errorf("elapsed of an ended backfill %v", el)
	}
	if _, ok := v.eta(now); ok {
		t.Error("an ETA for an ended backfill")
	}
	if s := v.state(); s != "completed" {
		t.Errorf("state %q", s)
	}
}

// TestPrintSummary: the closing line of a sample backfill says how many
// rows a chunk held; a range backfill's says nothing of rows.
func TestPrintSummary(t *testing.T) {
	var b strings.Builder
	printSummary(&b, "bf", "done", workflows.Summary{Job: "j", Chunks: 8, ChunkRows: 25000, Events: 200000, Missing: 7})
	if got := b.String(); !strings.Contains(got, "job j, 8 chunks of about 25000 sample rows, 200000 events") || !strings.Contains(got, "7 sample rows without state") {
		t.Fatalf("sample: %q", got)
	}
	b.Reset()
	printSummary(&b, "bf", "done", workflows.Summary{Job: "j", Chunks: 8, Events: 10})
	if got := b.String(); !strings.Contains(got, "job j, 8 chunks, 10 events") {
		t.Fatalf("range: %q", got)
	}
}
