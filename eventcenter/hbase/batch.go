package hbase

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/tsuna/gohbase/filter"
	"github.com/tsuna/gohbase/hrpc"
	"github.com/tsuna/gohbase/pb"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

var _ eventcenter.RemoteBatchReader = (*Store)(nil)

// Tuning of AsOfBatch.
const (
	// batchMaxRun is about the most reads one scanner of a batch answers.
	batchMaxRun = 512
	// batchMaxWaste is how many rows in a row that answer no read a batch
	// scan takes (the older history of a key already answered) before it
	// reopens past them.
	batchMaxWaste = 16
	// batchMaxRowsPerRPC bounds the rows one scanner RPC of a batch returns.
	batchMaxRowsPerRPC = 1024
)

// GatherWidth implements eventcenter.RemoteBatchReader: a batch of this
// many reads costs a few scans, where one read costs one.
func (s *Store) GatherWidth() int { return 4096 }

// asOfSeek is one read of a batch: where its key's rows start (the seek key
// keys[start:end], whose first prefix bytes are the key's prefix), and what
// it found.
type asOfSeek struct {
	i          int // the read's index in qs
	start, end int
	prefix     int
	knownAt    time.Time // settled; zero: no bound
	found      *hrpc.Cell
}

// AsOfBatch implements eventcenter.BatchReader with few scans instead of
// one per read: the reads are sorted by their events-table seek key, cut
// into runs of adjacent keys within one pre-split region (batchRuns), and
// each run is read by its own scans, up to Config.BatchParallel runs at
// once, whose filter passes only the rows of its reads' ranges (HBase's
// MultiRowRangeFilter: the region server seeks from one range to the
// next); see answerRun. A read's range runs from its seek key to the end
// of its key's rows, newest first, so the first row the scan returns in it
// that was stored by the read's KnownAt is the answer, as the one-row scan
// of AsOf finds it. The rows of a range after its answer (the key's older
// history) answer nothing; after a few of them the scan is reopened at the
// next read's seek key.
//
// Reads as known at different instants share the scans: the server filter
// keeps the cells stored by the latest of them (all cells if one read has
// no KnownAt), the first of which is each row's first copy, and each read
// takes the first row whose first copy was stored by its own KnownAt. So
// every read answers as AsOf does, KnownAt (settled as AsOf settles it),
// first copy and horizon included.
func (s *Store) AsOfBatch(ctx context.Context, qs []eventcenter.AsOf, out []eventcenter.AsOfResult) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	h := s.horizon()
	seeks := make([]asOfSeek, 0, len(qs))
	keys := make([]byte, 0, len(qs)*48)
	settled := make([]time.Time, len(qs))
	var lastIn, lastSettled, filterAt time.Time
	unbounded := false
	for i := range qs {
		q := &qs[i]
		out[i] = eventcenter.AsOfResult{}
		if err := q.Validate(); err != nil {
			out[i].Err = err
			continue
		}
		if err := q.CheckHorizon(h); err != nil {
			out[i].Err = err
			continue
		}
		if len(seeks) == 0 || !q.KnownAt.Equal(lastIn) {
			k, err := s.settle(ctx, q.KnownAt)
			if err != nil {
				return s.fail(ctx, err)
			}
			lastIn, lastSettled = q.KnownAt, k
		}
		settled[i] = lastSettled
		if lastSettled.IsZero() {
			unbounded = true
		} else if lastSettled.After(filterAt) {
			filterAt = lastSettled
		}
		start := len(keys)
		keys = codec.KeyPrefix(keys, q.Source, q.Key)
		prefix := len(keys) - start
		keys = binary.BigEndian.AppendUint64(keys, ^codec.TimeBits(q.Time)) // codec.AsOfSeek
		seeks = append(seeks, asOfSeek{i: i, start: start, end: len(keys), prefix: prefix, knownAt: lastSettled})
	}
	if unbounded {
		filterAt = time.Time{}
	}
	slices.SortFunc(seeks, func(a, b asOfSeek) int { return bytes.Compare(keys[a.start:a.end], keys[b.start:b.end]) })

	runs := batchRuns(seeks, keys, s.eventSplits, batchMaxRun)
	errs := make([]error, len(runs))
	sem := make(chan struct{}, s.cfg.BatchParallel)
	var wg sync.WaitGroup
	for r, run := range runs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[r] = s.answerRun(ctx, run, keys, filterAt)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return s.fail(ctx, err)
	}

	for k := range seeks {
		sk := &seeks[k]
		q := qs[sk.i]
		q.KnownAt = settled[sk.i]
		var e eventcenter.Event
		if sk.found != nil {
			if _, err := decodeRow([]*hrpc.Cell{sk.found}, &e); err != nil {
				return s.fail(ctx, err)
			}
		}
		switch err := q.CheckFound(h, e.Time); {
		case err != nil:
			out[sk.i].Err = err
		case sk.found == nil || e.After == nil:
			out[sk.i].Err = eventcenter.ErrNotFound
		default:
			out[sk.i].Event = e
		}
	}
	return nil
}

