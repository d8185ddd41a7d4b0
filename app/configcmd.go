package app

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidemark-dev/tidemark/app/config"
)

func (a *cli) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "check the configuration: reach every configured service",
		Long: `Every command reads one configuration: an optional YAML file (--config or
$TIDEMARK_CONFIG), overridden by environment variables, overridden by flags.
The file's keys:

  store: pebble://.tidemark/eventcenter    # or hbase://zk1,zk2/namespace
  cold: ""                                 # the cold tier: file://PATH or s3://BUCKET/PREFIX
  hotWindow: 768h                          # with a cold tier: what the hot store keeps (32 days)
  sources: sources.yaml                    # the source registry
  kafka:
    brokers: [127.0.0.1:9092]
    tls: {enabled: false, cert: "", key: "", ca: "", serverName: ""}
    sasl: {mechanism: "", user: "", password: ""}   # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
  temporal:
    address: 127.0.0.1:7233
    namespace: default
    apiKey: ""                             # Temporal Cloud API key
    tls: {enabled: false, cert: "", key: "", ca: "", serverName: ""}
  s3:                                      # without keys: the AWS default credential chain
    endpoint: http://127.0.0.1:7070
    region: us-east-1
    accessKey: ""
    secretKey: ""
    bucket: tidemark
  amqp:
    url: amqp://guest:guest@127.0.0.1:5672/
  topics:                                  # one set of names per deployment on a Kafka cluster
    progress: tidemark.progress            # progress reports of cdc and forward to ingest
    deadLetter: tidemark.deadletter        # ingest's; live's are <deadLetter>.<job>

The environment variables: ` + strings.Join(config.Env(), ", ") + `.`,
		Example: "  tidemark config check --config tidemark.yaml\n  TIDEMARK_STORE=hbase://127.0.0.1:2181/tidemark tidemark config check",
	}
	cmd.AddCommand(a.configCheckCmd())
	return cmd
}

func (a *cli) configCheckCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "check",
		Short: "connect to each configured service and print, per service, OK or why not",
		Long: `check reaches every configured service as the commands do — the event center
(opening it, which creates it if absent), the source registry, Kafka, Temporal
(and its namespace), S3 and RabbitMQ (when configured) — and prints one line per
service. It exits 1 if any fails.`,
		Example: "  tidemark config check\n  tidemark config check --config prod.yaml --timeout 5s",
	}
	s := a.settings(cmd)
	s.store()
	s.sources("")
	s.brokers()
	s.temporal()
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long each service may take to answer")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := s.config()
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		failed := 0
		for _, r := range config.Check(cmd.Context(), cfg, timeout) {
			status := "OK"
			switch {
			case r.Skipped:
				status = "not configured"
			case r.Err != nil:
				status = "FAILED: " + oneLine(r.Err.Error())
				failed++
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Service, r.Target, status)
		}
		tw.Flush()
		if failed > 0 {
			return fmt.Errorf("%d of the configured services failed the check", failed)
		}
		return nil
	}
	return cmd
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
