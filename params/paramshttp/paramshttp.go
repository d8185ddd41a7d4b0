// Package paramshttp serves parameter changes over HTTP, for the API
// server that mounts it behind auth.Middleware (every route reads the
// caller with auth.FromContext; without one it answers 401):
//
//	GET  /v1/jobs/{job}/params                 200 changes.JobParams: declarations, current version and values
//	GET  /v1/jobs/{job}/params/history         200 [params.AuditEntry], oldest first
//	GET  /v1/jobs/{job}/params/changes?state=  200 [changes.Change], newest first
//	POST /v1/jobs/{job}/params/changes         201 changes.Change; body changes.Submission
//	                                           {"changes": {"max_open_orders": 5}, "reason": "…", "base": 3}
//	GET  /v1/params/changes?job=&state=        200 [changes.Change]
//	GET  /v1/params/changes/{id}               200 changes.Change
//	POST /v1/params/changes/{id}/approve       200 changes.Change once applied; body {"comment": "…"}
//	POST /v1/params/changes/{id}/reject        200 changes.Change
//
// Reads need any principal; submitting the operator role on the job,
// deciding the approver role (never on one's own change). Errors are
// application/problem+json (RFC 9457): 400 a bad body or value (type,
// bounds, unknown parameter), 401 no principal, 403 a missing role or
// self-approval, 404 an unknown job or change, 409 a change already
// decided or written against a version that is no longer current.
package paramshttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/params/changes"
	"github.com/tidemark-dev/tidemark/workflows"
)

// MaxBody bounds a request body.
const MaxBody = 1 << 20

// Mount adds the routes to mux.
func Mount(mux *http.ServeMux, s *changes.Service) {
	h := handlers{s}
	mux.HandleFunc("GET /v1/jobs/{job}/params", h.auth(h.show))
	mux.HandleFunc("GET /v1/jobs/{job}/params/history", h.auth(h.history))
	mux.HandleFunc("GET /v1/jobs/{job}/params/changes", h.auth(h.list))
	mux.HandleFunc("POST /v1/jobs/{job}/params/changes", h.auth(h.submit))
	mux.HandleFunc("GET /v1/params/changes", h.auth(h.list))
	mux.HandleFunc("GET /v1/params/changes/{id}", h.auth(h.get))
	mux.HandleFunc("POST /v1/params/changes/{id}/approve", h.auth(h.decide(true)))
	mux.HandleFunc("POST /v1/params/changes/{id}/reject", h.auth(h.decide(false)))
}

// MountAuthenticated adds the routes to mux behind auth.Middleware(a): a
// request without a valid bearer token is answered 401 before it reaches
// them.
func MountAuthenticated(mux *http.ServeMux, s *changes.Service, a auth.Authenticator) {
	routes := http.NewServeMux()
	Mount(routes, s)
	h := auth.Middleware(a)(routes)
	mux.Handle("/v1/params/", h)
	mux.Handle("/v1/jobs/{job}/params", h)
	mux.Handle("/v1/jobs/{job}/params/", h)
}

type handlers struct{ s *changes.Service }

type handler func(w http.ResponseWriter, r *http.Request, p auth.Principal) error

// auth runs f with the request's principal, and answers f's error.
func (h handlers) auth(f handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.FromContext(r.Context())
		if !ok || !p.Can(auth.RoleReader, "") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tidemark"`)
			problem(w, http.StatusUnauthorized, auth.ErrNoToken)
			return
		}
		if err := f(w, r, p); err != nil {
			problem(w, status(err), err)
		}
	}
}

func (h handlers) show(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	jp, err := h.s.Show(r.Context(), r.PathValue("job"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, jp)
}

func (h handlers) history(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	es, err := h.s.History(r.Context(), r.PathValue("job"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, es)
}

func (h handlers) list(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	job := r.PathValue("job")
	if job == "" {
		job = r.URL.Query().Get("job")
	}
	state := workflows.ChangeState(r.URL.Query().Get("state"))
	cs, err := h.s.List(r.Context(), job, state)
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []changes.Change{}
	}
	return writeJSON(w, http.StatusOK, cs)
}

func (h handlers) submit(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var sub changes.Submission
	if err := decode(r, &sub); err != nil {
		return err
	}
	c, err := h.s.Submit(r.Context(), p, r.PathValue("job"), sub)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/params/changes/"+c.ID)
	return writeJSON(w, http.StatusCreated, c)
}

func (h handlers) get(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	c, err := h.s.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

func (h handlers) decide(approve bool) handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		var body struct {
			Comment string `json:"comment"`
		}
		if err := decode(r, &body); err != nil && !errors.Is(err, io.EOF) { // no body: no comment
			return err
		}
		c, err := h.s.Decide(r.Context(), p, r.PathValue("id"), approve, body.Comment)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, c)
	}
}

// badRequest marks an unreadable body.
type badRequest struct{ error }

func (e badRequest) Unwrap() error { return e.error }

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, MaxBody))
	dec.UseNumber() // values reach the declarations' checks exactly
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest{fmt.Errorf("the request body: %w", err)}
	}
	return nil
}

func status(err error) int {
	switch {
	case errors.As(err, new(badRequest)), errors.Is(err, changes.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, auth.ErrNoToken), errors.Is(err, auth.ErrBadToken):
		return http.StatusUnauthorized
	case errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, changes.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, changes.ErrConflict), errors.Is(err, changes.ErrDecided):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// problem answers an RFC 9457 problem.
func problem(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{ //nolint:errcheck // the client went away
		"title":  http.StatusText(status),
		"status": status,
		"detail": err.Error(),
	})
}

// writeJSON answers v. It returns nil: once the status is sent, a failed
// write (the client went away) cannot be answered with a problem.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // see above
	return nil
}
