package hbase_test

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tidemark-dev/tidemark/eventcenter/storetest"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered/tieredtest"
	"github.com/tidemark-dev/tidemark/internal/testenv"
)

// TestTiered: the conformance suite on the cold tier over HBase and the
// real S3 server, with a hot window of milliseconds, so nearly every read
// merges HBase with segments read by ranged GETs.
func TestTiered(t *testing.T) {
	testenv.HBaseZK(t)
	cfg := testenv.S3(t)
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(cfg.Endpoint), Region: cfg.Region, UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
	})
	run := fmt.Sprintf("test/tiered-%d-%d", os.Getpid(), time.Now().UnixNano())
	var seq atomic.Int64
	tieredtest.Run(t, func(t testing.TB, now func() time.Time) tiered.Hot {
		c := testConfig(t)
		c.Now = now
		return open(t, c)
	}, func(t testing.TB) tiered.Blob {
		return tiered.S3{Client: client, Bucket: cfg.Bucket, Prefix: fmt.Sprintf("%s/%d/", run, seq.Add(1))}
	}, storetest.Options{ModelOps: 500, ModelSeeds: 1})
}
