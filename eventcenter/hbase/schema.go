package hbase

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tsuna/gohbase"
	"github.com/tsuna/gohbase/hrpc"
)

// layoutVersion is recorded in meta; bump it on a change of the layout.
// Version 1 kept no bodies in the time table; 2 keeps them there too (see
// "Two tables, one first copy" in the package documentation).
const layoutVersion = "2"

// ErrOldLayout is returned by Open for a namespace laid out by an earlier
// version of this package, which this one cannot read.
var ErrOldLayout = errors.New("hbase: the namespace has an older layout")

// The meta row of the layout and its qualifiers.
var (
	rowLayout       = []byte("layout")
	qualVersion     = "version"
	qualBuckets     = "buckets"
	qualRetention   = "retention_seconds"
	qualRecordedAt  = "retention_recorded_at"
	hotTables       = []string{tabEvents, tabTime, tabIndex}
	permanentTables = []string{tabMarks, tabMeta}
)

// probeZK checks that some member of the quorum accepts TCP connections:
// gohbase itself would retry a dead quorum forever.
func probeZK(ctx context.Context, quorum string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	var errs []error
	for _, hp := range strings.Split(quorum, ",") {
		conn, err := d.DialContext(ctx, "tcp", strings.TrimSpace(hp))
		if err == nil {
			conn.Close()
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// dialAdmin reaches ZooKeeper and the master within cfg.DialTimeout.
func dialAdmin(ctx context.Context, cfg *Config) (*admin, error) {
	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if err := probeZK(dctx, cfg.ZooKeeper, cfg.DialTimeout); err != nil {
		return nil, fmt.Errorf("hbase: HBase is down or unreachable: no ZooKeeper of quorum %s accepts connections (set %s or Config.ZooKeeper): %w",
			cfg.ZooKeeper, EnvZooKeeper, err)
	}
	ad := newAdmin(gohbase.NewAdminClient(cfg.ZooKeeper, clientOptions(cfg)...))
	if _, err := ad.namespaceExists(dctx, cfg.Namespace); err != nil {
		ad.close()
		return nil, fmt.Errorf("hbase: %w through ZooKeeper %s within %v (is the HBase master running?): %v",
			errNoMaster, cfg.ZooKeeper, cfg.DialTimeout, err)
	}
	return ad, nil
}

// ensureSchema creates what is missing of the namespace, its tables and its
// layout record, adopts or checks the recorded bucket count, and applies a
// changed retention. Every step is idempotent and tolerates another process
// doing the same at the same time.
func (s *Store) ensureSchema(ctx context.Context) error {
	ns := s.cfg.Namespace
	if err := s.admin.createNamespace(ctx, ns); err != nil {
		return fmt.Errorf("create namespace: %w", err)
	}
	have, err := s.admin.tables(ctx, ns)
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	if err := s.createTables(ctx, have, permanentTables, family{compression: s.cfg.Compression}); err != nil {
		return err
	}
	layout, err := s.readMetaRow(ctx, rowLayout)
	if err != nil {
		return fmt.Errorf("read layout: %w", err)
	}
	if v, ok := layout[qualVersion]; ok && string(v) != layoutVersion {
		if n, err := strconv.Atoi(string(v)); err == nil && n < 2 {
			return fmt.Errorf("%w (version %s; this version of tidemark reads version %s, whose time table carries the event bodies): "+
				"drop it (tidemark hbase drop) and create it again (tidemark hbase init), or use another namespace, then re-ingest its events",
				ErrOldLayout, v, layoutVersion)
		}
		return fmt.Errorf("namespace has layout version %q, this code knows %q (is it a newer tidemark's?)", v, layoutVersion)
	}

	// The bucket count: recorded once, never changed.
	want := s.cfg.Buckets
	if want == 0 {
		want = DefaultBuckets
	}
	for s.buckets == 0 {
		if v, ok := layout[qualBuckets]; ok {
			n, err := strconv.Atoi(string(v))
			if err != nil || n < 1 || n > 256 {
				return fmt.Errorf("recorded bucket count %q is not 1 to 256", v)
			}
			if s.cfg.Buckets != 0 && s.cfg.Buckets != n {
				return fmt.Errorf("the namespace's time table is laid out in %d buckets; Config.Buckets asks %d, and the bucket count cannot change", n, s.cfg.Buckets)
			}
			s.buckets = n
			break
		}
		if _, err := s.checkAndPutMeta(ctx, rowLayout, qualBuckets, []byte(strconv.Itoa(want)), nil); err != nil {
			return fmt.Errorf("record bucket count: %w", err)
		}
		if layout, err = s.readMetaRow(ctx, rowLayout); err != nil {
			return fmt.Errorf("read layout: %w", err)
		}
	}

	// The retention: what Config asks, else what is recorded, else
	// DefaultRetention (forever).
	// Zero seconds, in meta and in s.retention, is forever.
	recorded, isRecorded := time.Duration(0), false
	if v, ok := layout[qualRetention]; ok {
		secs, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return fmt.Errorf("recorded retention %q: %w", v, err)
		}
		recorded, isRecorded = time.Duration(secs)*time.Second, true
	}
	switch {
	case s.cfg.Retention == Forever:
		s.retention = 0
	case s.cfg.Retention > 0:
		s.retention = s.cfg.Retention.Truncate(time.Second)
	case isRecorded:
		s.retention = recorded
	default:
		s.retention = 0 // DefaultRetention: forever
	}
	hot := family{ttl: s.retention, compression: s.cfg.Compression}
	if err := s.createTables(ctx, have, hotTables, hot); err != nil {
		return err
	}
	for _, t := range hotTables {
		ttl, err := s.admin.familyTTL(ctx, ns, t)
		if err != nil {
			return fmt.Errorf("read TTL of %s: %w", t, err)
		}
		if ttl != s.retention {
			if err := s.admin.modifyFamily(ctx, ns, t, hot); err != nil {
				return fmt.Errorf("set TTL of %s to %v: %w", t, s.retention, err)
			}
		}
	}
	if !isRecorded || recorded != s.retention || layout[qualVersion] == nil {
		err := s.putMeta(ctx, rowLayout, map[string][]byte{
			qualVersion:    []byte(layoutVersion),
			qualRetention:  []byte(strconv.FormatInt(int64(s.retention/time.Second), 10)),
			qualRecordedAt: []byte(time.Now().UTC().Format(time.RFC3339)),
		})
		if err != nil {
			return fmt.Errorf("record retention: %w", err)
		}
	}
	return s.waitTablesOnline(ctx)
}

func cmpOr(a, b time.Duration) time.Duration {
	if a != 0 {
		return a
	}
	return b
}

// createTables creates the tables of names missing from have, concurrently.
func (s *Store) createTables(ctx context.Context, have, names []string, f family) error {
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, t := range names {
		if slices.Contains(have, t) {
			continue
		}
		wg.Go(func() {
			if err := s.admin.createTable(ctx, s.cfg.Namespace, t, f, s.splits(t)); err != nil {
				errs[i] = fmt.Errorf("create table %s: %w", t, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// splits returns the pre-split keys of a table: on the salt byte for events
// and index (256 values), on the bucket byte for time.
func (s *Store) splits(table string) [][]byte {
	space := 256
	switch table {
	case tabTime:
		space = cmpOrInt(s.buckets, DefaultBuckets)
	case tabEvents, tabIndex:
	default:
		return nil
	}
	n := min(s.cfg.Regions, space)
	var out [][]byte
	for i := 1; i < n; i++ {
		out = append(out, []byte{byte(i * space / n)})
	}
	return out
}

func cmpOrInt(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// waitTablesOnline waits until each table answers a read: a table created
// by another process a moment ago may not be assigned yet.
func (s *Store) waitTablesOnline(ctx context.Context) error {
	for _, t := range [][]byte{s.tEvents, s.tTime, s.tIndex, s.tMarks, s.tMeta} {
		for delay := 10 * time.Millisecond; ; delay = min(2*delay, time.Second) {
			g, err := hrpc.NewGet(ctx, t, []byte("probe"), hrpc.Families(families))
			if err != nil {
				return err
			}
			if _, err = s.client.Get(g); err == nil {
				break
			} else if !errors.Is(err, gohbase.TableNotFound) && !transient(err) {
				return fmt.Errorf("read %s: %w", t, err)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("table %s not online: %w", t, ctx.Err())
			case <-time.After(delay):
			}
		}
	}
	return nil
}

// readMetaRow returns the cells of a meta row by qualifier.
func (s *Store) readMetaRow(ctx context.Context, row []byte) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := retry(ctx, func() error {
		g, err := hrpc.NewGet(ctx, s.tMeta, row, hrpc.Families(families))
		if err != nil {
			return err
		}
		r, err := s.client.Get(g)
		if err != nil {
			return err
		}
		for _, c := range r.Cells {
			out[string(c.Qualifier)] = c.Value
		}
		return nil
	})
	return out, err
}

func (s *Store) putMeta(ctx context.Context, row []byte, cells map[string][]byte) error {
	return retry(ctx, func() error {
		p, err := hrpc.NewPut(ctx, s.tMeta, row, map[string]map[string][]byte{familyName: cells})
		if err != nil {
			return err
		}
		_, err = s.client.Put(p)
		return err
	})
}

// checkAndPutMeta writes value under qual if the cell holds expected (nil:
// if it is absent), and reports whether it wrote.
func (s *Store) checkAndPutMeta(ctx context.Context, row []byte, qual string, value, expected []byte) (bool, error) {
	return s.checkAndPut(ctx, s.tMeta, row, qual, map[string][]byte{qual: value}, expected)
}

func (s *Store) checkAndPut(ctx context.Context, table, row []byte, qual string, cells map[string][]byte, expected []byte) (bool, error) {
	var done bool
	err := retry(ctx, func() error {
		p, err := hrpc.NewPut(ctx, table, row, map[string]map[string][]byte{familyName: cells})
		if err != nil {
			return err
		}
		done, err = s.client.CheckAndPut(p, familyName, qual, expected)
		return err
	})
	return done, err
}

// DropNamespace deletes the namespace of cfg and every table in it, with
// all their data. It is for tests and decommissioning; nothing asks twice.
func DropNamespace(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	ad, err := dialAdmin(ctx, &cfg)
	if err != nil {
		return err
	}
	defer ad.close()
	tables, err := ad.tables(ctx, cfg.Namespace)
	if err != nil {
		return fmt.Errorf("hbase: list tables of %s: %w", cfg.Namespace, err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(tables))
	for i, t := range tables {
		wg.Go(func() { errs[i] = ad.dropTable(ctx, cfg.Namespace, t) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("hbase: drop namespace %s: %w", cfg.Namespace, err)
	}
	if err := ad.deleteNamespace(ctx, cfg.Namespace); err != nil {
		return fmt.Errorf("hbase: delete namespace %s: %w", cfg.Namespace, err)
	}
	return nil
}
