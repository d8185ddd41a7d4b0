package correction

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/tidemark-dev/tidemark/cdc"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// The fast path of a comparison. Reading a key's history costs a seek in
// the event center per key, which caps a chunk at a few tens of thousands
// of keys a second. So a Corrector first indexes each source's states as
// of its watermark W once: per key, a hash of its state and the operation
// that set it. The store lists the states in parts, read in parallel
// (eventcenter.StateScanner), or else the source is replayed up to W.
// Every event in it was stored, hence committed in MySQL, before any chunk
// that reads MySQL after the index was built (range chunks ask for the
// index first), so it is positioned before the chunk's point. A chunk then
// replays only the source's events after W up to its point's time (the
// recent ones), and a key not among them whose MySQL row hashes like its
// indexed state is in sync without a read. (A point at or before W, which
// only clocks apart can make, sends every key of the chunk to the exact
// path.)
// Every other key — drifted, recent, unknown — takes the exact path
// (stateAt). The index answers "in sync" only; a 64-bit hash collision
// would let a drifted row pass as in sync with a probability of 2^-64.

// keyIndex is a source's state as of its watermark upTo: per key, an entry
// at a position. The keys are split into shards by their salt (codec.Salt
// modulo the number of shards), each built by a goroutine of its own where
// the store lists states in parts (eventcenter.StateScanner).
type keyIndex struct {
	src    string
	upTo   time.Time
	built  time.Time
	shards []indexShard
	size   int // entries over all shards

	mu   sync.Mutex
	runs map[int64]*runMarks // by the run's start (Chunk.Since)
}

// indexShard finds its entries by their keys' hashes (keyHash) in an
// open-addressing table, and the keys' bytes, end to end, in names. A
// lookup costs three cache misses (the table's slot, the entry, the key's
// bytes) where a Go map of the keys cost four (its control word, its slot,
// the key's bytes, the entry): at a million keys those misses were most of
// a chunk's comparison. An entry's position in the index (which runMarks
// count in) is base + its place in entries.
type indexShard struct {
	table   []uint64 // per slot: 0, or the hash's high half << 32 | place in entries + 1
	entries []indexEntry
	names   []byte
	base    int32
}

// keyHash hashes an event key for the index.
func keyHash(key string) uint64 { return maphash.String(seed, key) }

// find returns the place in entries of key, which hashes to h, or -1.
func (sh *indexShard) find(key string, h uint64) int32 {
	if len(sh.table) == 0 {
		return -1
	}
	mask := uint64(len(sh.table) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		slot := sh.table[i]
		if slot == 0 {
			return -1
		}
		if uint32(slot>>32) == uint32(h>>32) {
			if e := int32(uint32(slot)) - 1; sh.entries[e].key == h && string(sh.name(e)) == key {
				return e
			}
		}
	}
}

// add appends the entry of a key not in the shard and files it in the
// table, growing it to keep it at most half full.
func (sh *indexShard) add(key string, e indexEntry) error {
	if err := sh.append(key, e); err != nil {
		return err
	}
	if 2*len(sh.entries) > len(sh.table) {
		sh.grow(2 * len(sh.table))
	} else {
		sh.place(e.key, int32(len(sh.entries)-1))
	}
	return nil
}

// append appends the entry of a key not in the shard without filing it in
// the table (grow files them all).
func (sh *indexShard) append(key string, e indexEntry) error {
	if len(sh.entries) == math.MaxInt32-1 || len(sh.names)+len(key) > math.MaxUint32 {
		return errors.New("more than 2^31 keys or 4 GiB of them in one shard of the index")
	}
	e.nameAt, e.nameLen = uint32(len(sh.names)), uint16(len(key))
	sh.names = append(sh.names, key...)
	sh.entries = append(sh.entries, e)
	return nil
}

// place files entry i, whose key hashes to h, in the table.
func (sh *indexShard) place(h uint64, i int32) {
	mask := uint64(len(sh.table) - 1)
	j := h & mask
	for sh.table[j] != 0 {
		j = (j + 1) & mask
	}
	sh.table[j] = h>>32<<32 | uint64(i+1)
}

