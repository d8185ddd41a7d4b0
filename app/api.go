package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/tidemark-dev/tidemark/api"
	"github.com/tidemark-dev/tidemark/app/config"
	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/calls"
	"github.com/tidemark-dev/tidemark/console"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/params/changes"
	"github.com/tidemark-dev/tidemark/params/paramshttp"
	"github.com/tidemark-dev/tidemark/serving"
	"github.com/tidemark-dev/tidemark/source"
)

// apiCmd is `api`: the HTTP API server.
func (a *cli) apiCmd() *cobra.Command {
	var (
		listen, results, ui     string
		serveCalls              bool
		warm                    []string
		maxBatch                int
		callTimeout, maxTimeout time.Duration
		logs                    logFlags
		metrics                 metricsFlag
	)
	cmd := &cobra.Command{
		Use:   "api",
		Short: "serve the HTTP API and the operators' console: features, calls, the catalog, parameter changes",
		Long: `api serves tidemark's HTTP API (OpenAPI 3 description at /v1/openapi.json):
feature lookups (GET /v1/features/{job}/{entity}), batches and selections
(POST /v1/features/{job}:batch, :select), calls of callable jobs
(POST /v1/calls/{job}, GET /v1/calls/{id}), the catalog (GET /v1/jobs) and
parameter changes (/v1/jobs/{job}/params…, /v1/params/changes…), and the
operators' console at / (sign in with a token).

Tokens come from the token file (--tokens, $TIDEMARK_TOKENS; created by
` + "`tidemark token create`" + `, reread when it changes). Every write needs a
token: calls, submitting and deciding parameter changes; the parameter
routes need a token to read too; lookups, selections and the catalog are
open. Calls go through Kafka to the job's live worker; every api process
reads the results topic the workers write. Parameter changes and the
console's backfill list go through Temporal (--address; dialed lazily, so
the server starts without it).`,
		Example: "  tidemark api --listen 127.0.0.1:8080 --store hbase://zk1,zk2/tidemark --brokers kafka1:9092 --warm credit-features",
	}
	s := a.settings(cmd)
	s.store()
	s.brokers()
	s.sources("")
	s.temporal()
	tokens := a.tokensFlag(cmd)
	s.str("deadletter", `dead-letter topic prefix of the live workers: a call they give up on fails (default "`+
		config.DefaultDeadLetterTopic+`"; config "topics.deadLetter", $TIDEMARK_DEADLETTER_TOPIC)`,
		func(c *config.Config) *string { return &c.Topics.DeadLetter })
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "address to serve on")
	f.BoolVar(&serveCalls, "calls", true, "serve calls of callable jobs (needs Kafka: the server stops if it cannot reach it); false: calls are answered 501")
	f.StringVar(&ui, "temporal-ui", "", "base URL of the Temporal Web UI, for the console's links to backfills (default none)")
	f.StringVar(&results, "results-topic", calls.DefaultResultsTopic, "Kafka topic of call results (the callable jobs' workers write it)")
	f.IntVar(&maxBatch, "max-batch", 1000, "most entities of a batch lookup")
	f.StringSliceVar(&warm, "warm", nil, "jobs whose selection tables are built at start (else at their first selection)")
	f.DurationVar(&callTimeout, "call-timeout", 2*time.Second, "a call's default wait for its result")
	f.DurationVar(&maxTimeout, "max-call-timeout", 30*time.Second, "the longest wait a call may ask for")
	logs.register(f, "info")
	metrics.register(f)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		log, err := logs.logger(a.stderr)
		if err != nil {
			return err
		}
		cfg, err := s.config()
		if err != nil {
			return err
		}
		reg, err := metrics.registry(ctx, log)
		if err != nil {
			return err
		}
		store, err := openStore(ctx, cfg, config.StoreOptions{})
		if err != nil {
			return err
		}
		defer store.Close()
		sel, err := serving.NewSelector(serving.SelectorConfig{Store: store, Logger: log})
		if err != nil {
			return err
		}
		for _, name := range warm {
			go func() {
				start := time.Now()
				if err := sel.Warm(ctx, name); err != nil {
					log.Warn("api: building a selection table", "job", name, "err", err)
					return
				}
				log.Info("api: selection table built", "job", name, "took", time.Since(start))
			}()
		}
		acfg := api.Config{Store: store, Selector: sel, Metrics: api.NewMetrics(reg), MaxBatch: maxBatch, CallTimeout: callTimeout, MaxCallTimeout: maxTimeout, Logger: log}
		for _, name := range a.jobNames() { // this binary's jobs: their calls are checked by their filters
			j, err := a.job(name)
			if err != nil {
				return err
			}
			acfg.Jobs = append(acfg.Jobs, j)
		}
		ts, err := auth.OpenTokenStore(*tokens)
		if err != nil {
			return err
		}
		if _, err := os.Stat(*tokens); errors.Is(err, os.ErrNotExist) {
			log.Warn("api: no token file yet: every write is refused (401) until `tidemark token create` makes it", "tokens", *tokens)
		}
		acfg.Auth = ts
		topts, err := cfg.Temporal.TemporalOptions()
		if err != nil {
			return err
		}
		topts.Logger = sdklog.NewStructuredLogger(log.With("part", "temporal-client"))
		tc, err := client.NewLazyClient(topts)
		if err != nil {
			return err
		}
		defer tc.Close()
		errc := make(chan error, 2)
		if serveCalls {
			caller, err := calls.NewCaller(calls.CallerConfig{Store: store, Brokers: cfg.Kafka.Brokers, ResultsTopic: results, DeadLetterPrefix: cfg.Topics.DeadLetter, Logger: log})
			if err != nil {
				return err
			}
			defer caller.Close()
			acfg.Caller = caller
			go func() { errc <- caller.Run(ctx) }()
		} else {
			log.Info("api: --calls=false: calls are not served (501)")
		}
		srv, err := api.New(acfg)
		if err != nil {
			return err
		}
		svc := &changes.Service{Temporal: tc, Store: store, Registry: params.NewEventCenter(store, nil)}
		ccfg := console.Config{Store: store, Auth: ts, API: srv, Changes: svc, Temporal: tc, TemporalUI: ui, Namespace: cfg.Temporal.Namespace,
			Brokers: cfg.Kafka.Brokers, DeadLetterTopic: cfg.Topics.DeadLetter, Logger: log}
		if ccfg.KafkaOptions, err = cfg.Kafka.KafkaOptions(); err != nil {
			return err
		}
		if cfg.Sources != "" {
			if ccfg.Registry, err = source.Load(cfg.Sources); err != nil {
				return err
			}
			for _, src := range ccfg.Registry.Sources {
				ccfg.Sources = append(ccfg.Sources, src.Name)
			}
		}
		con, err := console.New(ccfg)
		if err != nil {
			return err
		}
		defer con.Close()
		mux := http.NewServeMux()
		mux.Handle("GET /healthz", srv)
		srv.Mount(mux)
		paramshttp.MountAuthenticated(mux, svc, ts)
		con.Mount(mux)
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return err
		}
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- hs.Serve(l) }()
		log.Info("api: serving", "addr", l.Addr().String(), "store", cfg.Store, "calls", acfg.Caller != nil)
		select {
		case <-ctx.Done():
		case err := <-errc:
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	}
	return cmd
}
