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
// A later layer (the Temporal approval workflow) proposes, approves and
// audits changes; it ends with a call to [Registry.Set].
package params
