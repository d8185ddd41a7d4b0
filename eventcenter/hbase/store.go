package hbase

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tsuna/gohbase"
	"github.com/tsuna/gohbase/filter"
	"github.com/tsuna/gohbase/hrpc"
	"github.com/tsuna/gohbase/pb"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// Table names within the namespace, and the one column family of each.
const (
	tabEvents  = "events"
	tabTime    = "time"
	tabIndex   = "index"
	tabMarks   = "marks"
	tabMeta    = "meta"
	familyName = "d"
)

// Qualifiers of the index and marks tables (the qualifiers of events and
// time cells are stamps).
const (
	qualIndex = "i"
	qualMark  = "m"
)

var families = map[string][]string{familyName: nil}

// Store is the HBase event center backend. See the package documentation
// for its layout.
type Store struct {
	cfg       Config
	client    gohbase.Client
	rpc       gohbase.RPCClient
	admin     *admin
	buckets   int
	retention time.Duration
	tEvents   []byte
	tTime     []byte
	tIndex    []byte
	tMarks    []byte
	tMeta     []byte
	// eventSplits are the first keys of the events table's regions as
	// pre-split (but the first): AsOfBatch reads each region with scans of
	// its own.
	eventSplits [][]byte
	// batchScanners makes AsOfBatch read with scanners only (for tests).
	batchScanners bool

	life   context.Context // ends at Close
	cancel context.CancelFunc
	closed atomic.Bool

	seq    atomic.Uint64 // second half of an events qualifier
	stamps *eventcenter.Stamps

	// ixMu orders DeclareIndex against this process's appends: an append
	// holds it shared from reading the declarations to its last write, so
	// a declaration that takes it exclusively once knows every later append
	// of this process sees it.
	ixMu   sync.RWMutex
	declMu sync.Mutex // serializes DeclareIndex
	decls  sync.Map   // source -> *declSet

	markCh atomic.Pointer[chan struct{}] // closed and replaced on each local advance
}

var _ eventcenter.Store = (*Store)(nil)

// Open connects to the HBase cluster of cfg, creates the namespace and its
// tables if they are absent (idempotent, safe against concurrent Opens), and
// returns the store. A cluster that does not answer fails Open within
// cfg.DialTimeout, with an error naming the ZooKeeper quorum.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ad, err := dialAdmin(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:     cfg,
		admin:   ad,
		tEvents: qualified(cfg.Namespace, tabEvents),
		tTime:   qualified(cfg.Namespace, tabTime),
		tIndex:  qualified(cfg.Namespace, tabIndex),
		tMarks:  qualified(cfg.Namespace, tabMarks),
		tMeta:   qualified(cfg.Namespace, tabMeta),
		stamps:  eventcenter.NewStamps(cfg.Now),
	}
	s.client = gohbase.NewClient(cfg.ZooKeeper, clientOptions(&cfg)...)
	s.rpc = s.client.(gohbase.RPCClient)
	s.life, s.cancel = context.WithCancel(context.Background())
	s.seq.Store(rand.Uint64() >> 2)
	ch := make(chan struct{})
	s.markCh.Store(&ch)

	sctx, cancel := context.WithTimeout(ctx, cfg.SchemaTimeout)
	defer cancel()
	if err := s.ensureSchema(sctx); err != nil {
		s.client.Close()
		ad.close()
		return nil, fmt.Errorf("hbase: schema of namespace %s on ZooKeeper %s: %w", cfg.Namespace, cfg.ZooKeeper, err)
	}
	s.eventSplits = s.splits(tabEvents)
	return s, nil
}

func qualified(ns, table string) []byte { return []byte(ns + ":" + table) }

func clientOptions(cfg *Config) []gohbase.Option {
	return []gohbase.Option{
		gohbase.ZookeeperRoot(cfg.ZooKeeperRoot),
		gohbase.RegionLookupTimeout(cfg.DialTimeout),
		gohbase.FlushInterval(cfg.FlushInterval),
		gohbase.RpcQueueSize(cfg.RPCQueueSize),
	}
}

// Namespace returns the HBase namespace of the store's tables.
func (s *Store) Namespace() string { return s.cfg.Namespace }

// Buckets returns the number of time-table buckets of the store's layout.
func (s *Store) Buckets() int { return s.buckets }

