package activities_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/internal/backfilltest"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
)

// gets records the Range and If-Match headers of the GETs of a key.
type gets struct {
	key string
	mu  sync.Mutex
	// seen: "Range|If-Match" of each GET of key.
	seen []string
}

func (g *gets) Do(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, g.key) {
		g.mu.Lock()
		g.seen = append(g.seen, r.Header.Get("Range")+"|"+r.Header.Get("If-Match"))
		g.mu.Unlock()
	}
	return http.DefaultClient.Do(r)
}

// A sample table on S3 (the harness's real S3 server) is planned and read
// by one ranged GET per chunk, of the chunk's bytes only and conditional on
// the planned ETag, and the training set goes to JSON Lines objects on S3:
// one per chunk segment, one record per sample row (the skipped runs' rows
// without features).
func TestSampleAndSinkOnS3(t *testing.T) {
	cfg := testenv.S3(t)
	ctx := context.Background()
	rec := &gets{key: "/sample.csv"}
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(cfg.Endpoint), Region: cfg.Region, UsePathStyle: true, HTTPClient: rec,
		Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
	})
	_, a, evs := fixture(t, 500)
	a.S3 = client
	prefix := fmt.Sprintf("test/backfill-%d/", time.Now().UnixNano())

	var b strings.Builder
	b.WriteString("key,time\n")
	rows := 0
	for _, e := range evs {
		if e.Source == backfilltest.Apps {
			fmt.Fprintf(&b, "%s,%s\n", e.Key, e.Time.Add(time.Second).Format(time.RFC3339Nano))
			rows++
		}
	}
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(prefix + "sample.csv"), Body: strings.NewReader(b.String())}); err != nil {
		t.Fatal(err)
	}
	uri := "s3://" + cfg.Bucket + "/" + prefix + "sample.csv"

	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	plan := planOf(t, env, a, activities.PlanInput{Job: backfilltest.JobName, Sample: uri, ChunkRows: 120})
	if plan.Sample.Rows != rows || len(plan.Sample.Offsets) != (rows+119)/120 {
		t.Fatalf("plan %+v for %d rows", plan.Sample, rows)
	}
	if plan.Sample.Version == "" {
		t.Fatalf("the plan did not pin the table: %+v", plan.Sample)
	}
	rec.seen = nil
	outputs := 0
	sink := "s3://" + cfg.Bucket + "/" + prefix + "out"
	for i := range plan.Sample.Offsets {
		r, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf-s3", Job: backfilltest.JobName, Index: i, Sample: plan.Sample.Chunk(i),
			Options: activities.Options{Sink: sink, SegmentEvents: 50}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Missing != 0 {
			t.Fatalf("chunk %d: %+v", i, r)
		}
		outputs += r.Outputs
	}
	var want []string
	for i := range plan.Sample.Offsets {
		c := plan.Sample.Chunk(i)
		want = append(want, fmt.Sprintf("bytes=%d-%d|%s", c.Offset, c.End-1, plan.Sample.Version))
	}
	if !slices.Equal(rec.seen, want) {
		t.Fatalf("sample GETs %q, want %q", rec.seen, want)
	}
	list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(cfg.Bucket), Prefix: aws.String(prefix + "out/")})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, o := range list.Contents {
		obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(cfg.Bucket), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(obj.Body)
		for sc.Scan() {
			var r job.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			if seen[r.ID] {
				t.Fatalf("record %s twice", r.ID)
			}
			seen[r.ID] = true
		}
		obj.Body.Close()
	}
	if len(seen) != rows || outputs == 0 {
		t.Fatalf("%d records on S3 in %d objects for %d sample rows, %d outputs", len(seen), len(list.Contents), rows, outputs)
	}

	// The table replaced: a chunk fails instead of reading the new one.
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(prefix + "sample.csv"), Body: strings.NewReader(b.String() + "app-1,2026-11-01T00:00:00Z\n")}); err != nil {
		t.Fatal(err)
	}
	_, _, err = runChunk(t, a, activities.ChunkInput{Backfill: "bf-s3", Job: backfilltest.JobName, Index: 0, Sample: plan.Sample.Chunk(0), Options: activities.Options{Sink: sink}}, nil)
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != activities.ErrTypeSampleChanged {
		t.Fatalf("after the table was replaced: %v, want SampleChanged", err)
	}
}

// A Parquet sample table on S3 is planned from its footer and read by
// chunks of whole row groups: each chunk GETs the file's tail (the footer)
// and its row groups' bytes, each once and conditional on the planned ETag.
func TestParquetSampleOnS3(t *testing.T) {
	cfg := testenv.S3(t)
	ctx := context.Background()
	rec := &gets{key: "/sample.parquet"}
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(cfg.Endpoint), Region: cfg.Region, UsePathStyle: true, HTTPClient: rec,
		Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
	})
	_, a, evs := fixture(t, 500)
	a.S3 = client
	prefix := fmt.Sprintf("test/backfill-pq-%d/", time.Now().UnixNano())
	type row struct {
		Key   string    `parquet:"key"`
		Time  time.Time `parquet:"time,timestamp(millisecond)"`
		Label int64     `parquet:"label"`
	}
	var rows []row
	for i, e := range evs {
		if e.Source == backfilltest.Apps {
			rows = append(rows, row{Key: e.Key, Time: e.Time.Add(time.Second).Truncate(time.Millisecond), Label: int64(i % 2)})
		}
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[row](&buf, parquet.MaxRowsPerRowGroup(100))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(prefix + "sample.parquet"), Body: bytes.NewReader(buf.Bytes())}); err != nil {
		t.Fatal(err)
	}
	uri := "s3://" + cfg.Bucket + "/" + prefix + "sample.parquet"
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	plan := planOf(t, env, a, activities.PlanInput{Job: backfilltest.JobName, Sample: uri, ChunkRows: 200})
	sp := plan.Sample
	if sp.Rows != len(rows) || len(sp.Groups) != (len(rows)+199)/200 || sp.Version == "" || !slices.Equal(sp.Carry, []string{"label"}) {
		t.Fatalf("plan %+v for %d rows", sp, len(rows))
	}
	sink := "s3://" + cfg.Bucket + "/" + prefix + "out"
	for i := range sp.Groups {
		rec.seen = nil
		c := sp.Chunk(i)
		r, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf-s3pq", Job: backfilltest.JobName, Index: i, Sample: c,
			Options: activities.Options{Sink: sink, Format: "parquet"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Events != c.Rows || r.Written != c.Rows || r.Missing != 0 {
			t.Fatalf("chunk %d: %+v", i, r)
		}
		want := []string{
			fmt.Sprintf("bytes=%d-%d|%s", max(sp.Size-256<<10, 0), sp.Size-1, sp.Version),
			fmt.Sprintf("bytes=%d-%d|%s", c.Offset, c.End-1, sp.Version),
		}
		if !slices.Equal(rec.seen, want) {
			t.Fatalf("chunk %d: sample GETs %q, want %q", i, rec.seen, want)
		}
	}
}
