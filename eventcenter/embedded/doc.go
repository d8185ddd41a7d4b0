// Package embedded is the event center's default backend for one machine: the
// tables of eventcenter/codec laid onto one Pebble LSM keyspace, each under a
// one-byte prefix.
//
// Appends are blind writes (no read before write): an event's body is written
// as a Pebble merge operand and the store's merger keeps the oldest operand,
// so a re-appended event keeps its first copy and StoredAt without a lookup.
// Each Append is one atomic, synced Pebble batch, stamped through
// eventcenter.Stamps: a read as known at K waits for the appends stamped by
// K that are still committing, so it cannot change once it has returned.
//
// Close waits for the calls in flight, closes the iterators of replays that
// their callers are still iterating (their next step yields ErrClosed) and
// wakes watermark waiters with ErrClosed, before it closes Pebble.
//
// Config.Retention gives the store the read contract of a hot tier that
// keeps only a window (eventcenter.Retention); the data itself is kept.
package embedded
