package outputs_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/wire"
)

var t0 = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

// records computes n real records by running a job.
func records(t *testing.T, n int) []job.Record {
	t.Helper()
	ctx := context.Background()
	st := openStore(t)
	j := job.MustNew("out-test", func(c *job.Context) (eventcenter.Row, error) {
		return eventcenter.Row{"n": c.Trigger().After["n"], "amount": eventcenter.Decimal("12.50"), "ok": true, "limit": c.Int("limit")}, nil
	}, job.Trigger("test.apps"), job.Version("3"),
		job.Param(params.Decl{Name: "limit", Type: params.Int, Default: 1, Description: "a limit"}))
	var out []job.Record
	for i := range n {
		tr := eventcenter.Event{Source: "test.apps", Key: fmt.Sprint("a", i), Time: t0.Add(time.Duration(i) * time.Second),
			Pos: eventcenter.Position{Log: 1, Offset: uint64(i)}, Op: eventcenter.OpInsert, After: eventcenter.Row{"n": int64(i)}}
		res, err := job.Evaluate(ctx, j, tr, &job.Env{Store: st, Params: job.FixedParams(4, params.Values{"limit": 9})})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, *res.Record)
	}
	return out
}

func openStore(t *testing.T) *embedded.Store {
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func checkRecord(t *testing.T, got, want job.Record) {
	t.Helper()
	if got.ID != want.ID || got.Job != want.Job || got.JobVersion != "3" || got.ParamVersion != 4 || got.Entity != want.Entity ||
		!got.Trigger.Time.Equal(want.Trigger.Time) || got.Trigger.Pos != want.Trigger.Pos || got.Trigger.Key != want.Trigger.Key {
		t.Fatalf("record\n got %+v\nwant %+v", got, want)
	}
}

func TestFeatureStore(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	recs := records(t, 3)
	out := outputs.FeatureStore(st, "")
	for range 2 { // a retried batch stores nothing new
		if err := job.WriteOutputs(ctx, []job.Output{out}, nil, recs); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := st.History(ctx, eventcenter.HistoryQuery{Source: "feature.out-test", Key: "a1", From: t0, To: t0.Add(time.Hour)})
	if err != nil || len(evs) != 1 {
		t.Fatalf("history: %v %v", evs, err)
	}
	e, err := st.AsOf(ctx, eventcenter.AsOf{Source: "feature.out-test", Key: "a1", Time: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	got := job.RecordFromEvent("out-test", &e)
	checkRecord(t, got, recs[1])
	if got.Features["amount"] != eventcenter.Decimal("12.50") || got.Features["limit"] != int64(9) || got.Features["n"] != int64(1) {
		t.Fatalf("features %v", got.Features)
	}
	// Point in time: before the trigger the feature did not exist.
	if _, err := st.AsOf(ctx, eventcenter.AsOf{Source: "feature.out-test", Key: "a1", Time: t0}); err != eventcenter.ErrNotFound {
		t.Fatalf("as of before: %v", err)
	}
}

// Fill writes only what is missing; Replace writes a new version of every
// record that the latest read returns while an as-known-at read before it
// still returns the old one; a redone write of either stores nothing twice.
func TestFeatureStoreModes(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	recs := records(t, 6)
	live := outputs.FeatureStore(st, "")
	if err := live.Write(ctx, recs[:3]); err != nil { // the live run saw the first three
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	beforeBackfills := time.Now()
	time.Sleep(2 * time.Millisecond)

	fill := live.Backfill(st, outputs.Fill, "bf-fill")
	for range 2 { // the second time: a segment redone after a crash
		if err := fill.Write(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	if c := fill.Counts(); c != (outputs.WriteCounts{Written: 6, Unchanged: 6}) {
		t.Fatalf("fill counts %+v, want 3+3 written and 3+3 unchanged", c)
	}
	history := func(key string) []eventcenter.Event {
		evs, err := st.History(ctx, eventcenter.HistoryQuery{Source: "feature.out-test", Key: key, From: t0, To: t0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	for i, r := range recs {
		if evs := history(r.Entity); len(evs) != 1 {
			t.Fatalf("record %d: %d events after fill, want 1", i, len(evs))
		}
	}
	time.Sleep(2 * time.Millisecond)
	beforeReplace := time.Now()
	time.Sleep(2 * time.Millisecond)

	// New parameters: every record changes.
	changed := slices.Clone(recs)
	for i := range changed {
		changed[i].ParamVersion = 5
		changed[i].Features = eventcenter.Row{"n": int64(100 + i)}
	}
	replace := live.Backfill(st, outputs.Replace, "bf-replace")
	for range 2 {
		if err := replace.Write(ctx, changed); err != nil {
			t.Fatal(err)
		}
	}
	if c := replace.Counts(); c != (outputs.WriteCounts{Replaced: 12}) {
		t.Fatalf("replace counts %+v, want 6+6 replaced", c)
	}
	for i, r := range recs {
		if evs := history(r.Entity); len(evs) != 2 {
			t.Fatalf("record %d: %d events after replace, want 2", i, len(evs))
		}
		e, err := st.AsOf(ctx, eventcenter.AsOf{Source: "feature.out-test", Key: r.Entity, Time: t0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		got := job.RecordFromEvent("out-test", &e)
		if got.ID != r.ID || got.ParamVersion != 5 || got.Features["n"] != int64(100+i) || got.Trigger.Pos != r.Trigger.Pos || e.After[job.ColBackfill] != "bf-replace" {
			t.Fatalf("record %d: latest read %+v, want the replacement", i, got)
		}
		old, err := st.AsOf(ctx, eventcenter.AsOf{Source: "feature.out-test", Key: r.Entity, Time: t0.Add(time.Hour), KnownAt: beforeReplace})
		if err != nil {
			t.Fatal(err)
		}
		checkRecord(t, job.RecordFromEvent("out-test", &old), r)
		_, err = st.AsOf(ctx, eventcenter.AsOf{Source: "feature.out-test", Key: r.Entity, Time: t0.Add(time.Hour), KnownAt: beforeBackfills})
		if live := i < 3; live != (err == nil) {
			t.Fatalf("record %d known before the backfills: %v", i, err)
		}
	}

	// A second replace: version 2 wins over version 1.
	for i := range changed {
		changed[i].Features = eventcenter.Row{"n": int64(200 + i)}
	}
	again := live.Backfill(st, outputs.Replace, "bf-replace-2")
	if err := again.Write(ctx, changed); err != nil {
		t.Fatal(err)
	}
	e, err := st.AsOf(ctx, eventcenter.AsOf{Source: "feature.out-test", Key: recs[4].Entity, Time: t0.Add(time.Hour)})
	if err != nil || e.After["n"] != int64(204) {
		t.Fatalf("after a second replace: %v %v", e.After, err)
	}
	if _, v, _ := job.OriginalPos(e.Pos); v != 2 {
		t.Fatalf("version %d, want 2", v)
	}
}

// Two triggers of one entity at one time: after a replace the latest read
// returns the new version of the later trigger, as before it the old one.
func TestFeatureStoreReplaceKeepsTriggerOrder(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	recs := records(t, 2)
	for i := range recs {
		recs[i].Entity, recs[i].Trigger.Time = "same", t0
	}
	out := outputs.FeatureStore(st, "")
	if err := out.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	for _, batches := range [][][]job.Record{{recs}, {recs[:1], recs[1:]}} {
		rep := out.Backfill(st, outputs.Replace, fmt.Sprint("bf-", len(batches)))
		for _, b := range batches {
			if err := rep.Write(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		e, err := st.AsOf(ctx, eventcenter.AsOf{Source: "feature.out-test", Key: "same", Time: t0})
		if err != nil {
			t.Fatal(err)
		}
		if got := job.RecordFromEvent("out-test", &e); got.Trigger.Key != "a1" || e.After[job.ColBackfill] != fmt.Sprint("bf-", len(batches)) {
			t.Fatalf("latest read %+v (%v), want the later trigger's new version", got, e.After)
		}
	}
}

func TestKafka(t *testing.T) {
	ctx := context.Background()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "features", "feature-events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := records(t, 3)
	if err := outputs.Kafka(cl, "features").Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := outputs.Kafka(cl, "feature-events", outputs.AsEvents(wire.Binary, "")).Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("features", "feature-events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	byID := map[string]job.Record{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	seen := 0
	deadline, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for seen < 6 {
		fs := consumer.PollFetches(deadline)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(m *kgo.Record) {
			seen++
			h := map[string]string{}
			for _, x := range m.Headers {
				h[x.Key] = string(x.Value)
			}
			want := byID[h[outputs.HeaderID]]
			if h[outputs.HeaderJobVersion] != "3" || h[outputs.HeaderParamVersion] != "4" || h[outputs.HeaderJob] != "out-test" || string(m.Key) != want.Entity {
				t.Errorf("headers %v key %s", h, m.Key)
			}
			if m.Topic == "features" {
				var got job.Record
				if err := json.Unmarshal(m.Value, &got); err != nil {
					t.Fatal(err)
				}
				checkRecord(t, got, want)
				if got.Features["amount"] != "12.50" || got.Features["limit"] != 9.0 {
					t.Errorf("features %v", got.Features)
				}
				return
			}
			e, err := wire.Decode(h[wire.HeaderCodec], m.Value)
			if err != nil {
				t.Fatal(err)
			}
			checkRecord(t, job.RecordFromEvent("out-test", &e), want)
			if e.Source != "feature.out-test" || e.After["limit"] != int64(9) || e.After[job.ColParamVersion] != int64(4) {
				t.Errorf("feature event %+v", e)
			}
		})
	}
}

// The sink's temporary file has no name in the temporary folder, while
// the sink writes or after it closes or aborts: a process killed meanwhile
// leaves nothing there.
func TestJSONLinesDir(t *testing.T) {
	ctx := context.Background()
	dir, tmp := t.TempDir(), t.TempDir()
	t.Setenv("TMPDIR", tmp)
	noTemp := func(when string) {
		t.Helper()
		if es, err := os.ReadDir(tmp); err != nil || len(es) != 0 {
			t.Fatalf("%s: the temporary folder holds %v (%v)", when, es, err)
		}
	}
	recs := records(t, 5)
	for attempt := range 2 { // a retried chunk replaces its object
		sink, err := outputs.JSONLines(outputs.Dir(dir), "out-test/chunk-0001.jsonl")
		if err != nil {
			t.Fatal(err)
		}
		if err := sink.Write(ctx, recs[:3]); err != nil {
			t.Fatal(err)
		}
		if err := sink.Write(ctx, recs[2:]); err != nil { // recs[2] repeated
			t.Fatal(err)
		}
		noTemp("writing")
		if _, err := os.Stat(filepath.Join(dir, "out-test/chunk-0001.jsonl")); attempt == 0 && err == nil {
			t.Fatal("object visible before Close")
		}
		if err := sink.Close(ctx); err != nil {
			t.Fatal(err)
		}
		noTemp("closed")
	}
	aborted, err := outputs.JSONLines(outputs.Dir(dir), "out-test/chunk-0002.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if err := aborted.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	aborted.Abort()
	noTemp("aborted")
	if _, err := os.Stat(filepath.Join(dir, "out-test/chunk-0002.jsonl")); !os.IsNotExist(err) {
		t.Fatalf("aborted object: %v", err)
	}
	f, err := os.Open(filepath.Join(dir, "out-test/chunk-0001.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkLines(t, bufio.NewScanner(f), recs)
}

func checkLines(t *testing.T, sc *bufio.Scanner, recs []job.Record) {
	t.Helper()
	i := 0
	for ; sc.Scan(); i++ {
		var got job.Record
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		checkRecord(t, got, recs[i])
	}
	if i != len(recs) {
		t.Fatalf("%d lines, want %d", i, len(recs))
	}
}

func TestJSONLinesS3(t *testing.T) {
	cfg := testenv.S3(t)
	ctx := context.Background()
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(cfg.Endpoint), Region: cfg.Region, UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
	})
	prefix := fmt.Sprintf("test/jsonl-%d/", time.Now().UnixNano())
	recs := records(t, 4)
	sink, err := outputs.JSONLines(outputs.S3{Client: client, Bucket: cfg.Bucket, Prefix: prefix}, "chunk-0001.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatal(err)
	}
	obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(prefix + "chunk-0001.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Body.Close()
	checkLines(t, bufio.NewScanner(obj.Body), recs)
}

func TestRabbitMQ(t *testing.T) {
	url := testenv.AMQPURL(t)
	ctx := context.Background()
	exchange := fmt.Sprintf("tidemark.test.features.%d", time.Now().UnixNano())
	out, err := outputs.RabbitMQ(outputs.RabbitMQConfig{URL: url, Exchange: exchange, Kind: "topic"})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// Declare the exchange, then bind a queue before publishing.
	if err := out.Write(ctx, nil); err != nil {
		t.Fatal(err)
	}
	deliveries := consumeExchange(t, url, exchange, "#")
	recs := records(t, 3)
	if err := out.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		select {
		case d := <-deliveries:
			var got job.Record
			if err := json.Unmarshal(d.Body, &got); err != nil {
				t.Fatal(err)
			}
			checkRecord(t, got, recs[i])
			if d.MessageId != recs[i].ID || d.Headers[outputs.HeaderJobVersion] != "3" || d.Headers[outputs.HeaderParamVersion] != int64(4) || d.RoutingKey != "out-test" || d.DeliveryMode != amqp.Persistent {
				t.Fatalf("delivery %+v", d)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("record %d not delivered", i)
		}
	}
}

// consumeExchange binds an exclusive queue to exchange and consumes it.
func consumeExchange(t *testing.T, url, exchange, key string) <-chan amqp.Delivery {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, key, exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	d, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Replacement positions invert, order after the originals and by version,
// and refuse what they cannot carry.
func TestReplacementPos(t *testing.T) {
	p := eventcenter.Position{Log: 7, Offset: 1 << 40}
	v1, err := job.ReplacementPos(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := job.ReplacementPos(eventcenter.Position{Log: 3}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if back, v, src := job.OriginalPos(v1); back != p || v != 1 || src != 0 {
		t.Fatalf("OriginalPos(%v) = %v, %d, %d", v1, back, v, src)
	}
	// The record of a trigger of the job's third trigger source, and its
	// versions: each maps back to the trigger, and they keep their order.
	s2 := job.FeaturePos(p, 2)
	s2v1, err := job.ReplacementPos(s2, 1)
	if err != nil {
		t.Fatal(err)
	}
	s2v2, err := job.ReplacementPos(s2, 2)
	if err != nil {
		t.Fatal(err)
	}
	for v, pos := range []eventcenter.Position{s2, s2v1, s2v2} {
		if back, gotV, src := job.OriginalPos(pos); back != p || gotV != uint32(v) || src != 2 {
			t.Fatalf("OriginalPos(%v) = %v, %d, %d; want %v, %d, 2", pos, back, gotV, src, p, v)
		}
	}
	if job.FeaturePos(p, 0) != p || s2.Compare(top0()) <= 0 || s2v1.Compare(s2) <= 0 || s2v2.Compare(s2v1) <= 0 || s2v1.Compare(v1) <= 0 {
		t.Fatalf("order: %v, %v, %v, %v", s2, s2v1, s2v2, v1)
	}
	if back, v, src := job.OriginalPos(p); back != p || v != 0 || src != 0 {
		t.Fatalf("OriginalPos of an original: %v, %d", back, v)
	}
	top := eventcenter.Position{Log: 1<<32 - 1, Offset: 1<<64 - 1}
	if v1.Compare(top) <= 0 || v2.Compare(v1) <= 0 {
		t.Fatalf("order: original top %v, v1 %v, v2 %v", top, v1, v2)
	}
	for _, bad := range []struct {
		p eventcenter.Position
		v uint32
	}{{eventcenter.Position{Log: 1 << 32}, 1}, {p, 0}, {p, 1 << 23}, {p, 1 << 31}} {
		if _, err := job.ReplacementPos(bad.p, bad.v); !errors.Is(err, job.ErrPosition) {
			t.Errorf("ReplacementPos(%v, %d): %v, want ErrPosition", bad.p, bad.v, err)
		}
	}
}

// top0 is the last position of a trigger of the first trigger source.
func top0() eventcenter.Position { return eventcenter.Position{Log: 1<<32 - 1, Offset: 1<<64 - 1} }

// A Parquet object has one row per record and one column per feature,
// typed from its values: nulls where a record lacks it, text where values
// have several types, and a prefix for a feature named like a column.
func TestParquet(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	recs := records(t, 3)
	at := t0.Add(time.Minute)
	recs[0].Features = eventcenter.Row{"entity": "e0", "mix": int64(1), "at": at, "only0": 2.5}
	recs[1].Features = eventcenter.Row{"entity": "e1", "mix": "one"}
	recs[2].Features = eventcenter.Row{"entity": "e2", "mix": nil, "at": nil}
	o, err := outputs.Parquet(outputs.Dir(dir), "p/x.parquet")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Write(ctx, append(recs, recs[0])); err != nil { // a repeat is dropped
		t.Fatal(err)
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	type row struct {
		ID            string     `parquet:"id"`
		Time          time.Time  `parquet:"time,timestamp(nanosecond)"`
		ParamVersion  int64      `parquet:"param_version"`
		TriggerOffset int64      `parquet:"trigger_offset"`
		Entity        string     `parquet:"entity"`
		FeatureEntity *string    `parquet:"feature_entity,optional"`
		Mix           *string    `parquet:"mix,optional"`
		At            *time.Time `parquet:"at,optional,timestamp(nanosecond)"`
		Only0         *float64   `parquet:"only0,optional"`
	}
	rows, err := parquet.ReadFile[row](filepath.Join(dir, "p", "x.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || o.Count() != 3 {
		t.Fatalf("%d rows, count %d, want 3", len(rows), o.Count())
	}
	r0, r1, r2 := rows[0], rows[1], rows[2]
	if r0.ID != recs[0].ID || !r0.Time.Equal(recs[0].Trigger.Time) || r0.ParamVersion != 4 || r0.TriggerOffset != 0 || r0.Entity != recs[0].Entity {
		t.Fatalf("row 0 %+v", r0)
	}
	if *r0.FeatureEntity != "e0" || *r0.Mix != "1" || !r0.At.Equal(at) || *r0.Only0 != 2.5 {
		t.Fatalf("row 0 features %+v", r0)
	}
	if *r1.Mix != "one" || r1.At != nil || r1.Only0 != nil || r2.Mix != nil || r2.At != nil {
		t.Fatalf("rows 1, 2: %+v %+v", r1, r2)
	}
}

// TestFeatureStoreTriggersOfSeveralSources: a job triggered by two sources
// whose triggers share the entity, the time and the position (offsets of
// two Kafka topics) stores one record per trigger, each read back as its
// own trigger's, and each replaced on its own.
func TestFeatureStoreTriggersOfSeveralSources(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	j := job.MustNew("multi", func(c *job.Context) (eventcenter.Row, error) {
		return eventcenter.Row{"from": c.Trigger().Source}, nil
	}, job.Trigger("test.apps"), job.Trigger("test.limits"))
	var recs []job.Record
	for _, src := range []string{"test.apps", "test.limits"} {
		tr := eventcenter.Event{Source: src, Key: "u1", Time: t0, Pos: eventcenter.Position{Log: 0, Offset: 5},
			Op: eventcenter.OpInsert, After: eventcenter.Row{"n": int64(1)}}
		res, err := job.Evaluate(ctx, j, tr, &job.Env{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, *res.Record)
	}
	out := outputs.FeatureStore(st, "")
	if err := out.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	read := func() []job.Record {
		evs, err := st.History(ctx, eventcenter.HistoryQuery{Source: "feature.multi", Key: "u1", From: t0, To: t0.Add(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		var got []job.Record
		for i := range evs {
			got = append(got, job.RecordFromEvent("multi", &evs[i]))
		}
		return got
	}
	got := read()
	if len(got) != 2 {
		t.Fatalf("%d feature records for two triggers of two sources at one time and position: %+v", len(got), got)
	}
	for i, r := range got {
		if r.ID != recs[i].ID || r.Trigger != recs[i].Trigger || r.Features["from"] != recs[i].Trigger.Source {
			t.Errorf("record %d read back as %+v, want %+v", i, r, recs[i])
		}
	}
	b, err := json.Marshal(recs[1])
	if err != nil {
		t.Fatal(err)
	}
	var back job.Record
	if err := json.Unmarshal(b, &back); err != nil || back.TriggerIndex != 1 || back.Trigger != recs[1].Trigger {
		t.Fatalf("JSON round trip of the second source's record: %+v, %v (%s)", back, err, b)
	}
	if err := out.Backfill(st, outputs.Replace, "bf").Write(ctx, recs[1:]); err != nil {
		t.Fatal(err)
	}
	if got := read(); len(got) != 3 || got[2].Trigger != recs[1].Trigger {
		t.Fatalf("after replacing the second source's record: %+v", got)
	}
}
