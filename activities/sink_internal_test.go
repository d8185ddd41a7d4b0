package activities

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Only the plan refuses an S3 URI without a bucket (checkS3URIs): a chunk,
// finish or clear of a backfill that started with one (which reached the
// objects path-style) still parses it.
func TestBucketlessS3SinkStillParses(t *testing.T) {
	a := &Backfill{S3: s3.New(s3.Options{Region: "us-east-1"})}
	if _, err := a.parseSink(Options{Sink: "s3:///bucket/prefix"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.locate("s3:///bucket/sample.csv"); err != nil {
		t.Fatal(err)
	}
	if err := checkS3URIs("s3:///bucket/prefix", ""); err == nil {
		t.Fatal("the plan's check accepts a sink without a bucket")
	}
}
