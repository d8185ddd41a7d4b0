package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/app/config"
	"github.com/tidemark-dev/tidemark/cdc"
	"github.com/tidemark-dev/tidemark/forward"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

// defaultSources is the registry of cdc, forward and ingest when nothing
// names one.
const defaultSources = "sources.yaml"

// pipe is what cdc, forward and ingest share: settings with --sources,
// --brokers and --progress-topic, logging and metrics flags.
type pipe struct {
	s       *settings
	logs    logFlags
	metrics metricsFlag
}

func (a *cli) pipe(cmd *cobra.Command) *pipe {
	p := &pipe{s: a.settings(cmd)}
	p.s.sources(defaultSources)
	p.s.brokers()
	p.s.str("progress-topic", `topic of the progress reports from cdc and forward to ingest; one per deployment (default "`+
		config.DefaultProgressTopic+`"; config "topics.progress", $TIDEMARK_PROGRESS_TOPIC)`,
		func(c *config.Config) *string { return &c.Topics.Progress })
	p.logs.register(cmd.Flags(), "info")
	p.metrics.register(cmd.Flags())
	return p
}

// pipeEnv is what a pipe command starts from: its configuration and
// source registry.
type pipeEnv struct {
	cfg     config.Config
	sources *source.Config
}

func (p *pipe) setup(cmd *cobra.Command) (pipeEnv, *pipeRun, error) {
	log, err := p.logs.logger(p.s.a.stderr)
	if err != nil {
		return pipeEnv{}, nil, err
	}
	cfg, err := p.s.config()
	if err != nil {
		return pipeEnv{}, nil, err
	}
	if cfg.Sources == "" {
		cfg.Sources = defaultSources
	}
	reg, err := source.Load(cfg.Sources)
	if err != nil {
		return pipeEnv{}, nil, err
	}
	prom, err := p.metrics.registry(cmd.Context(), log)
	if err != nil {
		return pipeEnv{}, nil, err
	}
	return pipeEnv{cfg: cfg, sources: reg}, &pipeRun{log: log, prom: prom}, nil
}

// pipeRun are the logger and metrics registry of a pipe command.
type pipeRun struct {
	log  *slog.Logger
	prom *prometheus.Registry
}

// ensureSourceTopics creates the registry's missing topics and the progress
// and dead-letter topics.
func ensureSourceTopics(ctx context.Context, env pipeEnv, partitions int32) error {
	opts, err := env.cfg.Kafka.ClientOptions()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := source.EnsureTopics(ctx, cl, partitions, env.sources.Topics()...); err != nil {
		return err
	}
	return source.EnsureTopics(ctx, cl, 1, env.cfg.Topics.Progress, env.cfg.Topics.DeadLetter)
}

func (a *cli) ingestCmd() *cobra.Command {
	var (
		noSync          bool
		group, instance string
		maxPoll, parts  int
	)
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "consume the sources' Kafka topics into the event center",
		Long: `ingest consumes the topics of the registered sources in a consumer group (run N
processes to share the partitions) and appends their events to the event center,
moving each source's watermarks; records it cannot store go to the dead-letter topic.`,
		Example: `  tidemark ingest --sources sources.yaml --store hbase://zk1,zk2/tidemark --metrics :9464
  tidemark ingest --store pebble:///var/lib/tidemark/eventcenter --instance-id ingest-1`,
	}
	p := a.pipe(cmd)
	p.s.store()
	p.s.str("deadletter", `dead-letter topic (default "`+config.DefaultDeadLetterTopic+`"; config "topics.deadLetter", $TIDEMARK_DEADLETTER_TOPIC)`,
		func(c *config.Config) *string { return &c.Topics.DeadLetter })
	f := cmd.Flags()
	f.BoolVar(&noSync, "store-nosync", false, "do not fsync each append to the embedded store (survives a process crash, not a machine crash)")
	f.StringVar(&group, "group", ingest.DefaultGroup, "Kafka consumer group")
	f.StringVar(&instance, "instance-id", a.envOr("TIDEMARK_INGEST_INSTANCE", ""), "static group member id: a restart takes its partitions back at once ($TIDEMARK_INGEST_INSTANCE)")
	f.IntVar(&maxPoll, "max-poll", 2000, "records per batch (one append)")
	f.IntVar(&parts, "partitions", 0, "create the sources' missing topics with this many partitions (0: they must exist)")
	impact := lateImpactFlags(p.s)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		env, run, err := p.setup(cmd)
		if err != nil {
			return err
		}
		if parts > 0 {
			if err := ensureSourceTopics(ctx, env, int32(parts)); err != nil {
				return err
			}
		}
		st, err := openStore(ctx, env.cfg, config.StoreOptions{NoSync: noSync})
		if err != nil {
			return err
		}
		defer st.Close()
		kafkaOpts, err := env.cfg.Kafka.KafkaOptions()
		if err != nil {
			return err
		}
		onLate, closeImpact, err := impact.start(ctx, env.cfg, run.log)
		if err != nil {
			return err
		}
		defer closeImpact()
		in, err := ingest.New(ingest.Config{
			Brokers: env.cfg.Kafka.Brokers, KafkaOptions: kafkaOpts, Sources: env.sources, Store: st, Group: group, InstanceID: instance,
			DeadLetterTopic: env.cfg.Topics.DeadLetter, ProgressTopic: env.cfg.Topics.Progress,
			MaxPollRecords: maxPoll, Metrics: ingest.NewMetrics(run.prom), Logger: run.log, OnLate: onLate,
		})
		if err != nil {
			return err
		}
		run.log.Info("ingest: running", "topics", env.sources.Topics(), "store", env.cfg.Store)
		return in.Run(ctx)
	}
	return cmd
}

