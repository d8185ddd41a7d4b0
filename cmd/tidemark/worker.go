package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/source"
)

// runnable is a job this binary can run: its constructor (taking extra
// options: outputs, level) and the secondary indexes its lookups need.
type runnable struct {
	New     func(...job.Option) (*job.Job, error)
	Indexes []eventcenter.Index
}

// jobs are the jobs this binary can run, by name. A job package adds itself here.
var jobs = map[string]runnable{
	credit.Name: {New: credit.New, Indexes: credit.Indexes()},
}

func init() {
	register(command{
		name:    "worker",
		summary: "run one job live: consume its trigger topic, write its outputs",
		run:     runWorker,
	})
}

func runWorker(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var names []string
	for n := range jobs {
		names = append(names, n)
	}
	sort.Strings(names)
	var (
		jobName  = fs.String("job", credit.Name, "job to run: "+strings.Join(names, ", "))
		brokers  = fs.String("brokers", envOr("TIDEMARK_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka seed brokers, comma separated ($TIDEMARK_KAFKA_BROKERS)")
		topic    = fs.String("topic", "", "trigger topic (default: the source registry's, else the trigger source name)")
		group    = fs.String("group", "", "consumer group (default tidemark.job.<job>)")
		storeDir = fs.String("store", envOr("TIDEMARK_STORE_DIR", "data/eventcenter"), "embedded event center folder ($TIDEMARK_STORE_DIR)")
		sources  = fs.String("sources", envOr("TIDEMARK_SOURCES", ""), "source registry file (YAML/JSON) ($TIDEMARK_SOURCES)")
		level    = fs.String("level", "", "override the job's consistency level: eventual, trigger-strong, fetch-strong, fetch-strong-no-delay")
		wait     = fs.Duration("wait-timeout", 0, "override the job's watermark wait timeout")
		features = fs.Bool("feature-store", true, "write features to the event center (source feature.<job>)")
		amqpURL  = fs.String("amqp-url", envOr("TIDEMARK_AMQP_URL", ""), "RabbitMQ URL; empty: no RabbitMQ output ($TIDEMARK_AMQP_URL)")
		exchange = fs.String("exchange", "tidemark.features", "RabbitMQ exchange (topic, declared durable), routing key: the job name")
		kafkaOut = fs.String("kafka-output", "", "Kafka topic for the records (JSON); empty: none")
		batch    = fs.Int("max-batch", 500, "most records handled at once")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	def, ok := jobs[*jobName]
	if !ok {
		return fmt.Errorf("unknown job %q (known: %s)", *jobName, strings.Join(names, ", "))
	}
	store, err := embedded.Open(embedded.Config{Dir: *storeDir})
	if err != nil {
		return err
	}
	defer store.Close()

	var opts []job.Option
	if *level != "" {
		l, err := job.ParseLevel(*level)
		if err != nil {
			return err
		}
		opts = append(opts, job.Consistency(l))
	}
	if *wait > 0 {
		opts = append(opts, job.WaitTimeout(*wait))
	}
	var outs []job.Output
	if *features {
		outs = append(outs, outputs.FeatureStore(store, ""))
	}
	if *amqpURL != "" {
		rmq, err := outputs.RabbitMQ(outputs.RabbitMQConfig{URL: *amqpURL, Exchange: *exchange, Kind: "topic"})
		if err != nil {
			return err
		}
		defer rmq.Close()
		outs = append(outs, rmq)
	}
	brokerList := strings.Split(*brokers, ",")
	if *kafkaOut != "" {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokerList...))
		if err != nil {
			return err
		}
		defer cl.Close()
		outs = append(outs, outputs.Kafka(cl, *kafkaOut))
	}
	if len(outs) == 0 {
		return errors.New("no outputs: enable -feature-store, -amqp-url or -kafka-output")
	}
	opts = append(opts, job.Outputs(outs...))
	j, err := def.New(opts...)
	if err != nil {
		return err
	}
	for _, ix := range def.Indexes {
		if err := store.DeclareIndex(ctx, ix); err != nil {
			return err
		}
	}
	cfg := live.Config{
		Brokers: brokerList, Topic: *topic, Group: *group, Store: store,
		Params: params.NewEventCenter(store, nil), MaxBatch: *batch,
	}
	if *sources != "" {
		if cfg.Sources, err = source.Load(*sources); err != nil {
			return err
		}
	}
	w, err := live.New(j, cfg)
	if err != nil {
		return err
	}
	slog.Info("worker", "job", j.Name(), "version", j.Version(), "level", j.Level().String(), "outputs", len(outs), "store", *storeDir)
	start := time.Now()
	err = w.Run(ctx)
	s := w.Stats()
	slog.Info("worker stopped", "records", s.Records, "runs", s.Runs, "ok", s.ByOutcome[job.OK], "stale", s.ByOutcome[job.Stale], "failed", s.ByOutcome[job.Failed], "up", time.Since(start).Round(time.Second))
	return err
}
