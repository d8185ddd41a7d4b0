package tiered_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
	"github.com/tidemark-dev/tidemark/internal/testenv"
)

// TestBlob: both Blobs keep the contract tiering and reads rely on: whole
// replacement, exact ranges, sorted listing under a prefix, ErrNoObject for
// a missing object (a read retries on a fresh manifest on it), idempotent
// delete.
func TestBlob(t *testing.T) {
	t.Run("Dir", func(t *testing.T) { testBlob(t, tiered.Dir(t.TempDir())) })
	t.Run("S3", func(t *testing.T) {
		cfg := testenv.S3(t)
		client := s3.New(s3.Options{
			BaseEndpoint: aws.String(cfg.Endpoint), Region: cfg.Region, UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
		})
		testBlob(t, tiered.S3{Client: client, Bucket: cfg.Bucket, Prefix: fmt.Sprintf("test/blob-%d-%d/", os.Getpid(), time.Now().UnixNano())})
	})
}

func testBlob(t *testing.T, b tiered.Blob) {
	ctx := t.Context()
	for _, name := range []string{"segments/a%2Fb/2/x.parquet", "segments/a%2Fb/1/y.parquet", "manifests/a%2Fb.json"} {
		if err := b.Put(ctx, name, []byte("old "+name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Put(ctx, "manifests/a%2Fb.json", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "manifests/a%2Fb.json"); err != nil || string(got) != "0123456789" {
		t.Errorf("Get after a second Put = %q, %v", got, err)
	}
	if got, err := b.GetRange(ctx, "manifests/a%2Fb.json", 3, 4); err != nil || string(got) != "3456" {
		t.Errorf("GetRange(3, 4) = %q, %v", got, err)
	}
	if got, err := b.List(ctx, "segments/a%2Fb/"); err != nil || !slices.Equal(got, []string{"segments/a%2Fb/1/y.parquet", "segments/a%2Fb/2/x.parquet"}) {
		t.Errorf("List = %q, %v", got, err)
	}
	if _, err := b.Get(ctx, "nope"); !errors.Is(err, tiered.ErrNoObject) {
		t.Errorf("Get of a missing object: %v, want ErrNoObject", err)
	}
	if _, err := b.GetRange(ctx, "nope", 0, 4); !errors.Is(err, tiered.ErrNoObject) {
		t.Errorf("GetRange of a missing object: %v, want ErrNoObject", err)
	}
	for range 2 {
		if err := b.Delete(ctx, "segments/a%2Fb/1/y.parquet"); err != nil {
			t.Errorf("Delete: %v", err)
		}
	}
	if got, err := b.List(ctx, "segments/"); err != nil || !slices.Equal(got, []string{"segments/a%2Fb/2/x.parquet"}) {
		t.Errorf("List after Delete = %q, %v", got, err)
	}
}
