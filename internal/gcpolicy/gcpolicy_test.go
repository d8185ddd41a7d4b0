package gcpolicy

import (
	"errors"
	"io/fs"
	"math"
	"runtime/debug"
	"testing"
)

func TestDecide(t *testing.T) {
	const v2 = "0::/kubepods/pod1/c1\n"
	const v1 = "9:name=systemd:/\n4:cpu,cpuacct:/x\n3:memory:/docker/abc\n"
	for _, tc := range []struct {
		name    string
		env     map[string]string
		files   map[string]string
		percent int
		limit   int64
	}{
		{"nothing set, no cgroup file", nil, nil, DefaultPercent, 0},
		{"GOGC set", map[string]string{"GOGC": "100"}, nil, 0, 0},
		{"GOGC empty is unset", map[string]string{"GOGC": ""}, nil, DefaultPercent, 0},
		{"GOGC=off keeps the cgroup's limit", map[string]string{"GOGC": "off"}, map[string]string{"/proc/self/cgroup": v2, "/sys/fs/cgroup/kubepods/pod1/c1/memory.max": "1000\n"}, 0, 900},
		{"v2, own limit", nil, map[string]string{"/proc/self/cgroup": v2, "/sys/fs/cgroup/kubepods/pod1/c1/memory.max": "1073741824\n"}, DefaultPercent, 966367638},
		{"v2, an ancestor's smaller limit", nil, map[string]string{"/proc/self/cgroup": v2,
			"/sys/fs/cgroup/kubepods/pod1/c1/memory.max": "max\n", "/sys/fs/cgroup/kubepods/pod1/memory.max": "2000\n", "/sys/fs/cgroup/kubepods/memory.max": "5000\n"}, DefaultPercent, 1800},
		{"v2, namespaced at /", nil, map[string]string{"/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/memory.max": "3000\n"}, DefaultPercent, 2700},
		{"v2 without limit", nil, map[string]string{"/proc/self/cgroup": v2, "/sys/fs/cgroup/kubepods/pod1/c1/memory.max": "max\n"}, DefaultPercent, 0},
		{"v1, own limit", nil, map[string]string{"/proc/self/cgroup": v1, "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "2000\n"}, DefaultPercent, 1800},
		{"v1 without limit", nil, map[string]string{"/proc/self/cgroup": v1,
			"/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "9223372036854771712\n", "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, DefaultPercent, 0},
		{"v1, only other controllers", nil, map[string]string{"/proc/self/cgroup": "4:cpu,cpuacct:/x\n", "/sys/fs/cgroup/memory/memory.limit_in_bytes": "2000\n"}, DefaultPercent, 0},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, map[string]string{"/proc/self/cgroup": v2, "/sys/fs/cgroup/kubepods/pod1/c1/memory.max": "1000\n"}, DefaultPercent, 0},
		{"GOMEMLIMIT empty is unset", map[string]string{"GOMEMLIMIT": ""}, map[string]string{"/proc/self/cgroup": v2, "/sys/fs/cgroup/kubepods/pod1/c1/memory.max": "1000\n"}, DefaultPercent, 900},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			read := func(f string) ([]byte, error) {
				if v, ok := tc.files[f]; ok {
					return []byte(v), nil
				}
				return nil, &fs.PathError{Op: "open", Path: f, Err: errors.New("no such file")}
			}
			if p, l := decide(lookup, read); p != tc.percent || l != tc.limit {
				t.Errorf("got %d, %d; want %d, %d", p, l, tc.percent, tc.limit)
			}
		})
	}
}

// Apply sets what it reports, and its undo restores what was.
func TestApplyAndUndo(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	before := Current()
	got, undo := Apply()
	if got.Percent != DefaultPercent || Current() != got {
		t.Errorf("applied %+v, in effect %+v", got, Current())
	}
	undo()
	if Current() != before {
		t.Errorf("after undo %+v, want %+v", Current(), before)
	}
	debug.SetMemoryLimit(math.MaxInt64)
}

// Current reads the percentage as set: 0 is 0 (GOGC=0), off is -1.
func TestCurrentPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(0))
	if got := Current().Percent; got != 0 {
		t.Errorf("GOGC 0 reads %d", got)
	}
	debug.SetGCPercent(-1)
	if got := Current().Percent; got != -1 {
		t.Errorf("GOGC off reads %d", got)
	}
	debug.SetGCPercent(250)
	if got := Current().Percent; got != 250 {
		t.Errorf("GOGC 250 reads %d", got)
	}
}
