package credit_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/params"
)

// Example runs the credit job on one loan application the way every mode
// does: job.Run with an Env that says where fetches read, which parameter
// values apply and how consistency behaves. Live workers, backfills and
// calls differ only in their Env and where triggers come from. The job
// joins three streams (profiles, orders, repayments), so it runs
// FetchStrong: each fetch waits for its source's watermark, and a run is
// complete whichever stream is ahead (see job's "Consistency").
func Example() {
	ctx := context.Background()
	store, err := embedded.Open(embedded.Config{InMemory: true})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	if err := credit.DeclareIndexes(ctx, store); err != nil {
		log.Fatal(err)
	}
	if err := store.Append(ctx, history()); err != nil { // the applicant's profile, orders, repayments
		log.Fatal(err)
	}
	for _, src := range []string{credit.Profiles, credit.Orders, credit.Repayments} {
		if err := store.AdvanceWatermark(ctx, src, 0, t0.Add(time.Second)); err != nil { // ingest is past the application
			log.Fatal(err)
		}
	}

	// Operators change parameters in the registry; runs read them each time.
	registry := params.NewEventCenter(store, nil)
	if _, err := registry.Set(ctx, credit.Name, params.Values{"max_late_repayments": 0}, "ops@example.com"); err != nil {
		log.Fatal(err)
	}

	// The job, with the feature store as its output.
	j, err := credit.New(job.Consistency(job.FetchStrong), job.Outputs(outputs.FeatureStore(store, "")))
	if err != nil {
		log.Fatal(err)
	}

	res, err := job.Run(ctx, j, application(1, "u1", "20000.00"), &job.Env{
		Store:  store,
		Params: job.CurrentParams(registry),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	r := res.Record
	fmt.Println("outcome:", res.Outcome, "fetches:", res.Stats.Fetches)
	fmt.Println("job version:", r.JobVersion, "param version:", r.ParamVersion)
	fmt.Println("open orders:", r.Features["open_orders"], "late repayments:", r.Features["late_repayments_90d"])
	fmt.Println("eligible:", r.Features["eligible"], "because:", r.Features["reasons"])

	// The features are point-in-time too: an event of feature.credit-features.
	stored, err := store.AsOf(ctx, eventcenter.AsOf{Source: job.FeatureSource(credit.Name), Key: "app-1", Time: r.Trigger.Time})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored:", stored.After["debt_to_income"], stored.After[job.ColParamVersion])
	// Output:
	// outcome: ok fetches: 3
	// job version: 1.0.0 param version: 1
	// open orders: 2 late repayments: 1
	// eligible: false because: late repayments
	// stored: 0.2333 1
}
