package hbase_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/tsuna/gohbase"
	"github.com/tsuna/gohbase/filter"
	"github.com/tsuna/gohbase/hrpc"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/hbase"
	"github.com/tidemark-dev/tidemark/eventcenter/storetest"
	"github.com/tidemark-dev/tidemark/internal/testenv"
)

// Creating a namespace with its five pre-split tables takes seconds, and so
// does dropping it. The suite opens a fresh store per case, so the tests
// keep a pool of namespaces: a case takes one, and when it ends its rows are
// deleted and the namespace goes back to the pool; TestMain drops them all.

var (
	nsSeq  atomic.Int64
	poolMu sync.Mutex
	pool   []string // emptied namespaces, ready for a case
	made   []string // every namespace made, dropped at the end
)

func TestMain(m *testing.M) {
	logrus.SetLevel(logrus.WarnLevel) // gohbase logs every region it finds at info
	code := m.Run()
	if zk := os.Getenv(hbase.EnvZooKeeper); zk != "" && len(made) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		var wg sync.WaitGroup
		for _, ns := range made {
			wg.Go(func() {
				if err := hbase.DropNamespace(ctx, hbase.Config{ZooKeeper: zk, Namespace: ns}); err != nil {
					fmt.Fprintf(os.Stderr, "dropping test namespace %s: %v\n", ns, err)
				}
			})
		}
		wg.Wait()
		cancel()
	}
	os.Exit(code)
}

func newNamespace() string {
	ns := fmt.Sprintf("tmtest_%d_%d_%d", os.Getpid(), time.Now().Unix()%100000, nsSeq.Add(1))
	poolMu.Lock()
	made = append(made, ns)
	poolMu.Unlock()
	return ns
}

// testConfig returns the Config of an empty namespace on the harness's
// HBase, emptied again and pooled when the test ends.
func testConfig(t testing.TB) hbase.Config {
	t.Helper()
	zk := testenv.HBaseZK(t)
	poolMu.Lock()
	var ns string
	if n := len(pool); n > 0 {
		ns, pool = pool[n-1], pool[:n-1]
	}
	poolMu.Unlock()
	if ns == "" {
		ns = newNamespace()
	}
	cfg := hbase.Config{
		ZooKeeper: zk,
		Namespace: ns,
		// The suite's events are far older than its clock: no horizon.
		Retention: hbase.Forever,
		// Other processes are not there: the wait for them can be short,
		// and known-at reads need no lag.
		IndexRefresh: 20 * time.Millisecond,
		SoleWriter:   true,
	}
	t.Cleanup(func() {
		if err := emptyNamespace(cfg); err != nil {
			t.Logf("emptying namespace %s: %v (not reused)", ns, err)
			return
		}
		poolMu.Lock()
		pool = append(pool, ns)
		poolMu.Unlock()
	})
	return cfg
}

