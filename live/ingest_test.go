package live_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/live/livetest"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

// TestWorkerAgreesWithIngest runs the real ingest and a live worker on the
// same topics: every record is stored once (the worker's trigger append and
// ingest's append are the same event), and each output names the stored
// event as its trigger. Two kinds whose identity ingest derives from Kafka:
// a foreign kafka topic in JSON and an http source in the wire format, each
// alone and both triggering one job.
func TestWorkerAgreesWithIngest(t *testing.T) {
	reg, err := source.Parse([]byte(`
sources:
  - name: kafka.risk.clicks
    kind: kafka
    topic: risk.clicks
    kafka: {format: json}
  - name: api.score
    kind: http
`))
	if err != nil {
		t.Fatal(err)
	}
	topicOf := map[string]string{"kafka.risk.clicks": "risk.clicks", "api.score": source.TopicName("api.score")}
	// One job per source, and one triggered by both: each record becomes
	// an event by its own topic's rules.
	for _, srcs := range [][]string{{"kafka.risk.clicks"}, {"api.score"}, {"kafka.risk.clicks", "api.score"}} {
		t.Run(strings.Join(srcs, "+"), func(t *testing.T) {
			ctx := context.Background()
			brokers := livetest.Fake(t)
			for _, topic := range topicOf {
				livetest.CreateTopic(t, brokers, topic, 2)
			}
			st := openStore(t)
			out := &collect{}
			var opts []job.Option
			for _, src := range srcs {
				opts = append(opts, job.Trigger(src))
			}
			j := job.MustNew("agree", func(c *job.Context) (eventcenter.Row, error) {
				return eventcenter.Row{"seen": true}, nil
			}, append(opts, job.Outputs(out))...)
			w, err := live.New(j, live.Config{Brokers: brokers, Sources: reg, Store: st})
			if err != nil {
				t.Fatal(err)
			}
			in, err := ingest.New(ingest.Config{Brokers: brokers, Sources: reg, Store: st})
			if err != nil {
				t.Fatal(err)
			}
			ictx, stop := context.WithCancel(ctx)
			idone := make(chan error, 1)
			go func() { idone <- in.Run(ictx) }()
			defer func() { stop(); <-idone }()
			startWorker(t, w)

			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			const perSource = 20
			n := perSource * len(srcs)
			for _, src := range srcs {
				for i := range perSource {
					key := fmt.Sprint("k", i%5) // several records per key
					var value []byte
					if src == "api.score" {
						e := eventcenter.Event{Source: "api.score", Key: key, Time: t0.Add(time.Duration(i) * time.Millisecond), Op: eventcenter.OpMessage, After: eventcenter.Row{"i": int64(i)}}
						if value, err = wire.JSON.Append(nil, &e); err != nil {
							t.Fatal(err)
						}
					} else {
						value = fmt.Appendf(nil, `{"i": %d}`, i)
					}
					r := &kgo.Record{Topic: topicOf[src], Key: []byte(key), Value: value, Timestamp: t0.Add(time.Duration(i) * time.Millisecond)}
					if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
						t.Fatal(err)
					}
				}
			}
			waitFor(t, "all runs", func() bool { return len(out.all()) == n })
			q := eventcenter.ReplayQuery{Sources: srcs, From: t0.Add(-time.Hour), To: t0.Add(time.Hour)}
			stored := map[idKey]bool{}
			waitFor(t, "ingest", func() bool {
				clear(stored)
				for e, err := range st.Replay(ctx, q) {
					if err != nil {
						t.Fatal(err)
					}
					stored[keyOf(e.ID())] = true
				}
				return len(stored) >= n
			})
			time.Sleep(200 * time.Millisecond) // let ingest finish anything in flight
			total := 0
			for _, err := range st.Replay(ctx, q) {
				if err != nil {
					t.Fatal(err)
				}
				total++
			}
			if total != n {
				t.Fatalf("%d events stored for %d records: the worker and ingest disagree on identities", total, n)
			}
			for _, r := range out.all() {
				if !stored[keyOf(r.Trigger)] {
					t.Errorf("output trigger %+v is not a stored event", r.Trigger)
				}
			}
		})
	}
}

// idKey is an event identity usable as a map key (time.Time's location
// would make equal instants differ).
type idKey struct {
	source, key string
	nanos       int64
	pos         eventcenter.Position
}

func keyOf(id eventcenter.ID) idKey { return idKey{id.Source, id.Key, id.Time.UnixNano(), id.Pos} }