func (a *cli) cdcCmd() *cobra.Command {
	var (
		addr, user, password, flavor, dir, start, codec, zone string
		serverID                                              uint
		noGTID                                                bool
		lateness                                              time.Duration
		parts                                                 int
	)
	cmd := &cobra.Command{
		Use:   "cdc",
		Short: "capture MySQL/MariaDB binlog row changes of the mysql sources into Kafka",
		Long: `cdc reads the binlog of a MySQL or MariaDB server as a replica and produces the row
changes of the registered mysql sources to their Kafka topics, with progress reports
that move the sources' watermarks. It resumes from its checkpoint folder.`,
		Example: `  tidemark cdc --sources sources.yaml --mysql 127.0.0.1:3306 --mysql-user repl --flavor mariadb --checkpoint /var/lib/tidemark/cdc
  TIDEMARK_MYSQL_PASSWORD=secret tidemark cdc --start earliest --codec json/v1`,
	}
	p := a.pipe(cmd)
	f := cmd.Flags()
	f.StringVar(&addr, "mysql", a.envOr("TIDEMARK_MYSQL_ADDR", "127.0.0.1:3306"), "MySQL/MariaDB host:port ($TIDEMARK_MYSQL_ADDR)")
	f.StringVar(&user, "mysql-user", a.envOr("TIDEMARK_MYSQL_USER", "root"), "MySQL user ($TIDEMARK_MYSQL_USER)")
	f.StringVar(&password, "mysql-password", a.envOr("TIDEMARK_MYSQL_PASSWORD", ""), "MySQL password ($TIDEMARK_MYSQL_PASSWORD)")
	f.StringVar(&flavor, "flavor", a.envOr("TIDEMARK_MYSQL_FLAVOR", "mysql"), "mysql or mariadb ($TIDEMARK_MYSQL_FLAVOR)")
	f.UintVar(&serverID, "server-id", 0, "replica server id, unique on the server (0: random)")
	f.StringVar(&dir, "checkpoint", a.envOr("TIDEMARK_CDC_DIR", "cdc-state"), "folder of the checkpoint and schema history ($TIDEMARK_CDC_DIR)")
	f.StringVar(&start, "start", "current", "where to begin without checkpoint: current, earliest or FILE:POS")
	f.BoolVar(&noGTID, "no-gtid", false, "resume by binlog file and position, not GTID set")
	f.StringVar(&codec, "codec", "binary/v1", "wire codec of the records: binary/v1 or json/v1 (readable with kcat)")
	f.StringVar(&zone, "zone", "UTC", "time zone of DATETIME and DATE values")
	f.DurationVar(&lateness, "lateness", 2*time.Second, "longest transaction: progress claims trail the commits by it")
	f.IntVar(&parts, "partitions", 0, "create the sources' missing topics with this many partitions (0: they must exist)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := wire.ByName(codec)
		if err != nil {
			return usagef("--codec: %w", err)
		}
		loc, err := time.LoadLocation(zone)
		if err != nil {
			return usagef("--zone: %w", err)
		}
		env, run, err := p.setup(cmd)
		if err != nil {
			return err
		}
		kafkaOpts, err := env.cfg.Kafka.KafkaOptions()
		if err != nil {
			return err
		}
		capture, err := cdc.New(cdc.Config{
			Addr: addr, User: user, Password: password, Flavor: flavor, ServerID: uint32(serverID),
			Sources: env.sources, Brokers: env.cfg.Kafka.Brokers, KafkaOptions: kafkaOpts, Dir: dir, NoGTID: noGTID, Start: start,
			Codec: c, Zone: loc, Lateness: lateness, Partitions: int32(parts), ProgressTopic: env.cfg.Topics.Progress,
			Metrics: cdc.NewMetrics(run.prom), Logger: run.log,
		})
		if err != nil {
			return err
		}
		return capture.Run(cmd.Context())
	}
	return cmd
}

