package app

import (
	"strings"
	"testing"

	"github.com/tidemark-dev/tidemark/examples/credit"
)

// TestParityBadFlags: a parity run or an impact with a reversed or missing
// range, or an impact of a job this binary does not run, is a usage error
// saying so, before anything is dialled or started.
func TestParityBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"from after to", []string{"parity", "--job", credit.Name, "--from", "2026-11-27", "--to", "2026-11-26"}, "--to (after --from)"},
		{"empty range", []string{"parity", "--job", credit.Name, "--from", "2026-11-26", "--to", "2026-11-26"}, "--to (after --from)"},
		{"no job", []string{"parity", "--from", "2026-11-26", "--to", "2026-11-27"}, "--job, --from and --to"},
		{"impact from after to", []string{"parity", "impact", "--job", credit.Name, "--from", "2026-11-27", "--to", "2026-11-26"}, "--to (after --from)"},
		{"impact of an unknown job", []string{"parity", "impact", "--job", "nope", "--from", "2026-11-26", "--to", "2026-11-27"}, `unknown job "nope"`},
		{"report without an id", []string{"parity", "report"}, "--id is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, tc.args...)
			if code != ExitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, ExitUsage, tc.want)
			}
		})
	}
}
