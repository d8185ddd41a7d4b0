package activities_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.temporal.io/sdk/testsuite"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/internal/backfilltest"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
)

// A replace backfill started again with the same workflow ID is another
// backfill (another run): it writes a new version of every record and
// counts what it did, not what the earlier one did. Redone (a retry of
// its activity), it stores nothing new.
func TestReplaceRerunOfSameID(t *testing.T) {
	ctx := context.Background()
	st, a, evs := fixture(t, 600)
	const src = "out.rerun"
	j := backfilltest.Job()
	var triggers []eventcenter.Event
	for _, e := range evs {
		if j.Accepts(&e) {
			triggers = append(triggers, e)
		}
	}
	versions := func() (n int, tags map[string]int) {
		t.Helper()
		tags = map[string]int{}
		for _, e := range triggers {
			h, err := st.History(ctx, eventcenter.HistoryQuery{Source: src, Key: e.Key, From: e.Time, To: e.Time.Add(time.Nanosecond)})
			if err != nil {
				t.Fatal(err)
			}
			n += len(h)
			latest, _ := h[len(h)-1].After[job.ColBackfill].(string)
			tags[latest]++
		}
		return n, tags
	}
	in := activities.ChunkInput{Backfill: "bf-same", Run: "run-1", Job: backfilltest.JobName, From: backfilltest.T0, To: backfilltest.T0.Add(span),
		Options: activities.Options{Sink: "featurestore:" + src, Write: activities.WriteReplace, SegmentEvents: 200}}
	r, _, err := runChunk(t, a, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (outputs.WriteCounts{Written: len(triggers)}); r.WriteCounts != want {
		t.Fatalf("first backfill: %+v, want %+v", r.WriteCounts, want)
	}

	in.Run = "run-2" // the same workflow ID started again
	r, _, err = runChunk(t, a, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (outputs.WriteCounts{Replaced: len(triggers)}); r.WriteCounts != want {
		t.Fatalf("second backfill: %+v, want %+v", r.WriteCounts, want)
	}
	n, tags := versions()
	if n != 2*len(triggers) || tags["bf-same@run-2"] != len(triggers) {
		t.Fatalf("%d records for %d triggers, latest by %v: want two versions each, the latest by bf-same@run-2", n, len(triggers), tags)
	}

	// A retry of the second backfill's activity finds its own records.
	r, _, err = runChunk(t, a, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (outputs.WriteCounts{Replaced: len(triggers)}); r.WriteCounts != want {
		t.Fatalf("redone: %+v, want %+v", r.WriteCounts, want)
	}
	if n, _ := versions(); n != 2*len(triggers) {
		t.Fatalf("%d records after a redo, want %d", n, 2*len(triggers))
	}
}

// BackfillClear empties the backfill's folder of a file sink, _SUCCESS
// first, and leaves other backfills' folders alone; a backfill that then
// runs fewer chunks lists only its own objects in its manifest.
func TestClearFileSink(t *testing.T) {
	_, a, _ := fixture(t, 1000)
	dir := t.TempDir()
	opts := activities.Options{Sink: "file://" + dir, SegmentEvents: 100}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	run := func(id string, chunks int) {
		t.Helper()
		for c := range chunks {
			in := activities.ChunkInput{Backfill: id, Job: backfilltest.JobName, Index: c, Options: opts,
				From: backfilltest.T0.Add(time.Duration(c) * span / 2), To: backfilltest.T0.Add(time.Duration(c+1) * span / 2)}
			if _, _, err := runChunk(t, a, in, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := env.ExecuteActivity(a.BackfillFinish, activities.FinishInput{Backfill: id, Job: backfilltest.JobName, Options: opts,
			Status: "done", Input: json.RawMessage(`{}`), Summary: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	clear := func(id string) int {
		t.Helper()
		v, err := env.ExecuteActivity(a.BackfillClear, activities.ClearInput{Backfill: id, Job: backfilltest.JobName, Options: opts})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := v.Get(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	files := func(id string) []string {
		t.Helper()
		var out []string
		err := filepath.WalkDir(filepath.Join(dir, id), func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				out = append(out, filepath.Base(path))
			}
			return err
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return out
	}
	if n := clear("bf-x"); n != 0 {
		t.Fatalf("cleared %d objects of a backfill that never ran", n)
	}
	run("bf-x", 2)
	run("bf-other", 1)
	before, other := files("bf-x"), files("bf-other")
	if !slices.Contains(before, activities.SuccessName) || len(before) < 4 {
		t.Fatalf("bf-x wrote %q", before)
	}
	if n := clear("bf-x"); n != len(before) {
		t.Fatalf("cleared %d objects, want %d", n, len(before))
	}
	if left := files("bf-x"); len(left) != 0 {
		t.Fatalf("left %q", left)
	}
	if !slices.Equal(files("bf-other"), other) {
		t.Fatalf("another backfill's folder changed: %q, was %q", files("bf-other"), other)
	}

	run("bf-x", 1) // started again over half the range
	b, err := os.ReadFile(filepath.Join(dir, "bf-x", backfilltest.JobName, activities.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var m activities.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, o := range m.Objects {
		if !strings.Contains(o.Name, "/chunk-000000-") {
			t.Fatalf("the manifest lists %s, an object of the earlier backfill", o.Name)
		}
	}
}

// On S3 too: the folder's objects are deleted, _SUCCESS with them.
func TestClearS3Sink(t *testing.T) {
	cfg := testenv.S3(t)
	ctx := context.Background()
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(cfg.Endpoint), Region: cfg.Region, UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
	})
	_, a, _ := fixture(t, 10)
	a.S3 = client
	prefix := fmt.Sprintf("test/backfill-clear-%d/", time.Now().UnixNano())
	folder := prefix + "bf-s3/" + backfilltest.JobName + "/"
	for _, name := range []string{"chunk-000000-000000000000.jsonl", activities.ManifestName, activities.SuccessName} {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(folder + name), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.BackfillClear, activities.ClearInput{Backfill: "bf-s3", Job: backfilltest.JobName,
		Options: activities.Options{Sink: "s3://" + cfg.Bucket + "/" + prefix}})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := v.Get(&n); err != nil || n != 3 {
		t.Fatalf("cleared %d objects (%v), want 3", n, err)
	}
	list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(cfg.Bucket), Prefix: aws.String(folder)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 0 {
		t.Fatalf("%d objects left", len(list.Contents))
	}
}

// Two attempts of one replace backfill's chunk at once (a retry while the
// timed-out attempt still runs) store one new version per trigger: each
// either finds the other's record as its own, or computes the same version,
// an identity the store keeps once.
func TestReplaceConcurrentAttemptsStoreOnce(t *testing.T) {
	ctx := context.Background()
	st, a, evs := fixture(t, 600)
	const src = "out.attempts"
	in := activities.ChunkInput{Backfill: "bf-live", Run: "run-0", Job: backfilltest.JobName, From: backfilltest.T0, To: backfilltest.T0.Add(span),
		Options: activities.Options{Sink: "featurestore:" + src, SegmentEvents: 50}}
	if _, _, err := runChunk(t, a, in, nil); err != nil { // the records to replace
		t.Fatal(err)
	}
	in.Backfill, in.Run, in.Options.Write = "bf-attempts", "run-1", activities.WriteReplace
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { _, _, errs[i] = runChunk(t, a, in, nil) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	j := backfilltest.Job()
	for _, e := range evs {
		if !j.Accepts(&e) {
			continue
		}
		h, err := st.History(ctx, eventcenter.HistoryQuery{Source: src, Key: e.Key, From: e.Time, To: e.Time.Add(time.Nanosecond)})
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 2 {
			t.Fatalf("%s: %d records, want the original and one replacement", e.Key, len(h))
		}
	}
}