func (a *cli) forwardCmd() *cobra.Command {
	var (
		httpAddr, codec string
		prefetch, parts int
	)
	cmd := &cobra.Command{
		Use:   "forward",
		Short: "forward HTTP calls (POST /v1/messages/{source}) and RabbitMQ queues into Kafka",
		Long: `forward accepts the calls of the registered http sources (POST /v1/messages/{source})
and consumes the queues of the rabbitmq sources, producing each message to its Kafka
topic; a message is acknowledged only once Kafka has it.`,
		Example: `  tidemark forward --sources sources.yaml --http :8081 --amqp amqp://guest:guest@127.0.0.1:5672/
  tidemark forward --http off --metrics :9465`,
	}
	p := a.pipe(cmd)
	p.s.amqp("amqp", `RabbitMQ URL of the rabbitmq sources' queues`)
	f := cmd.Flags()
	f.StringVar(&httpAddr, "http", "127.0.0.1:8081", `address of the HTTP endpoint ("off": none)`)
	f.IntVar(&prefetch, "prefetch", 512, "RabbitMQ messages in flight per queue")
	f.StringVar(&codec, "codec", "json/v1", "wire codec of the records: json/v1 or binary/v1")
	f.IntVar(&parts, "partitions", 0, "create the sources' missing topics with this many partitions (0: they must exist)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := wire.ByName(codec)
		if err != nil {
			return usagef("--codec: %w", err)
		}
		env, run, err := p.setup(cmd)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		if parts > 0 {
			if err := ensureSourceTopics(ctx, env, int32(parts)); err != nil {
				return err
			}
		}
		if len(env.sources.ByKind(source.KindRabbitMQ)) > 0 && env.cfg.AMQP.URL == "" {
			return usagef("the registry has rabbitmq sources: set --amqp, $TIDEMARK_AMQP_URL or the config's amqp.url")
		}
		kopts, err := env.cfg.Kafka.ClientOptions()
		if err != nil {
			return err
		}
		cl, err := kgo.NewClient(append(kopts, kgo.ProducerLinger(time.Millisecond))...)
		if err != nil {
			return err
		}
		defer cl.Close()
		fw, err := forward.New(forward.Config{Sources: env.sources, Client: cl, Codec: c, ProgressTopic: env.cfg.Topics.Progress, Metrics: forward.NewMetrics(run.prom), Logger: run.log})
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		goRun := func(f func() error) {
			wg.Go(func() {
				if err := f(); err != nil {
					errs <- err
					cancel()
				}
			})
		}
		goRun(func() error { return fw.Run(ctx) })
		if httpAddr != "off" && len(env.sources.ByKind(source.KindHTTP)) > 0 {
			ln, err := net.Listen("tcp", httpAddr)
			if err != nil {
				cancel()
				wg.Wait()
				return fmt.Errorf("--http: %w", err)
			}
			srv := &http.Server{Handler: fw.Handler(), ReadHeaderTimeout: 10 * time.Second}
			run.log.Info("forward: HTTP endpoint", "addr", ln.Addr().String())
			goRun(func() error {
				if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
					return err
				}
				return nil
			})
			context.AfterFunc(ctx, func() {
				sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer scancel()
				srv.Shutdown(sctx)
			})
		}
		if len(env.sources.ByKind(source.KindRabbitMQ)) > 0 {
			goRun(func() error {
				return fw.ConsumeRabbitMQ(ctx, forward.RabbitMQ{URL: env.cfg.AMQP.URL, Prefetch: prefetch})
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	return cmd
}
