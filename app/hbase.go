package app

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidemark-dev/tidemark/app/config"
	"github.com/tidemark-dev/tidemark/eventcenter/hbase"
)

func (a *cli) hbaseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "hbase",
		Short:   "create or drop the event center's HBase namespace",
		Example: "  tidemark hbase init --store hbase://zk1,zk2/tidemark --buckets 32\n  tidemark hbase drop --store hbase://127.0.0.1:2181/scratch --yes",
	}
	cmd.AddCommand(a.hbaseInitCmd(), a.hbaseDropCmd())
	return cmd
}

// hbaseStore is the --store of an hbase command, with the deprecated --zk
// and --namespace of the old form (each overrides its part of the URL).
type hbaseStore struct {
	s             *settings
	zk, namespace string
}

func (a *cli) hbaseStore(cmd *cobra.Command) *hbaseStore {
	h := &hbaseStore{s: a.settings(cmd)}
	h.s.store()
	cmd.Flags().StringVar(&h.zk, "zk", "", "deprecated: the quorum part of --store hbase://ZK/NAMESPACE")
	cmd.Flags().StringVar(&h.namespace, "namespace", "", "deprecated: the namespace part of --store hbase://ZK/NAMESPACE")
	cmd.Flags().MarkHidden("zk")
	cmd.Flags().MarkHidden("namespace")
	return h
}

// url is the HBase store URL of the command; any other kind is a usage error.
func (h *hbaseStore) url(cmd *cobra.Command) (config.StoreURL, error) {
	cfg, err := h.s.config()
	if err != nil {
		return config.StoreURL{}, err
	}
	u, err := config.ParseStore(cfg.Store)
	if err != nil {
		return u, usageError{err}
	}
	if cmd.Flags().Changed("zk") || cmd.Flags().Changed("namespace") {
		h.s.a.deprecated("--zk and --namespace are parts of --store hbase://ZK/NAMESPACE")
		if u.Kind != config.HBase {
			u = config.StoreURL{Kind: config.HBase}
		}
		if h.zk != "" {
			u.ZooKeeper = h.zk
		}
		if h.namespace != "" {
			u.Namespace = h.namespace
		}
	}
	if u.Kind != config.HBase {
		return u, usagef("--store %s is not an HBase store (hbase://ZK1,ZK2/NAMESPACE)", u)
	}
	return u, nil
}

func (a *cli) hbaseInitCmd() *cobra.Command {
	var (
		retention, dial  time.Duration
		buckets, regions int
		compress         string
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "create the event center's HBase namespace and tables if absent (idempotent); show the layout",
		Example: `  tidemark hbase init --store hbase://zk1,zk2/tidemark
  tidemark hbase init --store hbase://127.0.0.1:2181/tidemark --retention 720h --buckets 32 --compression SNAPPY`,
	}
	h := a.hbaseStore(cmd)
	f := cmd.Flags()
	f.DurationVar(&retention, "retention", 0, "hot retention (TTL of events, time and index); 0 keeps the recorded one (forever for a new namespace, until the cold tier moves old events out: a TTL deletes what no tier holds)")
	f.IntVar(&buckets, "buckets", 0, "time-table buckets of a new namespace (0: keep the recorded count, 16 for a new namespace); cannot change later")
	f.IntVar(&regions, "regions", 0, "regions to pre-split new tables into (default 16)")
	f.StringVar(&compress, "compression", "", `compression of new tables' families, e.g. SNAPPY (default NONE)`)
	f.DurationVar(&dial, "dial-timeout", hbase.DefaultDialTimeout, "fail if HBase does not answer within this")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		u, err := h.url(cmd)
		if err != nil {
			return err
		}
		start := time.Now()
		cfg := u.HBaseConfig()
		cfg.Retention, cfg.Buckets, cfg.Regions, cfg.Compression, cfg.DialTimeout = retention, buckets, regions, compress, dial
		config.QuietHBaseClient()
		s, err := hbase.Open(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		defer s.Close()
		fmt.Fprintf(a.stdout, "%s ready in %v: tables events, time, index, marks, meta; %d time buckets; retention %v (horizon now %s)\n",
			u, time.Since(start).Round(time.Millisecond), s.Buckets(), s.Retention(), s.Horizon(time.Now()).UTC().Format(time.RFC3339))
		return nil
	}
	return cmd
}

func (a *cli) hbaseDropCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:     "drop",
		Short:   "delete the event center's HBase namespace with all its data (asks for --yes)",
		Example: "  tidemark hbase drop --store hbase://127.0.0.1:2181/scratch --yes",
	}
	h := a.hbaseStore(cmd)
	cmd.Flags().BoolVar(&yes, "yes", false, "really delete every table of the namespace and its data")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		u, err := h.url(cmd)
		if err != nil {
			return err
		}
		if !yes {
			return usagef("hbase drop deletes every event of %s: add --yes to do it", u)
		}
		config.QuietHBaseClient()
		if err := hbase.DropNamespace(cmd.Context(), u.HBaseConfig()); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "%s dropped\n", u)
		return nil
	}
	return cmd
}
