package embedded

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// readIters keeps the iterators of single reads of the events table (AsOf)
// from one read to the next. Creating and closing a Pebble iterator per
// read was about a sixth of a backfill's CPU (Close clears a large struct
// while the collector runs). An iterator sees the store as of its
// creation, so one is reused only while no write to the events table has
// committed since: each such write (Append, Evict) counts itself in gen
// before it returns, and an iterator made at an older count is closed
// instead of reused. A read that overlaps a write may not see it, as it
// may not with a fresh iterator either; a read that starts after a write
// returned always does.
type readIters struct {
	gen  atomic.Uint64 // committed writes of the events table
	mu   sync.Mutex
	free []readIter // idle iterators, the newest last
}

type readIter struct {
	it  *pebble.Iterator
	gen uint64 // gen when it was made
}

// maxIdleIters bounds the idle iterators: each pins the memtables and
// tables of its moment until it is reused or closed.
var maxIdleIters = 2 * runtime.GOMAXPROCS(0)

// wrote counts a committed write of the events table.
func (r *readIters) wrote() { r.gen.Add(1) }

// get returns an iterator over db that sees every write counted so far.
func (r *readIters) get(db *pebble.DB) (readIter, error) {
	gen := r.gen.Load()
	r.mu.Lock()
	for len(r.free) > 0 {
		it := r.free[len(r.free)-1]
		r.free = r.free[:len(r.free)-1]
		if it.gen == gen {
			r.mu.Unlock()
			return it, nil
		}
		it.it.Close() // stale: every other idle one is as old or older
		for _, old := range r.free {
			old.it.Close()
		}
		r.free = r.free[:0]
	}
	r.mu.Unlock()
	// The count is read before the iterator is made: if a write commits in
	// between, the iterator may see it, and is merely discarded early.
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{tabEvents}, UpperBound: []byte{tabEvents + 1}})
	if err != nil {
		return readIter{}, err
	}
	return readIter{it: it, gen: gen}, nil
}

// put takes back an iterator from get, closing it if it is stale or the
// pool is full.
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
	defer r.mu.Unlock()
	var first error
	for _, it := range r.free {
		if err := it.it.Close(); err != nil && first == nil {
			first = err
		}
	}
	r.free = nil
	return first
}