// Retention returns the hot tier's retention: the TTL of the events, time
// and index tables, counted from when a cell was written; zero: forever.
func (s *Store) Retention() time.Duration { return s.retention }

// Horizon implements eventcenter.Retention: events stored before it may
// have left the hot tier, and reads that reach behind it fail with
// eventcenter.ErrBeyondHorizon (they belong to the cold tier). Zero means
// the hot tier keeps everything (Retention Forever).
func (s *Store) Horizon(now time.Time) time.Time {
	if s.retention <= 0 {
		return time.Time{}
	}
	return now.Add(-s.retention)
}

func (s *Store) horizon() time.Time { return s.Horizon(s.stamps.Now()) }

// settle returns the KnownAt a read as known at k reads at: k, but no later
// than the known-at horizon, now minus Config.KnownAtLag (other processes'
// appends stamped before it are visible), after this process's appends
// stamped by then are (see eventcenter.Stamps).
func (s *Store) settle(ctx context.Context, k time.Time) (time.Time, error) {
	if k.IsZero() {
		return k, nil
	}
	if !s.cfg.SoleWriter {
		if h := s.stamps.Now().Add(-s.cfg.KnownAtLag); k.After(h) {
			k = h
		}
	}
	return s.stamps.Settle(ctx, k)
}

// Close closes the store; operations in flight end with ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return eventcenter.ErrClosed
	}
	s.cancel()
	s.client.Close()
	s.admin.close()
	return nil
}

func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return eventcenter.ErrClosed
	}
	return ctx.Err()
}

// opCtx returns a context that also ends when the store closes.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.life, cancel)
	return ctx, func() { stop(); cancel() }
}

// fail shapes an error of an HBase call: ErrClosed once the store is closed,
// the context's error when it ended, else the error marked as this package's.
func (s *Store) fail(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case s.closed.Load():
		return eventcenter.ErrClosed
	case ctx.Err() != nil && !errors.Is(err, ctx.Err()):
		return fmt.Errorf("hbase: %w (%v)", ctx.Err(), err)
	}
	return fmt.Errorf("hbase: %w", err)
}

// storedQualifier is the qualifier of an events cell: the stored-at time
// (order-preserving bits) then a sequence number, so that the cells of one
// row sort oldest first and two appends of one instant still sort in their
// order within this process.
func storedQualifier(stored time.Time, seq uint64) []byte {
	q := binary.BigEndian.AppendUint64(make([]byte, 0, 16), codec.TimeBits(stored))
	return binary.BigEndian.AppendUint64(q, seq)
}

// stampOf returns the stored-at time of a qualifier made by storedQualifier.
func stampOf(qual []byte) time.Time {
	if len(qual) < 8 {
		return time.Time{}
	}
	return codec.TimeFromBits(binary.BigEndian.Uint64(qual))
}

