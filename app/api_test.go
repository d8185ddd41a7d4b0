package app

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/client"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/internal/testenv"
)

// TestAPICommand: `api` serves the API, the parameter routes and the
// console over a store until interrupted, with the token file's tokens:
// a write without a token is 401, a reader's write 403, a reader reads;
// the console asks for a sign-in and keeps the token in an HttpOnly cookie.
func TestAPICommand(t *testing.T) {
	dir := t.TempDir()
	store := "pebble://" + filepath.Join(dir, "store")
	tokens := filepath.Join(dir, "tokens.yaml")
	ts, err := auth.OpenTokenStore(tokens)
	if err != nil {
		t.Fatal(err)
	}
	reader, _, err := ts.Create(auth.Principal{ID: "rita", Grants: []auth.Grant{{Role: auth.RoleReader}}})
	if err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var out, errOut strings.Builder
	go func() {
		// Temporal at an address where nothing listens: the client is lazy,
		// so the server starts; no calls, which need Kafka.
		done <- Run(ctx, []string{"api", "--store", store, "--listen", addr, "--warm", credit.Name, "--tokens", tokens,
			"--address", "127.0.0.1:1", "--calls=false"}, &out, &errOut, Name("tidemark"), Jobs(credit.New))
	}()
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the api command did not serve within 20s: %v\nstderr:\n%s", err, errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	c := client.New(base, client.WithToken("tdm_unknown_x"))
	if _, err := c.Features(ctx, "nope", "x", time.Time{}, time.Time{}); err == nil || !strings.Contains(err.Error(), "Unknown job") {
		t.Errorf("features of an unknown job: %v", err)
	}
	if _, err := c.Call(ctx, "nope", map[string]any{"a": 1}, client.CallOptions{}); err == nil || !strings.Contains(err.Error(), "Calls not served") {
		t.Errorf("call with --calls=false: %v", err)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"POST", "/v1/jobs/" + credit.Name + "/params/changes", "", http.StatusUnauthorized},
		{"POST", "/v1/params/changes/param-x-1/approve", "", http.StatusUnauthorized},
		{"GET", "/v1/jobs/" + credit.Name + "/params", "", http.StatusUnauthorized},
		{"POST", "/v1/jobs/" + credit.Name + "/params/changes", reader, http.StatusForbidden},
		{"GET", "/v1/jobs/nope/params", reader, http.StatusNotFound}, // authenticated: the job is unknown
		{"GET", "/v1/jobs/" + credit.Name, "", http.StatusNotFound},  // the catalog is open (no 401); the job is not published
		{"GET", "/", "", http.StatusSeeOther},
		{"GET", "/jobs", "", http.StatusSeeOther}, // to /login
		{"GET", "/login", "", http.StatusOK},
	} {
		req, err := http.NewRequestWithContext(ctx, tc.method, base+tc.path, strings.NewReader(`{"changes":{"max_debt_to_income":"0.4"},"reason":"r"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s (token %v): %s, want %d", tc.method, tc.path, tc.token != "", resp.Status, tc.want)
		}
	}
	// Signing in to the console with the reader's token.
	resp, err := noRedirect.PostForm(base+"/login", url.Values{"token": {reader}, "next": {"/sources"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/sources" || len(resp.Cookies()) != 1 || !resp.Cookies()[0].HttpOnly {
		t.Errorf("sign-in: %s, location %q, cookies %v", resp.Status, resp.Header.Get("Location"), resp.Cookies())
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Fatalf("api exited %d\nstderr:\n%s", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("api did not stop within 10s of its interrupt")
	}
}
