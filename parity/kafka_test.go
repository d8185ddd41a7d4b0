package parity_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tidemark-dev/tidemark/correction"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/live/livetest"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/parity"
	"github.com/tidemark-dev/tidemark/wire"
)

// TestScenarioOnKafka is TestScenarioEveryDifferenceHasItsCause with the
// live runs made by live.Worker consuming real Kafka: version 1.0.0 of the
// example job runs applications 1-3, then a worker of version 2.0.0 (same
// consumer group) the rest; application 11 reaches the event center but no
// worker, application 12 has no user (the run fails, dead-lettered
// "failed"), application 13 is run by a worker of version 2.0.0 at
// FetchStrong whose watermark wait times out (dead-lettered "stale"; as
// known now the run succeeds, so without the dead letters it would look
// missing). Then late data, a correction and a parameter change; the
// report names exactly those causes.
func TestScenarioOnKafka(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := context.Background()
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &world{t: t, ctx: ctx, st: st, reg: params.NewMemory(nil)}
	if err := credit.DeclareIndexes(ctx, st); err != nil {
		t.Fatal(err)
	}
	const n = 13
	w.seed(n, func(i int) int64 {
		if i == 9 {
			return 2
		}
		return 4
	})
	topic := livetest.UniqueTopic("mysql.loan.applications.parity")
	livetest.CreateTopic(t, brokers, topic, 1)
	fs := outputs.FeatureStore(st, "")
	v1, err := credit.New(job.Outputs(fs))
	if err != nil {
		t.Fatal(err)
	}
	v2 := creditV2(t, job.Outputs(fs))
	// v2 at FetchStrong: no watermark of the test's store ever advances, so
	// each of its runs waits 100ms and ends stale.
	v2strict := creditV2(t, job.Outputs(fs), job.Consistency(job.FetchStrong), job.WaitTimeout(100*time.Millisecond))
	p := livetest.NewProducer(t, brokers, topic, wire.JSON)
	var mu sync.Mutex
	ran := map[string]job.Outcome{}
	runWorker := func(j *job.Job, apps ...eventcenter.Event) {
		t.Helper()
		wk, err := live.New(j, live.Config{Brokers: brokers, Topic: topic, Group: topic + ".g", Store: st, Params: w.reg,
			DeadLetterTopic: topic + ".dead", OnRun: func(r live.Run) {
				mu.Lock()
				ran[r.Trigger.Key] = r.Outcome
				mu.Unlock()
			}})
		if err != nil {
			t.Fatal(err)
		}
		wctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- wk.Run(wctx) }()
		if err := p.Produce(ctx, apps...); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			mu.Lock()
			all := true
			for _, a := range apps {
				if _, ok := ran[a.Key]; !ok {
					all = false
				}
			}
			mu.Unlock()
			if all {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the worker did not run %d applications in time (ran %v)", len(apps), ran)
			}
			time.Sleep(50 * time.Millisecond)
		}
		stop()
		if err := <-done; err != nil && ctx.Err() == nil && err != context.Canceled {
			t.Logf("worker: %v", err)
		}
	}
	var first, rest, stale []eventcenter.Event
	for i := 1; i <= n; i++ {
		a := application(i, user(i))
		switch {
		case i == 13:
			stale = append(stale, a)
		case i == 11:
			w.append(a) // stored, never run
		case i == 12:
			rest = append(rest, application(i, ""))
		case i <= 3:
			first = append(first, a)
		default:
			rest = append(rest, a)
		}
	}
	runWorker(v1, first...)
	runWorker(v2, rest...)
	runWorker(v2strict, stale...)
	if ran["app-12"] != job.Failed || ran["app-13"] != job.Stale {
		t.Fatalf("app-12 ran %v, want failed; app-13 ran %v, want stale", ran["app-12"], ran["app-13"])
	}

	time.Sleep(10 * time.Millisecond) // every injection stored strictly after the live runs
	w.append(eventcenter.Event{Source: credit.Orders, Key: "o5-late", Time: t0.Add(time.Minute), Pos: eventcenter.Position{Offset: 99}, Op: eventcenter.OpInsert,
		After: eventcenter.Row{"id": int64(99), "user_id": user(5), "principal": dec("900.00"), "outstanding": dec("900.00"), "status": "open"}})
	if err := correction.WriteLedger(ctx, st, []correction.Entry{{Run: "correction-7", Source: credit.Profiles, Started: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	w.append(eventcenter.Event{Source: credit.Profiles, Key: user(7), Time: t0.Add(-24 * time.Hour), Pos: eventcenter.Position{Log: 1, Offset: 1 << 16}, Op: eventcenter.OpCorrection,
		After: eventcenter.Row{"id": user(7), "age": int64(30), "monthly_income": dec("2500.00"), "kyc_level": int64(4)}})
	if _, err := w.reg.Set(ctx, credit.Name, params.Values{"min_kyc_level": int64(3)}, "test"); err != nil {
		t.Fatal(err)
	}

	rep, err := parity.Compare(ctx, parity.Config{Job: v2, Store: st, Params: w.reg,
		DeadLetters: parity.KafkaDeadLetters{Brokers: brokers, Topic: topic + ".dead"}}, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]parity.Cause{
		"app-1": parity.JobVersion, "app-2": parity.JobVersion, "app-3": parity.JobVersion,
		"app-5": parity.LateData, "app-7": parity.Correction, "app-9": parity.Params,
		"app-11": parity.LiveMissing, "app-12": parity.LiveFailed, "app-13": parity.LiveStale,
	}
	got := map[string]parity.Cause{}
	for _, d := range rep.Diffs {
		got[d.Trigger.Key] = d.Cause
		t.Logf("%s: %s — %s", d.Trigger.Key, d.Cause, d.Detail)
	}
	for k, c := range want {
		if got[k] != c {
			t.Errorf("%s: cause %q, want %q", k, got[k], c)
		}
	}
	if len(got) != len(want) || rep.Counts[parity.Unexplained] != 0 || rep.Triggers != n || rep.Agree != n-len(want) {
		t.Fatalf("report: %d triggers, %d agree, counts %v", rep.Triggers, rep.Agree, rep.Counts)
	}
}

// TestDeadLettersPastRetention: a dead-letter topic whose records are all
// past its retention (its log start at its end) has no dead letters, and
// reading it does not wait for records that will never come.
func TestDeadLettersPastRetention(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	topic := livetest.UniqueTopic("parity.dead.expired")
	livetest.CreateTopic(t, brokers, topic, 1)
	p := livetest.NewProducer(t, brokers, topic, wire.JSON)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 2 {
		if err := p.ProduceRaw(ctx, fmt.Sprint(i), []byte(`{"job":"j"}`)); err != nil {
			t.Fatal(err)
		}
	}
	// Retention: every record deleted, the log start moved to the end.
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = 0, -1 // up to the high watermark
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	resp, err := req.RequestWith(ctx, p.Client())
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); err != nil {
		t.Fatalf("delete records: %v", err)
	}
	start := time.Now()
	dls, err := parity.KafkaDeadLetters{Brokers: brokers, Topic: topic}.GaveUp(ctx, "j", time.Time{}, time.Now())
	if err != nil || len(dls) != 0 {
		t.Fatalf("dead letters %v, %v after %v; want none, at once", dls, err, time.Since(start))
	}
}
