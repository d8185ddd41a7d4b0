package app

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidemark-dev/tidemark/auth"
)

// TestTokenCommands: create prints a token that authenticates its
// principal with its grants; list shows it; revoke ends it; bad roles and
// unknown ids are errors.
func TestTokenCommands(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens.yaml")
	code, out, errOut := run(t, "token", "create", "--tokens", file, "--principal", "alice", "--role", "operator:credit,fraud", "--role", "reader")
	if code != ExitOK || !strings.HasPrefix(out, auth.TokenPrefix) {
		t.Fatalf("token create: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	token := strings.TrimSpace(out)
	s, err := auth.OpenTokenStore(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Authenticate(context.Background(), token)
	if err != nil || p.ID != "alice" || !p.Can(auth.RoleOperator, "fraud") || p.Can(auth.RoleOperator, "other") {
		t.Fatalf("the created token: %+v, %v", p, err)
	}
	id := strings.SplitN(token, "_", 3)[1]
	code, out, _ = run(t, "token", "list", "--tokens", file)
	if code != ExitOK || !strings.Contains(out, id) || !strings.Contains(out, "operator:credit,fraud reader") {
		t.Fatalf("token list: exit %d\n%s", code, out)
	}
	if code, _, errOut := run(t, "token", "revoke", id, "--tokens", file); code != ExitOK {
		t.Fatalf("token revoke: exit %d: %s", code, errOut)
	}
	if _, err := s.Authenticate(context.Background(), token); err == nil {
		t.Fatal("a revoked token still authenticates")
	}
	if code, _, errOut := run(t, "token", "revoke", "nope", "--tokens", file); code != ExitError || !strings.Contains(errOut, "no such token") {
		t.Errorf("revoke nope: exit %d: %s", code, errOut)
	}
	if code, _, errOut := run(t, "token", "create", "--tokens", file, "--principal", "x", "--role", "god"); code != ExitUsage || !strings.Contains(errOut, "unknown role") {
		t.Errorf("create --role god: exit %d: %s", code, errOut)
	}
	if code, _, errOut := run(t, "token", "create", "--tokens", file, "--principal", "x", "--role", "operator:"); code != ExitUsage || !strings.Contains(errOut, "empty job name") {
		t.Errorf("create --role operator: exit %d: %s", code, errOut)
	}
	if code, _, _ := run(t, "token", "create", "--tokens", file); code != ExitUsage {
		t.Errorf("create without --principal: exit %d", code)
	}
}
