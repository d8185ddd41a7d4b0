package forward_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/forward"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

// setup starts a forwarder of registry on a new kfake cluster, reporting
// progress to progressTopic ("": the default).
func setup(t *testing.T, registry, progressTopic string) (*forward.Forwarder, *kgo.Client, []string, *source.Config) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	reg, err := source.Parse([]byte(registry))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	f, err := forward.New(forward.Config{Sources: reg, Client: cl, ProgressTopic: progressTopic, ProgressInterval: 50 * time.Millisecond,
		Metrics: forward.NewMetrics(nil)})
	if err != nil {
		t.Fatal(err)
	}
	return f, cl, c.ListenAddrs(), reg
}

func consume(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		f := cl.PollFetches(ctx)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("%s: %d records, want %d", topic, len(out), n)
		}
		out = append(out, f.Records()...)
	}
	return out
}

func decode(t *testing.T, r *kgo.Record) eventcenter.Event {
	t.Helper()
	codec := ""
	for _, h := range r.Headers {
		if h.Key == wire.HeaderCodec {
			codec = string(h.Value)
		}
	}
	e, err := wire.Decode(codec, r.Value)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Key) != e.Key {
		t.Errorf("record key %q, event key %q", r.Key, e.Key)
	}
	return e
}

const httpRegistry = `
sources:
  - name: api.score
    kind: http
    http: {max_bytes: 256}
  - name: mq.apps
    kind: rabbitmq
    rabbitmq: {queue: apps}
`

func TestHTTP(t *testing.T) {
	f, _, brokers, _ := setup(t, httpRegistry, "")
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	post := func(path, ct, body string, hdr ...string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: answer %q is not JSON", path, b)
		}
		return resp.StatusCode, m
	}
	for _, tc := range []struct {
		path, ct, body string
		hdr            []string
		code           int
		errPart        string
	}{
		{"/v1/messages/nope", "", `{}`, nil, 404, "unknown source"},
		{"/v1/messages/mq.apps", "", `{}`, nil, 404, "unknown source"},
		{"/v1/messages/api.score", "text/plain", `{}`, nil, 415, "application/json"},
		{"/v1/messages/api.score", "", `[1,2]`, nil, 400, "not a JSON object"},
		{"/v1/messages/api.score", "", `{"a":`, nil, 400, "invalid JSON"},
		{"/v1/messages/api.score", "", `{"a":"` + strings.Repeat("x", 300) + `"}`, nil, 413, "larger than 256"},
		{"/v1/messages/api.score", "", `{"a":1}`, []string{forward.HeaderMessageID, "has space"}, 400, "printable"},
	} {
		code, m := post(tc.path, tc.ct, tc.body, tc.hdr...)
		if code != tc.code || !strings.Contains(fmt.Sprint(m["error"]), tc.errPart) {
			t.Errorf("POST %s %q: %d %v, want %d with %q", tc.path, tc.body, code, m, tc.code, tc.errPart)
		}
	}
	code, m := post("/v1/messages/api.score", "application/json; charset=utf-8", `{"user":"u1","amount":12.50,"n":3}`)
	if code != 200 || m["id"] == "" {
		t.Fatalf("accepted call: %d %v", code, m)
	}
	code, m2 := post("/v1/messages/api.score", "", `{"user":"u2"}`, forward.HeaderMessageID, "client-42")
	if code != 200 || m2["id"] != "client-42" {
		t.Fatalf("call with id: %d %v", code, m2)
	}
	// Answered means stored in Kafka: the records are there.
	recs := consume(t, brokers, "api.score", 2)
	byKey := map[string]eventcenter.Event{}
	for _, r := range recs {
		e := decode(t, r)
		byKey[e.Key] = e
		if fmt.Sprint(r.Partition) != fmt.Sprint(map[string]any{m["id"].(string): m["partition"], "client-42": m2["partition"]}[e.Key]) {
			t.Errorf("answered partition differs from the record's")
		}
	}
	e := byKey[m["id"].(string)]
	if e.Source != "api.score" || e.Op != eventcenter.OpMessage || e.After["amount"] != eventcenter.Decimal("12.50") || e.After["n"] != int64(3) {
		t.Errorf("event: %+v", e)
	}
	if _, ok := byKey["client-42"]; !ok {
		t.Error("the client's message id is not the key")
	}

	// Progress: with nothing in flight the claim follows the clock.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	reports := consume(t, brokers, source.DefaultProgressTopic, 2)
	cancel()
	<-done
	p, err := source.DecodeProgress(reports[len(reports)-1].Value)
	if err != nil {
		t.Fatal(err)
	}
	if p.Source != "api.score" || time.Since(p.Time) > 5*time.Second || len(p.Ends) != 2 {
		t.Errorf("progress: %+v", p)
	}
	var sum int64
	for _, o := range p.Ends {
		sum += o
	}
	if sum != 2 {
		t.Errorf("progress ends %v cover %d records, want 2", p.Ends, sum)
	}
}

func TestRabbitMQ(t *testing.T) {
	url := testenv.AMQPURL(t)
	queue := fmt.Sprintf("tidemark-test-%d", time.Now().UnixNano())
	f, _, brokers, _ := setup(t, fmt.Sprintf(`
sources:
  - name: mq.apps
    kind: rabbitmq
    rabbitmq: {queue: %s}
`, queue), "staging.progress")
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.QueueDelete(queue, false, false, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 500
	ts := time.Now().Truncate(time.Second)
	for i := range n {
		msg := amqp.Publishing{ContentType: "application/json", Body: []byte(fmt.Sprintf(`{"app":%d,"amount":"%d.5"}`, i, i)),
			MessageId: fmt.Sprintf("app-%d", i), Timestamp: ts, DeliveryMode: amqp.Persistent}
		if i%50 == 0 {
			msg = amqp.Publishing{ContentType: "application/octet-stream", Body: []byte{0, byte(i)}, MessageId: fmt.Sprintf("app-%d", i), Timestamp: ts}
		}
		if err := ch.PublishWithContext(ctx, "", queue, false, false, msg); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- f.ConsumeRabbitMQ(ctx, forward.RabbitMQ{URL: url, Prefetch: 64}) }()
	go f.Run(ctx)
	recs := consume(t, brokers, "mq.apps", n)
	seen := map[string]bool{}
	for _, r := range recs {
		e := decode(t, r)
		seen[e.Key] = true
		if !e.Time.Equal(ts) {
			t.Errorf("%s: time %v, want the message timestamp %v", e.Key, e.Time, ts)
		}
		if e.Key == "app-50" {
			if b, ok := e.After["body"].([]byte); !ok || len(b) != 2 || b[1] != 50 {
				t.Errorf("binary body: %#v", e.After)
			}
		} else if e.Key == "app-7" && e.After["amount"] != "7.5" {
			t.Errorf("json body: %#v", e.After)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages, want %d", len(seen), n)
	}
	// Everything was acknowledged to RabbitMQ: the queue drains.
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Messages == 0 && q.Consumers == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue still holds %d messages", q.Messages)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The queue is empty: progress is reported, on the configured topic.
	reports := consume(t, brokers, "staging.progress", 1)
	if p, err := source.DecodeProgress(reports[0].Value); err != nil || p.Source != "mq.apps" {
		t.Errorf("progress: %+v %v", p, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
	// After the forwarder stopped, its queue holds nothing unacknowledged.
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil || q.Messages != 0 {
		t.Errorf("after stop: %d messages, %v", q.Messages, err)
	}
}
