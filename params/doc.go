// Package params is the parameter registry: the values an operator may change
// on a running job without a deploy ("hot parameters").
//
// A model owner declares a job's parameters in code ([Decl]: name, [Type],
// default, bounds, description). An operator changes values through a
// [Registry]; every change makes a new [Version] of the job's values. A job
// run asks the registry for the current version at each run, so a change
// applies on the next run, without a restart, and every output is stamped
// with the version it was computed with.
//
// Two registries:
//   - [EventCenter] keeps every version as an event of the source
//     "tidemark.params" (key: the job name) in the event center, so values
//     are point-in-time like everything else: a backfill can run with the
//     values that were current at each trigger's time ([PointInTime]);
//   - [Memory] for tests and single-process tools.
//
// Changes go through review: the ParamChange workflow (package workflows;
// the caller's side in params/changes, its HTTP routes in
// params/paramshttp) validates a change against the declarations, waits
// for an approver other than the submitter, and stores the new version
// with [CompareAndSet], so a change written against a version that is no
// longer current never overwrites the one applied in between. Every step
// is an [AuditEntry] of [AuditSource]. Running live workers hear of a new
// version on a Kafka control topic (params/notify) and keep their copy in
// a [Cache] that polls the registry as a fallback. A backfill pins a
// version through [Versions].
package params
