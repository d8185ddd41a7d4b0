// Package gcpolicy sets the Go garbage collector of tidemark's backfill
// workers (`tidemark worker`, and `tidemark dev`, which runs one).
//
// A backfill worker allocates fast over a small live heap: a training-set
// backfill allocates about 2.7 KB a sample row while its live heap stays
// in the tens of megabytes, so at Go's default (GOGC=100, a collection
// each time the heap doubles) the collector runs many times a second. At
// GOGC=400 the heap may grow to five times the live heap between
// collections: the training-set benchmark spent about a fifth less CPU a
// row (bench/README.md). The price is memory: up to five times the live
// heap, which includes the embedded store's block cache in a build
// without cgo (the project's image; with cgo the cache is C memory). A
// soft memory limit bounds it where one is known: in a cgroup with a
// memory limit (its own or an ancestor's, cgroup v1 or v2), the collector
// gets 90 % of it as its limit, as GOMEMLIMIT would, and collects more
// often as the heap nears it. Memory the Go runtime does not manage (a
// cgo block cache) is not counted, so with cgo the limit should be set
// by hand (GOMEMLIMIT).
//
// The environment wins: GOGC set (not empty) leaves the percentage as it
// says, GOMEMLIMIT set leaves the limit (see runtime/debug).
package gcpolicy

import (
	"math"
	"os"
	"path"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
)

// DefaultPercent is the GOGC of a worker when the environment sets none.
const DefaultPercent = 400

// Settings are the collector's: Percent (GOGC; -1 off) and Limit (bytes;
// math.MaxInt64 for none).
type Settings struct {
	Percent int
	Limit   int64
}

// Apply sets the collector's percentage and memory limit as the package
// doc says. It returns the settings in effect after, and a function that
// restores those before (for a benchmark that applies it for a while).
func Apply() (Settings, func()) {
	before := Current()
	percent, limit := decide(os.LookupEnv, os.ReadFile)
	if percent > 0 {
		debug.SetGCPercent(percent)
	}
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	return Current(), func() {
		debug.SetGCPercent(before.Percent)
		debug.SetMemoryLimit(before.Limit)
	}
}

// Current returns the collector's settings in effect.
func Current() Settings {
	m := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(m)
	s := Settings{Percent: 100, Limit: math.MaxInt64} // the runtime's defaults, if unreadable
	if m[0].Value.Kind() == metrics.KindUint64 {
		// Off reads as the uint64 of -1; GOGC=0 (a collection at every
		// allocation of note) as 0.
		s.Percent = -1
		if p := m[0].Value.Uint64(); p <= math.MaxInt32 {
			s.Percent = int(p)
		}
	}
	if m[1].Value.Kind() == metrics.KindUint64 {
		s.Limit = int64(min(m[1].Value.Uint64(), math.MaxInt64))
	}
	return s
}

// decide is Apply's choice from the environment and the files: a
// percentage and a limit to set, 0 for each to leave alone.
func decide(lookup func(string) (string, bool), read func(string) ([]byte, error)) (percent int, limit int64) {
	if v, _ := lookup("GOGC"); v == "" {
		percent = DefaultPercent
	}
	if v, _ := lookup("GOMEMLIMIT"); v != "" {
		return percent, 0
	}
	if n := cgroupLimit(read); n > 0 {
		limit = n / 10 * 9
	}
	return percent, limit
}

// cgroupLimit returns the memory limit of this process's cgroup: the
// least of its own and its ancestors' (each a memory.max of cgroup v2 or
// a memory.limit_in_bytes of v1, as far as the mount shows them), or 0
// for none.
func cgroupLimit(read func(string) ([]byte, error)) int64 {
	b, err := read("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	var least int64
	for _, line := range strings.Split(string(b), "\n") {
		// hierarchy-ID:controllers:path; v2 is "0::path".
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		var root, file string
		switch {
		case f[0] == "0" && f[1] == "":
			root, file = "/sys/fs/cgroup", "memory.max"
		case hasController(f[1], "memory"):
			root, file = "/sys/fs/cgroup/memory", "memory.limit_in_bytes"
		default:
			continue
		}
		for dir := path.Clean("/" + f[2]); ; dir = path.Dir(dir) {
			if n := readLimit(read, path.Join(root, dir, file)); n > 0 && (least == 0 || n < least) {
				least = n
			}
			if dir == "/" {
				break
			}
		}
	}
	return least
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// readLimit returns the limit a cgroup file holds, 0 for none ("max", a
// number near MaxInt64 in v1) or an unreadable file.
func readLimit(read func(string) ([]byte, error), file string) int64 {
	b, err := read(file)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 || n >= math.MaxInt64/2 {
		return 0
	}
	return n
}
