package activities_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.temporal.io/sdk/testsuite"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/parity"
)

// TestParityChunkOnS3: a chunk of a job whose output depends on the wall
// clock has one unexplained difference per trigger; the activity returns
// the counts and at most Examples of them, and writes all of them to S3,
// one JSON object a line. An unknown job fails without retry.
func TestParityChunkOnS3(t *testing.T) {
	cfg := testenv.S3(t)
	ctx := context.Background()
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(cfg.Endpoint), Region: cfg.Region, UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
	})
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	j := job.MustNew("parity-clock", func(c *job.Context) (eventcenter.Row, error) {
		return eventcenter.Row{"at": time.Now().UnixNano()}, nil
	}, job.Trigger("test.apps"), job.Outputs(outputs.FeatureStore(st, "")))
	t0 := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	for i := range 5 {
		tr := eventcenter.Event{Source: "test.apps", Key: fmt.Sprint("a", i), Time: t0.Add(time.Duration(i) * time.Second), Op: eventcenter.OpInsert, After: eventcenter.Row{}}
		if err := st.Append(ctx, []eventcenter.Event{tr}); err != nil {
			t.Fatal(err)
		}
		if _, err := job.Run(ctx, j, tr, &job.Env{Store: st}); err != nil {
			t.Fatal(err)
		}
	}
	prefix := fmt.Sprintf("test/parity-%d/", time.Now().UnixNano())
	a := &activities.Parity{Store: st, Jobs: activities.NewJobs(j), Dest: outputs.S3{Client: client, Bucket: cfg.Bucket, Prefix: prefix}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.ParityChunk, activities.ParityChunkInput{Run: "p1", Job: j.Name(), From: t0, To: t0.Add(time.Minute), Chunk: 3, Examples: 2})
	if err != nil {
		t.Fatal(err)
	}
	var res activities.ParityChunkResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	if res.Report.Counts[parity.Unexplained] != 5 || len(res.Report.Diffs) != 2 || res.Object != "s3://"+cfg.Bucket+"/"+prefix+"p1/chunk-00003.jsonl" {
		t.Fatalf("result: counts %v, %d examples, object %q", res.Report.Counts, len(res.Report.Diffs), res.Object)
	}
	obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(prefix + "p1/chunk-00003.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Body.Close()
	lines := 0
	for sc := bufio.NewScanner(obj.Body); sc.Scan(); lines++ {
		var d parity.Diff
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil || d.Cause != parity.Unexplained || d.Live == nil {
			t.Fatalf("line %d: %s (%v)", lines, sc.Text(), err)
		}
	}
	if lines != 5 {
		t.Fatalf("%d differences in the object, want 5", lines)
	}
	_, err = env.ExecuteActivity(a.ParityChunk, activities.ParityChunkInput{Run: "p1", Job: "nope", From: t0, To: t0.Add(time.Minute)})
	if err == nil || !strings.Contains(err.Error(), "unknown job") {
		t.Fatalf("unknown job: %v", err)
	}
}
