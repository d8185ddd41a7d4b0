package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// Middleware authenticates every request with a: the bearer token of its
// Authorization header must name a principal, which the handler then reads
// with FromContext. A request without a token, or with an unknown or revoked
// one, is answered 401 with an application/problem+json body (RFC 9457) and
// a WWW-Authenticate challenge, and does not reach the handler; a failure of
// the authenticator itself (its store unreadable) is answered 500.
//
// Mount paths that need no identity (health checks) outside the handler
// this wraps.
func Middleware(a Authenticator) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, err := BearerToken(r)
			var p Principal
			if err == nil {
				p, err = a.Authenticate(r.Context(), token)
			}
			switch {
			case err == nil:
				next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), p)))
			case errors.Is(err, ErrNoToken), errors.Is(err, ErrBadToken):
				w.Header().Set("WWW-Authenticate", `Bearer realm="tidemark"`)
				writeProblem(w, http.StatusUnauthorized, err.Error())
			default:
				writeProblem(w, http.StatusInternalServerError, "authentication failed")
			}
		})
	}
}

// BearerToken returns the token of r's "Authorization: Bearer" header;
// ErrNoToken if there is none, ErrBadToken if the header has another scheme.
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ErrNoToken
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", ErrBadToken
	}
	return strings.TrimSpace(token), nil
}

// writeProblem answers an RFC 9457 problem without a type (about:blank).
func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{ //nolint:errcheck // the client went away
		"title":  http.StatusText(status),
		"status": status,
		"detail": detail,
	})
}
