package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

const registry = `
sources:
  - name: mysql.loan.orders
    kind: mysql
    mysql: {database: loan, table: orders}
    indexes: [{column: user_id}]
  - name: api.score
    kind: http
  - name: kafka.clicks
    kind: kafka
    topic: clicks
    kafka: {format: json, lateness: 1s}
`

func newCluster(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "mysql.loan.orders", "api.score", "clicks"), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func producer(t *testing.T, brokers []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func wireRecord(t testing.TB, topic string, codec wire.Codec, e *eventcenter.Event) *kgo.Record {
	t.Helper()
	v, err := codec.Append(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(e.Key), Value: v,
		Headers: []kgo.RecordHeader{{Key: wire.HeaderCodec, Value: []byte(codec.Name())}}}
}

func orderEvent(i int, base time.Time) eventcenter.Event {
	return eventcenter.Event{
		Source: "mysql.loan.orders", Key: strconv.Itoa(i % 300), Time: base.Add(time.Duration(i/10) * time.Second),
		Pos: eventcenter.Position{Log: 1, Offset: uint64(i) << 16}, Op: eventcenter.OpUpdate,
		After: eventcenter.Row{"id": int64(i % 300), "user_id": fmt.Sprintf("u%d", i%7), "amount": eventcenter.Decimal(fmt.Sprintf("%d.50", i)), "seq": int64(i)},
	}
}

func startIngester(t *testing.T, ctx context.Context, cfg ingest.Config) (stop func()) {
	t.Helper()
	in, err := ingest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func countEvents(t *testing.T, st eventcenter.Store, src string) int {
	t.Helper()
	n := 0
	for _, err := range st.Replay(context.Background(), eventcenter.ReplayQuery{Sources: []string{src}, From: time.Unix(0, 0), To: time.Unix(1<<40, 0)}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIngest(t *testing.T) {
	ctx := context.Background()
	brokers := newCluster(t)
	reg, err := source.Parse([]byte(registry))
	if err != nil {
		t.Fatal(err)
	}
	st, err := embedded.Open(embedded.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pc := producer(t, brokers)

	// 1000 order changes (half JSON, half binary) and 4 bad records.
	base := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i := range 1000 {
		e := orderEvent(i, base)
		codec := wire.JSON
		if i%2 == 1 {
			codec = wire.Binary
		}
		recs = append(recs, wireRecord(t, "mysql.loan.orders", codec, &e))
	}
	other := orderEvent(1, base)
	other.Source = "mysql.loan.unknown"
	mismatch := orderEvent(2, base)
	bad := []*kgo.Record{
		{Topic: "mysql.loan.orders", Key: []byte("x"), Value: []byte("{not json")},
		{Topic: "mysql.loan.orders", Key: []byte("y"), Value: []byte(`{}`), Headers: []kgo.RecordHeader{{Key: wire.HeaderCodec, Value: []byte("avro")}}},
		wireRecord(t, "mysql.loan.orders", wire.JSON, &other),
		wireRecord(t, "mysql.loan.orders", wire.JSON, &mismatch),
	}
	bad[3].Key = []byte("not-the-key")
	recs = append(recs[:500], append(bad, recs[500:]...)...)
	if err := pc.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	metrics := ingest.NewMetrics(nil)
	cfg := ingest.Config{Brokers: brokers, Sources: reg, Store: st, MaxPollRecords: 300, MarkInterval: 50 * time.Millisecond, Metrics: metrics}
	stop := startIngester(t, ctx, cfg)
	waitFor(t, "1000 events", 20*time.Second, func() bool { return countEvents(t, st, "mysql.loan.orders") == 1000 })

	// Every key's state is its last change; the index works.
	for k := range 300 {
		ev, err := st.AsOf(ctx, eventcenter.AsOf{Source: "mysql.loan.orders", Key: strconv.Itoa(k), Time: base.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		last := k + 900
		if last >= 1000 {
			last -= 300
		}
		if ev.After["seq"] != int64(last) {
			t.Fatalf("key %d: seq %v, want %d", k, ev.After["seq"], last)
		}
	}
	got, err := st.Lookup(ctx, eventcenter.LookupQuery{Source: "mysql.loan.orders", Index: "user_id", Value: "u3", Time: base.Add(time.Hour)})
	if err != nil || len(got) == 0 {
		t.Fatalf("Lookup: %d events, %v", len(got), err)
	}

	// The bad records are dead letters, with their reason and origin.
	dlq := consumeAll(t, brokers, "tidemark.deadletter", 4)
	reasons := map[string]bool{}
	for _, r := range dlq {
		h := headers(r)
		reason, _, _ := strings.Cut(h[ingest.HeaderReason], ":")
		reasons[reason] = true
		if h[ingest.HeaderTopic] != "mysql.loan.orders" || h[ingest.HeaderPartition] == "" || h[ingest.HeaderOffset] == "" {
			t.Errorf("dead letter without origin: %v", h)
		}
	}
	for _, want := range []string{ingest.ReasonMalformed, ingest.ReasonUnknownSource, ingest.ReasonKeyMismatch} {
		if !reasons[want] {
			t.Errorf("no dead letter with reason %s (have %v)", want, reasons)
		}
	}
	var dm dto.Metric
	metrics.DeadLetters.WithLabelValues("mysql.loan.orders", ingest.ReasonMalformed).Write(&dm)
	if got := dm.GetCounter().GetValue(); got != 2 {
		t.Errorf("dead-letter metric for malformed records: %v, want 2", got)
	}

	// No watermark without a progress report (kind mysql)…
	if wm, _ := st.Watermark(ctx, "mysql.loan.orders"); !wm.IsZero() {
		t.Errorf("watermark %v before any progress report", wm)
	}
	// …then the report moves every partition, including idle ones.
	rep := source.NewReporter(pc, "test", source.DefaultProgressTopic)
	claim := base.Add(99 * time.Second)
	if err := rep.Report(ctx, "mysql.loan.orders", "mysql.loan.orders", claim); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reported watermark", 10*time.Second, func() bool {
		wm, _ := st.Watermark(ctx, "mysql.loan.orders")
		return wm.Equal(claim)
	})
	waitFor(t, "the watermark delay metric", 10*time.Second, func() bool {
		var m dto.Metric
		metrics.WatermarkDelay.WithLabelValues("mysql.loan.orders").Write(&m)
		return m.GetGauge().GetValue() > time.Since(claim).Seconds()-5
	})
	if marks, _ := st.PartitionWatermarks(ctx, "mysql.loan.orders"); len(marks) != 3 {
		t.Errorf("partition watermarks %v, want 3 partitions", marks)
	}

	// A report whose ends are not stored yet waits for them.
	later := orderEvent(1000, base.Add(time.Hour))
	r := wireRecord(t, "mysql.loan.orders", wire.JSON, &later)
	stop()
	if err := pc.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	rep.Acked(r)
	claim2 := later.Time
	if err := rep.Report(ctx, "mysql.loan.orders", "mysql.loan.orders", claim2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if wm, _ := st.Watermark(ctx, "mysql.loan.orders"); !wm.Equal(claim) {
		t.Errorf("watermark moved to %v while the ingester was stopped", wm)
	}

	// A second ingester of the group resumes after the committed offsets:
	// re-producing old records (a CDC replay) stores nothing new.
	if err := pc.ProduceSync(ctx, recs[:100]...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	stop = startIngester(t, ctx, cfg)
	defer stop()
	waitFor(t, "the later event", 10*time.Second, func() bool { return countEvents(t, st, "mysql.loan.orders") == 1001 })
	if err := rep.Report(ctx, "mysql.loan.orders", "mysql.loan.orders", claim2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second watermark", 10*time.Second, func() bool {
		wm, _ := st.Watermark(ctx, "mysql.loan.orders")
		return wm.Equal(claim2)
	})
	time.Sleep(200 * time.Millisecond)
	if n := countEvents(t, st, "mysql.loan.orders"); n != 1001 {
		t.Errorf("%d events after a replay, want 1001", n)
	}
}

func TestIngestForeignAndHTTP(t *testing.T) {
	ctx := context.Background()
	brokers := newCluster(t)
	reg, err := source.Parse([]byte(registry))
	if err != nil {
		t.Fatal(err)
	}
	st, err := embedded.Open(embedded.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pc := producer(t, brokers)
	now := time.Now().Truncate(time.Millisecond)
	var recs []*kgo.Record
	for i := range 50 {
		recs = append(recs, &kgo.Record{Topic: "clicks", Key: []byte(fmt.Sprintf("c%d", i)), Timestamp: now.Add(-time.Minute),
			Value: []byte(fmt.Sprintf(`{"user":"u%d","amount":12.50,"n":%d}`, i%5, i))})
	}
	recs = append(recs, &kgo.Record{Topic: "clicks", Timestamp: now.Add(-time.Minute), Value: []byte(`{"nokey":true}`)})
	recs = append(recs, &kgo.Record{Topic: "clicks", Key: []byte("bad"), Value: []byte(`[1,2]`)})
	call := eventcenter.Event{Source: "api.score", Key: "m1", Time: now, Op: eventcenter.OpMessage, After: eventcenter.Row{"x": int64(1)}}
	recs = append(recs, wireRecord(t, "api.score", wire.JSON, &call))
	res := pc.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	var callRec *kgo.Record
	for _, r := range res {
		if r.Record.Topic == "api.score" {
			callRec = r.Record
		}
	}

	stop := startIngester(t, ctx, ingest.Config{Brokers: brokers, Sources: reg, Store: st, MarkInterval: 50 * time.Millisecond})
	defer stop()
	waitFor(t, "51 click events", 10*time.Second, func() bool { return countEvents(t, st, "kafka.clicks") == 51 })
	ev, err := st.AsOf(ctx, eventcenter.AsOf{Source: "kafka.clicks", Key: "c7", Time: now})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Op != eventcenter.OpMessage || ev.After["amount"] != eventcenter.Decimal("12.50") || ev.After["n"] != int64(7) || !ev.Time.Equal(now.Add(-time.Minute)) {
		t.Errorf("click event: %+v", ev)
	}
	// The HTTP call got its Kafka position.
	waitFor(t, "the call", 10*time.Second, func() bool { return countEvents(t, st, "api.score") == 1 })
	got, err := st.AsOf(ctx, eventcenter.AsOf{Source: "api.score", Key: "m1", Time: now})
	if err != nil {
		t.Fatal(err)
	}
	if want := (eventcenter.Position{Log: uint64(callRec.Partition), Offset: uint64(callRec.Offset)}); got.Pos != want {
		t.Errorf("call position %v, want %v", got.Pos, want)
	}
	// All three partitions of the foreign topic are caught up (two idle):
	// the source watermark follows the clock, less the lateness.
	waitFor(t, "the clicks watermark near now", 10*time.Second, func() bool {
		wm, _ := st.Watermark(ctx, "kafka.clicks")
		return wm.After(now.Add(-1500 * time.Millisecond))
	})
	dlq := consumeAll(t, brokers, "tidemark.deadletter", 1)
	if h := headers(dlq[0]); !strings.HasPrefix(h[ingest.HeaderReason], ingest.ReasonMalformed) || string(dlq[0].Value) != "[1,2]" {
		t.Errorf("dead letter %q: %v", dlq[0].Value, h)
	}
}

func TestConfig(t *testing.T) {
	reg, _ := source.Parse([]byte(registry))
	st, _ := embedded.Open(embedded.Config{InMemory: true})
	defer st.Close()
	for _, cfg := range []ingest.Config{
		{Sources: reg, Store: st},
		{Brokers: []string{"x"}, Store: st},
		{Brokers: []string{"x"}, Sources: reg},
		{Brokers: []string{"x"}, Sources: reg, Store: st, DeadLetterTopic: "a b"},
	} {
		if _, err := ingest.New(cfg); err == nil {
			t.Errorf("New(%+v) is not an error", cfg)
		}
	}
	shared, _ := source.Parse([]byte(`sources: [{name: a, kind: kafka, topic: t}, {name: b, kind: http, topic: t}]`))
	if _, err := ingest.New(ingest.Config{Brokers: []string{"x"}, Sources: shared, Store: st}); err == nil {
		t.Error("a json kafka source sharing its topic is not an error")
	}
}

func consumeAll(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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

func headers(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}