// grow makes a table of at least twice the entries' slots (a power of two,
// at least slots) and files every entry in it, a batch at a time: the first
// slots of a batch's entries are read, then the entries filed, so that the
// cache misses of the reads overlap.
func (sh *indexShard) grow(slots int) {
	sh.table = make([]uint64, 1<<bits.Len(uint(max(slots, 2*len(sh.entries), 1024)-1)))
	mask := uint64(len(sh.table) - 1)
	var first [64]uint64
	for lo := 0; lo < len(sh.entries); lo += len(first) {
		batch := sh.entries[lo:min(lo+len(first), len(sh.entries))]
		for i := range batch {
			first[i] = sh.table[batch[i].key&mask]
		}
		for i := range batch {
			h := batch[i].key
			if j := h & mask; first[i] == 0 && sh.table[j] == 0 {
				sh.table[j] = h>>32<<32 | uint64(lo+i+1)
			} else {
				sh.place(h, int32(lo+i))
			}
		}
	}
}

// compact drops the entries of deleted keys (a replayed index's) and
// refiles the rest: a source with much churn (a queue's table) leaves
// many, whose names and slots would be kept for nothing. The entries'
// places change: only before the index is used.
func (sh *indexShard) compact() {
	live, bytes := 0, 0
	for i := range sh.entries {
		if !sh.entries[i].gone {
			live, bytes = live+1, bytes+int(sh.entries[i].nameLen)
		}
	}
	if live == len(sh.entries) {
		return
	}
	entries, names := make([]indexEntry, 0, live), make([]byte, 0, bytes)
	for i := range sh.entries {
		if e := sh.entries[i]; !e.gone {
			name := sh.name(int32(i))
			e.nameAt = uint32(len(names))
			names = append(names, name...)
			entries = append(entries, e)
		}
	}
	sh.entries, sh.names, sh.table = entries, names, nil
	sh.grow(0)
}

// name returns the key of entry i.
func (sh *indexShard) name(i int32) []byte {
	e := &sh.entries[i]
	return sh.names[e.nameAt : e.nameAt+uint32(e.nameLen)]
}

// shard returns the shard of key.
func (x *keyIndex) shard(key string) *indexShard {
	if len(x.shards) == 1 {
		return &x.shards[0]
	}
	return &x.shards[int(codec.Salt(x.src, key))%len(x.shards)]
}

// lookup returns key's entry and its position.
func (x *keyIndex) lookup(key string) (*indexEntry, int32, bool) {
	if len(x.shards) == 0 {
		return nil, 0, false
	}
	sh := x.shard(key)
	i := sh.find(key, keyHash(key))
	if i < 0 || sh.entries[i].gone {
		return nil, 0, false
	}
	return &sh.entries[i], sh.base + i, true
}

// indexHit is where lookupRows found a row's key.
type indexHit struct {
	sh   *indexShard
	h    uint64 // the key's hash
	slot uint64 // its first slot's
	e    int32  // the place of its entry in sh.entries; -1: not indexed
}

// entry returns the hit's entry and its position, if the key is indexed.
func (h *indexHit) entry() (*indexEntry, int32, bool) {
	if h.e < 0 {
		return nil, 0, false
	}
	return &h.sh.entries[h.e], h.sh.base + h.e, true
}

