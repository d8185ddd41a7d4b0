package testenv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/internal/testenv"
)

// TestKafkaSmoke runs against the real broker of the harness: it produces to a new topic
// (created by the broker on first use), consumes it in a consumer group, commits, and checks
// that a second member of the same group resumes after the committed offset.
func TestKafkaSmoke(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	suffix := time.Now().UnixNano()
	topic := fmt.Sprintf("tidemark-smoke-%d", suffix)
	group := fmt.Sprintf("tidemark-smoke-group-%d", suffix)

	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatalf("producer client: %v", err)
	}
	defer producer.Close()
	if err := producer.Ping(ctx); err != nil {
		t.Fatalf("ping %v: %v", brokers, err)
	}
	produce := func(key, value string) {
		t.Helper()
		r := &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(value)}
		if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", key, err)
		}
	}
	produce("k1", "first")
	produce("k2", "second")

	// consume both in a group, commit
	first := consumeN(ctx, t, brokers, topic, group, 2)
	if got := string(first[0].Value) + "," + string(first[1].Value); got != "first,second" {
		t.Fatalf("consumed %q, want first,second", got)
	}

	// the group's committed offset holds: a new member sees only what came after it
	produce("k3", "third")
	next := consumeN(ctx, t, brokers, topic, group, 1)
	if string(next[0].Value) != "third" || next[0].Offset != 2 {
		t.Fatalf("after commit got %q at offset %d, want \"third\" at offset 2", next[0].Value, next[0].Offset)
	}
}

// consumeN joins the group, polls until n records arrived, commits them and leaves the group.
func consumeN(ctx context.Context, t *testing.T, brokers []string, topic, group string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("consumer client: %v", err)
	}
	defer cl.Close()
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline", len(got), n)
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("fetch %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
		}
		got = append(got, fs.Records()...)
	}
	if len(got) != n {
		t.Fatalf("consumed %d records, want %d", len(got), n)
	}
	if err := cl.CommitRecords(ctx, got...); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if err := cl.LeaveGroupContext(ctx); err != nil {
		t.Fatalf("leave group: %v", err)
	}
	return got
}
