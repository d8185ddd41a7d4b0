package app

import (
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/workflows"
)

// Two backfills overlap when they would write records of the same
// triggers to the same feature store: same job, sinks that may be one
// store, inputs that may share a time.
func TestBackfillOverlap(t *testing.T) {
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	in := func(job, sink string, from, to int) workflows.BackfillInput {
		return workflows.BackfillInput{Job: job, From: day.Add(time.Duration(from) * time.Hour), To: day.Add(time.Duration(to) * time.Hour),
			Options: activities.Options{Sink: sink}}
	}
	sample := workflows.BackfillInput{Job: "j", Sample: "/t.csv"}
	for _, tc := range []struct {
		name string
		a, b workflows.BackfillInput
		want bool
	}{
		{"same range, own outputs", in("j", "", 0, 24), in("j", "", 0, 24), true},
		{"ranges overlap by an hour", in("j", "", 0, 12), in("j", "", 11, 24), true},
		{"adjacent ranges", in("j", "", 0, 12), in("j", "", 12, 24), false},
		{"other jobs", in("j", "", 0, 24), in("k", "", 0, 24), false},
		{"default store and its name", in("j", "featurestore", 0, 24), in("j", "featurestore:feature.j", 0, 24), true},
		{"two stores", in("j", "featurestore:a", 0, 24), in("j", "featurestore:b", 0, 24), false},
		{"own outputs may be any store", in("j", "", 0, 24), in("j", "featurestore:b", 0, 24), true},
		{"file sinks: a folder per ID", in("j", "file:///out", 0, 24), in("j", "file:///out", 0, 24), false},
		{"a sample table may hold any time", sample, in("j", "", 0, 1), true},
	} {
		if got := overlap(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: overlap %v, want %v", tc.name, got, tc.want)
		}
		if got := overlap(tc.b, tc.a); got != tc.want {
			t.Errorf("%s, reversed: overlap %v, want %v", tc.name, got, tc.want)
		}
	}
}
