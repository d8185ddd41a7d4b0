package testenv_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tidemark-dev/tidemark/internal/testenv"
)

// TestS3Smoke: put, get and list an object in the harness bucket.
func TestS3Smoke(t *testing.T) {
	cfg := testenv.S3(t)
	cli := s3.New(s3.Options{
		Region:       cfg.Region,
		BaseEndpoint: aws.String(cfg.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	prefix := fmt.Sprintf("smoke/%d/", time.Now().UnixNano())
	key := prefix + "hello.txt"
	body := []byte("hello tidemark")
	if _, err := cli.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &cfg.Bucket, Key: &key, Body: bytes.NewReader(body),
	}); err != nil {
		t.Fatalf("put: %v", err)
	}
	defer cli.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &cfg.Bucket, Key: &key}) //nolint:errcheck

	out, err := cli.GetObject(ctx, &s3.GetObjectInput{Bucket: &cfg.Bucket, Key: &key})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("get body %q (err %v), want %q", got, err, body)
	}

	list, err := cli.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &cfg.Bucket, Prefix: &prefix})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != key || aws.ToInt64(list.Contents[0].Size) != int64(len(body)) {
		t.Fatalf("list under %s: %+v", prefix, list.Contents)
	}
}