// lookupRows looks up the keys of rows (as lookup), into hits. It reads
// the keys' first slots in the table for every row, then their entries,
// then their names, so that the cache misses of one key overlap those of
// the next (each pass's reads are independent) rather than follow each
// other: a chunk's lookups took about a fifth of its time one by one.
func (x *keyIndex) lookupRows(rows []mysqlRow, hits []indexHit) []indexHit {
	hits = slices.Grow(hits[:0], len(rows))[:len(rows)]
	if len(x.shards) == 0 {
		for i := range hits {
			hits[i] = indexHit{e: -1}
		}
		return hits
	}
	for i := range rows {
		sh := x.shard(rows[i].key)
		hits[i] = indexHit{sh: sh, h: keyHash(rows[i].key), e: -1}
	}
	// The first slot of each, in a loop of loads only, so that many are
	// in flight at once.
	for i := range hits {
		if t := hits[i].sh.table; len(t) > 0 {
			hits[i].slot = t[hits[i].h&uint64(len(t)-1)]
		}
	}
	for i := range hits {
		switch hit := &hits[i]; {
		case hit.slot == 0: // not indexed
		case uint32(hit.slot>>32) == uint32(hit.h>>32):
			hit.e = int32(uint32(hit.slot)) - 1
		default:
			hit.e = -2 // another key's: probe on
		}
	}
	for i := range hits { // the entry a first slot names
		if hit := &hits[i]; hit.e >= 0 && hit.sh.entries[hit.e].key != hit.h {
			hit.e = -2
		}
	}
	for i := range hits { // its name; probing on where it is another key's
		hit := &hits[i]
		if hit.e >= 0 && string(hit.sh.name(hit.e)) != rows[i].key {
			hit.e = -2
		}
		if hit.e == -2 {
			hit.e = hit.sh.find(rows[i].key, hit.h)
		}
		if hit.e >= 0 && hit.sh.entries[hit.e].gone {
			hit.e = -1
		}
	}
	return hits
}

// all yields the position and the key of every indexed key (the key's
// bytes are valid during the call only).
func (x *keyIndex) all(yield func(int32, []byte) bool) {
	for _, sh := range x.shards {
		for i := range sh.entries {
			if !sh.entries[i].gone && !yield(sh.base+int32(i), sh.name(int32(i))) {
				return
			}
		}
	}
}

// runMarks is what one run's range chunks saw of MySQL through an index,
// so that the run's extra keys (Extras) need no second scan of the table.
// Range chunks cover every key, so once each of them has compared
// (covered), a key MySQL had at its chunk's point is marked: by its entry
// if indexed, by name if not (a key the run found missing, one inserted
// since the index). Extras takes the marks once (taken); a chunk attempt
// still running after that marks nothing more.
type runMarks struct {
	seen     []atomic.Uint32 // bit i: MySQL had the key of entry i
	unlisted map[string]bool // keys MySQL had that the index has not (under keyIndex.mu)
	overflow bool            // unlisted outgrew maxUnlisted: Extras scans (under keyIndex.mu)
	covered  map[int]bool    // range chunks compared in full (under keyIndex.mu)
	taken    bool            // Extras took the marks (under keyIndex.mu)
}

// maxUnlisted bounds the keys a run marks by name: beyond it (a table
// the event center barely knows) Extras scans the table instead.
const maxUnlisted = 1 << 20

