package correction

import (
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
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

// keyIndex is a source's state as of its watermark upTo: per key, the
// position of its entry. (An int32 per key keeps the map small: at a
// million keys its probes miss the caches, and they are most of the work.)
type keyIndex struct {
	upTo    time.Time
	built   time.Time
	keys    map[string]int32
	entries []indexEntry // a deleted key's entry stays, out of keys
}

// entry returns the key's entry, if the key has a state.
func (x *keyIndex) entry(key string) (*indexEntry, bool) {
	i, ok := x.keys[key]
	if !ok {
		return nil, false
	}
	return &x.entries[i], true
}

type indexEntry struct {
	sum      uint64         // encodedSum of the After row
	op       eventcenter.Op // the operation that set the state
	storedAt time.Time      // when that event was stored
}

var seed = maphash.MakeSeed()

// rowSum hashes the encoding of the row whose column names[i] holds
// vals[i] (codec.AppendColumns, names sorted: the encoding codec.AppendRow
// writes, each value with its type), so two rows hash equal only if they
// are equal or two 64-bit hashes collide (about 2^-64), as the index's
// sums of the stored rows' encodings (encodedSum). buf is scratch space,
// returned for the next call. It reports false for a row the codec cannot
// encode, which is then never taken as in sync.
func rowSum(buf []byte, names []string, vals []any) (uint64, []byte, bool) {
	for _, v := range vals {
		if codec.CheckValue(v) != nil {
			return 0, buf, false
		}
	}
	buf = codec.AppendColumns(buf[:0], names, vals)
	return encodedSum(buf), buf, true
}

// encodedSum hashes a row's encoding: the sum rowSum gives the row.
func encodedSum(enc []byte) uint64 { return maphash.Bytes(seed, enc) }

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
	idx := &keyIndex{built: time.Now(), keys: map[string]int32{}}
	w, err := c.store.Watermark(ctx, src)
	if err != nil || w.IsZero() {
		return idx, err
	}
	idx.upTo = w
	// Two stages, each about half the work: this goroutine files the
	// entries into the map while another reads the rows as stored, never
	// decoded, and hashes their encoding.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type indexed struct {
		key string
		e   indexEntry
		del bool // the key's state was removed
	}
	const batch = 4096
	batches, free := make(chan []indexed, 4), make(chan []indexed, 5)
	for range cap(free) {
		free <- make([]indexed, 0, batch)
	}
	var scanErr error
	go func() {
		defer close(batches)
		b := <-free
		for ev, err := range codec.ReplayRaw(ctx, c.store, src, eventcenter.MinTime, w.Add(time.Nanosecond), time.Time{}) {
			if err != nil {
				scanErr = err
				return
			}
			it := indexed{key: ev.Key, del: ev.After == nil}
			if !it.del {
				it.e = indexEntry{sum: encodedSum(ev.After), op: ev.Op, storedAt: ev.StoredAt}
			}
			if b = append(b, it); len(b) == batch {
				select {
				case batches <- b:
				case <-ctx.Done():
					return
				}
				select {
				case b = <-free:
				case <-ctx.Done():
					return
				}
			}
		}
		select {
		case batches <- b:
		case <-ctx.Done():
		}
	}()
	for b := range batches {
		for _, it := range b {
			if it.del {
				delete(idx.keys, it.key)
				continue
			}
			if i, ok := idx.keys[it.key]; ok {
				idx.entries[i] = it.e
				continue
			}
			if len(idx.entries) == math.MaxInt32 {
				return nil, fmt.Errorf("correction: source %s: more than %d keys to index", src, math.MaxInt32)
			}
			idx.keys[it.key] = int32(len(idx.entries))
			idx.entries = append(idx.entries, it.e)
		}
		clear(b)
		free <- b[:0]
	}
	if scanErr != nil {
		return nil, scanErr
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
