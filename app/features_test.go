package app

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/api"
	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/job"
)

// TestFeaturesCommands: features get and select read through the API
// server; call against a server without calls fails with its problem.
func TestFeaturesCommands(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	j, err := job.New("scores", func(*job.Context) (eventcenter.Row, error) { return nil, nil }, job.Trigger("test.apps"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Publish(ctx, st, j); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	var evs []eventcenter.Event
	for i, ent := range []string{"u1", "u2", "u3"} {
		r := job.Record{Job: "scores", JobVersion: "1", Entity: ent, Features: eventcenter.Row{"score": float64(i)},
			Trigger: eventcenter.ID{Source: "test.apps", Key: ent, Time: t0, Pos: eventcenter.Position{Log: 1, Offset: uint64(i)}}}
		evs = append(evs, r.Event(job.FeatureSource("scores")))
	}
	if err := st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()

	code, out, errOut := run(t, "features", "get", "scores", "u2", "--api", hs.URL)
	var rec job.Record
	if err := json.Unmarshal([]byte(out), &rec); code != ExitOK || err != nil || rec.Features["score"] != 1.0 {
		t.Errorf("features get: exit %d, %v\nstdout:\n%s\nstderr:\n%s", code, err, out, errOut)
	}
	code, out, errOut = run(t, "features", "select", "scores", "--where", "score >= 1", "--features", "score", "--limit", "1", "--all", "--api", hs.URL)
	if code != ExitOK || out != "u2  1\nu3  2\n" {
		t.Errorf("features select: exit %d\nstdout:\n%q\nstderr:\n%s", code, out, errOut)
	}
	code, _, errOut = run(t, "features", "select", "scores", "--where", "score >>", "--api", hs.URL)
	if code != ExitError || !strings.Contains(errOut, "Bad predicate") {
		t.Errorf("features select of a bad predicate: exit %d\nstderr:\n%s", code, errOut)
	}
	code, _, errOut = run(t, "call", "scores", "--data", `{"a":1}`, "--api", hs.URL)
	if code != ExitError || !strings.Contains(errOut, "Calls not served") {
		t.Errorf("call: exit %d\nstderr:\n%s", code, errOut)
	}
	code, _, _ = run(t, "call", "scores", "--data", `[1]`, "--api", hs.URL)
	if code != ExitUsage {
		t.Errorf("call with an array: exit %d, want %d", code, ExitUsage)
	}
}