// batchRuns cuts the sorted seeks into runs that each stay within one
// region of the table as it was pre-split (splits: the first keys of the
// regions but the first), and holds at most about maxRun seeks, never
// cutting between two seeks of one key. A scanner that crosses into
// another region pays a round trip to open it; regions are read
// concurrently.
func batchRuns(seeks []asOfSeek, keys []byte, splits [][]byte, maxRun int) [][]asOfSeek {
	var runs [][]asOfSeek
	region := 0 // the index in splits of the next region's first key
	for lo := 0; lo < len(seeks); {
		seek := seekOf(&seeks[lo], keys)
		for region < len(splits) && bytes.Compare(splits[region], seek) <= 0 {
			region++
		}
		hi := lo + 1
		for hi < len(seeks) && (hi-lo < maxRun || bytes.Equal(prefixOf(&seeks[hi-1], keys), prefixOf(&seeks[hi], keys))) &&
			(region == len(splits) || bytes.Compare(seekOf(&seeks[hi], keys), splits[region]) < 0) {
			hi++
		}
		runs = append(runs, seeks[lo:hi])
		lo = hi
	}
	return runs
}

func prefixOf(sk *asOfSeek, keys []byte) []byte { return keys[sk.start : sk.start+sk.prefix] }
func seekOf(sk *asOfSeek, keys []byte) []byte   { return keys[sk.start:sk.end] }

// answerRun finds the answer of each seek of a sorted run (see AsOfBatch),
// reading the events cells stored by filterAt (zero: all). Each step reads
// from the first seek not yet settled: in one RPC that opens a scanner,
// returns the rows and closes it, or, when that settled nothing (the rows
// continue in another region, or past what one RPC returns), with a
// scanner that follows the rows as far as they go. A transient failure is
// retried from where it stopped.
func (s *Store) answerRun(ctx context.Context, run []asOfSeek, keys []byte, filterAt time.Time) error {
	next := 0 // every seek before it is settled
	oneShot := !s.batchScanners
	delay := retryFirstDelay
	for attempt := 1; next < len(run); {
		reached, err := s.scanRun(ctx, run, next, keys, filterAt, oneShot)
		oneShot = (reached > next || err != nil) && !s.batchScanners
		if reached > next {
			next, attempt, delay = reached, 1, retryFirstDelay
		}
		if err == nil {
			continue
		}
		if !transient(err) || attempt == retryAttempts {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(delay):
		}
		attempt, delay = attempt+1, min(2*delay, retryMaxDelay)
	}
	return nil
}

