package cdc

import (
	"sync"
	"time"
)

// txn is one binlog transaction (or a heartbeat marker) in flight.
type txn struct {
	pending int        // records sent, not yet acknowledged
	ended   bool       // its end (XID, COMMIT, DDL) was read
	end     Checkpoint // position after it; zero for a heartbeat marker
	time    time.Time  // commit time of its end event
	beat    time.Time  // for a heartbeat marker: when it arrived
}

// acks tracks Kafka acknowledgements in binlog order: the frontier is the
// end of the last transaction such that it and every transaction before it
// are read to the end and acknowledged. Only the frontier is checkpointed.
// Safe for concurrent use (produce promises run on Kafka's goroutines).
type acks struct {
	mu       sync.Mutex
	queue    []*txn // in binlog order
	frontier Checkpoint
	stored   Checkpoint // last saved
	// newest commit time and newest heartbeat the frontier passed
	commitTime, beatTime time.Time
	claimed              time.Time // the last claim made (never decreases)
	unacked              int
	onFatal              func(error)
}

func newAcks(cp Checkpoint) *acks {
	return &acks{frontier: cp, stored: cp, claimed: cp.Claim}
}

// checkpoint returns the frontier, with the claim made so far.
func (a *acks) checkpoint() Checkpoint {
	a.mu.Lock()
	defer a.mu.Unlock()
	cp := a.frontier
	cp.Claim = a.claimed
	return cp
}

// reset forgets transactions in flight (after the stream restarted from the
// frontier; what they sent was flushed).
func (a *acks) reset() {
	a.mu.Lock()
	a.queue = a.queue[:0]
	a.unacked = 0
	a.mu.Unlock()
}

func (a *acks) begin() *txn {
	t := &txn{}
	a.mu.Lock()
	a.queue = append(a.queue, t)
	a.mu.Unlock()
	return t
}

func (a *acks) sent(t *txn) {
	a.mu.Lock()
	t.pending++
	a.unacked++
	a.mu.Unlock()
}

func (a *acks) acked(t *txn, err error) {
	if err != nil {
		// Kafka gave up on a record (franz-go retries the retriable
		// errors itself): the frontier never passes it; stop, so a
		// restart sends it again from the checkpoint.
		if a.onFatal != nil {
			a.onFatal(err)
		}
		return
	}
	a.mu.Lock()
	t.pending--
	a.unacked--
	a.advance()
	a.mu.Unlock()
}

// end records the end of the current transaction t (nil if it sent nothing).
func (a *acks) end(t *txn, end Checkpoint, commit time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t == nil {
		if len(a.queue) == 0 { // nothing in flight: the frontier moves at once
			a.frontier = end
			if commit.After(a.commitTime) {
				a.commitTime = commit
			}
			return
		}
		t = &txn{}
		a.queue = append(a.queue, t)
	}
	t.ended, t.end, t.time = true, end, commit
	a.advance()
}

// heartbeat records that the server had nothing more to send at now.
func (a *acks) heartbeat(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.queue) == 0 {
		a.beatTime = now
		return
	}
	a.queue = append(a.queue, &txn{ended: true, beat: now})
}

func (a *acks) advance() {
	n := 0
	for _, t := range a.queue {
		if !t.ended || t.pending > 0 {
			break
		}
		if !t.beat.IsZero() {
			a.beatTime = t.beat
		} else {
			a.frontier = t.end
			if t.time.After(a.commitTime) {
				a.commitTime = t.time
			}
		}
		n++
	}
	if n > 0 {
		a.queue = append(a.queue[:0], a.queue[n:]...)
	}
}

// claim returns the progress time the CDC may claim now: every change
// with a commit time at or before it is acknowledged by Kafka, given that
// no transaction's changes are older than Lateness behind the commits
// before it. Zero if nothing can be claimed yet.
func (a *acks) claim(lateness time.Duration) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	newest := a.commitTime
	if a.beatTime.After(newest) {
		newest = a.beatTime
	}
	if !newest.IsZero() {
		if c := newest.Add(-lateness); c.After(a.claimed) {
			a.claimed = c.UTC()
		}
	}
	return a.claimed
}

func (a *acks) dirty() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.frontier.File != a.stored.File || a.frontier.Pos != a.stored.Pos || a.claimed.After(a.stored.Claim)
}

func (a *acks) saved(cp Checkpoint) {
	a.mu.Lock()
	a.stored = cp
	a.mu.Unlock()
}

func (a *acks) unackedCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.unacked
}
