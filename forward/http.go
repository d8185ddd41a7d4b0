package forward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/source"
)

// HeaderMessageID lets a caller name its message (at most 255 printable
// ASCII bytes); without it the forwarder makes an id.
const HeaderMessageID = "Message-Id"

// Accepted is the answer to a forwarded call: its message id and where
// Kafka stored it (the event's position in the event center).
type Accepted struct {
	ID        string    `json:"id"`
	Source    string    `json:"source"`
	Time      time.Time `json:"time"`
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
}

// Handler serves POST /v1/messages/{source}: the body, a JSON object (see
// source.RowFromJSON), becomes a message event of the http source, keyed by
// its message id and timed at its arrival. The answer is 200 with an
// Accepted only after Kafka acknowledged the record (from all in-sync
// replicas). Errors answer {"error": "..."}:
//
//	404  the source is not registered, or not of kind http
//	413  the body is larger than the source's http.max_bytes
//	415  a Content-Type other than application/json
//	400  the body is not a JSON object, or the Message-Id header is invalid
//	503  Kafka did not acknowledge in time (the message may or may not be
//	     stored: retry with the same Message-Id header to keep one id)
func (f *Forwarder) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages/{source}", f.serveMessage)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	return mux
}

func (f *Forwarder) serveMessage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("source")
	s, err := f.cfg.Sources.Lookup(name)
	if err != nil || s.Kind != source.KindHTTP || s.IsPattern() {
		httpError(w, http.StatusNotFound, fmt.Sprintf("unknown source %q (not an http source of the registry)", name))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			f.count(name, "rejected")
			httpError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: send application/json", ct))
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.HTTP.MaxBytes))
	if err != nil {
		f.count(name, "rejected")
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", s.HTTP.MaxBytes))
			return
		}
		httpError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	row, err := source.RowFromJSON(body)
	if err != nil {
		f.count(name, "rejected")
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	id := r.Header.Get(HeaderMessageID)
	if id == "" {
		id = newID()
	} else if err := validID(id); err != nil {
		f.count(name, "rejected")
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}

	t, done := f.stamp(s.Name, time.Time{})
	e := eventcenter.Event{Source: s.Name, Key: id, Time: t, Op: eventcenter.OpMessage, After: row}
	if err := e.Validate(); err != nil {
		done(nil, err)
		f.count(name, "rejected")
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	rec, err := f.record(s, &e)
	if err != nil {
		done(nil, err)
		f.count(name, "rejected")
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), f.cfg.ProduceTimeout)
	defer cancel()
	start := time.Now()
	res := f.cfg.Client.ProduceSync(ctx, rec)
	rec, err = res[0].Record, res[0].Err
	done(rec, err)
	if m := f.cfg.Metrics; m != nil {
		m.ProduceSeconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
	}
	if err != nil {
		f.count(name, "failed")
		f.log.Warn("forward: http message not acknowledged", "source", name, "id", id, "err", err)
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, "Kafka did not acknowledge the message: "+err.Error())
		return
	}
	f.count(name, "ok")
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(Accepted{ID: id, Source: s.Name, Time: t, Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset})
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// newID makes a message id that sorts by time: 16 hex digits of Unix
// nanoseconds, a dash, 16 random hex digits.
func newID() string {
	return fmt.Sprintf("%016x-%s", time.Now().UnixNano(), randomHex(8))
}

func validID(id string) error {
	if len(id) > 255 {
		return fmt.Errorf("%s: %d bytes, at most 255", HeaderMessageID, len(id))
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < '!' || c > '~' {
			return fmt.Errorf("%s: byte %d is not printable ASCII", HeaderMessageID, i)
		}
	}
	return nil
}
