package auth

import (
	"context"
	"testing"
)

func TestCan(t *testing.T) {
	op := Principal{ID: "ops", Grants: []Grant{{Role: RoleOperator, Jobs: []string{"credit"}}}}
	admin := Principal{ID: "root", Grants: []Grant{{Role: RoleAdmin}}}
	for _, c := range []struct {
		p    Principal
		role Role
		job  string
		want bool
	}{
		{op, RoleOperator, "credit", true},
		{op, RoleOperator, "fraud", false},
		{op, RoleOperator, "", false},
		{op, RoleApprover, "credit", false},
		{op, RoleReader, "fraud", true},
		{admin, RoleApprover, "fraud", true},
		{admin, RoleAdmin, "", true},
		{Principal{}, RoleReader, "credit", false},
	} {
		if got := c.p.Can(c.role, c.job); got != c.want {
			t.Errorf("%s.Can(%s, %q) = %v, want %v", c.p.ID, c.role, c.job, got, c.want)
		}
	}
}

func TestContext(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Fatal("a bare context carries a principal")
	}
	p := Principal{ID: "x"}
	if got, ok := FromContext(NewContext(context.Background(), p)); !ok || got.ID != "x" {
		t.Fatalf("FromContext = %+v, %v", got, ok)
	}
}
