package ingest_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

// TestProgressTopicsKeepDeploymentsApart: two deployments (say staging and
// prod) share one Kafka cluster. Each has its own registry topic, store,
// ingest group and progress topic, but their sources have the same name,
// so a progress report of one would be taken by the other's ingest if it
// read it. Each producer claims a different time; each deployment's
// watermark must reach its own claim and stay there. (With one progress
// topic for both, prod's ingest waits for staging's producer, whose claims
// it can never satisfy, and its watermark does not move.)
func TestProgressTopicsKeepDeploymentsApart(t *testing.T) {
	t.Run("kfake", func(t *testing.T) { progressTopicsKeepDeploymentsApart(t, newCluster(t)) })
	t.Run("kafka", func(t *testing.T) { progressTopicsKeepDeploymentsApart(t, testenv.KafkaBrokers(t)) })
}

func progressTopicsKeepDeploymentsApart(t *testing.T, brokers []string) {
	ctx := t.Context()
	pc := producer(t, brokers)
	b := make([]byte, 4)
	rand.Read(b)
	id := hex.EncodeToString(b) // a run's own topics and groups on a shared cluster
	const src = "mysql.loan.orders"
	base := time.Now().Add(-time.Hour).Truncate(time.Second)

	type deployment struct {
		name, topic, progress string
		claim                 time.Time
		store                 eventcenter.Store
	}
	deps := []*deployment{
		{name: "staging-" + id, claim: base.Add(time.Minute)},
		{name: "prod-" + id, claim: base.Add(2 * time.Minute)},
	}
	for _, d := range deps {
		d.topic, d.progress = d.name+".loan.orders", d.name+".progress"
		reg, err := source.Parse(fmt.Appendf(nil, `
sources:
  - name: %s
    kind: mysql
    topic: %s
    mysql: {database: loan, table: orders}
`, src, d.topic))
		if err != nil {
			t.Fatal(err)
		}
		if err := source.EnsureTopics(ctx, pc, 1, d.topic, d.progress); err != nil {
			t.Fatal(err)
		}
		st, err := embedded.Open(embedded.Config{InMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		d.store = st
		stop := startIngester(t, ctx, ingest.Config{Brokers: brokers, Sources: reg, Store: st, Group: d.name + "-ingest",
			ProgressTopic: d.progress, DeadLetterTopic: d.name + ".deadletter", MarkInterval: 20 * time.Millisecond})
		t.Cleanup(stop)
	}
	// The ingesters read progress from the newest report on: let them
	// start reading before anything is reported.
	time.Sleep(300 * time.Millisecond)

	for _, d := range deps {
		rep := source.NewReporter(pc, "cdc-"+d.name, d.progress)
		for i := range 10 {
			e := orderEvent(i, base)
			r := wireRecord(t, d.topic, wire.Binary, &e)
			if err := pc.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
			rep.Acked(r)
		}
		if err := rep.Report(ctx, src, d.topic, d.claim); err != nil {
			t.Fatal(err)
		}
	}

	for _, d := range deps {
		waitFor(t, d.name+"'s watermark at its claim", 10*time.Second, func() bool {
			wm, err := d.store.Watermark(ctx, src)
			if err != nil {
				t.Fatal(err)
			}
			return wm.Equal(d.claim)
		})
	}
	time.Sleep(200 * time.Millisecond) // ten mark intervals: the other's report would have moved it
	for _, d := range deps {
		if wm, err := d.store.Watermark(ctx, src); err != nil || !wm.Equal(d.claim) {
			t.Errorf("%s: watermark %v (%v), want its own claim %v", d.name, wm, err, d.claim)
		}
	}
}
