package app

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/app/config"
	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
	"github.com/tidemark-dev/tidemark/examples/credit"
)

// TestJobsCommands: jobs list and jobs show read the catalog; a job it
// does not know is an error listing the ones it knows.
func TestJobsCommands(t *testing.T) {
	ctx := context.Background()
	store := "pebble://" + filepath.Join(t.TempDir(), "store")
	u, err := config.ParseStore(store)
	if err != nil {
		t.Fatal(err)
	}
	st, err := config.OpenStore(ctx, u, config.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j, err := credit.New()
	if err != nil {
		t.Fatal(err)
	}
	_, err = catalog.Publish(ctx, st, j)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	code, out, errOut := run(t, "jobs", "list", "--store", store)
	if code != ExitOK || !strings.Contains(out, "NAME") || !strings.Contains(out, credit.Name) || errOut != "" {
		t.Errorf("jobs list: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, errOut = run(t, "jobs", "show", credit.Name, "--store", store)
	if code != ExitOK || !strings.Contains(out, "Triggers:\n  "+credit.Applications+": op in (insert)") || errOut != "" {
		t.Errorf("jobs show: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, _ = run(t, "jobs", "show", credit.Name, "--json", "--store", store)
	var e catalog.Entry
	if err := json.Unmarshal([]byte(out), &e); code != ExitOK || err != nil || e.Name != credit.Name || e.Revision != 1 {
		t.Errorf("jobs show --json: exit %d, %v: %+v", code, err, e)
	}
	code, _, errOut = run(t, "jobs", "show", "nope", "--store", store)
	if code != ExitError || !strings.Contains(errOut, `"nope"; the catalog knows: `+credit.Name) {
		t.Errorf("jobs show nope: exit %d\nstderr:\n%s", code, errOut)
	}

	// A store that does not exist (a mistyped --store, the default beside
	// a tidemark dev) is said to be missing, not made anew and found empty;
	// the parameters' commands read the same way.
	missing := filepath.Join(t.TempDir(), "nowhere")
	cold := "file://" + t.TempDir()
	for _, args := range [][]string{{"jobs", "list"}, {"params", "show", credit.Name}, {"tier", "status", "--cold", cold},
		{"parity", "impact", "--job", credit.Name, "--from", "-1h", "--to", "now"}, {"correction", "report"}} {
		code, _, errOut = run(t, append(args, "--store", "pebble://"+missing)...)
		if code == ExitOK || !strings.Contains(errOut, "no event center in "+missing) {
			t.Errorf("%q on a missing store: exit %d\nstderr:\n%s", args, code, errOut)
		}
		if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%q made the store's folder: %v", args, err)
		}
	}
	// tier status on a store that exists: a table (its columns aligned).
	code, out, errOut = run(t, "tier", "status", "--cold", cold, "--store", store)
	if code != ExitOK || !strings.HasPrefix(out, "SOURCE  ") || strings.Contains(out, "\t") {
		t.Errorf("tier status: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// A hot window that is no duration is refused, naming the key.
	code, _, errOut = run(t, "tier", "status", "--cold", cold, "--store", store, "--hot-window", "32d")
	if code != ExitUsage || !strings.Contains(errOut, `hotWindow "32d"`) {
		t.Errorf("tier status --hot-window 32d: exit %d\nstderr:\n%s", code, errOut)
	}
	code, _, errOut = run(t, "tier", "status", "--cold", cold, "--store", store, "--hot-window", "48h")
	if code != ExitOK {
		t.Errorf("tier status --hot-window 48h: exit %d\nstderr:\n%s", code, errOut)
	}
	// The window reaches the tiered store (its cutoff), and its default.
	for _, tc := range []struct {
		window string
		want   time.Duration
	}{{"48h", 48 * time.Hour}, {"", 32 * 24 * time.Hour}} {
		ts, err := openStore(ctx, config.Config{Store: store, Cold: cold, HotWindow: tc.window}, config.StoreOptions{MustExist: true})
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(ts.(*tiered.Store).Cutoff()); d < tc.want || d > tc.want+time.Minute {
			t.Errorf("hot window %q: cutoff %v ago, want %v", tc.window, d, tc.want)
		}
		ts.Close()
	}
	// So is a folder that holds no store (a --store of ".").
	empty := t.TempDir()
	code, _, errOut = run(t, "jobs", "list", "--store", "pebble://"+empty)
	if code == ExitOK || !strings.Contains(errOut, "no event center in "+empty) {
		t.Errorf("jobs list on an empty folder: exit %d\nstderr:\n%s", code, errOut)
	}
	if left, _ := os.ReadDir(empty); len(left) > 0 {
		t.Errorf("jobs list left %d files in an empty folder: %v", len(left), left)
	}
}
