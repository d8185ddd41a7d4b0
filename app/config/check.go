package config

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/tidemark-dev/tidemark/source"
)

// Result is the outcome of checking one service.
type Result struct {
	// Service is "store", "sources", "kafka", "temporal", "s3" or "amqp".
	Service string
	// Target is what was checked: a URL, an address, a file.
	Target string
	// Skipped: the service is not configured (S3, RabbitMQ, sources).
	Skipped bool
	// Err is why the service cannot be used; nil: OK.
	Err error
}

// Check reaches every configured service of c as a command would, at once
// and each within timeout, and reports one Result per service in a fixed
// order. Opening the store creates it if absent, as any command's start
// does (a Pebble folder, an HBase namespace and its tables).
func Check(ctx context.Context, c Config, timeout time.Duration) []Result {
	checks := []struct {
		service, target string
		skip            bool
		run             func(ctx context.Context) error
	}{
		{"store", c.Store, false, func(ctx context.Context) error {
			u, err := ParseStore(c.Store)
			if err != nil {
				return err
			}
			s, err := OpenStore(ctx, u, StoreOptions{})
			if err != nil {
				return err
			}
			return s.Close()
		}},
		{"sources", c.Sources, c.Sources == "", func(context.Context) error {
			_, err := source.Load(c.Sources)
			return err
		}},
		{"kafka", strings.Join(c.Kafka.Brokers, ","), false, func(ctx context.Context) error {
			opts, err := c.Kafka.ClientOptions()
			if err != nil {
				return err
			}
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			return cl.Ping(ctx)
		}},
		{"temporal", c.Temporal.Address + " namespace " + c.Temporal.Namespace, false, func(ctx context.Context) error {
			o, err := c.Temporal.TemporalOptions()
			if err != nil {
				return err
			}
			o.Logger = quietLogger{}
			cl, err := client.DialContext(ctx, o)
			if err != nil {
				return err
			}
			defer cl.Close()
			_, err = cl.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: c.Temporal.Namespace})
			return err
		}},
		{"s3", s3Target(c.S3), !c.S3.Configured(), func(ctx context.Context) error {
			cl, err := c.S3.S3Client(ctx)
			if err != nil {
				return err
			}
			if c.S3.Bucket != "" {
				_, err = cl.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(c.S3.Bucket)})
				return err
			}
			_, err = cl.ListBuckets(ctx, &s3.ListBucketsInput{})
			return err
		}},
		{"amqp", redact(c.AMQP.URL), c.AMQP.URL == "", func(ctx context.Context) error {
			conn, err := amqp.DialConfig(c.AMQP.URL, amqp.Config{Dial: amqp.DefaultDial(timeout)})
			if err != nil {
				return err
			}
			return conn.Close()
		}},
	}
	out := make([]Result, len(checks))
	var wg sync.WaitGroup
	for i, ch := range checks {
		out[i] = Result{Service: ch.service, Target: ch.target, Skipped: ch.skip}
		if ch.skip {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- ch.run(cctx) }()
			select {
			case out[i].Err = <-done:
			case <-cctx.Done():
				out[i].Err = fmt.Errorf("no answer within %v", timeout)
			}
		}()
	}
	wg.Wait()
	return out
}

func s3Target(s S3) string {
	t := s.Endpoint
	if t == "" {
		t = "AWS"
	}
	if s.Bucket != "" {
		t += " bucket " + s.Bucket
	}
	return t
}

// redact hides the password of a URL.
func redact(u string) string {
	if at := strings.LastIndex(u, "@"); at > 0 {
		if i := strings.Index(u, "://"); i >= 0 && i < at {
			cred := u[i+3 : at]
			if user, _, ok := strings.Cut(cred, ":"); ok {
				return u[:i+3] + user + ":***" + u[at:]
			}
		}
	}
	return u
}

// quietLogger drops the Temporal SDK's log lines during a check: its
// outcome is the Result.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
