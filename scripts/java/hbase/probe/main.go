// Command probe is the readiness check of the test HBase started by
// scripts/services.d/hbase.sh: it succeeds only when a gohbase client can
// reach the master (list tables), create the probe table if it is missing,
// and put then get a cell through the region server.
//
// Usage: probe [-zk 127.0.0.1:2181] [-table tidemark_probe] [-timeout 20s]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tsuna/gohbase"
	"github.com/tsuna/gohbase/hrpc"
)

func main() {
	zk := flag.String("zk", "127.0.0.1:2181", "ZooKeeper quorum of the HBase cluster")
	table := flag.String("table", "tidemark_probe", "table used for the put/get round trip")
	timeout := flag.Duration("timeout", 20*time.Second, "overall deadline")
	flag.Parse()
	logrus.SetLevel(logrus.ErrorLevel) // gohbase logs every retry otherwise

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := probe(ctx, *zk, *table); err != nil {
		fmt.Fprintln(os.Stderr, "hbase probe:", err)
		os.Exit(1)
	}
}

func probe(ctx context.Context, zk, table string) error {
	opts := []gohbase.Option{gohbase.ZookeeperTimeout(5 * time.Second), gohbase.RegionLookupTimeout(10 * time.Second)}
	admin := gohbase.NewAdminClient(zk, opts...)

	ltn, err := hrpc.NewListTableNames(ctx, hrpc.ListRegex("^"+table+"$"))
	if err != nil {
		return err
	}
	names, err := admin.ListTableNames(ltn)
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	if len(names) == 0 {
		ct := hrpc.NewCreateTable(ctx, []byte(table), map[string]map[string]string{"f": nil})
		if err := admin.CreateTable(ct); err != nil && !strings.Contains(err.Error(), "TableExistsException") {
			return fmt.Errorf("create table %s: %w", table, err)
		}
	}

	client := gohbase.NewClient(zk, opts...)
	defer client.Close()
	want := []byte(strconv.FormatInt(time.Now().UnixNano(), 10))
	put, err := hrpc.NewPutStr(ctx, table, "probe", map[string]map[string][]byte{"f": {"q": want}})
	if err != nil {
		return err
	}
	if _, err := client.Put(put); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	get, err := hrpc.NewGetStr(ctx, table, "probe")
	if err != nil {
		return err
	}
	res, err := client.Get(get)
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	for _, c := range res.Cells {
		if string(c.Family) == "f" && string(c.Qualifier) == "q" && bytes.Equal(c.Value, want) {
			return nil
		}
	}
	return fmt.Errorf("get returned %d cells, not the value just put", len(res.Cells))
}
