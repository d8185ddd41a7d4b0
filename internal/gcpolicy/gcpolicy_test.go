package gcpolicy

import (
	"errors"
	"io/fs"
	"testing"
)

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   map[string]string
		files map[string]string
		want  Settings
	}{
		{"nothing set, no cgroup", nil, nil, Settings{Percent: DefaultPercent}},
		{"GOGC set", map[string]string{"GOGC": "100"}, nil, Settings{}},
		{"GOGC=off set", map[string]string{"GOGC": "off"}, map[string]string{"/sys/fs/cgroup/memory.max": "1000\n"}, Settings{Limit: 900}},
		{"cgroup v2 limit", nil, map[string]string{"/sys/fs/cgroup/memory.max": "1073741824\n"}, Settings{Percent: DefaultPercent, Limit: 966367638}},
		{"cgroup v2 without limit", nil, map[string]string{"/sys/fs/cgroup/memory.max": "max\n"}, Settings{Percent: DefaultPercent}},
		{"cgroup v2 without limit hides v1's", nil, map[string]string{"/sys/fs/cgroup/memory.max": "max\n", "/sys/fs/cgroup/memory/memory.limit_in_bytes": "1000\n"}, Settings{Percent: DefaultPercent}},
		{"cgroup v1 limit", nil, map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "2000\n"}, Settings{Percent: DefaultPercent, Limit: 1800}},
		{"cgroup v1 without limit", nil, map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, Settings{Percent: DefaultPercent}},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, map[string]string{"/sys/fs/cgroup/memory.max": "1000\n"}, Settings{Percent: DefaultPercent}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			read := func(f string) ([]byte, error) {
				if v, ok := tc.files[f]; ok {
					return []byte(v), nil
				}
				return nil, &fs.PathError{Op: "open", Path: f, Err: errors.New("no such file")}
			}
			if got := decide(lookup, read); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
