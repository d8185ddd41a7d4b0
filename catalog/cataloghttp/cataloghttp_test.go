package cataloghttp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/catalog/cataloghttp"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/job"
)

func TestRoutes(t *testing.T) {
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	j, err := job.New("scores", func(*job.Context) (eventcenter.Row, error) { return nil, nil }, job.Trigger("test.apps"), job.Version("3"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Publish(context.Background(), st, j); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	cataloghttp.Mount(mux, st)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string, wantStatus int, v any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != wantStatus {
			t.Fatalf("GET %s: %s, want %d", path, resp.Status, wantStatus)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	var list []catalog.Entry
	get("/v1/jobs", 200, &list)
	if len(list) != 1 || list[0].Name != "scores" || list[0].Version != "3" || list[0].Revision != 1 {
		t.Fatalf("GET /v1/jobs: %+v", list)
	}
	var one catalog.Entry
	get("/v1/jobs/scores", 200, &one)
	if one.Name != "scores" || len(one.Triggers) != 1 || one.Triggers[0].Source != "test.apps" {
		t.Fatalf("GET /v1/jobs/scores: %+v", one)
	}
	var missing struct {
		Error string   `json:"error"`
		Known []string `json:"known"`
	}
	get("/v1/jobs/nope", 404, &missing)
	if len(missing.Known) != 1 || missing.Known[0] != "scores" || missing.Error == "" {
		t.Fatalf("GET /v1/jobs/nope: %+v", missing)
	}
}
