package credit_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/live/livetest"
	"github.com/tidemark-dev/tidemark/wire"
)

// BenchmarkLiveWorker measures one live worker end to end: applications
// produced to Kafka (TIDEMARK_KAFKA_BROKERS if set, else in-process kfake),
// stored in an on-disk event center (synced appends), evaluated, features
// appended to the feature store, offsets committed.
//
//   - fetches=1: a job reading the applicant's profile;
//     fetches=3: the credit job (profile, orders lookup, repayments lookup);
//   - burst: b.N applications produced at once: events/s through the worker;
//   - paced: one application every 2 ms: trigger-to-output latency
//     (Kafka record timestamp to outputs written) without queueing.
//
// Run: go test ./examples/credit -run '^$' -bench LiveWorker -benchtime 5000x
func BenchmarkLiveWorker(b *testing.B) {
	for _, fetches := range []int{1, 3} {
		for _, mode := range []string{"burst", "paced"} {
			b.Run(fmt.Sprintf("fetches=%d/%s", fetches, mode), func(b *testing.B) { benchLive(b, fetches, mode) })
		}
	}
}

func profileOnly(c *job.Context) (eventcenter.Row, error) {
	p, err := c.Get(credit.Profiles, c.Trigger().After["user_id"].(string))
	if err != nil && err != job.ErrNotFound {
		return nil, err
	}
	return eventcenter.Row{"income": p["monthly_income"], "amount": c.Trigger().After["amount"]}, nil
}

func benchLive(b *testing.B, fetches int, mode string) {
	ctx := context.Background()
	var brokers []string
	if v := os.Getenv("TIDEMARK_KAFKA_BROKERS"); v != "" {
		brokers = strings.Split(v, ",")
	} else {
		brokers = livetest.Fake(b)
	}
	st, err := embedded.Open(embedded.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	credit.DeclareIndexes(ctx, st)
	const users = 1000
	var hist []eventcenter.Event
	for u := range users {
		user := fmt.Sprint("u", u)
		hist = append(hist, ev(credit.Profiles, user, t0.Add(-400*day), eventcenter.OpInsert, eventcenter.Row{"age": int64(30), "monthly_income": eventcenter.Decimal("9000.00"), "kyc_level": int64(3)}))
		for k := range 2 {
			hist = append(hist, ev(credit.Orders, fmt.Sprint("o", u, "-", k), t0.Add(-100*day), eventcenter.OpInsert, eventcenter.Row{"user_id": user, "outstanding": eventcenter.Decimal("1000.00"), "status": "open"}))
		}
		for k := range 3 {
			hist = append(hist, ev(credit.Repayments, fmt.Sprint("r", u, "-", k), t0.Add(-10*day), eventcenter.OpInsert, eventcenter.Row{"user_id": user, "amount": eventcenter.Decimal("100.00"), "late": false, "paid_at": t0.Add(-10 * day)}))
		}
	}
	if err := st.Append(ctx, hist); err != nil {
		b.Fatal(err)
	}
	outs := job.Outputs(outputs.FeatureStore(st, ""))
	var j *job.Job
	if fetches == 3 {
		j, err = credit.New(outs)
	} else {
		j, err = job.New("profile-only", profileOnly, job.Trigger(credit.Applications), outs)
	}
	if err != nil {
		b.Fatal(err)
	}
	topic := livetest.UniqueTopic("bench.applications")
	livetest.CreateTopic(b, brokers, topic, 3)
	n := b.N
	var mu sync.Mutex
	var lat []time.Duration
	var first, last time.Time
	finished := make(chan struct{})
	w, err := live.New(j, live.Config{Brokers: brokers, Topic: topic, Group: topic, Store: st, MaxBatch: 1000,
		Logger: discardLogger(),
		OnRun: func(r live.Run) {
			mu.Lock()
			defer mu.Unlock()
			if r.Outcome != job.OK {
				b.Errorf("run %v: %v", r.Outcome, r.Err)
			}
			lat = append(lat, r.Done.Sub(r.Produced))
			if first.IsZero() || r.Produced.Before(first) {
				first = r.Produced
			}
			if r.Done.After(last) {
				last = r.Done
			}
			if len(lat) == n {
				close(finished)
			}
		}})
	if err != nil {
		b.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() { stop(); <-done }()

	p := livetest.NewProducer(b, brokers, topic, wire.Binary)
	apps := make([]eventcenter.Event, n)
	for i := range n {
		apps[i] = applicationAt(i, fmt.Sprint("u", i%users), "5000.00", t0.Add(time.Duration(i)*time.Microsecond))
	}
	b.ResetTimer()
	cpu0 := testenv.CPUTime()
	if mode == "burst" {
		for i := 0; i < n; i += 500 {
			if err := p.Produce(ctx, apps[i:min(i+500, n)]...); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		tick := time.NewTicker(2 * time.Millisecond)
		for i := range n {
			<-tick.C
			if err := p.Produce(ctx, apps[i]); err != nil {
				b.Fatal(err)
			}
		}
		tick.Stop()
	}
	select {
	case <-finished:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d runs after 5 minutes", len(lat), n)
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	b.ReportMetric(float64(n)/last.Sub(first).Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64((testenv.CPUTime()-cpu0).Microseconds())/float64(n), "cpu-µs/event")
}

// BenchmarkEvaluate measures the credit job's core (three fetches) on the
// embedded store, without Kafka.
func BenchmarkEvaluate(b *testing.B) {
	ctx := context.Background()
	st := openStore(b)
	j, err := credit.New()
	if err != nil {
		b.Fatal(err)
	}
	env := &job.Env{Store: st}
	app := application(1, "u1", "20000.00")
	b.ResetTimer()
	for range b.N {
		if _, err := job.Evaluate(ctx, j, app, env); err != nil {
			b.Fatal(err)
		}
	}
}
