package correction

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// slowStore holds Watermark, so an index stays being built, until release
// is closed.
type slowStore struct {
	eventcenter.Store
	release chan struct{}
}

func (s *slowStore) Watermark(ctx context.Context, src string) (time.Time, error) {
	select {
	case <-s.release:
		return time.Time{}, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

func newSlowStore(t *testing.T) *slowStore {
	return &slowStore{Store: openEventCenter(t), release: make(chan struct{})}
}

// TestIndexCache: the cache under the ways a worker's chunks and extras
// use it at once (run with -race): a cancelled chunk does not fail the
// others waiting on the index it started; the extras of a run that held
// an expired index do not touch the one being built; a source's own
// expired index makes room before another source's fresh one is evicted.
func TestIndexCache(t *testing.T) {
	t.Run("cancelled first caller", func(t *testing.T) {
		ss := newSlowStore(t)
		c := New(nil, ss, Options{})
		ctxA, cancelA := context.WithCancel(context.Background())
		errA, errB := make(chan error, 1), make(chan error, 1)
		go func() { _, err := c.index(ctxA, "s", nil); errA <- err }()
		time.Sleep(20 * time.Millisecond)
		go func() { _, err := c.index(context.Background(), "s", nil); errB <- err }()
		time.Sleep(20 * time.Millisecond)
		cancelA()
		if err := <-errA; err == nil {
			t.Error("the cancelled caller got an index")
		}
		close(ss.release)
		if err := <-errB; err != nil {
			t.Errorf("a chunk whose context is alive failed with the first caller's: %v", err)
		}
	})
	t.Run("hung build abandoned", func(t *testing.T) {
		ss := newSlowStore(t)
		defer close(ss.release)
		c := New(nil, ss, Options{})
		for range 3 {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			if _, err := c.index(ctx, "s", nil); err == nil {
				t.Fatal("an index from a store that hangs")
			}
			cancel()
			c.cache.mu.Lock()
			left := c.cache.sources["s"]
			c.cache.mu.Unlock()
			if left != nil {
				t.Fatal("a build no caller waits for any more still holds the source")
			}
		}
	})
	t.Run("released index collectable", func(t *testing.T) {
		ss := newSlowStore(t)
		close(ss.release)
		c := New(nil, ss, Options{})
		idx, err := c.index(context.Background(), "s", nil)
		if err != nil {
			t.Fatal(err)
		}
		gone := weak.Make(idx)
		c.release("s", idx)
		idx = nil
		runtime.GC()
		runtime.GC()
		if gone.Value() != nil {
			t.Error("a released index is still reachable (its expiry timer holds it)")
		}
	})
	t.Run("release during a build", func(t *testing.T) {
		ss := newSlowStore(t)
		c := New(nil, ss, Options{})
		old := &keyIndex{built: time.Now().Add(-2 * indexTTL)}
		done := make(chan struct{})
		close(done)
		c.cache.sources = map[string]*indexCall{"s": {done: done, idx: old, used: time.Now()}}
		var wg sync.WaitGroup
		wg.Go(func() { c.index(context.Background(), "s", nil) }) // expired: rebuilt
		for {
			c.cache.mu.Lock()
			call := c.cache.sources["s"]
			c.cache.mu.Unlock()
			if call != nil && call.idx != old {
				break
			}
			time.Sleep(time.Millisecond)
		}
		wg.Go(func() {
			for range 1000 {
				c.release("s", old)
			}
		})
		close(ss.release)
		wg.Wait()
		c.cache.mu.Lock()
		defer c.cache.mu.Unlock()
		if c.cache.sources["s"] == nil {
			t.Error("the old index's release dropped the new one")
		}
	})
	t.Run("own expired index first", func(t *testing.T) {
		ss := newSlowStore(t)
		close(ss.release)
		c := New(nil, ss, Options{})
		done := make(chan struct{})
		close(done)
		now := time.Now()
		c.cache.sources = map[string]*indexCall{
			"A": {done: done, idx: &keyIndex{built: now.Add(-2 * indexTTL)}, used: now.Add(-time.Minute)},
			"B": {done: done, idx: &keyIndex{built: now}, used: now.Add(-2 * time.Minute)},
		}
		if _, err := c.index(context.Background(), "A", nil); err != nil {
			t.Fatal(err)
		}
		if c.cache.sources["B"] == nil {
			t.Error("another source's fresh index was evicted for the replacement of an expired one")
		}
	})
}

// TestTakenMarks: once the extras took a run's marks, a chunk attempt
// still running marks nothing more (run with -race), and does not reopen
// the run, so the index is not held busy.
func TestTakenMarks(t *testing.T) {
	x := &keyIndex{size: 64}
	since := time.Now()
	m := x.marks(since)
	x.cover(m, 0)
	taken := x.takeRun(since, 1)
	if taken != m {
		t.Fatal("a covered run's marks were not taken")
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 1000 {
			x.seeUnlisted(m, strconv.Itoa(i))
			x.cover(m, i)
		}
	})
	wg.Go(func() {
		for i := range 1000 {
			_ = taken.unlisted[strconv.Itoa(i)]
		}
	})
	wg.Wait()
	if len(taken.unlisted) != 0 || len(taken.covered) != 1 {
		t.Errorf("marks changed after they were taken: %d unlisted, %d covered", len(taken.unlisted), len(taken.covered))
	}
	if x.marks(since) != m || x.busy() {
		t.Error("a late attempt reopened the run")
	}
	if x.takeRun(since, 1) != nil {
		t.Error("a run's marks were taken twice")
	}
}

// TestIndexBuildsAgree: an index listed from the store's states in parts
// (StateScanner) holds what one replayed from the source's history holds:
// the same keys, each with the same entry, over keys with many versions,
// deletes, revivals and events after the watermark.
func TestIndexBuildsAgree(t *testing.T) {
	ctx := context.Background()
	st := openEventCenter(t)
	const src = "mysql.agree.t"
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	w := base.Add(6 * time.Second)
	var evs []eventcenter.Event
	for k := range 400 {
		for v := range 1 + k%12 {
			e := eventcenter.Event{Source: src, Key: strconv.Itoa(k), Time: base.Add(time.Duration(v) * time.Second),
				Pos: eventcenter.Position{Log: 1, Offset: uint64(k*16+v) << 16}, Op: eventcenter.OpUpdate,
				After: eventcenter.Row{"id": int64(k), "v": strconv.Itoa(v)}}
			switch {
			case k%7 == 0 && v == k%12: // deleted last
				e.Op, e.After = eventcenter.OpDelete, nil
			case k%5 == 0 && v == 1: // deleted, then revived
				e.Op, e.After = eventcenter.OpDelete, nil
			case k%3 == 0 && v == 0:
				e.Op = eventcenter.OpCorrection
			}
			evs = append(evs, e)
		}
	}
	if err := st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := st.AdvanceWatermark(ctx, src, 0, w); err != nil {
		t.Fatal(err)
	}
	index := func(store eventcenter.Store) (map[string]indexEntry, int) {
		t.Helper()
		idx, err := New(nil, store, Options{}).buildIndex(ctx, src, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !idx.upTo.Equal(w) {
			t.Fatalf("index up to %v, want the watermark %v", idx.upTo, w)
		}
		out, at := map[string]indexEntry{}, map[int32]string{}
		for pos, name := range idx.all {
			k := string(name)
			if other, ok := at[pos]; ok || pos < 0 || int(pos) >= idx.size {
				t.Fatalf("key %q at position %d (size %d), as %q is", k, pos, idx.size, other)
			}
			at[pos] = k
			e, p, ok := idx.lookup(k)
			if !ok || p != pos {
				t.Fatalf("lookup(%q) = %d, %v; all says %d", k, p, ok, pos)
			}
			if _, _, ok := idx.lookup(k + "x"); ok {
				t.Fatalf("lookup(%q) found a key not indexed", k+"x")
			}
			entry := *e
			entry.nameAt = 0 // where the shard keeps the name
			out[k] = entry
		}
		// A replayed index keeps no deleted key.
		if idx.size != len(out) {
			t.Fatalf("index of %d entries for %d keys", idx.size, len(out))
		}
		// The same, all at once: every key ever written (some deleted),
		// and keys never written.
		var rows []mysqlRow
		for k := range 400 {
			rows = append(rows, mysqlRow{key: strconv.Itoa(k)}, mysqlRow{key: strconv.Itoa(k) + "x"})
		}
		for i, hit := range idx.lookupRows(rows, nil) {
			e, pos, ok := hit.entry()
			want, wantPos, wantOK := idx.lookup(rows[i].key)
			if ok != wantOK || pos != wantPos || ok && *e != *want {
				t.Fatalf("lookupRows: key %q at %d (%v), lookup: at %d (%v)", rows[i].key, pos, ok, wantPos, wantOK)
			}
		}
		return out, len(idx.shards)
	}
	scanned, shards := index(st)
	replayed, _ := index(struct{ eventcenter.Store }{st}) // no StateScanner: a replay
	if runtime.GOMAXPROCS(0) > 1 && shards < 2 {
		t.Errorf("the listed index has %d shard(s)", shards)
	}
	if len(scanned) < 100 {
		t.Fatalf("%d keys indexed: the case is too small", len(scanned))
	}
	if len(scanned) != len(replayed) {
		t.Errorf("%d keys listed, %d replayed", len(scanned), len(replayed))
	}
	for k, e := range replayed {
		if scanned[k] != e {
			t.Errorf("key %s: listed %+v, replayed %+v", k, scanned[k], e)
		}
	}
}

// TestIndexShardFindsByName: keys whose hashes are equal (or equal in the
// half a table slot keeps) are told apart by their names, through the
// table's growth and its wrap-around, and a key not added is not found.
func TestIndexShardFindsByName(t *testing.T) {
	var sh indexShard
	hashOf := func(i int) uint64 {
		switch i % 4 {
		case 0:
			return 42 // the same hash
		case 1:
			return 7<<32 | uint64(i) // the same high half
		case 2:
			return ^uint64(0) // the table's last slot: probes wrap around
		}
		return keyHash(strconv.Itoa(i))
	}
	const n = 5000
	for i := range n {
		if err := sh.add(strconv.Itoa(i), indexEntry{key: hashOf(i), sum: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if 2*n > len(sh.table) {
		t.Fatalf("%d entries in a table of %d slots: more than half full", n, len(sh.table))
	}
	for i := range n {
		e := sh.find(strconv.Itoa(i), hashOf(i))
		if e < 0 || sh.entries[e].sum != uint64(i) || string(sh.name(e)) != strconv.Itoa(i) {
			t.Fatalf("key %d: found entry %d", i, e)
		}
		if e := sh.find(strconv.Itoa(i+n), hashOf(i)); e >= 0 {
			t.Fatalf("key %d, not added, found at %d", i+n, e)
		}
	}
	wrapped := 0
	for j, slot := range sh.table {
		if slot != 0 && uint64(j) < sh.entries[uint32(slot)-1].key&uint64(len(sh.table)-1) {
			wrapped++
		}
	}
	if wrapped == 0 {
		t.Error("no entry wrapped around the table's end")
	}
}
