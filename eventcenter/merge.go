package eventcenter

import (
	"container/heap"
	"iter"
)

// MergeReplay merges event streams that are each in Compare order into one
// stream in Compare order. Backends use it to merge the scans of several
// sources or buckets. The first error of any stream ends the merge.
func MergeReplay(streams ...iter.Seq2[Event, error]) iter.Seq2[Event, error] {
	if len(streams) == 1 {
		return streams[0]
	}
	return func(yield func(Event, error) bool) {
		h := &cursorHeap{}
		defer func() {
			for _, c := range h.all {
				c.stop()
			}
		}()
		for _, s := range streams {
			next, stop := iter.Pull2(s)
			c := &cursor{next: next, stop: stop}
			h.all = append(h.all, c)
			if ok, err := c.advance(); err != nil {
				yield(Event{}, err)
				return
			} else if ok {
				h.items = append(h.items, c)
			}
		}
		heap.Init(h)
		for len(h.items) > 0 {
			c := h.items[0]
			if !yield(c.ev, nil) {
				return
			}
			ok, err := c.advance()
			if err != nil {
				yield(Event{}, err)
				return
			}
			if ok {
				heap.Fix(h, 0)
			} else {
				heap.Pop(h)
			}
		}
	}
}

type cursor struct {
	next func() (Event, error, bool)
	stop func()
	ev   Event
}

func (c *cursor) advance() (bool, error) {
	ev, err, ok := c.next()
	if !ok {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	c.ev = ev
	return true, nil
}

type cursorHeap struct {
	items []*cursor
	all   []*cursor
}

func (h *cursorHeap) Len() int           { return len(h.items) }
func (h *cursorHeap) Less(i, j int) bool { return Compare(&h.items[i].ev, &h.items[j].ev) < 0 }
func (h *cursorHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *cursorHeap) Push(x any)         { h.items = append(h.items, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
