package tiered

import (
	"bytes"
	"context"
	"encoding/gob"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// A segment's index object (its name plus ".idx") holds a Bloom filter of
// its keys, so that an as-of of a key the segment does not hold reads no
// row group of it, and, for each index the source had declared when the
// segment was written, the (value, key) pairs of its events' After rows,
// sorted: a cold lookup reads the candidates of a value from it instead of
// scanning the segment's rows. Segments written before an index was
// declared are scanned for it.

// segIndex is the content of an index object.
type segIndex struct {
	Keys    bloom                   // the segment's keys
	Entries map[string][]indexEntry // by index name, sorted and distinct
}

// bloom is a Bloom filter of strings: 10 bits and 7 probes per key, about
// 1 % false positives.
type bloom struct {
	Bits []uint64
}

const bloomProbes = 7

func newBloom(keys int) bloom {
	return bloom{Bits: make([]uint64, (keys*10+63)/64+1)}
}

func (b *bloom) probes(key string, f func(bit uint64)) {
	h := fnv.New64a()
	h.Write([]byte(key))
	sum := h.Sum64()
	h1, h2 := sum&0xffffffff, sum>>32|1
	n := uint64(len(b.Bits) * 64)
	for i := range uint64(bloomProbes) {
		f((h1 + i*h2) % n)
	}
}

func (b *bloom) add(key string) {
	b.probes(key, func(bit uint64) { b.Bits[bit/64] |= 1 << (bit % 64) })
}

// mayContain is false only if key was never added.
func (b *bloom) mayContain(key string) bool {
	ok := true
	b.probes(key, func(bit uint64) { ok = ok && b.Bits[bit/64]&(1<<(bit%64)) != 0 })
	return ok
}

type indexEntry struct{ Value, Key string }

func indexName(segment string) string { return segment + ".idx" }

// buildIndex returns the index object of a segment's rows (in key order)
// for the declared indexes.
func buildIndex(rows []segRow, ixs []eventcenter.Index) ([]byte, error) {
	keys := 0
	for i := range rows {
		if i == 0 || rows[i].Key != rows[i-1].Key {
			keys++
		}
	}
	idx := segIndex{Keys: newBloom(keys), Entries: map[string][]indexEntry{}}
	for i := range rows {
		idx.Keys.add(rows[i].Key)
	}
	for _, ix := range ixs {
		var entries []indexEntry
		for i := range rows {
			v, ok, err := codec.IndexValue(rows[i].After, ix.Column)
			if err != nil {
				return nil, fmt.Errorf("tiered: row of key %q: %w", rows[i].Key, err)
			}
			if ok {
				entries = append(entries, indexEntry{v, rows[i].Key})
			}
		}
		slices.SortFunc(entries, compareEntries)
		idx.Entries[ix.Name] = slices.Compact(entries)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(idx); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func compareEntries(a, b indexEntry) int {
	if c := strings.Compare(a.Value, b.Value); c != 0 {
		return c
	}
	return strings.Compare(a.Key, b.Key)
}

// keysOf returns the keys with value in the named index.
func (x *segIndex) keysOf(index, value string) []string {
	entries := x.Entries[index]
	i, _ := slices.BinarySearchFunc(entries, indexEntry{Value: value}, compareEntries)
	var keys []string
	for ; i < len(entries) && entries[i].Value == value; i++ {
		keys = append(keys, entries[i].Key)
	}
	return keys
}

// readIndex returns the index object of seg, from the cache or by a GET.
func (s *Store) readIndex(ctx context.Context, seg *Segment) (*segIndex, error) {
	s.mu.Lock()
	x, ok := s.indexes[seg.Name]
	s.mu.Unlock()
	if ok {
		return x, nil
	}
	data, err := s.cold.Get(ctx, indexName(seg.Name))
	if err != nil {
		return nil, err
	}
	x = new(segIndex)
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(x); err != nil {
		return nil, fmt.Errorf("tiered: index of %s: %w", seg.Name, err)
	}
	s.mu.Lock()
	if len(s.indexes) >= maxCachedIndexes {
		clear(s.indexes) // a crude bound: rebuilt from the blobs as reads need them
	}
	s.indexes[seg.Name] = x
	s.mu.Unlock()
	return x, nil
}

// maxCachedIndexes bounds the index objects a Store keeps decoded.
const maxCachedIndexes = 1024

// holds reports whether seg may hold key: false if its key range or its
// Bloom filter (in the index object) rules the key out.
func (s *Store) holds(ctx context.Context, seg *Segment, key string) (bool, error) {
	if seg.group(key) < 0 {
		return false, nil
	}
	if !seg.IndexObject {
		return true, nil
	}
	x, err := s.readIndex(ctx, seg)
	if err != nil {
		return false, err
	}
	return x.Keys.mayContain(key), nil
}
