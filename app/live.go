package app

import (
	"errors"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/app/config"
	"github.com/tidemark-dev/tidemark/calls"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/params/notify"
	"github.com/tidemark-dev/tidemark/source"
)

func (a *cli) liveCmd() *cobra.Command {
	var (
		jobName, topic, group, level, exchange, kafkaOut string
		resultsTopic                                     string
		wait                                             time.Duration
		features                                         bool
		batch                                            int
		logs                                             logFlags
		metrics                                          metricsFlag
	)
	cmd := &cobra.Command{
		Use:   "live",
		Short: "run one job live: consume its trigger topic, write its outputs",
		Long: `live runs one job live: it consumes the job's trigger topic in a consumer group
(run N processes for N times the throughput), stores each trigger event in the
event center, runs the job and writes its outputs. Share the event center between
processes with an HBase store (--store hbase://…).`,
		Example: `  tidemark live --job credit-features --store hbase://zk1,zk2/tidemark --sources sources.yaml
  tidemark live --job credit-features --amqp-url amqp://guest:guest@127.0.0.1:5672/ --feature-store=false`,
	}
	s := a.settings(cmd)
	f := cmd.Flags()
	a.jobFlag(cmd, &jobName, "job to run")
	s.store()
	s.brokers()
	s.sources("")
	f.StringVar(&topic, "topic", "", "trigger topic (default: the source registry's, else the trigger source's name)")
	f.StringVar(&group, "group", "", "consumer group (default tidemark.job.<job>)")
	f.StringVar(&level, "level", "", "override the job's consistency level: eventual, trigger-strong, fetch-strong, fetch-strong-no-delay")
	f.DurationVar(&wait, "wait-timeout", 0, "override the job's watermark wait timeout")
	f.BoolVar(&features, "feature-store", true, "write features to the event center (source feature.<job>)")
	s.amqp("amqp-url", `RabbitMQ URL of the records; "" none`)
	s.str("deadletter", `dead-letter topic prefix: the triggers the job cannot handle go to PREFIX.<job> (default "`+
		config.DefaultDeadLetterTopic+`"; config "topics.deadLetter", $TIDEMARK_DEADLETTER_TOPIC)`,
		func(c *config.Config) *string { return &c.Topics.DeadLetter })
	f.StringVar(&exchange, "exchange", "tidemark.features", "RabbitMQ exchange (topic, declared durable); routing key: the job name")
	f.StringVar(&kafkaOut, "kafka-output", "", `Kafka topic of the records (JSON); "" none`)
	f.IntVar(&batch, "max-batch", 500, "most records handled at once")
	f.StringVar(&resultsTopic, "call-results-topic", calls.DefaultResultsTopic, "Kafka topic of call results, for a job triggered by its call source (call.<job>)")
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
		var opts []job.Option
		if level != "" {
			l, err := job.ParseLevel(level)
			if err != nil {
				return usageError{err}
			}
			opts = append(opts, job.Consistency(l))
		}
		if wait > 0 {
			opts = append(opts, job.WaitTimeout(wait))
		}
		if _, err := a.job(jobName); err != nil { // a usage error before anything opens
			return err
		}
		if _, err := metrics.registry(ctx, log); err != nil {
			return err
		}
		store, err := openStore(ctx, cfg, config.StoreOptions{})
		if err != nil {
			return err
		}
		defer store.Close()
		var outs []job.Output
		if features {
			outs = append(outs, outputs.FeatureStore(store, ""))
		}
		if cfg.AMQP.URL != "" {
			rmq, err := outputs.RabbitMQ(outputs.RabbitMQConfig{URL: cfg.AMQP.URL, Exchange: exchange, Kind: "topic"})
			if err != nil {
				return err
			}
			defer rmq.Close()
			outs = append(outs, rmq)
		}
		if kafkaOut != "" {
			kopts, err := cfg.Kafka.ClientOptions()
			if err != nil {
				return err
			}
			cl, err := kgo.NewClient(kopts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			outs = append(outs, outputs.Kafka(cl, kafkaOut))
		}
		if base, _ := a.job(jobName); base.Triggered(calls.Source(jobName)) {
			// A callable job answers its calls (package calls).
			cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
			if err != nil {
				return err
			}
			defer cl.Close()
			co, err := calls.NewOutput(calls.OutputConfig{Store: store, Client: cl, ResultsTopic: resultsTopic, AMQPURL: cfg.AMQP.URL})
			if err != nil {
				return err
			}
			defer co.Close()
			outs = append(outs, co)
		}
		if len(outs) == 0 {
			return usageError{errors.New("no outputs: enable --feature-store, --amqp-url or --kafka-output")}
		}
		j, err := a.job(jobName, append(opts, job.Outputs(outs...))...)
		if err != nil {
			return err
		}
		if err := a.declareIndexes(ctx, store); err != nil {
			return err
		}
		if err := a.publishJobs(ctx, store, log); err != nil {
			return err
		}
		kafkaOpts, err := cfg.Kafka.KafkaOptions()
		if err != nil {
			return err
		}
		lc := live.Config{
			Brokers: cfg.Kafka.Brokers, KafkaOptions: kafkaOpts, Topic: topic, Group: group, Store: store,
			Params: params.NewEventCenter(store, nil), MaxBatch: batch, Logger: log,
			DeadLetterTopic: live.DeadLetterTopic(cfg.Topics.DeadLetter, j.Name()),
			// Approved parameter versions arrive on the control topic
			// within a second (the workers publish them); a 10 s poll backs it.
			ParamsTopic: notify.DefaultTopic,
		}
		if cfg.Sources != "" {
			if lc.Sources, err = source.Load(cfg.Sources); err != nil {
				return err
			}
		}
		w, err := live.New(j, lc)
		if err != nil {
			return err
		}
		log.Info("live", "job", j.Name(), "version", j.Version(), "level", j.Level().String(), "outputs", len(outs), "store", cfg.Store)
		start := time.Now()
		err = w.Run(ctx)
		st := w.Stats()
		log.Info("live stopped", "records", st.Records, "runs", st.Runs, "ok", st.ByOutcome[job.OK], "stale", st.ByOutcome[job.Stale],
			"failed", st.ByOutcome[job.Failed], "up", time.Since(start).Round(time.Second))
		return err
	}
	return cmd
}
