package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/tidemark-dev/tidemark/devstack"
)

func init() {
	register(command{
		name:    "dev",
		summary: "run everything in one process: Temporal + Web UI, Kafka, event center, API, workers, demo",
		run:     runDev,
	})
}

func runDev(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var (
		data      = fs.String("data", envOr("TIDEMARK_DEV_DATA", ".tidemark-dev"), "data folder: event center, cold tier, Temporal DB, logs ($TIDEMARK_DEV_DATA)")
		temporal  = fs.String("temporal", "127.0.0.1:7233", "Temporal frontend address (gRPC)")
		ui        = fs.String("ui", "127.0.0.1:8233", `Temporal Web UI address ("off": none)`)
		kafka     = fs.String("kafka", "127.0.0.1:9092", "Kafka-protocol broker address")
		api       = fs.String("api", "127.0.0.1:8080", `tidemark HTTP API address ("off": none)`)
		demo      = fs.Bool("demo", true, "run the demo scenario (credit applications, job credit-features live)")
		rate      = fs.Float64("rate", 5, "demo: live applications per second")
		history   = fs.Int("history", 5000, "demo: applications spread over the day before the start (first start only)")
		ephemeral = fs.Bool("ephemeral", false, "keep Temporal's state in memory (the event center stays in -data)")
		level     = fs.String("log-level", "warn", "log level: debug, info, warn, error")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	cfg := devstack.Config{DataDir: *data, TemporalAddr: *temporal, UIAddr: *ui, KafkaAddr: *kafka, APIAddr: *api,
		EphemeralTemporal: *ephemeral, Logger: logger}
	if *demo {
		cfg.Demo = &devstack.Demo{Rate: *rate, HistoryApps: *history}
	}
	fmt.Fprintf(os.Stderr, "starting the dev stack in %s …\n", *data)
	stack, err := devstack.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer stack.Stop()
	stack.PrintWhere(os.Stdout)
	err = stack.Wait(ctx)
	fmt.Fprintln(os.Stderr, "stopping …")
	return err
}
