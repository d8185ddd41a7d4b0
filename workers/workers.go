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
	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/parity"
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
	// Heartbeats sends backfill chunks' heartbeats and correction chunks'
	// resume points unthrottled (see activities.Backfill.Heartbeats,
	// activities.Correction.Heartbeats). New sets it to its client.
	Heartbeats activities.HeartbeatClient
	// Directory checks that the reviewer of a parameter change holds the
	// approver role (activities.ParamChange.Directory). Default nil: the
	// API and the CLI check callers; signals sent otherwise are trusted.
	Directory auth.Directory
	// NotifyParams tells running workers of a job's new parameter version
	// (params/notify.Publisher.Notify). Default nil: workers poll.
	NotifyParams func(ctx context.Context, job string, v params.Version) error
	// OnSegment, if set, is called after each committed segment of a
	// backfill chunk (metrics, tests).
	OnSegment func(in activities.ChunkInput, c activities.Cursor)
	// Correction, if set, runs the correction's activities (it needs the
	// MySQL server). Default nil: the Correction workflow is registered,
	// its activities are not (a worker without MySQL access).
	Correction *activities.Correction
	// ParityDest is where Parity runs write their lists of differences
	// (activities.Parity.Dest: a folder or S3). Default: under os.TempDir.
	ParityDest outputs.Destination
	// ParityMetrics, if set, count the parity runs' triggers and
	// differences by cause.
	ParityMetrics *parity.Metrics
	// ParityDeadLetters tell Parity runs which triggers the live workers
	// gave up on (activities.Parity.DeadLetters). Default nil.
	ParityDeadLetters parity.DeadLetters
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
	r.RegisterWorkflowWithOptions(workflows.ParamChange, workflow.RegisterOptions{Name: workflows.ParamChangeWorkflow})
	r.RegisterWorkflowWithOptions(workflows.ParamApply, workflow.RegisterOptions{Name: workflows.ParamApplyWorkflow})
	r.RegisterActivity(&activities.ParamChange{Store: d.Store, Registry: d.Params, Directory: d.Directory, Notify: d.NotifyParams})
	r.RegisterWorkflowWithOptions(workflows.Correction, workflow.RegisterOptions{Name: workflows.CorrectionWorkflow})
	if d.Correction != nil {
		if d.Correction.Heartbeats == nil {
			d.Correction.Heartbeats = d.Heartbeats
		}
		r.RegisterActivity(d.Correction)
	}
	// Tiering runs where the event center has a cold tier; elsewhere its
	// activities fail, not retried, saying so.
	cold, _ := d.Store.(*tiered.Store)
	r.RegisterWorkflowWithOptions(workflows.Tier, workflow.RegisterOptions{Name: workflows.TierWorkflow})
	r.RegisterActivity(&activities.Tier{Store: cold})
	r.RegisterWorkflowWithOptions(workflows.Parity, workflow.RegisterOptions{Name: workflows.ParityWorkflow})
	r.RegisterWorkflowWithOptions(workflows.LateImpact, workflow.RegisterOptions{Name: workflows.LateImpactWorkflow})
	r.RegisterActivity(&activities.Parity{Store: d.Store, Jobs: activities.NewJobs(d.Jobs...), Params: d.Params, Dest: d.ParityDest, Metrics: d.ParityMetrics, DeadLetters: d.ParityDeadLetters})
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
		workflows.SearchJob.GetName():        enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		workflows.SearchProgress.GetName():   enumspb.INDEXED_VALUE_TYPE_DOUBLE,
		workflows.SearchEvents.GetName():     enumspb.INDEXED_VALUE_TYPE_INT,
		workflows.SearchParamState.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
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
