package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/source"
)

func init() {
	register(command{
		name:    "ingest",
		summary: "consume the sources' Kafka topics into the event center (embedded store)",
		run:     runIngest,
	})
}

// pipeFlags are the flags the cdc, forward and ingest commands share.
type pipeFlags struct {
	sources, brokers, metrics, logLevel *string
}

func addPipeFlags(fs *flag.FlagSet) pipeFlags {
	return pipeFlags{
		sources:  fs.String("sources", envOr("TIDEMARK_SOURCES", "sources.yaml"), "source registry, YAML or JSON ($TIDEMARK_SOURCES)"),
		brokers:  fs.String("brokers", envOr("TIDEMARK_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka seed brokers, comma separated ($TIDEMARK_KAFKA_BROKERS)"),
		metrics:  fs.String("metrics", "", `address serving Prometheus /metrics, e.g. ":9464" ("": none)`),
		logLevel: fs.String("log-level", "info", "log level: debug, info, warn, error"),
	}
}

// setup builds the logger of -log-level and loads the -sources registry.
func (f pipeFlags) setup() (*slog.Logger, *source.Config, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*f.logLevel)); err != nil {
		return nil, nil, fmt.Errorf("-log-level: %w", err)
	}
	reg, err := source.Load(*f.sources)
	if err != nil {
		return nil, nil, err
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})), reg, nil
}

func (f pipeFlags) brokerList() []string {
	var out []string
	for _, b := range strings.Split(*f.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// registry returns a Prometheus registry with the process collectors, and
// serves it on -metrics until ctx ends.
func (f pipeFlags) registry(ctx context.Context, log *slog.Logger) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if *f.metrics == "" {
		return reg, nil
	}
	ln, err := net.Listen("tcp", *f.metrics)
	if err != nil {
		return nil, fmt.Errorf("-metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return reg, nil
}

func runIngest(ctx context.Context, fs *flag.FlagSet, args []string) error {
	pf := addPipeFlags(fs)
	var (
		store      = fs.String("store", envOr("TIDEMARK_STORE_DIR", "eventcenter-data"), "embedded event center folder ($TIDEMARK_STORE_DIR)")
		noSync     = fs.Bool("store-nosync", false, "do not fsync each append (survives a process crash, not a machine crash)")
		group      = fs.String("group", "tidemark-ingest", "Kafka consumer group")
		instance   = fs.String("instance-id", envOr("TIDEMARK_INGEST_INSTANCE", ""), "static group member id: a restart takes its partitions back at once ($TIDEMARK_INGEST_INSTANCE)")
		dlq        = fs.String("deadletter", "tidemark.deadletter", "dead-letter topic")
		maxPoll    = fs.Int("max-poll", 2000, "records per batch (one append)")
		partitions = fs.Int("partitions", 0, "create the sources' missing topics with this many partitions (0: they must exist)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, reg, err := pf.setup()
	if err != nil {
		return err
	}
	prom, err := pf.registry(ctx, log)
	if err != nil {
		return err
	}
	if *partitions > 0 {
		if err := ensureSourceTopics(ctx, pf.brokerList(), reg, int32(*partitions)); err != nil {
			return err
		}
	}
	st, err := embedded.Open(embedded.Config{Dir: *store, NoSync: *noSync})
	if err != nil {
		return err
	}
	defer st.Close()
	in, err := ingest.New(ingest.Config{
		Brokers: pf.brokerList(), Sources: reg, Store: st, Group: *group, InstanceID: *instance, DeadLetterTopic: *dlq,
		MaxPollRecords: *maxPoll, Metrics: ingest.NewMetrics(prom), Logger: log,
	})
	if err != nil {
		return err
	}
	log.Info("ingest: running", "topics", reg.Topics(), "store", *store)
	return in.Run(ctx)
}