// knownAtFilter keeps the events cells stored at or before knownAt.
func knownAtFilter(knownAt time.Time) filter.Filter {
	max := binary.BigEndian.AppendUint64(make([]byte, 0, 16), codec.TimeBits(knownAt))
	max = append(max, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	return filter.NewColumnRangeFilter(nil, max, false, true)
}

// cellReadOptions ask for the first (oldest) cells of each events or time
// row, up to cells of them, among those stored at or before knownAt when it
// is set.
func cellReadOptions(knownAt time.Time, cells uint32, extra ...func(hrpc.Call) error) []func(hrpc.Call) error {
	opts := append([]func(hrpc.Call) error{hrpc.Families(families), hrpc.MaxResultsPerColumnFamily(cells)}, extra...)
	if !knownAt.IsZero() {
		opts = append(opts, hrpc.Filters(knownAtFilter(knownAt)))
	}
	return opts
}

// decodeRow decodes an events row read with cellReadOptions; false if it
// has no cell (stored after knownAt, or only its index rows are written).
func decodeRow(cells []*hrpc.Cell, e *eventcenter.Event) (bool, error) {
	if len(cells) == 0 {
		return false, nil
	}
	c := cells[0]
	var err error
	if e.Source, e.Key, e.Time, e.Pos, err = codec.ParseEventKey(c.Row); err != nil {
		return false, err
	}
	return true, codec.DecodeBody(c.Value, e)
}

func decodePBRow(r *pb.Result, e *eventcenter.Event) (bool, error) {
	cells := make([]*hrpc.Cell, len(r.Cell))
	for i, c := range r.Cell {
		cells[i] = (*hrpc.Cell)(c)
	}
	return decodeRow(cells, e)
}

// put is one cell to write, and the put to write once it has succeeded.
type put struct {
	table []byte
	row   []byte
	qual  string
	value []byte
	then  *put
}

// putAll writes the chains of puts concurrently (the client batches them
// per region server), each put retried on transient failures and each
// chain in its order, and returns the first error. Once a put has failed
// for good, no further put starts.
func (s *Store) putAll(ctx context.Context, puts []put) error {
	if len(puts) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, s.cfg.MaxInflight)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for i := range puts {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			for p := &puts[i]; p != nil && ctx.Err() == nil; p = p.then {
				if err := s.put(ctx, p); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// put writes one cell, retrying transient failures.
func (s *Store) put(ctx context.Context, p *put) error {
	return retry(ctx, func() error {
		m, err := hrpc.NewPut(ctx, p.table, p.row, map[string]map[string][]byte{familyName: {p.qual: p.value}})
		if err != nil {
			return err
		}
		_, err = s.client.Put(m)
		return err
	})
}

// Append implements eventcenter.Appender. Its puts are blind writes: an
// event's body goes into a cell of its own whose qualifier is its stored-at
// stamp, in the time table and then, once that is written, in the events
// table; reads take the oldest cell, so a re-appended event keeps its first
// copy without a read before the write (see the package documentation for
// why the time table is written first). A failed Append may have stored a
// part of the batch; a retry completes it.
func (s *Store) Append(ctx context.Context, events []eventcenter.Event) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := eventcenter.ValidateBatch(events); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	s.ixMu.RLock()
	defer s.ixMu.RUnlock()

	sets, err := s.loadDecls(ctx, events)
	if err != nil {
		return s.fail(ctx, err)
	}
	// Stamps never go back (a clock stepped back must not let a later copy
	// win). Every put ends within MaxAppend of the stamp, or the append
	// fails: that bounds how late another process's known-at read may meet
	// it (KnownAtLag). This process's reads wait for publish instead.
	stored, publish := s.stamps.Stamp()
	defer publish()
	ctx, cancelAppend := context.WithTimeout(ctx, s.cfg.MaxAppend)
	defer cancelAppend()
	puts, kept := s.appendPuts(events, storedQualifier(stored, s.seq.Add(1)), stored, sets)
	if err := s.putAll(ctx, puts); err != nil {
		return s.fail(ctx, err)
	}
	// An index another process declared while this append ran: see
	// DeclareIndex for why checking once more at the end is enough.
	for src, d := range sets {
		if time.Since(d.loaded) <= s.cfg.IndexRefresh/2 {
			continue
		}
		fresh, err := s.declsFor(ctx, src, true)
		if err != nil {
			return s.fail(ctx, err)
		}
		var late []eventcenter.Index
		for _, ix := range fresh.all {
			if !slices.Contains(d.all, ix) {
				late = append(late, ix)
			}
		}
		if len(late) == 0 {
			continue
		}
		var more []put
		for _, e := range kept {
			if e.Source == src {
				more = s.indexPuts(more, e, late)
			}
		}
		if err := s.putAll(ctx, more); err != nil {
			return s.fail(ctx, err)
		}
	}
	return nil
}

// loadDecls returns the index declarations of the sources of events.
func (s *Store) loadDecls(ctx context.Context, events []eventcenter.Event) (map[string]*declSet, error) {
	sets := map[string]*declSet{}
	for i := range events {
		src := events[i].Source
		if _, ok := sets[src]; !ok {
			d, err := s.declsFor(ctx, src, false)
			if err != nil {
				return nil, err
			}
			sets[src] = d
		}
	}
	return sets, nil
}

// appendPuts returns the puts of an Append stamped stored (qualifier qual)
// and the events they store: the first of each identity in the batch. Each
// event is a chain, its time cell then its events cell, with the same
// qualifier and body; its index rows are puts of their own.
func (s *Store) appendPuts(events []eventcenter.Event, qual []byte, stored time.Time, sets map[string]*declSet) ([]put, []*eventcenter.Event) {
	seen := make(map[string]bool, len(events))
	puts := make([]put, 0, len(events))
	var kept []*eventcenter.Event
	for i := range events {
		e := &events[i]
		ek := codec.EventKey(nil, e.Source, e.Key, e.Time, e.Pos)
		if seen[string(ek)] {
			continue // a duplicate within the batch: the first wins
		}
		seen[string(ek)] = true
		kept = append(kept, e)
		body := codec.EncodeBody(nil, &eventcenter.Event{Op: e.Op, After: e.After, Before: e.Before, StoredAt: stored})
		puts = append(puts, put{s.tTime, codec.TimeKey(nil, s.buckets, e.Source, e.Key, e.Time, e.Pos), string(qual), body,
			&put{table: s.tEvents, row: ek, qual: string(qual), value: body}})
		puts = s.indexPuts(puts, e, sets[e.Source].all)
	}
	return puts, kept
}

func (s *Store) indexPuts(puts []put, e *eventcenter.Event, ixs []eventcenter.Index) []put {
	for _, ix := range ixs {
		if v, ok := eventcenter.IndexValue(e.After[ix.Column]); ok {
			puts = append(puts, put{table: s.tIndex, row: codec.IndexKey(nil, e.Source, ix.Name, v, e.Key, e.Time, e.Pos), qual: qualIndex, value: []byte{}})
		}
	}
	return puts
}

// AsOf implements eventcenter.Reader: one scan of one region, from the
// seek key to the end of the key's rows, for one row.
func (s *Store) AsOf(ctx context.Context, q eventcenter.AsOf) (eventcenter.Event, error) {
	if err := s.check(ctx); err != nil {
		return eventcenter.Event{}, err
	}
	if err := q.Validate(); err != nil {
		return eventcenter.Event{}, err
	}
	h := s.horizon()
	if err := q.CheckHorizon(h); err != nil {
		return eventcenter.Event{}, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var err error
	if q.KnownAt, err = s.settle(ctx, q.KnownAt); err != nil {
		return eventcenter.Event{}, s.fail(ctx, err)
	}
	e, found, err := s.latest(ctx, q)
	if err != nil {
		return eventcenter.Event{}, s.fail(ctx, err)
	}
	if !found {
		e.Time = time.Time{}
	}
	if err := q.CheckFound(h, e.Time); err != nil {
		return eventcenter.Event{}, err
	}
	if !found || e.After == nil {
		return eventcenter.Event{}, eventcenter.ErrNotFound
	}
	return e, nil
}

// latest reads the key's latest event at q.Time (a delete too) among those
// stored by q.KnownAt, and false if there is none.
func (s *Store) latest(ctx context.Context, q eventcenter.AsOf) (eventcenter.Event, bool, error) {
	seek := codec.AsOfSeek(nil, q.Source, q.Key, q.Time)
	end := codec.PrefixEnd(seek[:len(seek)-8])
	var e eventcenter.Event
	found, err := s.firstRow(ctx, s.tEvents, seek, end, cellReadOptions(q.KnownAt, 1), &e)
	if err != nil || !found {
		return eventcenter.Event{}, false, err
	}
	return e, true, nil
}

// firstRow reads the first events row of [start, end) that the options let
// through. It asks for one row and the scanner's close in the same RPC; a
// range that continues in another region, a partial row or a server
// heartbeat fall back to a full scanner.
func (s *Store) firstRow(ctx context.Context, table, start, end []byte, opts []func(hrpc.Call) error, e *eventcenter.Event) (bool, error) {
	var resp *pb.ScanResponse
	var reg hrpc.RegionInfo
	err := retry(ctx, func() error {
		sc, err := hrpc.NewScanRange(ctx, table, start, end, append(opts, hrpc.NumberOfRows(1), hrpc.CloseScanner())...)
		if err != nil {
			return err
		}
		msg, err := s.rpc.SendRPC(sc)
		if err != nil {
			return err
		}
		var ok bool
		if resp, ok = msg.(*pb.ScanResponse); !ok {
			return fmt.Errorf("scan answered with a %T", msg)
		}
		reg = sc.Region()
		return nil
	})
	if err != nil {
		return false, err
	}
	rs := resp.GetResults()
	switch {
	case len(rs) > 0 && !rs[0].GetPartial():
		return decodePBRow(rs[0], e)
	case len(rs) == 0 && !resp.GetHeartbeatMessage() &&
		(reg == nil || len(reg.StopKey()) == 0 || bytes.Compare(reg.StopKey(), end) >= 0):
		return false, nil // the whole range was in that region
	}
	// The slow path: a scanner that follows the range over regions.
	var found bool
	err = s.scan(ctx, table, start, end, append(opts, hrpc.NumberOfRows(1)), func(r *hrpc.Result) (bool, error) {
		var err error
		found, err = decodeRow(r.Cells, e)
		return !found && err == nil, err
	})
	return found, err
}

// scan calls f for each row of [start, end) until f returns false.
func (s *Store) scan(ctx context.Context, table, start, end []byte, opts []func(hrpc.Call) error, f func(*hrpc.Result) (bool, error)) error {
	sc, err := hrpc.NewScanRange(ctx, table, start, end, opts...)
	if err != nil {
		return err
	}
	scanner := s.client.Scan(sc)
	defer scanner.Close()
	for {
		r, err := scanner.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if more, err := f(r); err != nil || !more {
			return err
		}
	}
}

// History implements eventcenter.Reader.
func (s *Store) History(ctx context.Context, q eventcenter.HistoryQuery) ([]eventcenter.Event, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if err := q.CheckHorizon(s.horizon()); err != nil {
		return nil, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var err error
	if q.KnownAt, err = s.settle(ctx, q.KnownAt); err != nil {
		return nil, s.fail(ctx, err)
	}
	start, end := codec.HistoryBounds(q.Source, q.Key, q.From, q.To)
	if bytes.Compare(start, end) >= 0 {
		return nil, nil
	}
	var out []eventcenter.Event
	err = retry(ctx, func() error {
		out = out[:0]
		return s.scan(ctx, s.tEvents, start, end, cellReadOptions(q.KnownAt, 1, hrpc.NumberOfRows(256)), func(r *hrpc.Result) (bool, error) {
			var e eventcenter.Event
			ok, err := decodeRow(r.Cells, &e)
			if ok {
				out = append(out, e)
			}
			return true, err
		})
	})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	slices.Reverse(out) // the table holds a key's rows newest first
	return out, nil
}

// Lookup implements eventcenter.Reader: a scan of the value's index rows,
// then an as-of read of each candidate key (concurrently) to keep those
// whose state at q.Time still has the value.
func (s *Store) Lookup(ctx context.Context, q eventcenter.LookupQuery) ([]eventcenter.Event, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	ix, ok, err := s.readyIndex(ctx, q.Source, q.Index)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %q of source %q", eventcenter.ErrUnknownIndex, q.Index, q.Source)
	}
	if err := q.CheckHorizon(s.horizon()); err != nil {
		return nil, err
	}
	if q.KnownAt, err = s.settle(ctx, q.KnownAt); err != nil {
		return nil, s.fail(ctx, err)
	}
	prefix := codec.IndexPrefix(nil, q.Source, q.Index, q.Value)
	var candidates []string
	err = retry(ctx, func() error {
		candidates = candidates[:0]
		return s.scan(ctx, s.tIndex, prefix, codec.PrefixEnd(prefix), []func(hrpc.Call) error{hrpc.Families(families), hrpc.NumberOfRows(1024)},
			func(r *hrpc.Result) (bool, error) {
				if len(r.Cells) == 0 {
					return true, nil
				}
				key, t, err := codec.ParseIndexSuffix(r.Cells[0].Row[len(prefix):])
				if err != nil {
					return false, err
				}
				if !t.After(q.Time) && (len(candidates) == 0 || candidates[len(candidates)-1] != key) {
					candidates = append(candidates, key)
				}
				return true, nil
			})
	})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	states := make([]*eventcenter.Event, len(candidates))
	errs := make([]error, len(candidates))
	sem := make(chan struct{}, s.cfg.LookupParallel)
	var wg sync.WaitGroup
	for i, key := range candidates {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			e, found, err := s.latest(ctx, eventcenter.AsOf{Source: q.Source, Key: key, Time: q.Time, KnownAt: q.KnownAt})
			switch {
			case err != nil:
				errs[i] = err
			case found && e.After != nil:
				if v, ok := eventcenter.IndexValue(e.After[ix.Column]); ok && v == q.Value {
					states[i] = &e
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, s.fail(ctx, err)
	}
	var out []eventcenter.Event
	for _, e := range states {
		if e != nil {
			out = append(out, *e)
		}
	}
	slices.SortFunc(out, func(a, b eventcenter.Event) int { return cmp.Compare(a.Key, b.Key) })
	return out, nil
}
