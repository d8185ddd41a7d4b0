package credit_test

import (
	"context"
	"fmt"

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
// calls differ only in their Env and where triggers come from.
func Example() {
	ctx := context.Background()
	store, _ := embedded.Open(embedded.Config{InMemory: true})
	defer store.Close()
	credit.DeclareIndexes(ctx, store)
	store.Append(ctx, history()) // the applicant's profile, orders, repayments

	// Operators change parameters in the registry; runs read them each time.
	registry := params.NewEventCenter(store, nil)
	registry.Set(ctx, credit.Name, params.Values{"max_late_repayments": 0}, "ops@example.com")

	// The job, with the feature store as its output.
	j, _ := credit.New(job.Outputs(outputs.FeatureStore(store, "")))

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
	stored, _ := store.AsOf(ctx, eventcenter.AsOf{Source: job.FeatureSource(credit.Name), Key: "app-1", Time: r.Trigger.Time})
	fmt.Println("stored:", stored.After["debt_to_income"], stored.After[job.ColParamVersion])
	// Output:
	// outcome: ok fetches: 3
	// job version: 1.0.0 param version: 1
	// open orders: 2 late repayments: 1
	// eligible: false because: late repayments
	// stored: 0.2333 1
}
