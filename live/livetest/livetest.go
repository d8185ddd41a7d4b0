// Package livetest helps tests drive live workers: create topics on a real
// broker or an in-process kfake cluster, and produce events in the wire
// format.
package livetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/wire"
)

// Fake starts an in-process Kafka-protocol cluster (kfake) and returns its
// brokers; it stops with the test.
func Fake(t testing.TB) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// UniqueTopic returns a topic name unique to this test run.
func UniqueTopic(prefix string) string {
	return fmt.Sprintf("%s.%d.%d", prefix, os.Getpid(), time.Now().UnixNano())
}

// CreateTopic creates topic with partitions (replication 1) and waits
// until its metadata is visible.
func CreateTopic(t testing.TB, brokers []string, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, 1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 20000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	for _, r := range resp.Topics {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil && err != kerr.TopicAlreadyExists {
			t.Fatalf("create topic %s: %v", topic, err)
		}
	}
	for {
		mreq := kmsg.NewPtrMetadataRequest()
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(topic)
		mreq.Topics = append(mreq.Topics, mt)
		mresp, err := mreq.RequestWith(ctx, cl)
		if err == nil && len(mresp.Topics) == 1 && mresp.Topics[0].ErrorCode == 0 && len(mresp.Topics[0].Partitions) == int(partitions) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("topic %s not visible: %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Producer produces events to a topic in the wire format.
type Producer struct {
	cl    *kgo.Client
	topic string
	codec wire.Codec
}

// NewProducer returns a producer closed with the test.
func NewProducer(t testing.TB, brokers []string, topic string, codec wire.Codec) *Producer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &Producer{cl: cl, topic: topic, codec: codec}
}

// Produce sends events (key: the event key) and waits for their acks.
func (p *Producer) Produce(ctx context.Context, events ...eventcenter.Event) error {
	recs := make([]*kgo.Record, len(events))
	for i := range events {
		v, err := p.codec.Append(nil, &events[i])
		if err != nil {
			return err
		}
		recs[i] = &kgo.Record{Topic: p.topic, Key: []byte(events[i].Key), Value: v,
			Headers: []kgo.RecordHeader{{Key: wire.HeaderCodec, Value: []byte(p.codec.Name())}}}
	}
	return p.cl.ProduceSync(ctx, recs...).FirstErr()
}

// ProduceRaw sends a record value as is (for malformed-input tests).
func (p *Producer) ProduceRaw(ctx context.Context, key string, value []byte) error {
	return p.cl.ProduceSync(ctx, &kgo.Record{Topic: p.topic, Key: []byte(key), Value: value}).FirstErr()
}

// Client returns the producer's client.
func (p *Producer) Client() *kgo.Client { return p.cl }

// Consume reads topic from its start until n records arrived or the
// deadline passes (failing the test), without a consumer group.
func Consume(t testing.TB, brokers []string, topic string, n int, deadline time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: %d of %d records within %v", topic, len(got), n, deadline)
		}
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, kerr.UnknownTopicOrPartition) { // not created yet
				t.Fatalf("consume %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
			}
		}
		got = append(got, fs.Records()...)
	}
	return got
}
