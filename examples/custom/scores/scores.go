// Package scores is the custom example's job: each scoring request posted
// to the API (the http source api.requests, body {"user_id", "score"})
// gets a band, raised by the applicant's identity-verification level as of
// the request's time.
package scores

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
)

// Name of the job; its records go to the source "feature.api-scores".
const Name = "api-scores"

// Sources the job reads.
const (
	Requests = "api.requests"        // the trigger: POST /v1/messages/api.requests
	Profiles = "mysql.user.profiles" // id, kyc_level, … (may be absent)
)

// New defines the job; opts are added after its own.
func New(opts ...job.Option) (*job.Job, error) {
	return job.New(Name, Logic, append([]job.Option{job.Trigger(Requests), job.Version("1")}, opts...)...)
}

// Logic bands the request's score: "high" from 0.8, "mid" from 0.5, else
// "low"; a verified applicant (kyc_level >= 2) moves up one band.
func Logic(c *job.Context) (eventcenter.Row, error) {
	req := c.Trigger().After
	score, ok := number(req["score"])
	if !ok {
		return nil, fmt.Errorf("request %s: score %v is not a number", c.Trigger().Key, req["score"])
	}
	user, _ := req["user_id"].(string)
	kyc := 0.0
	if user != "" {
		profile, err := c.Get(Profiles, user)
		switch {
		case errors.Is(err, job.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			kyc, _ = number(profile["kyc_level"])
		}
	}
	bands := []string{"low", "mid", "high"}
	band := 0
	if score >= 0.8 {
		band = 2
	} else if score >= 0.5 {
		band = 1
	}
	if kyc >= 2 && band < 2 {
		band++
	}
	return eventcenter.Row{"user_id": user, "score": score, "kyc_level": kyc, "band": bands[band]}, nil
}

// number reads a numeric column: a float, an integer or a decimal (as a
// JSON number with a fraction arrives).
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int64:
		return float64(n), true
	case eventcenter.Decimal:
		f, err := strconv.ParseFloat(string(n), 64)
		return f, err == nil
	}
	return 0, false
}
