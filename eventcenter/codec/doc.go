// Package codec lays the event center's data onto an ordered key-value space.
// The layout is designed once and shared by every backend: the embedded
// store puts each table under a one-byte prefix of one keyspace, HBase keeps
// each in a table of its own with the same row keys.
//
// Tables and their row keys (| is concatenation; str is a length-prefixed
// string: uvarint length then bytes; t is the event time as 8 big-endian bytes
// of the Unix nanoseconds with the sign bit flipped, so times sort as bytes;
// ^x is the bitwise complement of x, which reverses its order):
//
//	events   salt | str(source) | str(key) | ^t | ^pos.Log | ^pos.Offset  -> body
//	time     bucket | str(source) | t | pos.Log | pos.Offset | key  -> body or (empty)
//	index    salt' | str(source) | str(index) | str(value) | str(key) | t | pos  -> (empty)
//	mark     str(source) | partition  -> t (the watermark)
//
// events: all changes of one key are adjacent, newest first, so the state as
// of T is the first row at or after (source, key, ^T): one seek and one short
// forward scan, the idiom HBase serves best (its reverse scans are slow). The
// salt is one byte of a hash of (source, key): the rows of one hot source
// spread over every region of a table pre-split on that byte, while a key's
// rows stay together.
//
// time: the replay order of one source, spread over Buckets buckets by the
// same hash (bucket = hash mod Buckets); a replay merges the buckets' scans.
// The key ends the row key without a length, so that rows of one time and
// position sort by key bytes, as eventcenter.Compare orders them.
// An embedded store uses one bucket; HBase uses several so that a hot source's
// appends do not all land on the region holding "now".
//
// index: for each declared index, one row per event whose After row has a
// value in the indexed column. A lookup scans (source, index, value) and
// checks each candidate key's state as of the asked time, so a key that left
// the value later is not returned.
//
// mark: one row per (source, partition).
//
// A body holds what the key does not: format version, operation, stored-at
// time and the After and Before rows, in a compact binary form (see EncodeBody).
package codec
