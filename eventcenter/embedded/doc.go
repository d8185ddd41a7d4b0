// Package embedded is the event center's default backend for one machine: the
// tables of eventcenter/codec laid onto one Pebble LSM keyspace, each under a
// one-byte prefix.
//
// Appends are blind writes (no read before write): an event's body is written
// as a Pebble merge operand and the store's merger keeps the oldest operand,
// so a re-appended event keeps its first copy and StoredAt without a lookup.
// Each Append is one atomic, synced Pebble batch.
package embedded
