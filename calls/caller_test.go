package calls

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/job"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestRetention: on a store that keeps a window (HBase's hot tier), a new
// idempotent call is made (its key's absence is not an error), a pending
// call polls 202, an answered one 200, and both 410 once older than the
// window.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true, Now: clk.Now, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const jobName = "scores"
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, Topic(jobName), DefaultResultsTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	c, err := NewCaller(CallerConfig{Store: st, Brokers: kafka.ListenAddrs(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	pending, err := c.Call(ctx, jobName, eventcenter.Row{"amount": int64(1)}, Options{IdempotencyKey: "order-1"})
	if err != nil {
		t.Fatalf("an idempotent call on a store with retention: %v", err)
	}
	if st, _, err := c.Poll(ctx, pending.ID); err != nil || st != Pending {
		t.Fatalf("poll of a pending call: %v, %v; want Pending", st, err)
	}
	// The job answers: the result event, as Output stores it.
	_, key, _ := ParseID(pending.ID)
	call, err := st.AsOf(ctx, eventcenter.AsOf{Source: Source(jobName), Key: key, Time: eventcenter.MaxTime})
	if err != nil {
		t.Fatal(err)
	}
	rec := job.Record{Job: jobName, JobVersion: "1", Entity: "e1", Trigger: call.ID(), Features: eventcenter.Row{"double": int64(2)}}
	if err := st.Append(ctx, []eventcenter.Event{resultEvent(&rec)}); err != nil {
		t.Fatal(err)
	}
	status, got, err := c.Poll(ctx, pending.ID)
	if err != nil || status != Answered || got.Record.Entity != "e1" || got.Record.Features["double"] != int64(2) {
		t.Fatalf("poll of an answered call: %v %+v %v", status, got, err)
	}
	again, err := c.Call(ctx, jobName, eventcenter.Row{"amount": int64(1)}, Options{IdempotencyKey: "order-1"})
	if err != nil || again.ID != pending.ID || again.Record == nil || again.Record.Entity != "e1" {
		t.Fatalf("retry of an answered call: %+v, %v", again, err)
	}
	if _, err := c.Call(ctx, jobName, eventcenter.Row{"amount": int64(2)}, Options{IdempotencyKey: "order-1"}); !errors.Is(err, ErrIdempotencyMismatch) {
		t.Fatalf("the key again with another row: %v, want ErrIdempotencyMismatch", err)
	}
	clk.Add(2 * time.Hour)
	if st, _, err := c.Poll(ctx, pending.ID); err != nil || st != Expired {
		t.Fatalf("poll after the window: %v, %v; want Expired", st, err)
	}
}

// TestIdempotentCallsInFlight: a retry that comes while the first request
// of its key is still waiting (on the same instance) is checked like any
// retry: another row is ErrIdempotencyMismatch, not the first call's
// answer; and a retry of a call that was refused makes the call itself
// instead of waiting for one that was never made.
func TestIdempotentCallsInFlight(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const jobName = "scores"
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, Topic(jobName), DefaultResultsTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	c, err := NewCaller(CallerConfig{Store: st, Brokers: kafka.ListenAddrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id := ID(jobName, idempotentKey(jobName, "order-1"))

	// The first request waits for a result that does not come.
	first := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, jobName, eventcenter.Row{"amount": int64(1)}, Options{IdempotencyKey: "order-1", Timeout: 3 * time.Second})
		first <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if s, _, err := c.Poll(ctx, id); err != nil || s == Pending {
			break
		} else if time.Now().After(deadline) {
			t.Fatal("the first call was not stored")
		}
	}
	_, err = c.Call(ctx, jobName, eventcenter.Row{"amount": int64(2)}, Options{IdempotencyKey: "order-1", Timeout: time.Second})
	if !errors.Is(err, ErrIdempotencyMismatch) {
		t.Errorf("another row while the first request waits: %v, want ErrIdempotencyMismatch", err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}

	// A refused call stores nothing; a retry beside it, accepted, is made.
	refuse := make(chan struct{})
	refused := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, jobName, eventcenter.Row{"amount": int64(3)}, Options{IdempotencyKey: "order-2",
			Accept: func(*eventcenter.Event) bool { <-refuse; return false }})
		refused <- err
	}()
	retried := make(chan error, 1)
	var retry Call
	go func() {
		time.Sleep(100 * time.Millisecond) // the refused request holds the key
		var err error
		retry, err = c.Call(ctx, jobName, eventcenter.Row{"amount": int64(3)}, Options{IdempotencyKey: "order-2", Timeout: 200 * time.Millisecond})
		retried <- err
	}()
	time.Sleep(200 * time.Millisecond)
	close(refuse)
	if err := <-refused; !errors.Is(err, ErrRefused) {
		t.Fatalf("refused call: %v", err)
	}
	if err := <-retried; err != nil {
		t.Fatal(err)
	}
	if s, _, err := c.Poll(ctx, retry.ID); err != nil || s != Pending {
		t.Errorf("the retry of a refused call answered %s, which polls %v, %v; want a stored, pending call", retry.ID, s, err)
	}
}

// TestReplyToMissingTopic: a kafka:// reply_to naming a topic that does not
// exist is the caller's mistake: Write answers the call without the reply
// instead of failing (a failing output stops the job's live worker, and
// the redelivered call stops it again).
func TestReplyToMissingTopic(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const jobName = "scores"
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, DefaultResultsTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.ListenAddrs()...), kgo.UnknownTopicRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out, err := NewOutput(OutputConfig{Store: st, Client: cl})
	if err != nil {
		t.Fatal(err)
	}
	call := eventcenter.Event{Source: Source(jobName), Key: "k00000000000000000000000000000001", Time: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Op: eventcenter.OpMessage, After: eventcenter.Row{"amount": int64(1), ColReplyTo: "kafka://tidemark-test-no-such-topic"}}
	if err := st.Append(ctx, []eventcenter.Event{call}); err != nil {
		t.Fatal(err)
	}
	rec := job.Record{Job: jobName, JobVersion: "1", Entity: "e1", Trigger: call.ID(), Features: eventcenter.Row{"double": int64(2)}}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := out.Write(wctx, []job.Record{rec}); err != nil {
		t.Fatalf("Write with a reply_to to a missing topic: %v", err)
	}
	if _, err := st.AsOf(ctx, eventcenter.AsOf{Source: ResultSource(jobName), Key: call.Key, Time: eventcenter.MaxTime}); err != nil {
		t.Fatalf("the result is not stored: %v", err)
	}
}
