package embedded

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// sortSeeks orders a batch as a comparison sort of the whole keys does,
// salts 0 and 255 and runs of one key included.
func TestSortSeeks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 63, 64, 65, 1000, 8192} {
		var keys []byte
		var seeks []seek
		for i := range n {
			start := len(keys)
			source := []string{"a.src", "b"}[rng.IntN(2)]
			key := fmt.Sprintf("k%d", rng.IntN(n/3+1))
			keys = codec.AsOfSeek(append(keys, tabEvents), source, key, time.Unix(0, rng.Int64N(1e12)))
			if i%7 == 0 { // the salts at the ends of the counting pass
				keys[start+1] = []byte{0, 255}[rng.IntN(2)]
			}
			seeks = append(seeks, seek{i: i, start: start, end: len(keys)})
		}
		want := slices.Clone(seeks)
		slices.SortStableFunc(want, func(a, b seek) int { return bytes.Compare(keys[a.start:a.end], keys[b.start:b.end]) })
		got := sortSeeks(slices.Clone(seeks), keys)
		if len(got) != n {
			t.Fatalf("%d seeks: %d sorted", n, len(got))
		}
		seen := make([]bool, n)
		for k := range got {
			if bytes.Compare(keys[got[k].start:got[k].end], keys[want[k].start:want[k].end]) != 0 {
				t.Fatalf("%d seeks: position %d holds %x, want %x", n, k, keys[got[k].start:got[k].end], keys[want[k].start:want[k].end])
			}
			if seen[got[k].i] {
				t.Fatalf("%d seeks: seek %d twice", n, got[k].i)
			}
			seen[got[k].i] = true
		}
	}
}
