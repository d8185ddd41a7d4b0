// Package cataloghttp serves the catalog over HTTP, for any server that
// mounts it (the dev stack's API today):
//
//	GET /v1/jobs        200, a JSON array of catalog.Entry, by name
//	GET /v1/jobs/{job}  200, a catalog.Entry; 404 {"error": …, "known": [names]}
//	                    when the catalog does not know the job
//
// A failed read of the event center answers 500 {"error": …}.
package cataloghttp

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/tidemark-dev/tidemark/catalog"
)

// Mount adds the catalog's routes to mux.
func Mount(mux *http.ServeMux, store catalog.Store) {
	mux.HandleFunc("GET /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		es, err := catalog.List(r.Context(), store)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, es)
	})
	mux.HandleFunc("GET /v1/jobs/{job}", func(w http.ResponseWriter, r *http.Request) {
		e, err := catalog.Get(r.Context(), store, r.PathValue("job"))
		switch {
		case errors.Is(err, catalog.ErrNotFound):
			known, lerr := catalog.Names(r.Context(), store)
			if lerr != nil {
				writeJSON(w, http.StatusInternalServerError, map[string]string{"error": lerr.Error()})
				return
			}
			if known == nil {
				known = []string{}
			}
			writeJSON(w, http.StatusNotFound, map[string]any{"error": err.Error(), "known": known})
		case err != nil:
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		default:
			writeJSON(w, http.StatusOK, e)
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