// scanRun reads run[from:], in one RPC if oneShot, else with a scanner
// over as many regions as its rows span, until every seek is settled
// (answered, or known to have no answer), the RPC's rows end, or the rows
// stop answering reads (see runRows). It returns the index of the first
// seek it did not settle: a later call resumes there.
func (s *Store) scanRun(ctx context.Context, run []asOfSeek, from int, keys []byte, filterAt time.Time, oneShot bool) (int, error) {
	// One range per key, from its first (latest) seek to the end of its rows.
	var ranges []*filter.RowRange
	for k := from; k < len(run); k++ {
		p := prefixOf(&run[k], keys)
		if k > from && bytes.Equal(p, prefixOf(&run[k-1], keys)) {
			continue
		}
		ranges = append(ranges, filter.NewRowRange(seekOf(&run[k], keys), codec.PrefixEnd(p), true, false))
	}
	var f filter.Filter = filter.NewMultiRowRangeFilter(ranges)
	if !filterAt.IsZero() {
		f = filter.NewList(filter.MustPassAll, f, knownAtFilter(filterAt))
	}
	start, stop := seekOf(&run[from], keys), ranges[len(ranges)-1].StopRow
	limit := uint32(min(len(run)-from+batchMaxWaste, batchMaxRowsPerRPC))
	opts := []func(hrpc.Call) error{hrpc.Families(families), hrpc.MaxResultsPerColumnFamily(1), hrpc.Filters(f), hrpc.NumberOfRows(limit)}
	rr := runRows{run: run, keys: keys, next: from}

	if oneShot {
		sc, err := hrpc.NewScanRange(ctx, s.tEvents, start, stop, append(opts, hrpc.CloseScanner())...)
		if err != nil {
			return from, err
		}
		msg, err := s.rpc.SendRPC(sc)
		if err != nil {
			return from, err
		}
		resp, ok := msg.(*pb.ScanResponse)
		if !ok {
			return from, fmt.Errorf("scan answered with a %T", msg)
		}
		for _, res := range resp.GetResults() {
			if res.GetPartial() || len(res.Cell) == 0 {
				return rr.settled(), nil
			}
			if stop := rr.take((*hrpc.Cell)(res.Cell[0])); stop {
				return rr.settled(), nil
			}
		}
		reg := sc.Region()
		if uint32(len(resp.GetResults())) < limit && !resp.GetHeartbeatMessage() && !resp.GetMoreResultsInRegion() &&
			(reg == nil || len(reg.StopKey()) == 0 || bytes.Compare(reg.StopKey(), stop) >= 0) {
			return len(run), nil // the region held all the rows: what none answered has no answer
		}
		return rr.settled(), nil
	}

	sc, err := hrpc.NewScanRange(ctx, s.tEvents, start, stop, opts...)
	if err != nil {
		return from, err
	}
	scanner := s.client.Scan(sc)
	defer scanner.Close()
	for {
		r, err := scanner.Next()
		if err == io.EOF {
			return len(run), nil // what no row answered has no answer
		}
		if err != nil {
			return rr.settled(), err
		}
		if len(r.Cells) > 0 && rr.take(r.Cells[0]) {
			return rr.settled(), nil
		}
	}
}

// runRows matches the rows a scan of a run returns, in order, with the
// run's seeks.
type runRows struct {
	run   []asOfSeek
	keys  []byte
	next  int   // the first seek whose key no row has reached
	open  []int // reached seeks still unanswered, of the current key
	waste int   // rows in a row that answered nothing
}

// settled returns the index of the first seek not settled.
func (r *runRows) settled() int {
	if len(r.open) > 0 {
		return r.open[0]
	}
	return r.next
}

// take matches the first cell of the next row and reports whether the
// scan should stop: every seek is settled, or more than batchMaxWaste rows
// in a row answered nothing (the older history of a key already answered,
// which a scan reopened at the next seek skips).
func (r *runRows) take(cell *hrpc.Cell) bool {
	for r.next < len(r.run) && bytes.Compare(seekOf(&r.run[r.next], r.keys), cell.Row) <= 0 {
		r.open = append(r.open, r.next)
		r.next++
	}
	answered := false
	keep := r.open[:0]
	for _, k := range r.open {
		sk := &r.run[k]
		switch {
		case !bytes.HasPrefix(cell.Row, prefixOf(sk, r.keys)):
			// A row past the key's rows: the key has none at or before
			// the read's time.
		case storedBy(cell.Qualifier, sk.knownAt):
			sk.found, answered = cell, true
		default:
			keep = append(keep, k) // stored after its KnownAt: older rows
		}
	}
	r.open = keep
	switch {
	case r.settled() == len(r.run):
		return true
	case answered || len(r.open) > 0:
		r.waste = 0
	default:
		r.waste++
	}
	return r.waste > batchMaxWaste
}

// storedBy reports whether the events cell of qualifier qual was stored at
// or before knownAt (zero: always), as knownAtFilter decides.
func storedBy(qual []byte, knownAt time.Time) bool {
	return knownAt.IsZero() || (len(qual) >= 8 && binary.BigEndian.Uint64(qual) <= codec.TimeBits(knownAt))
}
