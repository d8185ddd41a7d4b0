package api

import (
	"encoding/json"
	"net/http"
)

// ContentTypeProblem is the media type of error answers (RFC 9457).
const ContentTypeProblem = "application/problem+json"

// Problem is an error answer (RFC 9457): Type names the kind of problem
// ("urn:tidemark:problem:<slug>", stable for clients to branch on), Title
// says it in words, Detail says what was wrong with this request. Further
// members (Extensions) carry specifics: "position" for a predicate, "known"
// for an unknown job, "max" for a limit.
type Problem struct {
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Status     int            `json:"status"`
	Detail     string         `json:"detail,omitempty"`
	Instance   string         `json:"instance,omitempty"`
	Extensions map[string]any `json:"-"`
}

// MarshalJSON writes the members and the extensions side by side.
func (p Problem) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(p.Extensions)+5)
	for k, v := range p.Extensions {
		m[k] = v
	}
	m["type"], m["title"], m["status"] = p.Type, p.Title, p.Status
	if p.Detail != "" {
		m["detail"] = p.Detail
	}
	if p.Instance != "" {
		m["instance"] = p.Instance
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads the members, and the others into Extensions.
func (p *Problem) UnmarshalJSON(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	type plain Problem
	var q plain
	if err := json.Unmarshal(b, &q); err != nil {
		return err
	}
	*p = Problem(q)
	for _, k := range []string{"type", "title", "status", "detail", "instance"} {
		delete(m, k)
	}
	if len(m) > 0 {
		p.Extensions = m
	}
	return nil
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Title + ": " + p.Detail
	}
	return p.Title
}

// problem makes a Problem of a slug, a status and a detail.
func problem(status int, slug, title, detail string) *Problem {
	return &Problem{Type: "urn:tidemark:problem:" + slug, Title: title, Status: status, Detail: detail}
}

func (p *Problem) with(k string, v any) *Problem {
	if p.Extensions == nil {
		p.Extensions = map[string]any{}
	}
	p.Extensions[k] = v
	return p
}

func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" {
		p.Instance = r.URL.Path
	}
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tidemark"`)
	}
	w.Header().Set("Content-Type", ContentTypeProblem)
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
