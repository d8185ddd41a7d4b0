// Package tiered is the event center's cold tier: one eventcenter.Store
// over a hot store (embedded or HBase) that keeps a recent window, and
// immutable Parquet segments in an object store (S3, or a folder in the dev
// stack) that keep everything older, at object-storage cost.
//
// # Segments
//
// A segment is one Parquet object of the events of one source in one slice
// of event time (Config.Slice, a day by default; a slice larger than
// Config.SegmentRows is split at event-time boundaries). Its rows are sorted
// by key, time, position and stored-at, and its row groups are cut only
// between keys, so the whole history of a key in a segment is one row group:
// an as-of or a history reads one row group with one ranged GET. The columns:
//
//	source, key, time (timestamp ns), pos_log, pos_offset, op (its name),
//	stored_at (timestamp ns), after, before
//
// The After and Before rows are each one column in the event center's own
// row encoding (codec.AppendRow), not typed columns. A source's columns come
// and go and change type over its life (a slice may hold rows of two
// schemas), and the row encoding keeps what Parquet's types would blur: a
// DECIMAL as its exact text, binary apart from text, nil apart from absent.
// One column keeps a segment's bytes and its checksum exactly what the hot
// store held. DuckDB and Spark read the segments as they are (the event
// columns are typed; the rows are opaque bytes to them): a typed view per
// source schema is future work.
//
// Beside each segment, an index object holds a Bloom filter of its keys
// (an as-of of a key last changed long ago skips the segments in between
// without reading them) and the lookup pairs described below.
//
// Each source has a manifest (JSON): its segments with their time range,
// key range, largest stored-at, row count, size, checksum and row groups
// (byte range, first and last key). Readers cache it for
// Config.ManifestMaxAge; a segment replaced since is noticed (the object is
// gone) and the manifest read again.
//
// # Reads
//
// Every read asks hot first, then cold, and merges, keeping of each event
// identity the copy stored first (an event appended again after it moved
// to cold lands in hot; the cold copy wins, so Append stays idempotent).
// As-of, history and known-at (bitemporal) reads use the stored-at column,
// so they keep working behind the horizon; corrections and late events for
// cold times land in hot and merge. Lookups take as candidates the hot
// index's answer and the keys whose cold rows had the value, and check each
// by a merged as-of. The cold candidates come from an index object written
// beside each segment for the indexes declared when it was written; a
// segment written before an index was declared is scanned for it. Replays
// stream one segment at a time per source, merged with the hot replay.
//
// # Reheat: not needed
//
// Bulk reads (a backfill over a cold range) read through the segments: a
// replay reads one whole object per segment (one GET) and keeps it decoded
// for the next chunks of the same slice, and the as-of and lookup reads of
// the job hit the row-group cache after their first touch. There is no
// reheat into the hot store: it would write every event twice (into hot,
// then out again) for reads that the segments serve at a third of the
// speed of reading the Parquet alone on a first read, and at nine tenths
// when the next chunks read the same segments (bench/README.md).
//
// # Tiering
//
// Store.Tier moves every event stored more than Config.HotWindow ago from
// hot into segments: it folds them into the segments of their slices (new
// objects; the old rows keep their stored-at), verifies each object read
// back (every column of every row equal to the rows written from the hot
// events), commits the manifest, waits Config.EvictGrace, and only then
// evicts the events from hot (Hot.Evict; an embedded hot store then
// compacts the evicted times, so its replays skip no tombstones). Killed at any point, a rerun completes the move: nothing is
// evicted before its segment is committed, and a slice that holds the
// events already is not rewritten.
//
// So the hot store keeps no retention of its own: tiering deletes. An HBase
// hot store for a tiered event center has no column-family TTL (or one far
// beyond the hot window, as a last resort that tiering always runs before).
// When tiering falls behind, nothing is lost: the hot store grows, and the
// oldest stored-at in hot (what the next run moves) says by how much.
//
// # Limits
//
//   - A source's manifest is one object, read whole at each refresh; it
//     grows with the row groups (about 60 bytes per 1,024 events), so a
//     source of billions of cold events wants manifests per slice.
//   - A tiering run holds the events it moves for a source in memory (a
//     day's worth for a daily run), and rewrites each slice they fall in.
//   - Runs must not overlap: one process orders its own, the schedule skips
//     a run while one is going, but a `tier run` beside a scheduled run in
//     another worker is not prevented.
//   - A read racing a move is safe as long as the read takes less than
//     EvictGrace minus ManifestMaxAge between its hot and its cold part (a
//     replay: per segment).
package tiered
