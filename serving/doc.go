// Package serving answers reads of the feature store: point lookups of one
// entity's record (latest, as of a time, as known at a time), batches of
// them, and selections ("圈选": the entities whose features satisfy a
// predicate, e.g. a marketing audience).
//
// Lookups are the event center's AsOf on the job's feature source
// (job.FeatureSource), nothing more: a lookup equals the event center's
// as-of by construction, and costs one point read.
//
// # Selections and where they stop scaling
//
// A Selector keeps, per job, a Table: an in-memory columnar copy of the
// latest feature row of every entity (one typed slice per feature, a
// bitmap of present values per feature). A selection compiles its
// predicate against the columns (unknown features and literals of the
// wrong type are refused with their position), scans the columns the
// predicate names into bitmaps, combines them with and/or, and sorts the
// matching entities after the cursor to cut a page. The cost is one pass
// over the named columns: at 1M entities a few milliseconds per leaf; the
// memory is about 8 bytes per numeric feature and entity plus the entity
// keys (1M entities of 10 numeric features: about 150 MB).
//
// The table is built by a full replay of the feature source at the first
// selection (which waits for it; Selector.Warm takes it off the first
// request), and kept up to date in the background, off the request path:
// at most every SelectorConfig.Refresh, a replay of the events from
// SelectorConfig.Lookback before the latest event time seen, and every
// SelectorConfig.Rebuild a full replay into a new table swapped in when
// done. So a selection as of now sees a record about Refresh after it was
// stored, unless the record's event time is older than Lookback behind the
// newest (a backfill's Replace into the past): that one waits for the next
// rebuild. A selection as of a past time builds its table from a replay of
// everything up to that time, per request: its cost grows with the
// feature source's history, fine for occasional audits, not for traffic.
//
// Where it stops: the table lives in one process's memory and each API
// instance builds its own. Past some tens of millions of entities (memory,
// the full rebuild's replay time, the per-request sort of a large result)
// the next steps are, in order: keep the table's refresh incremental by
// tailing the feature events through Kafka instead of replaying by time;
// shard entities across API instances by key hash and merge pages; and at
// 100M and beyond, precomputed per-feature indexes (sorted value → entity
// lists, or bitmap indexes per value bucket) in the store, written by the
// feature output, so that a selective predicate reads only its matches.
package serving
