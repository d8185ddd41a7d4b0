package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/calls"
	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/catalog/cataloghttp"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/serving"
	"github.com/tidemark-dev/tidemark/source"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3 description the server serves at
// /v1/openapi.json.
func OpenAPI() []byte { return slices.Clone(openAPI) }

// Config configures a Server. Store is required.
type Config struct {
	// Store is the event center: features, the catalog, calls.
	Store eventcenter.Store
	// Auth checks bearer tokens. Required for calls (Caller set).
	Auth auth.Authenticator
	// Caller makes calls; nil: the calls routes answer 501.
	Caller *calls.Caller
	// Jobs are the jobs this server knows the code of (a team's binary
	// knows its own). A call of one of them is checked against its trigger
	// filters on its call source before anything is stored: the call's
	// schema. Calls of other catalog jobs are checked as rows only.
	// Default none.
	Jobs []*job.Job
	// Selector answers selections. Default: one on Store.
	Selector *serving.Selector
	// MaxBatch bounds the entities of a batch lookup. Default 1000.
	MaxBatch int
	// BatchParallel: the lookups of a batch in flight at once. Default 16.
	BatchParallel int
	// MaxLimit bounds a selection page. Default 10000.
	MaxLimit int
	// CallTimeout is a call's default wait for its result; MaxCallTimeout
	// the most a call may ask for. Defaults 2s, 30s.
	CallTimeout, MaxCallTimeout time.Duration
	// MaxBody bounds a request body. Default 1 MiB.
	MaxBody int64
	// JobsTTL: how long the server trusts its copy of the catalog's job
	// names before it reads them again for a job it does not know.
	// Default 1s.
	JobsTTL time.Duration
	// Metrics, if not nil, are updated (see NewMetrics).
	Metrics *Metrics
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Store == nil {
		return errors.New("api: Config.Store is required")
	}
	if c.Caller != nil && c.Auth == nil {
		return errors.New("api: Config.Auth is required with a Caller (calls need tokens)")
	}
	if c.Selector == nil {
		s, err := serving.NewSelector(serving.SelectorConfig{Store: c.Store})
		if err != nil {
			return err
		}
		c.Selector = s
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1000
	}
	if c.BatchParallel <= 0 {
		c.BatchParallel = 16
	}
	if c.MaxLimit <= 0 {
		c.MaxLimit = 10000
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 2 * time.Second
	}
	if c.MaxCallTimeout <= 0 {
		c.MaxCallTimeout = 30 * time.Second
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 1 << 20
	}
	if c.JobsTTL <= 0 {
		c.JobsTTL = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Server is tidemark's HTTP API (see the package documentation).
type Server struct {
	cfg Config
	mux *http.ServeMux

	reading sync.Mutex // held by the one request reading the catalog
	mu      sync.Mutex
	jobs    map[string]catalog.Entry // nil until read
	readAt  time.Time
}

// Route is one route of the server, as documented in its OpenAPI
// description.
type Route struct {
	Method, Path string // Path in OpenAPI form: /v1/features/{job}:batch
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	s.mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	})
	cataloghttp.Mount(s.mux, cfg.Store)
	m := cfg.Metrics
	s.mux.HandleFunc("GET /v1/features/{job}/{entity}", m.measured("GET /v1/features/{job}/{entity}", s.getFeatures))
	// "{job}:batch" is not a ServeMux pattern (a wildcard is a whole
	// segment): one route, split at the last ':'.
	s.mux.HandleFunc("POST /v1/features/{jobAction}", m.measured("POST /v1/features/{job}:{action}", s.featuresAction))
	s.mux.HandleFunc("POST /v1/calls/{job}", m.measured("POST /v1/calls/{job}", s.postCall))
	s.mux.HandleFunc("GET /v1/calls/{id}", m.measured("GET /v1/calls/{id}", s.getCall))
	return s, nil
}