// emptyNamespace deletes every row of the namespace's tables.
func emptyNamespace(cfg hbase.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := gohbase.NewClient(cfg.ZooKeeper)
	defer c.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, table := range []string{"events", "time", "index", "marks", "meta"} {
		name := []byte(cfg.Namespace + ":" + table)
		sc, err := hrpc.NewScan(ctx, name, hrpc.Filters(filter.NewList(filter.MustPassAll,
			filter.NewFirstKeyOnlyFilter(), filter.NewKeyOnlyFilter(false))), hrpc.NumberOfRows(1000))
		if err != nil {
			return err
		}
		scanner := c.Scan(sc)
		for {
			r, err := scanner.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				scanner.Close()
				return fmt.Errorf("scan %s: %w", name, err)
			}
			row := r.Cells[0].Row
			wg.Go(func() {
				d, err := hrpc.NewDel(ctx, name, row, nil)
				if err == nil {
					_, err = c.Delete(d)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		scanner.Close()
	}
	wg.Wait()
	// A delete masks the cells of its row up to its timestamp (the region
	// server's clock, in milliseconds): let that millisecond pass.
	time.Sleep(5 * time.Millisecond)
	return errors.Join(errs...)
}

func open(t testing.TB, cfg hbase.Config) *hbase.Store {
	t.Helper()
	start := time.Now()
	s, err := hbase.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Logf("Open of namespace %s took %v", cfg.Namespace, d)
	}
	return s
}

// TestStore runs the whole conformance suite against the real HBase, the
// model test at its default size (about 5 minutes here; -short or
// STORETEST_OPS shrink it).
func TestStore(t *testing.T) {
	zk := testenv.HBaseZK(t)
	storetest.RunWith(t, func(t testing.TB, now func() time.Time) eventcenter.Store {
		cfg := testConfig(t)
		cfg.Now = now
		return open(t, cfg)
	}, storetest.Options{
		// A retention is part of the layout's TTLs: a namespace of its own,
		// not pooled.
		Retention: func(t testing.TB, now func() time.Time, retention time.Duration) eventcenter.Store {
			return open(t, hbase.Config{ZooKeeper: zk, Namespace: newNamespace(), Retention: retention,
				IndexRefresh: 20 * time.Millisecond, SoleWriter: true, Now: now})
		},
	})
}

// TestAsOfBatchPaths runs the batch cases of the suite over the other ways
// AsOfBatch reads: with scanners only (no single-RPC reads), and with runs
// that cross regions, as they do when the table's regions are not the ones
// the store's Config.Regions assumes (a namespace pre-split into 16 regions
// opened with Regions 3, or regions split since).
func TestAsOfBatchPaths(t *testing.T) {
	zk := testenv.HBaseZK(t)
	for _, c := range []struct {
		name     string
		scanners bool
		regions  int
	}{{"scanners", true, 0}, {"misaligned-regions", false, 3}, {"misaligned-regions-scanners", true, 3}} {
		t.Run(c.name, func(t *testing.T) {
			storetest.RunBatch(t, func(t testing.TB, now func() time.Time) eventcenter.Store {
				cfg := testConfig(t)
				cfg.Now, cfg.Regions = now, c.regions
				s := open(t, cfg)
				if c.scanners {
					s.UseBatchScanners()
				}
				return s
			}, storetest.Options{
				Retention: func(t testing.TB, now func() time.Time, retention time.Duration) eventcenter.Store {
					s := open(t, hbase.Config{ZooKeeper: zk, Namespace: newNamespace(), Retention: retention,
						IndexRefresh: 20 * time.Millisecond, SoleWriter: true, Now: now})
					if c.scanners {
						s.UseBatchScanners()
					}
					return s
				},
			})
		})
	}
}

// TestSchema: Open is idempotent, keeps the recorded bucket count, refuses
// another, and applies a new retention to the tables.
func TestSchema(t *testing.T) {
	// A namespace of its own: the pooled ones keep everything.
	cfg := hbase.Config{ZooKeeper: testenv.HBaseZK(t), Namespace: newNamespace(), IndexRefresh: 20 * time.Millisecond}
	cfg.Buckets = 8
	s := open(t, cfg)
	if s.Buckets() != 8 || s.Retention() != 0 {
		t.Errorf("new namespace: %d buckets, retention %v; want the default, forever (0)", s.Buckets(), s.Retention())
	}
	now := time.Now()
	if h := s.Horizon(now); !h.IsZero() {
		t.Errorf("Horizon of a namespace that keeps everything = %v, want none", h)
	}
	closeStore(t, s)

	again := cfg
	again.Buckets = 0 // adopt
	s = open(t, again)
	if s.Buckets() != 8 {
		t.Errorf("reopened with Buckets 0: %d buckets, want the recorded 8", s.Buckets())
	}
	closeStore(t, s)

	other := cfg
	other.Buckets = 16
	if s, err := hbase.Open(t.Context(), other); err == nil {
		closeStore(t, s)
		t.Error("Open with another bucket count: no error")
	} else if !strings.Contains(err.Error(), "cannot change") {
		t.Errorf("Open with another bucket count: %v", err)
	}

	longer := cfg
	longer.Retention = 90 * 24 * time.Hour
	s = open(t, longer)
	if s.Retention() != longer.Retention {
		t.Errorf("retention %v, want %v", s.Retention(), longer.Retention)
	}
	closeStore(t, s)
	s = open(t, again) // zero: keeps the recorded 90 days
	if s.Retention() != longer.Retention {
		t.Errorf("reopened: retention %v, want the recorded %v", s.Retention(), longer.Retention)
	}
	closeStore(t, s)

	forever := cfg
	forever.Retention = hbase.Forever
	s = open(t, forever)
	if s.Retention() != 0 || !s.Horizon(now).IsZero() {
		t.Errorf("Retention Forever: retention %v, horizon %v; want 0 and none", s.Retention(), s.Horizon(now))
	}
	closeStore(t, s)
	s = open(t, again) // zero: keeps the recorded forever
	if s.Retention() != 0 {
		t.Errorf("reopened: retention %v, want the recorded forever", s.Retention())
	}
	closeStore(t, s)
}

func closeStore(t *testing.T, s *hbase.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
