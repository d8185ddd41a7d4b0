package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/cdc"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

func init() {
	register(command{
		name:    "cdc",
		summary: "capture MySQL/MariaDB binlog row changes of the mysql sources into Kafka",
		run:     runCDC,
	})
}

func runCDC(ctx context.Context, fs *flag.FlagSet, args []string) error {
	pf := addPipeFlags(fs)
	var (
		addr       = fs.String("mysql", envOr("TIDEMARK_MYSQL_ADDR", "127.0.0.1:3306"), "MySQL/MariaDB host:port ($TIDEMARK_MYSQL_ADDR)")
		user       = fs.String("mysql-user", envOr("TIDEMARK_MYSQL_USER", "root"), "MySQL user ($TIDEMARK_MYSQL_USER)")
		password   = fs.String("mysql-password", envOr("TIDEMARK_MYSQL_PASSWORD", ""), "MySQL password ($TIDEMARK_MYSQL_PASSWORD)")
		flavor     = fs.String("flavor", envOr("TIDEMARK_MYSQL_FLAVOR", "mysql"), "mysql or mariadb ($TIDEMARK_MYSQL_FLAVOR)")
		serverID   = fs.Uint("server-id", 0, "replica server id, unique on the server (0: random)")
		dir        = fs.String("checkpoint", envOr("TIDEMARK_CDC_DIR", "cdc-state"), "folder of the checkpoint and schema history ($TIDEMARK_CDC_DIR)")
		start      = fs.String("start", "current", `where to begin without checkpoint: current, earliest or FILE:POS`)
		noGTID     = fs.Bool("no-gtid", false, "resume by binlog file and position, not GTID set")
		codec      = fs.String("codec", "binary/v1", "wire codec of the records: binary/v1 or json/v1 (readable with kcat)")
		zone       = fs.String("zone", "UTC", "time zone of DATETIME and DATE values")
		lateness   = fs.Duration("lateness", 2*time.Second, "longest transaction: progress claims trail the commits by it")
		partitions = fs.Int("partitions", 0, "create the sources' missing topics with this many partitions (0: they must exist)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, reg, err := pf.setup()
	if err != nil {
		return err
	}
	c, err := wire.ByName(*codec)
	if err != nil {
		return fmt.Errorf("-codec: %w", err)
	}
	loc, err := time.LoadLocation(*zone)
	if err != nil {
		return fmt.Errorf("-zone: %w", err)
	}
	prom, err := pf.registry(ctx, log)
	if err != nil {
		return err
	}
	capture, err := cdc.New(cdc.Config{
		Addr: *addr, User: *user, Password: *password, Flavor: *flavor, ServerID: uint32(*serverID),
		Sources: reg, Brokers: pf.brokerList(), Dir: *dir, NoGTID: *noGTID, Start: *start,
		Codec: c, Zone: loc, Lateness: *lateness, Partitions: int32(*partitions),
		Metrics: cdc.NewMetrics(prom), Logger: log,
	})
	if err != nil {
		return err
	}
	return capture.Run(ctx)
}

// ensureSourceTopics creates the registry's missing topics and the progress
// and dead-letter topics.
func ensureSourceTopics(ctx context.Context, brokers []string, reg *source.Config, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := source.EnsureTopics(ctx, cl, partitions, reg.Topics()...); err != nil {
		return err
	}
	return source.EnsureTopics(ctx, cl, 1, source.ProgressTopic, "tidemark.deadletter")
}
