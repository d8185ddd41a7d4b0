// Package activities holds the work of tidemark's Temporal workflows:
// methods on structs that hold their dependencies (the event center, the
// jobs, S3), so that workers construct them once and workflows call them
// through a nil pointer (var a *activities.Backfill;
// workflow.ExecuteActivity(ctx, a.BackfillChunk, in)).
//
// The activities reuse the job runtime's code: a backfill chunk runs
// job.RunAll, the same mode-agnostic core (fetch, logic, outputs) the live
// worker calls per event, so a backfill writes the records the live run
// wrote for the same events.
//
// Activities mark permanent failures (unknown job, malformed sample table,
// bad sink) non-retryable; everything else is retried by the workflow's
// retry policy, and a retried chunk resumes after its last heartbeat.
package activities
