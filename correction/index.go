package correction

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// The fast path of a comparison. Reading a key's history costs a seek in
// the event center per key, which caps a chunk at a few tens of thousands
// of keys a second. So a Corrector first replays each source once up to
// its watermark W into an index: per key, a hash of its state and the
// operation that set it. Every event in it was stored, hence committed in
// MySQL, before any later chunk's snapshot, so it is positioned before the
// chunk's point. A chunk then replays only the source's events after W up
// to its point's time (the recent ones), and a key not among them whose
// MySQL row hashes like its indexed state is in sync without a read.
// Every other key — drifted, recent, unknown — takes the exact path
// (stateAt). The index answers "in sync" only; a 64-bit hash collision
// would let a drifted row pass as in sync with a probability of 2^-64.

// keyIndex is a source's state as of its watermark upTo.
type keyIndex struct {
	upTo  time.Time
	built time.Time
	keys  map[string]indexEntry
}

type indexEntry struct {
	sum      uint64         // rowSum of the After row
	op       eventcenter.Op // the operation that set the state
	storedAt time.Time      // when that event was stored
}

var seed = maphash.MakeSeed()

// rowSum hashes a row's columns and typed values, independent of map order:
// the sum of a hash of each column's name and value. Column names are
// unique in a row, so two rows hash equal only if they are equal or their
// sums of independent 64-bit hashes collide (about 2^-64). No sort, no
// allocation: it runs once per event of the index and per in-sync key.
func rowSum(r eventcenter.Row) uint64 {
	var (
		h   maphash.Hash
		b   [8]byte
		sum uint64
	)
	h.SetSeed(seed)
	for c, val := range r {
		h.Reset()
		h.WriteString(c)
		h.WriteByte(0)
		switch v := val.(type) {
		case nil:
			h.WriteByte('n')
		case bool:
			h.WriteByte('b')
			if v {
				h.WriteByte(1)
			} else {
				h.WriteByte(0)
			}
		case int64:
			h.WriteByte('i')
			binary.LittleEndian.PutUint64(b[:], uint64(v))
			h.Write(b[:])
		case int:
			h.WriteByte('i')
			binary.LittleEndian.PutUint64(b[:], uint64(v))
			h.Write(b[:])
		case float64:
			h.WriteByte('f')
			binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
			h.Write(b[:])
		case string:
			h.WriteByte('s')
			h.WriteString(v)
		case []byte:
			h.WriteByte('x')
			h.Write(v)
		case eventcenter.Decimal:
			h.WriteByte('d')
			h.WriteString(string(v))
		case time.Time:
			h.WriteByte('t')
			binary.LittleEndian.PutUint64(b[:], uint64(v.UnixNano()))
			h.Write(b[:])
		default:
			h.WriteByte('?') // never equal to a typed value
		}
		sum += h.Sum64()
	}
	return sum
}

// indexTTL is how long a built index is reused: the chunks of one run.
const indexTTL = time.Hour

type indexCache struct {
	mu      sync.Mutex
	sources map[string]*indexCall
}

type indexCall struct {
	done chan struct{}
	idx  *keyIndex
	err  error
}

// index returns the source's index, building it (once, however many chunks
// ask at the same time) if there is none younger than indexTTL.
func (c *Corrector) index(ctx context.Context, src string) (*keyIndex, error) {
	c.cache.mu.Lock()
	if c.cache.sources == nil {
		c.cache.sources = map[string]*indexCall{}
	}
	call := c.cache.sources[src]
	if call != nil {
		select {
		case <-call.done:
			if call.err != nil || time.Since(call.idx.built) > indexTTL {
				call = nil
			}
		default:
		}
	}
	if call == nil {
		// One index per corrector at a time: a run corrects one source after
		// the other, and each index holds every key of its source.
		for k, old := range c.cache.sources {
			select {
			case <-old.done:
				delete(c.cache.sources, k)
			default:
			}
		}
		call = &indexCall{done: make(chan struct{})}
		c.cache.sources[src] = call
		c.cache.mu.Unlock()
		call.idx, call.err = c.buildIndex(ctx, src)
		close(call.done)
	} else {
		c.cache.mu.Unlock()
	}
	select {
	case <-call.done:
		return call.idx, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Corrector) buildIndex(ctx context.Context, src string) (*keyIndex, error) {
	idx := &keyIndex{built: time.Now(), keys: map[string]indexEntry{}}
	w, err := c.store.Watermark(ctx, src)
	if err != nil || w.IsZero() {
		return idx, err
	}
	idx.upTo = w
	for ev, err := range c.store.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{src}, From: eventcenter.MinTime, To: w.Add(time.Nanosecond)}) {
		if err != nil {
			return nil, err
		}
		if ev.After == nil {
			delete(idx.keys, ev.Key)
			continue
		}
		idx.keys[ev.Key] = indexEntry{sum: rowSum(ev.After), op: ev.Op, storedAt: ev.StoredAt}
	}
	return idx, nil
}

// recent returns the keys of src with an event after the index's upTo and
// at or before t.
func (c *Corrector) recent(ctx context.Context, src string, idx *keyIndex, t time.Time) (map[string]bool, error) {
	from := idx.upTo.Add(time.Nanosecond)
	if idx.upTo.IsZero() {
		from = eventcenter.MinTime
	}
	out := map[string]bool{}
	if t.Before(from) {
		return out, nil
	}
	for ev, err := range c.store.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{src}, From: from, To: t.Add(time.Nanosecond)}) {
		if err != nil {
			return nil, err
		}
		out[ev.Key] = true
	}
	return out, nil
}
