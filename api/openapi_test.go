package api_test

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tidemark-dev/tidemark/api"
)

// openAPIDoc is the part of the OpenAPI description the checks read.
type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		Responses map[string]struct {
			Content map[string]any `json:"content"`
		} `json:"responses"`
	} `json:"paths"`
}

func loadDoc(t testing.TB) openAPIDoc {
	var d openAPIDoc
	if err := json.Unmarshal(api.OpenAPI(), &d); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return d
}

// TestOpenAPIRoutes: the description documents exactly the server's routes.
func TestOpenAPIRoutes(t *testing.T) {
	d := loadDoc(t)
	if !strings.HasPrefix(d.OpenAPI, "3.") {
		t.Fatalf("openapi %q, want 3.x", d.OpenAPI)
	}
	var documented, served []string
	for path, ops := range d.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+path)
		}
	}
	for _, r := range api.Routes() {
		served = append(served, r.Method+" "+r.Path)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("documented:\n  %s\nserved:\n  %s", strings.Join(documented, "\n  "), strings.Join(served, "\n  "))
	}
	// Every route reaches a handler of the server, not the mux's 404 or
	// 405, in a server of its own and mounted in another mux.
	srv, err := api.New(api.Config{Store: openStore(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	mounted := http.NewServeMux()
	mounted.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {})
	srv.Mount(mounted)
	for _, h := range []http.Handler{srv, mounted} {
		for _, r := range api.Routes() {
			path := strings.NewReplacer("{job}", "scores", "{entity}", "u1", "{id}", "scores.k00").Replace(r.Path)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(r.Method, path, strings.NewReader("{}")))
			mt, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type"))
			if rec.Code == http.StatusMethodNotAllowed || rec.Code == http.StatusNotFound && mt == "text/plain" {
				t.Errorf("%s %s: %d %s from the mux, not a handler", r.Method, path, rec.Code, mt)
			}
		}
	}
}

// docChecker is the transport of the tests' clients: every answer any test
// of the package gets must be documented — its route, its status for that
// route, and its media type for that status.
type docChecker struct {
	t   testing.TB
	doc openAPIDoc
}

func newDocChecker(t testing.TB) *http.Client {
	return &http.Client{Transport: docChecker{t: t, doc: loadDoc(t)}}
}

// route returns the documented path template matching path.
func route(method, path string) (string, bool) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for _, r := range api.Routes() {
		if r.Method != method {
			continue
		}
		tsegs := strings.Split(strings.TrimPrefix(r.Path, "/"), "/")
		if len(tsegs) != len(segs) {
			continue
		}
		ok := true
		for i, ts := range tsegs {
			switch {
			case strings.HasPrefix(ts, "{") && strings.HasSuffix(ts, "}"):
			case strings.HasPrefix(ts, "{"): // {job}:batch
				_, suffix, _ := strings.Cut(ts, "}")
				ok = ok && strings.HasSuffix(segs[i], suffix) && len(segs[i]) > len(suffix)
			default:
				ok = ok && ts == segs[i]
			}
		}
		if ok {
			return r.Path, true
		}
	}
	return "", false
}

func (c docChecker) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	c.t.Helper()
	tmpl, ok := route(req.Method, req.URL.EscapedPath())
	if !ok {
		c.t.Errorf("openapi: %s %s matches no documented route", req.Method, req.URL.Path)
		return resp, nil
	}
	op, ok := c.doc.Paths[tmpl][strings.ToLower(req.Method)]
	if !ok {
		c.t.Errorf("openapi: %s %s undocumented", req.Method, tmpl)
		return resp, nil
	}
	doc, ok := op.Responses[strconv.Itoa(resp.StatusCode)]
	if !ok {
		c.t.Errorf("openapi: %s %s answered %d, not documented", req.Method, tmpl, resp.StatusCode)
		return resp, nil
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if len(doc.Content) > 0 {
		if _, ok := doc.Content[mt]; !ok {
			c.t.Errorf("openapi: %s %s %d answered %q, documented %v", req.Method, tmpl, resp.StatusCode, mt, keys(doc.Content))
		}
	}
	return resp, nil
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestOpenAPIServed: the server serves its description.
func TestOpenAPIServed(t *testing.T) {
	st := openStore(t, nil)
	hs, _ := newServer(t, api.Config{Store: st})
	resp, err := newDocChecker(t).Get(hs.URL + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d openAPIDoc
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || len(d.Paths) != len(loadDoc(t).Paths) {
		t.Fatalf("served description: %v, %d paths", err, len(d.Paths))
	}
	for _, path := range []string{"/healthz", "/v1/jobs", "/v1/jobs/nope"} {
		resp, err := newDocChecker(t).Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
}
