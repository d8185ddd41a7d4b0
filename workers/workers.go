// Package workers assembles tidemark's Temporal worker: Register puts every
// workflow and activity on a worker.Registry, so that binaries (`tidemark
// worker`, `tidemark dev`) and tests run the very same set.
package workers

import (
	"context"
	"fmt"
	"maps"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/workflows"
)

// Deps are what the activities need.
type Deps struct {
	// Store is the event center. Required.
	Store eventcenter.Store
	// Jobs a backfill may name. Default none.
	Jobs []*job.Job
	// Params is the parameter registry. Default nil: declared defaults.
	Params params.Registry
	// Sources is the source registry. If set, a backfill's fetch of a
	// source it does not list (nor a job's feature source) fails at once.
	// Default nil: no check.
	Sources *source.Config
	// S3 reads sample tables and writes sinks on S3. Default nil.
	S3 *s3.Client
	// Ledger for outputs that are not idempotent (Kafka, RabbitMQ), so a
	// backfill to the job's own outputs does not deliver again what the
	// live run (or an earlier attempt) delivered. Default: a
	// job.EventLedger on Store, as the live worker's.
	Ledger job.Ledger
	// Workers and BatchSize tune the evaluation of a chunk's events
	// (job.RunOptions). Defaults GOMAXPROCS and 1024.
	Workers   int
	BatchSize int
	// Heartbeats sends backfill chunks' heartbeats unthrottled (see
	// activities.Backfill.Heartbeats). New sets it to its client.
	Heartbeats activities.HeartbeatClient
	// OnSegment, if set, is called after each committed segment of a
	// backfill chunk (metrics, tests).
	OnSegment func(in activities.ChunkInput, c activities.Cursor)
}

// Register registers every workflow and activity with r.
func Register(r worker.Registry, d Deps) {
	if d.Ledger == nil && d.Store != nil {
		d.Ledger = job.EventLedger{Store: d.Store}
	}
	r.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
	r.RegisterActivity(&activities.Backfill{
		Store: d.Store, Jobs: activities.NewJobs(d.Jobs...), Params: d.Params, Sources: knownSources(d.Sources), S3: d.S3, Ledger: d.Ledger,
		Workers: d.Workers, BatchSize: d.BatchSize, Heartbeats: d.Heartbeats, OnSegment: d.OnSegment,
	})
}

// New returns a worker of c on taskQueue (workflows.TaskQueue if empty)
// with everything registered. Start it with Run or Start.
func New(c client.Client, taskQueue string, d Deps, opts worker.Options) worker.Worker {
	if taskQueue == "" {
		taskQueue = workflows.TaskQueue
	}
	w := worker.New(c, taskQueue, opts)
	if d.Heartbeats == nil {
		d.Heartbeats = c
	}
	Register(w, d)
	return w
}

// SearchAttributes are the custom search attributes tidemark's workflows
// publish; the namespace must have them (see EnsureSearchAttributes).
func SearchAttributes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		workflows.SearchJob.GetName():      enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		workflows.SearchProgress.GetName(): enumspb.INDEXED_VALUE_TYPE_DOUBLE,
		workflows.SearchEvents.GetName():   enumspb.INDEXED_VALUE_TYPE_INT,
	}
}

// EnsureSearchAttributes registers in namespace the SearchAttributes it
// lacks. It needs operator rights on the server.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("workers: list search attributes: %w", err)
	}
	missing := maps.Clone(SearchAttributes())
	for name, typ := range have.GetCustomAttributes() {
		if want, ok := missing[name]; ok && want != typ {
			return fmt.Errorf("workers: search attribute %s is %v in namespace %q, want %v", name, typ, namespace, want)
		}
		delete(missing, name)
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	if err != nil {
		return fmt.Errorf("workers: add search attributes: %w", err)
	}
	return nil
}

func knownSources(reg *source.Config) func(string) bool {
	if reg == nil {
		return nil
	}
	return job.KnownSources(reg.Knows)
}
