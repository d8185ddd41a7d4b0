// Package gcpolicy sets the Go garbage collector of tidemark's processes.
//
// A backfill worker allocates fast over a small live heap: a training-set
// backfill allocates about 2.7 KB a sample row while its live heap stays
// in the tens of megabytes, so at Go's default (GOGC=100, a collection
// each time the heap doubles) the collector runs many times a second. At
// GOGC=400 the heap may grow to five times the live heap between
// collections: the training-set benchmark spent 18–22 % less CPU a row
// (bench/README.md). A memory limit bounds what that costs: where the
// process runs in a cgroup with a memory limit, the collector gets a soft
// limit of 90 % of it (as GOMEMLIMIT would), so a large live heap makes it
// collect more often instead of running out of memory.
//
// The environment wins: GOGC set leaves the percentage as it says,
// GOMEMLIMIT set leaves the limit (see runtime/debug).
package gcpolicy

import (
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultPercent is the GOGC of tidemark's processes when the environment
// sets none.
const DefaultPercent = 400

// Settings is what Apply set: Percent if above 0, Limit (bytes) if above 0.
type Settings struct {
	Percent int
	Limit   int64
}

// Apply sets the collector's percentage and memory limit as the package
// doc says, and returns what it set.
func Apply() Settings {
	s := decide(os.LookupEnv, os.ReadFile)
	if s.Percent > 0 {
		debug.SetGCPercent(s.Percent)
	}
	if s.Limit > 0 {
		debug.SetMemoryLimit(s.Limit)
	}
	return s
}

// cgroupLimits are the files of a cgroup's memory limit: cgroup v2's, then
// v1's.
var cgroupLimits = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// decide is Apply's choice, from the environment and the files.
func decide(lookup func(string) (string, bool), read func(string) ([]byte, error)) Settings {
	var s Settings
	if _, set := lookup("GOGC"); !set {
		s.Percent = DefaultPercent
	}
	if _, set := lookup("GOMEMLIMIT"); set {
		return s
	}
	for _, f := range cgroupLimits {
		b, err := read(f)
		if err != nil {
			continue
		}
		// "max" (v2) or a number near MaxInt64 (v1) is no limit.
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err == nil && n > 0 && n < math.MaxInt64/2 {
			s.Limit = n / 10 * 9
		}
		break
	}
	return s
}
