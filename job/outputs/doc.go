// Package outputs holds the building blocks a job writes its records to:
//
//   - [FeatureStore]: each record becomes an event of the job's feature
//     source in the event center (key the entity, time and position the
//     trigger's), so features are point-in-time like every other source and
//     a repeated record is stored once; backfills write it in a WriteMode,
//     Fill (only what is missing) or Replace (new versions, see
//     job.ReplacementPos), and count what they did;
//   - [Kafka]: one record per message on a topic (key the entity), as the
//     record's JSON or as a wire-encoded feature event the event center can
//     ingest;
//   - [RabbitMQ]: one persistent, publisher-confirmed message per record on
//     an exchange;
//   - [JSONLines] and [Parquet]: an object per backfill chunk segment, in a
//     folder or on S3 (a [Destination]), committed atomically on Close.
//
// Every message carries the record ID (a hash of the job and the trigger
// event's identity), the job version and the parameter version. The feature
// store and JSON Lines objects are idempotent; Kafka and RabbitMQ rely on
// the job ledger (job.Env.Ledger) and on subscribers dropping repeated IDs.
package outputs

// Header and property names carried by Kafka and RabbitMQ messages.
const (
	HeaderID           = "tidemark-id"
	HeaderJob          = "tidemark-job"
	HeaderJobVersion   = "tidemark-job-version"
	HeaderParamVersion = "tidemark-param-version"
)
