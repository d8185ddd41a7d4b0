package embedded

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// readIters keeps the iterators of single reads of the events table (AsOf)
// from one read to the next. Creating and closing a Pebble iterator per
// read was about a sixth of a backfill's CPU (Close clears a large struct
// while the collector runs). An iterator sees the store as of its
// creation, so one is reused only while no write to the events table has
// committed since: each such write (Append, Evict) counts itself in gen
// before it returns, and closes the idle iterators; one made at an older
// count is never reused. A read that overlaps a write may not see it, as it
// may not with a fresh iterator either; a read that starts after a write
// returned always does.
//
// An idle iterator pins the memtables and tables of its moment, which
// compactions may have replaced since, and reads through it miss their
// work: none stays idle in use for longer than maxIterAge. Without reads
// nor writes, the idle ones (at most maxIdleIters) stay until the next
// read or write, or until the store closes.
type readIters struct {
	gen  atomic.Uint64 // committed writes of the events table
	mu   sync.Mutex
	free []readIter // idle iterators, all made at the current gen
}

type readIter struct {
	it   *pebble.Iterator
	gen  uint64    // gen when it was made
	made time.Time // when it was made
}

var (
	// maxIdleIters bounds the idle iterators.
	maxIdleIters = 2 * runtime.GOMAXPROCS(0)
	// maxIterAge bounds how long an iterator is reused.
	maxIterAge = 5 * time.Second
)

// wrote counts a committed write of the events table and closes the idle
// iterators, which cannot see it.
func (r *readIters) wrote() {
	r.mu.Lock()
	r.gen.Add(1)
	stale := r.free
	r.free = nil
	r.mu.Unlock()
	closeAll(stale)
}

// get returns an iterator over db that sees every write counted so far.
func (r *readIters) get(db *pebble.DB) (readIter, error) {
	gen := r.gen.Load()
	r.mu.Lock()
	// Every idle iterator was made at the current count (put keeps no
	// other, wrote drops them all), so only its age can rule it out; when
	// the last is too old, all are dropped (an idle one is seconds old at
	// most, a fresh one costs a NewIter).
	if n := len(r.free); n > 0 && time.Since(r.free[n-1].made) < maxIterAge {
		it := r.free[n-1]
		r.free = r.free[:n-1]
		r.mu.Unlock()
		return it, nil
	}
	stale := r.free
	r.free = nil
	r.mu.Unlock()
	closeAll(stale)
	// The count is read before the iterator is made: if a write commits in
	// between, the iterator may see it, and is merely retired early.
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{tabEvents}, UpperBound: []byte{tabEvents + 1}})
	if err != nil {
		return readIter{}, err
	}
	return readIter{it: it, gen: gen, made: time.Now()}, nil
}

// put takes back an iterator from get, closing it if a write committed
// since it was made, if it failed, or if enough are idle.
func (r *readIters) put(it readIter) error {
	r.mu.Lock()
	if it.gen == r.gen.Load() && len(r.free) < maxIdleIters && it.it.Error() == nil {
		r.free = append(r.free, it)
		r.mu.Unlock()
		return nil
	}
	r.mu.Unlock()
	return it.it.Close()
}

// close closes the idle iterators (before the store closes its database).
func (r *readIters) close() error {
	r.mu.Lock()
	stale := r.free
	r.free = nil
	r.mu.Unlock()
	return closeAll(stale)
}

func closeAll(its []readIter) error {
	var first error
	for _, it := range its {
		if err := it.it.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
