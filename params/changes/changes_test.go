package changes

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tidemark-dev/tidemark/auth"
)

// TestTextsAreBounded: a reason or comment too large for the audit trail's
// events is refused before anything starts (a reason over the event
// center's bound once made the "submitted" audit retry forever).
func TestTextsAreBounded(t *testing.T) {
	var s Service // touches nothing before the checks
	op := auth.Principal{ID: "ops", Grants: []auth.Grant{{Role: auth.RoleOperator}, {Role: auth.RoleApprover}}}
	long := strings.Repeat("x", MaxText+1)
	if _, err := s.Submit(context.Background(), op, "credit", Submission{Reason: long}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Submit with a %d-byte reason: %v, want ErrInvalid", len(long), err)
	}
	if _, err := s.Decide(context.Background(), op, "param-credit-1", true, long); !errors.Is(err, ErrInvalid) {
		t.Errorf("Decide with a %d-byte comment: %v, want ErrInvalid", len(long), err)
	}
}
