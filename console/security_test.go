package console

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/correction"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
)

// secured is a console over an in-memory event center and a token file,
// served on the loopback, with the token of a reader.
type secured struct {
	srv    *httptest.Server
	store  *embedded.Store
	tokens *auth.TokenStore
	reader string // rita's token: the reader role only
	ritaID string // the id of rita's token, to revoke it
}

func newSecured(t *testing.T, cfg Config) *secured {
	t.Helper()
	store, err := embedded.Open(embedded.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tokens, err := auth.OpenTokenStore(filepath.Join(t.TempDir(), "tokens.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	reader, tok, err := tokens.Create(auth.Principal{ID: "rita"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store, cfg.Auth = store, tokens
	cfg.API = http.NotFoundHandler()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Mount(mux)
	s := &secured{srv: httptest.NewServer(mux), store: store, tokens: tokens, reader: reader, ritaID: tok.ID}
	t.Cleanup(s.srv.Close)
	return s
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// do sends a request with the cookie token (none if "") and the header
// Origin (none if ""); it returns the status, the Location and the body.
func (s *secured) do(t *testing.T, method, path, token, origin string, form url.Values) (int, string, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, s.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if token != "" {
		req.AddCookie(&http.Cookie{Name: CookieName, Value: token})
	}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// TestSignInRedirectStaysOnSite: the page a sign-in sends to is on this
// site, whatever the next field holds. Browsers drop tabs and newlines
// from a URL, so "/\t/evil.example" would be "//evil.example", another site.
func TestSignInRedirectStaysOnSite(t *testing.T) {
	s := newSecured(t, Config{})
	for _, next := range []string{"/\t/evil.example", "/\n/evil.example", "/\r/evil.example", "//evil.example", `/\evil.example`,
		"https://evil.example/", "javascript:alert(1)", "evil.example"} {
		code, loc, _ := s.do(t, http.MethodPost, "/login", "", "", url.Values{"token": {s.reader}, "next": {next}})
		if code != http.StatusSeeOther || loc != "/jobs" {
			t.Errorf("sign-in with next %q: %d to %q, want 303 to /jobs", next, code, loc)
		}
	}
	if code, loc, _ := s.do(t, http.MethodPost, "/login", "", "", url.Values{"token": {s.reader}, "next": {"/sources?x=1#dead-letters"}}); code != http.StatusSeeOther || loc != "/sources?x=1#dead-letters" {
		t.Errorf("sign-in with a page of this site: %d to %q", code, loc)
	}
}

// TestCookies: a page needs a cookie holding a valid token, checked at
// every request: a forged one, or one whose token was revoked since the
// sign-in, sends to the sign-in.
func TestCookies(t *testing.T) {
	s := newSecured(t, Config{})
	for _, token := range []string{"", "forged", s.reader + "x"} {
		if code, loc, _ := s.do(t, http.MethodGet, "/sources", token, "", nil); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?") {
			t.Errorf("GET /sources with the cookie %q: %d to %q, want 303 to the sign-in", token, code, loc)
		}
	}
	if code, _, body := s.do(t, http.MethodGet, "/sources", s.reader, "", nil); code != http.StatusOK {
		t.Fatalf("GET /sources signed in: %d\n%s", code, body)
	}
	if err := s.tokens.Revoke(s.ritaID); err != nil {
		t.Fatal(err)
	}
	if code, loc, _ := s.do(t, http.MethodGet, "/sources", s.reader, "", nil); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?") {
		t.Errorf("GET /sources with a revoked token's cookie: %d to %q, want 303 to the sign-in", code, loc)
	}
	if code, loc, _ := s.do(t, http.MethodPost, "/params/submit", s.reader, "", url.Values{"job": {"j"}, "reason": {"r"}}); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?") {
		t.Errorf("POST /params/submit with a revoked token's cookie: %d to %q, want 303 to the sign-in", code, loc)
	}
}

// TestCrossOrigin: every POST whose Origin is another origin (another
// host, another port of this host, or "null" as sandboxed frames and
// data: URLs send) is refused, sign-in and sign-out included.
func TestCrossOrigin(t *testing.T) {
	s := newSecured(t, Config{})
	u, err := url.Parse(s.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	otherPort := "http://" + u.Hostname() + ":1"
	for _, path := range []string{"/login", "/logout", "/params/submit", "/params/decide"} {
		for _, origin := range []string{"https://evil.example", otherPort, "null"} {
			form := url.Values{"token": {s.reader}, "job": {"j"}, "id": {"c"}, "decision": {"approve"}, "reason": {"r"}}
			if code, _, _ := s.do(t, http.MethodPost, path, s.reader, origin, form); code != http.StatusForbidden {
				t.Errorf("POST %s from %s: %d, want 403", path, origin, code)
			}
		}
	}
}

// TestInjection: text from the event center (correction runs, sources,
// keys, archive objects) and from the request (an error message) is text
// on the pages, in their SVG too, never markup or a script's URL.
func TestInjection(t *testing.T) {
	s := newSecured(t, Config{ArchiveURL: "https://archive.example/b/"})
	const evil = `"><script>alert(1)</script><svg onload=alert(2)>`
	started := time.Now().Add(-time.Hour).UTC()
	if err := correction.WriteLedger(context.Background(), s.store, []correction.Entry{
		{Run: "run" + evil, Source: "src" + evil, Started: started, Objects: []string{"javascript:alert(3)", evil},
			Drift: correction.Drift{Compared: 3, Missing: 1, Keys: map[string][]string{"missing" + evil: {"key" + evil}}}},
		{Run: "javascript:alert(4)", Source: "src" + evil, Started: started.Add(time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/drift", "/drift?run=" + url.QueryEscape("run"+evil), "/drift?run=" + url.QueryEscape("javascript:alert(4)"),
		"/jobs?error=" + url.QueryEscape(evil), "/login?next=" + url.QueryEscape(evil)} {
		code, _, body := s.do(t, http.MethodGet, path, s.reader, "", nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", path, code, body)
		}
		for _, bad := range []string{"<script", "<svg onload", `href="javascript:`} {
			if strings.Contains(body, bad) {
				t.Errorf("GET %s holds %q:\n%s", path, bad, body)
			}
		}
	}
}

// TestErrorsNotFromLinks: the error a page shows in its alert is the one
// the console's last POST met, never text from a link (which would let
// anyone's link show "Your session expired: sign in at https://evil.example"
// on the console), and it shows once.
func TestErrorsNotFromLinks(t *testing.T) {
	s := newSecured(t, Config{})
	const spoof = "Your session expired: sign in at https://evil.example"
	for _, path := range []string{"/jobs?error=" + url.QueryEscape(spoof), "/login?error=" + url.QueryEscape(spoof)} {
		if _, _, body := s.do(t, http.MethodGet, path, s.reader, "", nil); strings.Contains(body, spoof) {
			t.Errorf("GET %s shows the link's text:\n%s", path, body)
		}
	}
	// A failing POST (no Temporal: no parameter change) sends back to a
	// page that says why, once.
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(s.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	jar.SetCookies(u, []*http.Cookie{{Name: CookieName, Value: s.reader, Path: "/"}})
	browser := &http.Client{Jar: jar}
	get := func(resp *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s\n%s", resp.Request.URL, resp.Status, b)
		}
		return string(b)
	}
	const why = "parameter changes need Temporal"
	body := get(browser.PostForm(s.srv.URL+"/params/submit", url.Values{"job": {"j"}, "reason": {"r"}}))
	if !strings.Contains(body, `class="error"`) || !strings.Contains(body, why) {
		t.Errorf("the page after a failing POST does not say %q:\n%s", why, body)
	}
	if body := get(browser.Get(s.srv.URL + "/params?job=j")); strings.Contains(body, `class="error"`) {
		t.Errorf("the next page shows the error again:\n%s", body)
	}
}
