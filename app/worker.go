package app

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math"
	"strconv"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/tidemark-dev/tidemark/app/config"
	"github.com/tidemark-dev/tidemark/internal/gcpolicy"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/parity"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

// workerCmd is `worker`; deprecated, it is `backfill worker`, the old name.
func (a *cli) workerCmd(deprecated bool) *cobra.Command {
	var (
		queue   string
		regSA   bool
		par     int
		logs    logFlags
		metrics metricsFlag
		corr    correctionDeps
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "run the Temporal worker: every workflow and activity, for every job of this binary",
		Long: `worker runs tidemark's Temporal worker: it polls the task queue and executes the
backfill workflows and their activities for every job of this binary, writing to
the event center (its feature store) or to a backfill's sink. Run N processes on
one task queue, all on one HBase event center, to scale out.`,
		Example: `  tidemark worker --store hbase://zk1,zk2/tidemark --address temporal.example.com:7233
  tidemark worker --config tidemark.yaml --metrics :9464`,
	}
	if deprecated {
		cmd.Hidden = true
		cmd.Short = "deprecated: " + a.name + " worker"
	}
	s := a.settings(cmd)
	f := cmd.Flags()
	s.store()
	s.temporal()
	s.brokers()
	tokens := a.tokensFlag(cmd)
	f.StringVar(&queue, "task-queue", workflows.TaskQueue, "task queue to poll")
	f.BoolVar(&regSA, "register-search-attributes", true, "register the backfill's search attributes in the namespace if missing (needs operator rights)")
	f.IntVar(&par, "evaluators", 0, "events of a chunk evaluated in parallel (default GOMAXPROCS)")
	logs.register(f, "info")
	metrics.register(f)
	corr.register(a, f)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if deprecated {
			a.deprecated("%q is now %q", a.name+" backfill worker", a.name+" worker")
		}
		if err := corr.validate(); err != nil {
			return err
		}
		ctx := cmd.Context()
		log, err := logs.logger(a.stderr)
		if err != nil {
			return err
		}
		cfg, err := s.config()
		if err != nil {
			return err
		}
		prom, err := metrics.registry(ctx, log)
		if err != nil {
			return err
		}
		defer applyGCPolicy(log)()
		store, err := openStore(ctx, cfg, config.StoreOptions{})
		if err != nil {
			return err
		}
		defer store.Close()
		// Every job of the binary, writing to the feature store as live
		// does; a backfill picks another sink with its "sink" field.
		js, err := a.buildJobs(job.Outputs(outputs.FeatureStore(store, "")))
		if err != nil {
			return err
		}
		if err := a.declareIndexes(ctx, store); err != nil {
			return err
		}
		if err := a.publishJobs(ctx, store, log); err != nil {
			return err
		}
		deps := workers.Deps{Store: store, Jobs: js, Params: params.NewEventCenter(store, nil), Workers: par}
		closeParams, err := paramsDeps(&deps, cfg.Kafka.Brokers, *tokens, log)
		if err != nil {
			return err
		}
		defer closeParams()
		if cfg.Sources != "" {
			if deps.Sources, err = source.Load(cfg.Sources); err != nil {
				return err
			}
		}
		if deps.S3, err = cfg.S3.S3Client(ctx); err != nil {
			return err
		}
		deps.ParityMetrics = parity.NewMetrics(prom)
		if len(cfg.Kafka.Brokers) > 0 {
			deps.ParityDeadLetters = parity.KafkaDeadLetters{Brokers: cfg.Kafka.Brokers, Prefix: cfg.Topics.DeadLetter}
		}
		if deps.S3 != nil && cfg.S3.Bucket != "" {
			deps.ParityDest = outputs.S3{Client: deps.S3, Bucket: cfg.S3.Bucket, Prefix: "parity/"}
		}
		var corrDB *sql.DB
		if deps.Correction, corrDB, err = corr.activities(store, deps.Sources, prom, deps.S3, cfg.S3.Bucket); err != nil {
			return err
		}
		if corrDB != nil {
			defer corrDB.Close()
		}
		c, err := dialTemporal(ctx, cfg.Temporal, log, newTemporalMetrics(prom))
		if err != nil {
			return err
		}
		defer c.Close()
		if regSA {
			if err := workers.EnsureSearchAttributes(ctx, c, cfg.Temporal.Namespace); err != nil {
				return err
			}
		}
		w := workers.New(c, queue, deps, worker.Options{})
		if err := w.Start(); err != nil {
			return err
		}
		defer w.Stop()
		log.Info("worker", "temporal", cfg.Temporal.Address, "namespace", cfg.Temporal.Namespace, "task_queue", queue,
			"store", cfg.Store, "jobs", len(js))
		<-ctx.Done()
		return nil
	}
	return cmd
}

// dialTemporal connects to Temporal as t says, logging through log and
// reporting the SDK's metrics to metrics (nil: none).
// startWorkflow dials Temporal and starts workflow with input under id on
// queue, saying so on stderr ("started <what> <id> (run …) on task queue
// …"). The caller closes the client.
func (a *cli) startWorkflow(ctx context.Context, t config.Temporal, what, id, queue, workflow string, input any) (client.Client, client.WorkflowRun, error) {
	c, err := dialTemporal(ctx, t, a.quietLog(), nil)
	if err != nil {
		return nil, nil, err
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, workflow, input)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("start %s: %w", what, err)
	}
	fmt.Fprintf(a.stderr, "started %s %s (run %s) on task queue %s\n", what, run.GetID(), run.GetRunID(), queue)
	return c, run, nil
}

func dialTemporal(ctx context.Context, t config.Temporal, log *slog.Logger, metrics client.MetricsHandler) (client.Client, error) {
	o, err := t.TemporalOptions()
	if err != nil {
		return nil, err
	}
	o.Logger = sdklog.NewStructuredLogger(log)
	o.MetricsHandler = metrics
	c, err := client.DialContext(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", t.Address, err)
	}
	return c, nil
}

// applyGCPolicy sets the garbage collector of a process that runs backfill
// workers (package gcpolicy: GOGC 400 unless the environment sets GOGC, a
// soft memory limit under a cgroup's), logs it, and returns the function
// that restores the settings before (for a command run in a test).
func applyGCPolicy(log *slog.Logger) func() {
	gc, undo := gcpolicy.Apply()
	limit := "none"
	if gc.Limit < math.MaxInt64 {
		limit = strconv.FormatInt(gc.Limit, 10)
	}
	log.Info("garbage collector", "gogc", gc.Percent, "memoryLimitBytes", limit)
	return undo
}