// marks returns the marks of the run that started at since, made at the
// first call; nil if since is zero (a chunk of no run).
func (x *keyIndex) marks(since time.Time) *runMarks {
	if since.IsZero() {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.runs == nil {
		x.runs = map[int64]*runMarks{}
	}
	m := x.runs[since.UnixNano()]
	if m == nil {
		m = &runMarks{seen: make([]atomic.Uint32, (x.size+31)/32), unlisted: map[string]bool{}, covered: map[int]bool{}}
		x.runs[since.UnixNano()] = m
	}
	return m
}

// see marks the indexed key at pos as one MySQL has. (A late chunk
// attempt may still mark a taken run's keys: what it marks is true, and
// the bits are atomic.)
func (m *runMarks) see(pos int32) { m.seen[pos>>5].Or(1 << (pos & 31)) }

// saw reports whether a chunk marked the indexed key at pos.
func (m *runMarks) saw(pos int32) bool { return m.seen[pos>>5].Load()&(1<<(pos&31)) != 0 }

// seeUnlisted marks a key the index has not as one MySQL has.
func (x *keyIndex) seeUnlisted(m *runMarks, key string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch {
	case m.taken || m.overflow:
	case len(m.unlisted) == maxUnlisted:
		m.overflow, m.unlisted = true, nil
	default:
		m.unlisted[key] = true
	}
}

// cover records that range chunk i compared every row it read.
func (x *keyIndex) cover(m *runMarks, i int) {
	x.mu.Lock()
	if !m.taken {
		m.covered[i] = true
	}
	x.mu.Unlock()
}

// takeRun takes the marks of the run that started at since and returns
// them if its range chunks 0…chunks-1 all compared through this index;
// nil otherwise (a chunk ran on another worker, or on an index since
// rebuilt; too many keys unlisted): the caller then scans MySQL's keys.
// The run stays listed, taken, so that a late chunk attempt marks nothing.
func (x *keyIndex) takeRun(since time.Time, chunks int) *runMarks {
	if since.IsZero() {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.runs[since.UnixNano()]
	if m == nil || m.taken {
		return nil
	}
	m.taken = true
	if m.overflow {
		return nil
	}
	for i := range chunks {
		if !m.covered[i] {
			return nil
		}
	}
	return m
}

// spend frees the names of taken marks once the extras used them.
func (x *keyIndex) spend(m *runMarks) {
	x.mu.Lock()
	m.unlisted = nil
	x.mu.Unlock()
}

// busy reports whether a run's chunks may still use the index: one whose
// marks Extras has not taken.
func (x *keyIndex) busy() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, m := range x.runs {
		if !m.taken {
			return true
		}
	}
	return false
}

// indexEntry holds no pointer (a time.Time holds one), so that the
// garbage collector never scans the entries: a million for a table of a
// million rows.
type indexEntry struct {
	key      uint64         // keyHash of the key
	sum      uint64         // encodedSum of the After row
	storedAt int64          // when that event was stored, in Unix nanoseconds
	nameAt   uint32         // where the key starts in indexShard.names
	nameLen  uint16         // its length (an event key's is at most eventcenter.MaxKeyLen)
	op       eventcenter.Op // the operation that set the state
	gone     bool           // the key's state was deleted (a replayed index's)
}

// An event key's length fits indexEntry.nameLen.
const _ = math.MaxUint16 - eventcenter.MaxKeyLen

var seed = maphash.MakeSeed()

// encodedSum hashes a row's encoding: a stored row's, or a MySQL row's
// made by rowText.
func encodedSum(enc []byte) uint64 { return maphash.Bytes(seed, enc) }

// indexTTL is how long a built index is reused: the chunks of one run.
const indexTTL = time.Hour

// keptIndexes bounds the indexes a Corrector keeps: the source whose
// chunks run and the one before it, whose last chunks and extras may
// still be running when the next source's first chunk asks for its own.
const keptIndexes = 2

type indexCache struct {
	mu      sync.Mutex
	sources map[string]*indexCall
}

type indexCall struct {
	done    chan struct{}
	idx     *keyIndex
	err     error
	used    time.Time          // the last time it was asked for (under indexCache.mu)
	waiters int                // callers waiting for the build (under indexCache.mu)
	cancel  context.CancelFunc // stops the build
	expire  *time.Timer        // forgets the index after indexTTL (under indexCache.mu)
}

// forget removes the source's call from the cache if it is call (under
// indexCache.mu), stopping its timer so that nothing holds the index.
func (c *indexCache) forget(src string, call *indexCall) {
	if c.sources[src] != call {
		return
	}
	delete(c.sources, src)
	if call.expire != nil {
		call.expire.Stop()
	}
}

// index returns the source's index, building it (once, however many chunks
// ask at the same time) if there is none younger than indexTTL. schema,
// if not nil, is the source's table, whose estimated row count sizes a new
// index.
func (c *Corrector) index(ctx context.Context, src string, schema *cdc.Table) (*keyIndex, error) {
	c.cache.mu.Lock()
	if c.cache.sources == nil {
		c.cache.sources = map[string]*indexCall{}
	}
	call := c.cache.sources[src]
	if call != nil {
		select {
		case <-call.done:
			if call.err != nil || time.Since(call.idx.built) > indexTTL {
				c.cache.forget(src, call)
				call = nil
			}
		default:
		}
	}
	if call == nil {
		// Each index holds every key of its source: keep the most recently
		// used ones only.
		for len(c.cache.sources) >= keptIndexes {
			var oldest string
			for k, old := range c.cache.sources {
				select {
				case <-old.done:
					if oldest == "" || old.used.Before(c.cache.sources[oldest].used) {
						oldest = k
					}
				default:
				}
			}
			if oldest == "" {
				break // all being built
			}
			c.cache.forget(oldest, c.cache.sources[oldest])
		}
		// Built for every chunk that asks, not only this one: each waits
		// with its own context, and a cancelled caller fails no other. The
		// build stops when the last caller gives up (a store that hangs
		// then holds no source for good: the next caller builds anew).
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		call = &indexCall{done: make(chan struct{}), used: time.Now(), cancel: cancel}
		c.cache.sources[src] = call
		go func() {
			idx, err := c.buildIndex(bctx, src, schema)
			cancel()
			c.cache.mu.Lock()
			defer c.cache.mu.Unlock()
			call.idx, call.err = idx, err
			close(call.done)
			if err == nil {
				// Forgotten after indexTTL even if no run's extras release
				// it (they ran on another worker). The timer holds the call
				// weakly: a stopped timer may stay queued until it would
				// have fired, and must not keep a forgotten index.
				weakCall := weak.Make(call)
				call.expire = time.AfterFunc(indexTTL, func() {
					if call := weakCall.Value(); call != nil {
						c.cache.mu.Lock()
						defer c.cache.mu.Unlock()
						c.cache.forget(src, call)
					}
				})
			}
		}()
	}
	call.used = time.Now()
	call.waiters++
	c.cache.mu.Unlock()
	select {
	case <-call.done:
	case <-ctx.Done():
	}
	c.cache.mu.Lock()
	defer c.cache.mu.Unlock()
	call.waiters--
	select {
	case <-call.done:
		return call.idx, call.err
	default:
	}
	if call.waiters == 0 {
		call.cancel()
		c.cache.forget(src, call)
	}
	return nil, ctx.Err()
}

// warmTimeout bounds a build that Warm started and no chunk joined.
const warmTimeout = 10 * time.Minute

// Warm starts building the source's index in the background, if the
// Corrector has none, and returns at once: a run's plan (which reads the
// table's keys) calls it so that the index is built while MySQL plans,
// not after, when the first chunk asks for it. schema sizes it (nil: no
// estimate). The index is kept as any other: for indexTTL, or until a
// run's extras release it, or newer ones push it out.
func (c *Corrector) Warm(src string, schema *cdc.Table) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), warmTimeout)
		defer cancel()
		c.index(ctx, src, schema) // an error is the chunks' to report
	}()
}

