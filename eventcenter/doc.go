// Package eventcenter stores every change of every registered source so that
// the state of any entity at any past moment can be rebuilt.
//
// An [Event] is one change of one entity (a row of a MySQL table, a message
// key of a Kafka topic, a call of the API) at one moment of its source. The
// event center keeps all of them, never only the latest, and answers:
//
//   - as-of: the state of a key at time T ([Reader.AsOf]), optionally as it was
//     known at time S (events stored after S are ignored);
//   - history: the changes of a key over a time range ([Reader.History]);
//   - index lookups: all keys whose state at T has a given value of a declared
//     secondary index ([Reader.Lookup]), e.g. all orders of user U as of T;
//   - replay: a time-ordered scan over one or several sources ([Replayer.Replay]),
//     split into chunks with [SplitRange] for parallel backfills;
//   - watermarks: per source and partition, the event time up to which every
//     event is durably stored ([Watermarks]); jobs wait for a watermark instead
//     of joining streams.
//
// The [Store] interface is the contract every backend keeps; the embedded
// backend lives in eventcenter/embedded, the production one in eventcenter/hbase,
// and both pass the conformance suite in eventcenter/storetest. Keys are laid
// out once by eventcenter/codec, so both backends share one key design.
//
// Event times run from [MinTime] to [MaxTime], defined once here for the
// event model, the codecs and the backends. A store that keeps only a
// recent window ([Retention]) refuses, with [ErrBeyondHorizon], the reads
// that would need what it may have dropped. Reads as known at a time are
// repeatable ([Reader]); [Stamps] is how backends keep that promise.
//
// The state of a key after an event is the event's After row, whatever its
// operation: a delete has no After row, so the key is absent from then on; a
// snapshot or correction carries the full row it asserts.
package eventcenter
