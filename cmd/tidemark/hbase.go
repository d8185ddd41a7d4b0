package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidemark-dev/tidemark/eventcenter/hbase"
)

func init() {
	register(command{name: "hbase init", summary: "create the event center's HBase namespace and tables if absent (idempotent); show the layout", run: runHBaseInit})
	register(command{name: "hbase drop", summary: "delete the event center's HBase namespace with all its data (asks for -yes)", run: runHBaseDrop})
}

// hbaseFlags are the flags of the hbase subcommands.
type hbaseFlags struct {
	zk, namespace *string
	dialTimeout   *time.Duration
}

func addHBaseFlags(fs *flag.FlagSet) hbaseFlags {
	return hbaseFlags{
		zk:          fs.String("zk", envOr(hbase.EnvZooKeeper, hbase.DefaultZooKeeper), "ZooKeeper quorum of the HBase cluster ($"+hbase.EnvZooKeeper+")"),
		namespace:   fs.String("namespace", hbase.DefaultNamespace, "HBase namespace of the event center"),
		dialTimeout: fs.Duration("dial-timeout", hbase.DefaultDialTimeout, "fail if HBase does not answer within this"),
	}
}

func (f hbaseFlags) config() hbase.Config {
	logrus.SetLevel(logrus.WarnLevel) // gohbase logs every region it finds at info
	return hbase.Config{ZooKeeper: *f.zk, Namespace: *f.namespace, DialTimeout: *f.dialTimeout}
}

func runHBaseInit(ctx context.Context, fs *flag.FlagSet, args []string) error {
	hf := addHBaseFlags(fs)
	var (
		retention = fs.Duration("retention", 0, "hot retention (TTL of events, time and index); 0 keeps the recorded one (32 days for a new namespace)")
		buckets   = fs.Int("buckets", 0, "time-table buckets of a new namespace (0: keep the recorded count, 16 for a new namespace); cannot change later")
		regions   = fs.Int("regions", 0, "regions to pre-split new tables into (default 16)")
		compress  = fs.String("compression", "", `compression of new tables' families, e.g. SNAPPY (default NONE)`)
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := hf.config()
	cfg.Retention, cfg.Buckets, cfg.Regions, cfg.Compression = *retention, *buckets, *regions, *compress
	start := time.Now()
	s, err := hbase.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Printf("namespace %s on ZooKeeper %s ready in %v: tables events, time, index, marks, meta; %d time buckets; retention %v (horizon now %s)\n",
		*hf.namespace, *hf.zk, time.Since(start).Round(time.Millisecond), s.Buckets(), s.Retention(),
		s.Horizon(time.Now()).UTC().Format(time.RFC3339))
	return nil
}

func runHBaseDrop(ctx context.Context, fs *flag.FlagSet, args []string) error {
	hf := addHBaseFlags(fs)
	yes := fs.Bool("yes", false, "really delete every table of the namespace and its data")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*yes {
		return errors.New("hbase drop deletes every event of namespace " + *hf.namespace + ": add -yes to do it")
	}
	if err := hbase.DropNamespace(ctx, hf.config()); err != nil {
		return err
	}
	fmt.Printf("namespace %s dropped\n", *hf.namespace)
	return nil
}
