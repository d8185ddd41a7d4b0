package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokenStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	s, err := OpenTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "tdm_x_y"); !errors.Is(err, ErrBadToken) {
		t.Fatalf("empty store: Authenticate = %v, want ErrBadToken", err)
	}
	alice := Principal{ID: "alice", Name: "Alice", Grants: []Grant{{Role: RoleOperator, Jobs: []string{"credit"}}}}
	tokA, a, err := s.Create(alice)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tokA, TokenPrefix+a.ID+"_") {
		t.Errorf("token %q does not start with tdm_<id>_", tokA)
	}
	tokB, b, err := s.Create(Principal{ID: "bob", Grants: []Grant{{Role: RoleApprover}}})
	if err != nil {
		t.Fatal(err)
	}

	// Hashed at rest: the file holds neither token.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for tok, id := range map[string]string{tokA: a.ID, tokB: b.ID} {
		// The secret is base64url, which has '_' too: cut the known
		// prefix (its tail after the last '_' was at times a letter or
		// empty, found in any file, and the test failed at random).
		secret := strings.TrimPrefix(tok, TokenPrefix+id+"_")
		if len(secret) != 43 {
			t.Fatalf("token %q: a secret of %d characters, want 43 (256 bits)", tok, len(secret))
		}
		if strings.Contains(string(raw), secret) {
			t.Fatalf("the token file holds a token's secret:\n%s", raw)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}

	p, err := s.Authenticate(ctx, tokA)
	if err != nil || p.ID != "alice" || !p.Can(RoleOperator, "credit") || p.Can(RoleApprover, "credit") {
		t.Fatalf("Authenticate(alice) = %+v, %v", p, err)
	}
	if _, err := s.Authenticate(ctx, tokA+"x"); !errors.Is(err, ErrBadToken) {
		t.Errorf("altered token: %v, want ErrBadToken", err)
	}

	// A second store on the same file (the CLI in another process) revokes;
	// the first sees it at once.
	other, err := OpenTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Revoke(a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, tokA); !errors.Is(err, ErrBadToken) {
		t.Fatalf("revoked token: %v, want ErrBadToken", err)
	}
	if p, err := s.Authenticate(ctx, tokB); err != nil || p.ID != "bob" {
		t.Fatalf("bob after alice's revocation: %+v, %v", p, err)
	}
	if err := other.Revoke(a.ID); err != nil {
		t.Errorf("revoking twice: %v", err)
	}
	if err := other.Revoke("nope"); !errors.Is(err, ErrUnknownToken) {
		t.Errorf("Revoke(unknown) = %v, want ErrUnknownToken", err)
	}
	list, err := s.List()
	if err != nil || len(list) != 2 || list[0].ID != a.ID || list[0].Revoked.IsZero() || list[1].ID != b.ID || !list[1].Revoked.IsZero() {
		t.Fatalf("List = %+v, %v", list, err)
	}

	if p, err := s.Principal(ctx, "bob"); err != nil || !p.Can(RoleApprover, "credit") {
		t.Errorf("Principal(bob) = %+v, %v", p, err)
	}
	if _, err := s.Principal(ctx, "alice"); !errors.Is(err, ErrUnknownPrincipal) {
		t.Errorf("Principal(alice), whose only token is revoked = %v, want ErrUnknownPrincipal", err)
	}
	if _, _, err := s.Create(Principal{ID: "eve", Grants: []Grant{{Role: "god"}}}); err == nil {
		t.Error("Create with an unknown role succeeded")
	}
	if _, _, err := s.Create(Principal{}); err == nil {
		t.Error("Create without a principal id succeeded")
	}
}

func TestTokenStoreRefusesBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(path, []byte("tokens:\n- id: x\n  hash: abc\n  principal: {id: a}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenTokenStore(path); err == nil {
		t.Fatal("a malformed hash was accepted")
	}
	if err := os.WriteFile(path, []byte("tokenz: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenTokenStore(path); err == nil {
		t.Fatal("an unknown field was accepted")
	}
}

func TestMiddleware(t *testing.T) {
	s, err := OpenTokenStore(filepath.Join(t.TempDir(), "tokens.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.Create(Principal{ID: "alice", Grants: []Grant{{Role: RoleReader}}})
	if err != nil {
		t.Fatal(err)
	}
	revoked, rk, err := s.Create(Principal{ID: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(rk.ID); err != nil {
		t.Fatal(err)
	}
	h := Middleware(s)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := FromContext(r.Context())
		if !ok {
			t.Error("the handler got no principal")
		}
		w.Write([]byte(p.ID))
	}))
	for _, c := range []struct {
		name, header string
		status       int
		body         string
	}{
		{"valid", "Bearer " + tok, 200, "alice"},
		{"lower-case scheme", "bearer " + tok, 200, "alice"},
		{"no token", "", 401, ""},
		{"revoked", "Bearer " + revoked, 401, ""},
		{"unknown", "Bearer tdm_00_zz", 401, ""},
		{"basic auth", "Basic YTpi", 401, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/jobs", nil)
			if c.header != "" {
				r.Header.Set("Authorization", c.header)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if c.status == 200 {
				if w.Body.String() != c.body {
					t.Fatalf("body %q, want %q", w.Body, c.body)
				}
				return
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			if w.Header().Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate challenge")
			}
			var pb struct {
				Status int    `json:"status"`
				Detail string `json:"detail"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &pb); err != nil || pb.Status != 401 || pb.Detail == "" {
				t.Fatalf("problem %s: %+v, %v", w.Body, pb, err)
			}
		})
	}
}

// TestReaderGrantNamesNoJobs: every principal reads every job, so a reader
// grant limited to jobs would promise a restriction that does not exist.
func TestReaderGrantNamesNoJobs(t *testing.T) {
	s, err := OpenTokenStore(filepath.Join(t.TempDir(), "tokens.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(Principal{ID: "r", Grants: []Grant{{Role: RoleReader, Jobs: []string{"credit"}}}}); err == nil {
		t.Fatal("a reader grant naming jobs was accepted")
	}
	if _, _, err := s.Create(Principal{ID: "r", Grants: []Grant{{Role: RoleReader}}}); err != nil {
		t.Fatalf("a reader grant: %v", err)
	}
}
