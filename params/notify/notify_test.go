package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/live/livetest"
	"github.com/tidemark-dev/tidemark/params/notify"
)

// A listener hears every message published after it started, and one
// published an instant before (while its client was starting), not older
// ones.
func TestPublishListen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	brokers := livetest.Fake(t)
	topic := livetest.UniqueTopic("test.control")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pub := notify.NewPublisher(cl, topic)
	if err := pub.Publish(ctx, notify.Message{Job: "old", Version: 1}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // "old" is now older than a listener's look-back
	if err := pub.Notify(ctx, "a", 2); err != nil {
		t.Fatal(err)
	}
	got := make(chan notify.Message, 10)
	lctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- notify.Listen(lctx, brokers, topic, nil, func(m notify.Message) { got <- m }) }()
	if err := pub.Notify(ctx, "b", 3); err != nil {
		t.Fatal(err)
	}
	for _, want := range []notify.Message{{Job: "a", Version: 2}, {Job: "b", Version: 3}} {
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("got %+v, want %+v", m, want)
			}
		case <-ctx.Done():
			t.Fatalf("no message %+v", want)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Listen: %v", err)
	}
	select {
	case m := <-got:
		t.Fatalf("unexpected %+v", m)
	default:
	}
}