// release forgets the source's index if it is idx and no run's chunks may
// still use it: the last use of a run (its extras) frees the memory.
func (c *Corrector) release(src string, idx *keyIndex) {
	if idx.busy() {
		return
	}
	c.cache.mu.Lock()
	defer c.cache.mu.Unlock()
	call := c.cache.sources[src]
	if call == nil {
		return
	}
	select {
	case <-call.done:
		if call.idx == idx {
			c.cache.forget(src, call)
		}
	default: // another run's index, being built
	}
}

// estimateRows is the server's estimate of the table's rows (0 if schema
// is nil or the server does not say): the size a new index starts at,
// capped so that a wrong estimate cannot claim much memory ahead.
func (c *Corrector) estimateRows(ctx context.Context, schema *cdc.Table) int {
	if schema == nil {
		return 0
	}
	return int(min(EstimateRows(ctx, c.db, schema), 1<<21))
}

// EstimateRows is the server's estimate of the table's rows, from its
// statistics (InnoDB's can be off by half): 0 if the server does not say.
func EstimateRows(ctx context.Context, db *sql.DB, schema *cdc.Table) int64 {
	var n sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`,
		schema.Database, schema.Name).Scan(&n); err != nil || !n.Valid || n.Int64 < 0 {
		return 0
	}
	return n.Int64
}

func (c *Corrector) buildIndex(ctx context.Context, src string, schema *cdc.Table) (*keyIndex, error) {
	idx := &keyIndex{src: src, built: time.Now(), shards: []indexShard{{}}}
	w, err := c.store.Watermark(ctx, src)
	if err != nil || w.IsZero() {
		return idx, err
	}
	// No later than MySQL's clock less the CDC's lateness: while MySQL is
	// idle the CDC moves the watermark by its own clock, and if that runs
	// ahead, chunks read after the build would have points before the
	// watermark (and no index; see ChunkReporting). The state as of an
	// earlier time is as complete: every event up to the watermark is
	// stored.
	if c.db != nil {
		now, err := serverTime(ctx, c.db)
		if err != nil {
			return nil, fmt.Errorf("correction: source %s: MySQL's clock: %w", src, err)
		}
		if mysql := now.Add(-cdc.DefaultLateness); mysql.Before(w) {
			w = mysql
		}
	}
	idx.upTo = w
	n := c.estimateRows(ctx, schema)
	if sc, ok := c.store.(eventcenter.StateScanner); ok {
		return idx, c.scanIndex(ctx, sc, idx, n)
	}
	return idx, c.replayIndex(ctx, idx, n)
}

// scanIndex fills idx from the states the store lists as of idx.upTo, in
// parts: one goroutine per shard, each reading its part and filing it into
// the shard's own map and entries.
func (c *Corrector) scanIndex(ctx context.Context, sc eventcenter.StateScanner, idx *keyIndex, rows int) error {
	// Two parts a core: while one goroutine waits (for a block read into
	// the cache, for the collector), the other keeps the core busy. On two
	// cores, 4 parts built a 1M-key index in 0.55–0.58 s beside 0.63–0.68 s
	// for 2, and 8 did no better than 4.
	parts := min(max(2*runtime.GOMAXPROCS(0), 1), 32)
	idx.shards = make([]indexShard, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		wg.Go(func() {
			sh := &idx.shards[p]
			sh.entries = make([]indexEntry, 0, rows/parts)
			for ev, err := range sc.ScanStates(ctx, idx.src, idx.upTo, p, parts) {
				if err == nil && ev.After != nil { // else deleted
					// The store lists a key once (StateScanner's contract),
					// so no entry is looked for: they are filed at the end.
					err = sh.append(ev.Key, indexEntry{key: keyHash(ev.Key), sum: encodedSum(ev.After), op: ev.Op, storedAt: ev.StoredAt.UnixNano()})
				}
				if err != nil {
					errs[p] = err
					return
				}
			}
			sh.grow(0)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for p := range idx.shards {
		sh := &idx.shards[p]
		if idx.size+len(sh.entries) > math.MaxInt32 {
			return fmt.Errorf("correction: source %s: more than %d keys to index", idx.src, math.MaxInt32)
		}
		sh.base = int32(idx.size)
		idx.size += len(sh.entries)
	}
	return nil
}

// replayIndex fills idx (one shard) from a replay of the source up to
// idx.upTo, for a store that does not list states.
func (c *Corrector) replayIndex(ctx context.Context, idx *keyIndex, rows int) error {
	sh := &idx.shards[0]
	sh.entries = make([]indexEntry, 0, rows)
	sh.grow(2 * rows)
	defer func() {
		sh.compact()
		idx.size = len(sh.entries)
	}()
	// Two stages, each about half the work: this goroutine files the
	// entries into the map while another reads the rows as stored, never
	// decoded, and hashes their encoding.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type indexed struct {
		key string
		e   indexEntry
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
		for ev, err := range codec.ReplayRaw(ctx, c.store, idx.src, eventcenter.MinTime, idx.upTo.Add(time.Nanosecond), time.Time{}) {
			if err != nil {
				scanErr = err
				return
			}
			it := indexed{key: ev.Key, e: indexEntry{key: keyHash(ev.Key), gone: ev.After == nil}}
			if !it.e.gone {
				it.e.sum, it.e.op, it.e.storedAt = encodedSum(ev.After), ev.Op, ev.StoredAt.UnixNano()
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
			if i := sh.find(it.key, it.e.key); i >= 0 {
				it.e.nameAt, it.e.nameLen = sh.entries[i].nameAt, sh.entries[i].nameLen
				sh.entries[i] = it.e
				continue
			}
			if it.e.gone {
				continue
			}
			if err := sh.add(it.key, it.e); err != nil {
				return fmt.Errorf("correction: source %s: %w", idx.src, err)
			}
		}
		clear(b)
		free <- b[:0]
	}
	return scanErr
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
