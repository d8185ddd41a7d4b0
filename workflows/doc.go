// Package workflows holds tidemark's Temporal workflows: deterministic
// functions only. They decide what runs and when; the work itself (event
// center reads, job runs, outputs, files) happens in the activities of
// package activities, which the workflows call through a nil pointer of the
// activity struct. Workers register both with workers.Register.
//
// Nothing here may read the clock, sleep, start goroutines, do I/O or
// import a network or storage package: lint_test.go checks it, and the
// replay tests over testdata/*.json histories check that a change keeps old
// histories replayable.
//
// # Backfill
//
// [Backfill] replays a job over a past time range, or over a sample table
// of (entity key, time) rows, in chunks that together cover the input
// exactly once. Each chunk is one activity (activities.Backfill.BackfillChunk)
// that runs the job's mode-agnostic core (job.RunAll) on the chunk's events,
// writes the outputs and heartbeats its progress, so a retry after a worker
// crash resumes after the last heartbeated event. At most Parallelism chunks
// run at once. When the history grows large the workflow continues as new,
// carrying its state. Progress is answered by the "progress" query and
// published as search attributes (TidemarkJob, TidemarkProgress,
// TidemarkEvents) and as the memo "progress", so the Web UI's workflow list
// shows it; the "parallelism" update changes the parallelism while it runs.
// Cancelling the workflow cancels the running chunks and returns the
// summary so far as the cancellation's details. File sinks end with a
// manifest and, when done, a _SUCCESS marker.
//
// # Parameter changes
//
// [ParamChange] is one reviewed change of a job's parameters: validated
// against the declarations, decided by an approve or reject signal or
// update (never by its submitter, only by an approver), expiring unheard,
// applied by [ParamApply] (one per job at a time: a compare-and-set on the
// version the change was based on), every step audited. Its state is the
// search attribute TidemarkParamState (README.md, "Parameter changes").
//
// # Versioning
//
// Starters send inputs with every default written in
// (BackfillInput.WithDefaults); changes that alter a running backfill's
// commands go behind workflow.GetVersion patches, proved by replaying the
// histories of testdata/ (README.md, "Versioning").
package workflows
