package app

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidemark-dev/tidemark/devstack"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
)

func (a *cli) devCmd() *cobra.Command {
	var (
		cfg     devstack.Config
		demo    devstack.Demo
		runDemo bool
		logs    logFlags
		metrics metricsFlag
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "run everything in one process: Temporal + Web UI, Kafka, event center, API, workers, demo",
		Long: `dev starts the whole system in one process on embedded defaults: a Temporal server
with its Web UI, a Kafka-protocol broker, the embedded event center in --data, the
ingest, the HTTP API, the Temporal workers and a live worker for every job of this
binary, and, if this binary has the example job (` + devstack.DemoJob + `), a demo scenario
producing its sources. It prints where everything is.`,
		Example: `  tidemark dev
  tidemark dev --data /tmp/tidemark --demo=false --ui off
  tidemark dev --hot-window 1m    # a minute on, tidemark tier run moves the demo's history cold
  tidemark dev --temporal 127.0.0.1:17233 --kafka 127.0.0.1:19092 --api 127.0.0.1:18080`,
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data", a.envOr("TIDEMARK_DEV_DATA", ".tidemark-dev"), "data folder: event center, cold tier, Temporal DB, logs ($TIDEMARK_DEV_DATA)")
	f.StringVar(&cfg.TemporalAddr, "temporal", "127.0.0.1:7233", "Temporal frontend address (gRPC)")
	f.StringVar(&cfg.UIAddr, "ui", "127.0.0.1:8233", `Temporal Web UI address ("off": none)`)
	f.StringVar(&cfg.KafkaAddr, "kafka", "127.0.0.1:9092", "Kafka-protocol broker address")
	f.StringVar(&cfg.APIAddr, "api", "127.0.0.1:8080", `tidemark HTTP API address ("off": none)`)
	f.BoolVar(&runDemo, "demo", true, "run the demo scenario (credit applications for the job "+devstack.DemoJob+", if this binary has it)")
	f.Float64Var(&demo.Rate, "rate", 5, "demo: live applications per second")
	f.IntVar(&demo.HistoryApps, "history", 5000, "demo: applications spread over the day before the start (first start only)")
	f.DurationVar(&cfg.HotWindow, "hot-window", 32*24*time.Hour, "tier run moves the events stored longer ago than this into the cold tier in --data")
	f.BoolVar(&cfg.EphemeralTemporal, "ephemeral", false, "keep Temporal's state in memory (the event center stays in --data)")
	logs.register(f, "warn")
	metrics.register(f)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		log, err := logs.logger(a.stderr)
		if err != nil {
			return err
		}
		cfg.Logger = log
		if cfg.HotWindow <= 0 {
			return usagef("--hot-window must be positive, got %v", cfg.HotWindow)
		}
		defer applyGCPolicy(log)()
		if metrics.addr != "" {
			prom, err := metrics.registry(ctx, log)
			if err != nil {
				return err
			}
			cfg.Metrics, cfg.TemporalMetrics = prom, newTemporalMetrics(prom)
		}
		if a.name != "tidemark" {
			// Another binary's name (tidemark itself, possibly under go
			// run, keeps the example's default).
			cfg.Command = a.name
		}
		switch {
		case runDemo && slices.Contains(a.jobNames(), devstack.DemoJob):
			cfg.Demo = &demo
		case runDemo:
			fmt.Fprintf(a.stderr, "no demo scenario: it produces the sources of the job %s, which this binary does not have (--demo=false skips this note)\n", devstack.DemoJob)
		}
		// The binary's jobs, run live and backfilled by the stack's
		// workers, writing to its feature store.
		cfg.Jobs = func(ctx context.Context, store eventcenter.Store) ([]*job.Job, error) {
			if err := a.declareIndexes(ctx, store); err != nil {
				return nil, err
			}
			if err := a.publishJobs(ctx, store, log); err != nil {
				return nil, err
			}
			return a.buildJobs(job.Outputs(outputs.FeatureStore(store, "")))
		}
		fmt.Fprintf(a.stderr, "starting the dev stack in %s …\n", cfg.DataDir)
		stack, err := devstack.Start(ctx, cfg)
		if err != nil {
			return err
		}
		defer stack.Stop()
		stack.PrintWhere(a.stdout)
		err = stack.Wait(ctx)
		fmt.Fprintln(a.stderr, "stopping …")
		return err
	}
	return cmd
}