// Routes lists the server's routes (for the OpenAPI test and tooling).
func Routes() []Route {
	return []Route{
		{"GET", "/healthz"},
		{"GET", "/v1/openapi.json"},
		{"GET", "/v1/jobs"},
		{"GET", "/v1/jobs/{job}"},
		{"GET", "/v1/features/{job}/{entity}"},
		{"POST", "/v1/features/{job}:batch"},
		{"POST", "/v1/features/{job}:select"},
		{"POST", "/v1/calls/{job}"},
		{"GET", "/v1/calls/{id}"},
	}
}

// Mount adds the server's routes but /healthz to mux (a server that
// serves more, such as the dev stack's).
func (s *Server) Mount(mux *http.ServeMux) {
	for _, r := range Routes() {
		p := r.Path
		if p == "/healthz" {
			continue
		}
		if strings.Contains(p, "}:") {
			if strings.HasSuffix(p, ":select") {
				continue // one pattern serves both actions
			}
			p = "/v1/features/{jobAction}"
		}
		mux.Handle(r.Method+" "+p, s.mux)
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// job returns the catalog entry of the job named name, or a 404 problem.
// The server keeps a copy of the catalog, read again when a request finds
// it older than JobsTTL: in the background when the copy has the job, else
// before answering (so a job just published is found within JobsTTL).
func (s *Server) job(ctx context.Context, name string) (catalog.Entry, *Problem) {
	s.mu.Lock()
	e, ok := s.jobs[name]
	stale := s.jobs == nil || time.Since(s.readAt) >= s.cfg.JobsTTL
	s.mu.Unlock()
	if ok && !stale {
		return e, nil
	}
	switch {
	case ok && s.reading.TryLock(): // stale: read it again in the background
		go func() {
			defer s.reading.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.readCatalog(ctx); err != nil {
				s.cfg.Logger.Warn("api: reading the catalog", "err", err)
			}
		}()
		return e, nil
	case ok:
		return e, nil
	}
	s.reading.Lock()
	err := s.readCatalog(ctx)
	s.reading.Unlock()
	if err != nil {
		return catalog.Entry{}, problem(http.StatusInternalServerError, "store", "The event center failed", err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.jobs[name]; ok {
		return e, nil
	}
	known := []string{}
	for n := range s.jobs {
		known = append(known, n)
	}
	slices.Sort(known)
	return catalog.Entry{}, problem(http.StatusNotFound, "unknown-job", "Unknown job", fmt.Sprintf("the catalog has no job %q", name)).with("known", known)
}

// readCatalog reads the catalog into the server's copy, unless another
// request just did. The caller holds s.reading.
func (s *Server) readCatalog(ctx context.Context) error {
	s.mu.Lock()
	fresh := s.jobs != nil && time.Since(s.readAt) < s.cfg.JobsTTL
	s.mu.Unlock()
	if fresh {
		return nil
	}
	es, err := catalog.List(ctx, s.cfg.Store)
	if err != nil {
		return err
	}
	m := make(map[string]catalog.Entry, len(es))
	for _, e := range es {
		m[e.Name] = e
	}
	s.mu.Lock()
	s.jobs, s.readAt = m, time.Now()
	s.mu.Unlock()
	return nil
}

// times reads the at and known_at of a query or body ("" for none).
func parseTimes(at, knownAt string) (time.Time, time.Time, *Problem) {
	var ts [2]time.Time
	for i, v := range []string{at, knownAt} {
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			name := [2]string{"at", "known_at"}[i]
			return time.Time{}, time.Time{}, problem(http.StatusBadRequest, "bad-time", "Bad time", fmt.Sprintf("%s: %q is not an RFC 3339 time", name, v)).with("parameter", name)
		}
		ts[i] = t
	}
	return ts[0], ts[1], nil
}

func (s *Server) storeProblem(err error) *Problem {
	if errors.Is(err, eventcenter.ErrBeyondHorizon) {
		return problem(http.StatusGone, "beyond-retention", "Beyond the retention window", err.Error())
	}
	s.cfg.Logger.Error("api: event center", "err", err)
	return problem(http.StatusInternalServerError, "store", "The event center failed", err.Error())
}

func (s *Server) getFeatures(w http.ResponseWriter, r *http.Request) {
	name, entity := r.PathValue("job"), r.PathValue("entity")
	if _, p := s.job(r.Context(), name); p != nil {
		writeProblem(w, r, p)
		return
	}
	q := r.URL.Query()
	at, knownAt, p := parseTimes(q.Get("at"), q.Get("known_at"))
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	rec, err := serving.Lookup(r.Context(), s.cfg.Store, name, entity, at, knownAt)
	switch {
	case errors.Is(err, eventcenter.ErrNotFound):
		writeProblem(w, r, problem(http.StatusNotFound, "unknown-entity", "No features", fmt.Sprintf("job %q has no features of entity %q at that time", name, entity)))
	case err != nil:
		writeProblem(w, r, s.storeProblem(err))
	default:
		writeRecord(w, r, http.StatusOK, &rec)
	}
}

// writeRecord writes a record's JSON as its MarshalJSON makes it (through
// an encoder it would be checked and compacted a second time).
func writeRecord(w http.ResponseWriter, r *http.Request, status int, rec *job.Record) {
	b, err := rec.MarshalJSON()
	if err != nil {
		writeProblem(w, r, problem(http.StatusInternalServerError, "encoding", "Record not encodable", err.Error()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// readBody decodes a JSON body into v (unknown members refused).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, v any) *Problem {
	if p := checkJSON(r); p != nil {
		return p
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return problem(http.StatusRequestEntityTooLarge, "body-too-large", "Body too large", fmt.Sprintf("at most %d bytes", s.cfg.MaxBody)).with("max", s.cfg.MaxBody)
		}
		return problem(http.StatusBadRequest, "bad-body", "Malformed body", err.Error())
	}
	return nil
}

func checkJSON(r *http.Request) *Problem {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return problem(http.StatusUnsupportedMediaType, "media-type", "Unsupported media type", fmt.Sprintf("Content-Type %q: send application/json", ct))
		}
	}
	return nil
}

// BatchRequest is the body of POST /v1/features/{job}:batch.
type BatchRequest struct {
	Entities []string `json:"entities"`
	At       string   `json:"at,omitempty"`
	KnownAt  string   `json:"known_at,omitempty"`
}

// BatchResult is one entity's answer in a BatchResponse; Record is null
// when the entity has no features at that time.
type BatchResult struct {
	Entity string      `json:"entity"`
	Record *job.Record `json:"record"`
}

// BatchResponse answers a batch, in the order of the request's entities.
type BatchResponse struct {
	Results []BatchResult `json:"results"`
}

// SelectRequest is the body of POST /v1/features/{job}:select.
type SelectRequest struct {
	// Where is the predicate (see serving.Predicate).
	Where string `json:"where"`
	// Features to return with each entity.
	Features []string `json:"features,omitempty"`
	// Limit: the most entities of the page. Default 100.
	Limit int `json:"limit,omitempty"`
	// Cursor: the previous page's next.
	Cursor  string `json:"cursor,omitempty"`
	At      string `json:"at,omitempty"`
	KnownAt string `json:"known_at,omitempty"`
}

func (s *Server) featuresAction(w http.ResponseWriter, r *http.Request) {
	ja := r.PathValue("jobAction")
	i := strings.LastIndexByte(ja, ':')
	if i < 0 {
		writeProblem(w, r, problem(http.StatusNotFound, "not-found", "Not found", "POST /v1/features/{job}:batch or :select"))
		return
	}
	name, action := ja[:i], ja[i+1:]
	if action != "batch" && action != "select" {
		writeProblem(w, r, problem(http.StatusNotFound, "not-found", "Not found", fmt.Sprintf("no action %q: batch or select", action)))
		return
	}
	if _, p := s.job(r.Context(), name); p != nil {
		writeProblem(w, r, p)
		return
	}
	if action == "batch" {
		s.batch(w, r, name)
	} else {
		s.selectFeatures(w, r, name)
	}
}

func (s *Server) batch(w http.ResponseWriter, r *http.Request, name string) {
	var req BatchRequest
	if p := s.readBody(w, r, &req); p != nil {
		writeProblem(w, r, p)
		return
	}
	switch n := len(req.Entities); {
	case n == 0:
		writeProblem(w, r, problem(http.StatusBadRequest, "empty-batch", "Empty batch", "entities: give at least one"))
		return
	case n > s.cfg.MaxBatch:
		writeProblem(w, r, problem(http.StatusRequestEntityTooLarge, "batch-too-large", "Batch too large", fmt.Sprintf("%d entities, at most %d", n, s.cfg.MaxBatch)).with("max", s.cfg.MaxBatch))
		return
	}
	for i, e := range req.Entities {
		if e == "" || len(e) > eventcenter.MaxKeyLen {
			writeProblem(w, r, problem(http.StatusBadRequest, "bad-entity", "Bad entity", fmt.Sprintf("entities[%d]: an entity key is 1 to %d bytes", i, eventcenter.MaxKeyLen)))
			return
		}
	}
	at, knownAt, p := parseTimes(req.At, req.KnownAt)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	recs, err := serving.LookupBatch(r.Context(), s.cfg.Store, name, req.Entities, at, knownAt, s.cfg.BatchParallel)
	if err != nil {
		writeProblem(w, r, s.storeProblem(err))
		return
	}
	// A BatchResponse, written by hand so that each record's JSON is
	// made once (an encoder would check and compact it again).
	buf := append(make([]byte, 0, 512*len(recs)), `{"results":[`...)
	for i, rec := range recs {
		if i > 0 {
			buf = append(buf, ',')
		}
		ent, _ := json.Marshal(req.Entities[i])
		buf = append(append(append(buf, `{"entity":`...), ent...), `,"record":`...)
		if rec == nil {
			buf = append(buf, "null"...)
		} else {
			b, err := rec.MarshalJSON()
			if err != nil {
				writeProblem(w, r, problem(http.StatusInternalServerError, "encoding", "Record not encodable", err.Error()))
				return
			}
			buf = append(buf, b...)
		}
		buf = append(buf, '}')
	}
	buf = append(buf, "]}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Write(buf)
}

func (s *Server) selectFeatures(w http.ResponseWriter, r *http.Request, name string) {
	var req SelectRequest
	if p := s.readBody(w, r, &req); p != nil {
		writeProblem(w, r, p)
		return
	}
	if req.Limit == 0 {
		req.Limit = 100
	}
	if req.Limit < 0 || req.Limit > s.cfg.MaxLimit {
		writeProblem(w, r, problem(http.StatusBadRequest, "bad-limit", "Bad limit", fmt.Sprintf("limit %d: from 1 to %d", req.Limit, s.cfg.MaxLimit)).with("max", s.cfg.MaxLimit))
		return
	}
	at, knownAt, p := parseTimes(req.At, req.KnownAt)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	if !knownAt.IsZero() && at.IsZero() {
		writeProblem(w, r, problem(http.StatusBadRequest, "bad-time", "Bad time", "known_at needs at (a selection as of now reads the latest)").with("parameter", "known_at"))
		return
	}
	pred, err := serving.ParsePredicate(req.Where)
	if err == nil {
		var sel serving.Selection
		sel, err = s.cfg.Selector.Select(r.Context(), name, serving.Query{Where: pred, Features: req.Features, Limit: req.Limit, After: req.Cursor, At: at, KnownAt: knownAt})
		if err == nil {
			writeJSON(w, http.StatusOK, sel)
			return
		}
	}
	var pe *serving.PredicateError
	if errors.As(err, &pe) {
		pr := problem(http.StatusBadRequest, "bad-predicate", "Bad predicate", pe.Reason)
		if pe.Pos >= 0 {
			pr.Detail = fmt.Sprintf("at offset %d: %s", pe.Pos, pe.Reason)
			pr.with("position", pe.Pos)
		}
		writeProblem(w, r, pr)
		return
	}
	writeProblem(w, r, s.storeProblem(err))
}

// Accepted answers a call whose result is not there yet (202): its id and
// where to poll.
type Accepted struct {
	ID   string `json:"id"`
	Poll string `json:"poll"`
}

// HeaderIdempotencyKey names a call: a retry with the same key (same job,
// same principal) gets the same call and result. Keys are the caller's
// own: another principal's call with the same key is another call, so no
// one can take (or block, with another body) a key someone else uses.
const HeaderIdempotencyKey = "Idempotency-Key"

// authenticate returns the caller, or a 401 problem.
func (s *Server) authenticate(r *http.Request) (auth.Principal, *Problem) {
	token, err := auth.BearerToken(r)
	if errors.Is(err, auth.ErrNoToken) {
		return auth.Principal{}, problem(http.StatusUnauthorized, "no-token", "Token required", "send Authorization: Bearer <token>")
	}
	var p auth.Principal
	if err == nil {
		p, err = s.cfg.Auth.Authenticate(r.Context(), token)
	}
	switch {
	case errors.Is(err, auth.ErrNoToken), errors.Is(err, auth.ErrBadToken):
		return auth.Principal{}, problem(http.StatusUnauthorized, "bad-token", "Unknown or revoked token", "")
	case err != nil:
		return auth.Principal{}, problem(http.StatusInternalServerError, "auth", "Authentication failed", err.Error())
	}
	return p, nil
}

// authorize returns the caller if it may call (or poll) jobName, else a 401
// or 403 problem. Calling needs the reader role on the job, which every
// principal holds (auth.Principal.Can): any valid token may call any job.
func (s *Server) authorize(r *http.Request, jobName string) (auth.Principal, *Problem) {
	p, pr := s.authenticate(r)
	if pr != nil {
		return p, pr
	}
	if !p.Can(auth.RoleReader, jobName) {
		return p, problem(http.StatusForbidden, "forbidden", "Not allowed", fmt.Sprintf("%s may not call job %q", p.ID, jobName))
	}
	return p, nil
}

func (s *Server) postCall(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Caller == nil {
		writeProblem(w, r, problem(http.StatusNotImplemented, "no-calls", "Calls not served", "this server serves no calls (it runs without a Caller: no Kafka, or no authenticator for tokens)"))
		return
	}
	name := r.PathValue("job")
	caller, p := s.authorize(r, name)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	e, p := s.job(r.Context(), name)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	if !slices.ContainsFunc(e.Triggers, func(t catalog.Trigger) bool { return t.Source == calls.Source(name) }) {
		writeProblem(w, r, problem(http.StatusConflict, "not-callable", "Job not callable",
			fmt.Sprintf("job %q is not triggered by its call source %q", name, calls.Source(name))))
		return
	}
	q := r.URL.Query()
	timeout := s.cfg.CallTimeout
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeProblem(w, r, problem(http.StatusBadRequest, "bad-timeout", "Bad timeout", fmt.Sprintf("timeout %q: a duration such as 500ms or 2s", v)).with("parameter", "timeout"))
			return
		}
		if d > s.cfg.MaxCallTimeout {
			writeProblem(w, r, problem(http.StatusBadRequest, "bad-timeout", "Timeout over the cap", fmt.Sprintf("timeout %v: at most %v", d, s.cfg.MaxCallTimeout)).with("max", s.cfg.MaxCallTimeout.String()))
			return
		}
		timeout = d
	}
	if p := checkJSON(r); p != nil {
		writeProblem(w, r, p)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		writeProblem(w, r, problem(http.StatusRequestEntityTooLarge, "body-too-large", "Body too large", fmt.Sprintf("at most %d bytes", s.cfg.MaxBody)).with("max", s.cfg.MaxBody))
		return
	}
	row, err := source.RowFromJSON(body)
	if err != nil {
		writeProblem(w, r, problem(http.StatusBadRequest, "bad-body", "The body is not a trigger row", err.Error()))
		return
	}
	for col := range row {
		if strings.HasPrefix(col, "_") {
			writeProblem(w, r, problem(http.StatusBadRequest, "bad-body", "The body is not a trigger row", fmt.Sprintf("member %q: names starting with '_' are reserved", col)))
			return
		}
	}
	idem := r.Header.Get(HeaderIdempotencyKey)
	if len(idem) > 255 {
		writeProblem(w, r, problem(http.StatusBadRequest, "bad-idempotency-key", "Bad idempotency key", "at most 255 bytes"))
		return
	}
	o := calls.Options{ReplyTo: q.Get("reply_to"), Timeout: timeout}
	if idem != "" {
		o.IdempotencyKey = caller.ID + "\x00" + idem // the caller's own key (see HeaderIdempotencyKey)
	}
	var filters []string
	if i := slices.IndexFunc(s.cfg.Jobs, func(j *job.Job) bool { return j.Name() == name }); i >= 0 {
		j := s.cfg.Jobs[i]
		o.Accept = j.Accepts
		for _, t := range j.Triggers() {
			if t.Source == calls.Source(name) {
				for _, f := range t.Filters {
					filters = append(filters, f.String())
				}
			}
		}
	}
	c, err := s.cfg.Caller.Call(r.Context(), name, row, o)
	var ie *eventcenter.InvalidEventError
	switch {
	case errors.Is(err, calls.ErrReplyTo):
		writeProblem(w, r, problem(http.StatusBadRequest, "bad-reply-to", "Bad reply_to", err.Error()).with("parameter", "reply_to"))
	case errors.As(err, &ie):
		writeProblem(w, r, problem(http.StatusBadRequest, "bad-body", "The body is not a trigger row", ie.Error()))
	case errors.Is(err, calls.ErrRefused):
		writeProblem(w, r, problem(http.StatusBadRequest, "call-refused", "The job's filters refuse the call",
			fmt.Sprintf("job %q takes calls with: %s", name, strings.Join(filters, "; "))).with("filters", filters))
	case errors.Is(err, calls.ErrIdempotencyMismatch):
		writeProblem(w, r, problem(http.StatusUnprocessableEntity, "idempotency-mismatch", "Idempotency key reused", err.Error()))
	case errors.Is(err, calls.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, problem(http.StatusServiceUnavailable, "unavailable", "Kafka unavailable", err.Error()+"; nothing was stored: retry"))
	case r.Context().Err() != nil:
		// The client left.
	case err != nil:
		writeProblem(w, r, s.storeProblem(err))
	case c.Record != nil:
		w.Header().Set("Call-Id", c.ID)
		writeRecord(w, r, http.StatusOK, c.Record)
	case c.Failure != nil:
		writeProblem(w, r, failed(c))
	default:
		s.accepted(w, c.ID)
	}
}

// failed is the problem of a call its job's worker gave up on.
func failed(c calls.Call) *Problem {
	return problem(http.StatusUnprocessableEntity, "call-failed", "The job failed on the call",
		fmt.Sprintf("call %s: %s: %s", c.ID, c.Failure.Outcome, c.Failure.Error)).
		with("id", c.ID).with("outcome", c.Failure.Outcome).with("error", c.Failure.Error)
}

func (s *Server) accepted(w http.ResponseWriter, id string) {
	poll := "/v1/calls/" + id
	w.Header().Set("Location", poll)
	w.Header().Set("Call-Id", id)
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusAccepted, Accepted{ID: id, Poll: poll})
}

func (s *Server) getCall(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Caller == nil {
		writeProblem(w, r, problem(http.StatusNotImplemented, "no-calls", "Calls not served", "this server serves no calls (it runs without a Caller: no Kafka, or no authenticator for tokens)"))
		return
	}
	id := r.PathValue("id")
	jobName, _, err := calls.ParseID(id)
	if err != nil {
		writeProblem(w, r, problem(http.StatusNotFound, "unknown-call", "Unknown call", err.Error()))
		return
	}
	if _, p := s.authorize(r, jobName); p != nil {
		writeProblem(w, r, p)
		return
	}
	st, c, err := s.cfg.Caller.Poll(r.Context(), id)
	switch {
	case err != nil:
		writeProblem(w, r, s.storeProblem(err))
	case st == calls.Answered:
		w.Header().Set("Call-Id", id)
		writeRecord(w, r, http.StatusOK, c.Record)
	case st == calls.Failed:
		writeProblem(w, r, failed(c))
	case st == calls.Pending:
		s.accepted(w, id)
	case st == calls.Expired:
		writeProblem(w, r, problem(http.StatusGone, "call-expired", "Call expired", "the call left the event center's retention window"))
	default:
		writeProblem(w, r, problem(http.StatusNotFound, "unknown-call", "Unknown call", fmt.Sprintf("no call %q", id)))
	}
}
