package embedded

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// sortSeeks orders a batch as a comparison sort of the whole keys does:
// salts 0 and 255, runs of one key, keys that share more than 8 bytes
// after their source (sorted by their abbreviations, then the rest) and
// keys that end before 8 bytes of difference included.
func TestSortSeeks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := map[string]func(n int) (string, string){
		"short": func(n int) (string, string) {
			return []string{"a.src", "b"}[rng.IntN(2)], fmt.Sprintf("k%d", rng.IntN(n/3+1))
		},
		"long": func(n int) (string, string) {
			return "bench.accounts", fmt.Sprintf("acct-0000000000%06d", rng.IntN(n/3+1))
		},
		"prefixes": func(n int) (string, string) {
			return "s", strings.Repeat("x", rng.IntN(12))
		},
	}
	for name, shape := range shapes {
		for _, n := range []int{0, 1, 63, 64, 65, 1000, 8192} {
			keys, seeks := seekBatch(rng, n, shape)
			want := slices.Clone(seeks)
			compareSort(want, keys)
			got := sortSeeks(slices.Clone(seeks), keys)
			if len(got) != n {
				t.Fatalf("%s, %d seeks: %d sorted", name, n, len(got))
			}
			seen := make([]bool, n)
			for k := range got {
				if bytes.Compare(keys[got[k].start:got[k].end], keys[want[k].start:want[k].end]) != 0 {
					t.Fatalf("%s, %d seeks: position %d holds %x, want %x", name, n, k, keys[got[k].start:got[k].end], keys[want[k].start:want[k].end])
				}
				if seen[got[k].i] {
					t.Fatalf("%s, %d seeks: seek %d twice", name, n, got[k].i)
				}
				seen[got[k].i] = true
			}
		}
	}
}

// TestSortSeeksBytes: sortSeeks orders keys of any bytes as bytes.Compare
// does, not only AsOfSeek's: keys that are prefixes of others (so the
// zeros past a key's end in its abbreviation matter), zero and 0xff bytes,
// runs of 0 to 3 seeks, keys that end at their run's common prefix and
// keys that differ only past 8 bytes after it.
func TestSortSeeksBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	for iter := range 1000 {
		n := []int{0, 1, 2, 3, 63, 64, 65, 66, 200}[iter%9]
		base := make([]byte, rng.IntN(24))
		for i := range base {
			base[i] = []byte{0, 1, 0xff, 'a'}[rng.IntN(4)]
		}
		salts := []byte{0, 1, 255}[:1+rng.IntN(3)]
		var keys []byte
		var seeks []seek
		for i := range n {
			start := len(keys)
			keys = append(keys, tabEvents, salts[rng.IntN(len(salts))])
			keys = append(keys, base[:rng.IntN(len(base)+1)]...)
			for range rng.IntN(20) {
				keys = append(keys, []byte{0, 1, 0xff}[rng.IntN(3)])
			}
			seeks = append(seeks, seek{i: i, start: start, end: len(keys)})
		}
		want := slices.Clone(seeks)
		compareSort(want, keys)
		got := sortSeeks(slices.Clone(seeks), keys)
		seen := make([]bool, n)
		for k := range got {
			if got[k] != seeks[got[k].i] || seen[got[k].i] {
				t.Fatalf("%d seeks: position %d holds %+v, not one of the batch's seeks once", n, k, got[k])
			}
			seen[got[k].i] = true
			if !bytes.Equal(keys[got[k].start:got[k].end], keys[want[k].start:want[k].end]) {
				t.Fatalf("%d seeks: position %d holds %x, want %x", n, k, keys[got[k].start:got[k].end], keys[want[k].start:want[k].end])
			}
		}
	}
}

// seekBatch returns n seeks of (source, key) pairs from shape at random
// times, a seventh of them with the salts 0 and 255 (the ends of the
// counting pass).
func seekBatch(rng *rand.Rand, n int, shape func(n int) (source, key string)) ([]byte, []seek) {
	var keys []byte
	var seeks []seek
	for i := range n {
		start := len(keys)
		source, key := shape(n)
		keys = codec.AsOfSeek(append(keys, tabEvents), source, key, time.Unix(0, rng.Int64N(1e12)))
		if i%7 == 0 {
			keys[start+1] = []byte{0, 255}[rng.IntN(2)]
		}
		seeks = append(seeks, seek{i: i, start: start, end: len(keys)})
	}
	return keys, seeks
}

// compareSort sorts seeks by a comparison sort of their whole keys.
func compareSort(seeks []seek, keys []byte) {
	slices.SortStableFunc(seeks, func(a, b seek) int { return bytes.Compare(keys[a.start:a.end], keys[b.start:b.end]) })
}

// BenchmarkSortSeeks: sortSeeks beside a comparison sort of the whole
// keys, on a training-set segment's reads (8,192 random keys of 20,000,
// bench/training_test.go's, at random times).
//
//	go test ./eventcenter/embedded -run '^$' -bench SortSeeks
func BenchmarkSortSeeks(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 5))
	keys, seeks := seekBatch(rng, 8192, func(int) (string, string) {
		return "bench.accounts", fmt.Sprintf("acct-%06d", rng.IntN(21_000))
	})
	for _, sorter := range []struct {
		name string
		sort func([]seek, []byte)
	}{{"sortSeeks", func(s []seek, k []byte) { sortSeeks(s, k) }}, {"compare", compareSort}} {
		b.Run(sorter.name, func(b *testing.B) {
			work := make([]seek, len(seeks))
			for b.Loop() {
				copy(work, seeks)
				sorter.sort(work, keys)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(seeks)), "ns/seek")
		})
	}
}
