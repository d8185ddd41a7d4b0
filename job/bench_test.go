package job_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
)

type discard struct{ n int }

func (d *discard) Name() string { return "discard" }
func (d *discard) Write(_ context.Context, recs []job.Record) error {
	d.n += len(recs)
	return nil
}
func (d *discard) Idempotent() {}

// BenchmarkBackfill measures the backfill path: RunAll over a replay of the
// embedded store, one as-of fetch per trigger, records to a batched output.
func BenchmarkBackfill(b *testing.B) {
	for _, tc := range []struct{ fetches, workers int }{{1, 1}, {1, 2}, {3, 2}} {
		fetches, workers := tc.fetches, tc.workers
		b.Run(fmt.Sprintf("fetches=%d/workers=%d", fetches, workers), func(b *testing.B) {
			ctx := context.Background()
			st := openStore(b)
			const users = 10000
			var evs []eventcenter.Event
			for u := range users {
				evs = append(evs, eventcenter.Event{Source: "bench.profile", Key: fmt.Sprint("u", u), Time: t0.Add(-time.Hour), Op: eventcenter.OpInsert,
					After: eventcenter.Row{"income": int64(u), "city": "x"}})
			}
			if err := st.Append(ctx, evs); err != nil {
				b.Fatal(err)
			}
			n := b.N
			evs = evs[:0]
			for i := range n {
				evs = append(evs, eventcenter.Event{Source: "bench.apps", Key: fmt.Sprint("a", i), Time: t0.Add(time.Duration(i) * time.Millisecond),
					Pos: eventcenter.Position{Offset: uint64(i)}, Op: eventcenter.OpInsert, After: eventcenter.Row{"user": fmt.Sprint("u", i%users), "amount": int64(i)}})
				if len(evs) == 10000 {
					if err := st.Append(ctx, evs); err != nil {
						b.Fatal(err)
					}
					evs = evs[:0]
				}
			}
			if err := st.Append(ctx, evs); err != nil {
				b.Fatal(err)
			}
			out := &discard{}
			j := job.MustNew("bench", func(c *job.Context) (eventcenter.Row, error) {
				tr := c.Trigger()
				user := tr.After["user"].(string)
				row, err := c.Get("bench.profile", user)
				if err != nil {
					return nil, err
				}
				for range fetches - 1 {
					if _, err := c.Get("bench.profile", user, job.Ago(time.Minute)); err != nil {
						return nil, err
					}
				}
				return eventcenter.Row{"income": row["income"], "amount": tr.After["amount"]}, nil
			}, job.Trigger("bench.apps"))
			env := &job.Env{Store: st, Mode: job.Backfill, Outputs: []job.Output{out}}
			b.ResetTimer()
			cpu0 := testenv.CPUTime()
			start := time.Now()
			sum, err := job.RunAll(ctx, j, env, st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{"bench.apps"}, From: t0, To: t0.Add(time.Duration(n+1) * time.Millisecond)}), job.RunOptions{Workers: workers})
			if err != nil || sum.Counts[job.OK] != n || out.n != n {
				b.Fatalf("%+v %v %d", sum, err, out.n)
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
			b.ReportMetric(float64((testenv.CPUTime()-cpu0).Microseconds())/float64(n), "cpu-µs/event")
		})
	}
}
