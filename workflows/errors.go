package workflows

import (
	"errors"

	"go.temporal.io/sdk/temporal"
)

// errorMessage is err's message without Temporal's wrapping (activity
// error (type: …, scheduledEventID: …)): the application error's own.
func errorMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}
