package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/correction"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/params/changes"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/workflows"
)

var funcs = template.FuncMap{
	"list":  func(s ...string) []string { return s },
	"title": pageTitle,
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"values": func(v params.Values) string {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(v)) {
			parts = append(parts, fmt.Sprintf("%s=%v", k, orNone(v[k])))
		}
		return strings.Join(parts, ", ")
	},
	"show": func(v any) string { return fmt.Sprint(orNone(v)) },
	// input is the attributes of a new value's field: the browser checks
	// numbers and their bounds before the server does.
	"input": func(d params.Decl) template.HTMLAttr {
		var a []string
		switch d.Type {
		case params.Int:
			a = append(a, `type="number" step="1"`)
		case params.Float:
			a = append(a, `type="number" step="any"`)
		default:
			return ""
		}
		if d.Min != nil {
			a = append(a, fmt.Sprintf(`min="%s"`, template.HTMLEscapeString(fmt.Sprint(d.Min))))
		}
		if d.Max != nil {
			a = append(a, fmt.Sprintf(`max="%s"`, template.HTMLEscapeString(fmt.Sprint(d.Max))))
		}
		return template.HTMLAttr(strings.Join(a, " ")) //nolint:gosec // escaped above
	},
	"bounds": func(d params.Decl) string {
		var b []string
		if d.Min != nil {
			b = append(b, fmt.Sprint("≥ ", d.Min))
		}
		if d.Max != nil {
			b = append(b, fmt.Sprint("≤ ", d.Max))
		}
		return strings.Join(b, ", ")
	},
	"ms":    func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) },
	"pct":   func(f float64) string { return fmt.Sprintf("%.0f%%", f) },
	"query": func(k, v string) template.URL { return template.URL(k + "=" + url.QueryEscape(v)) },
}

func orNone(v any) any {
	if v == nil {
		return "(default)"
	}
	return v
}

// jobsData is the jobs page.
type jobsData struct {
	Jobs      []catalog.Entry
	Live      []liveStatus // per job, in Jobs' order
	Backfills []backfill
	Temporal  bool // a Temporal client is configured
}

// liveWindow is how far back the jobs page counts outputs.
const liveWindow = 10 * time.Minute

// liveStatus is what a job wrote to its feature store in the last
// liveWindow (by event time), and what Kafka says of its live worker: the
// consumer lag and the dead letters of the last liveWindow (by the time
// the worker gave up on them).
type liveStatus struct {
	Job       string
	Outputs   int
	PerMinute template.HTML // SVG bars
	ByVersion []versionCount
	Last      *job.Record
	LastAt    time.Time
	kafkaStatus
}

// kafkaStatus is what the jobs page reads of a job in Kafka.
type kafkaStatus struct {
	// Lag is the live worker's consumer lag on the job's trigger topics,
	// when LagNote is "" (else LagNote says why it is not known).
	Lag     int64
	LagNote string
	// Failed, Stale and Refused count the dead letters by outcome
	// (Refused: "invalid" and "refused", the event or a record refused by
	// the store or an output) when DeadNote is ""; More: there were more
	// than the console reads (maxDeadLetters). LastDead is the latest.
	Failed, Stale, Refused int
	More                   bool
	LastDead               *live.DeadLetter
	DeadNote               string
}

// maxDeadLetters is the most dead letters a page reads per topic partition.
const maxDeadLetters = 500

// jobKafka reads the job's consumer lag and its dead letters since.
func (c *Console) jobKafka(ctx context.Context, e catalog.Entry, since time.Time) kafkaStatus {
	var st kafkaStatus
	if c.kafka == nil {
		st.LagNote, st.DeadNote = "unknown (no Kafka configured)", "unknown (no Kafka configured)"
		return st
	}
	var topics []string
	for _, t := range e.Triggers {
		topics = append(topics, c.topicOf(t.Source))
	}
	var lagErr error
	if st.Lag, lagErr = c.kafka.lag(ctx, live.DefaultGroup(e.Name), topics); lagErr != nil {
		st.LagNote = c.unknown(lagErr)
	}
	recs, more, err := c.kafka.tail(ctx, live.DeadLetterTopic(c.cfg.DeadLetterTopic, e.Name), since, maxDeadLetters)
	if err != nil {
		st.DeadNote = c.unknown(err)
		return st
	}
	st.More = more
	for _, r := range recs {
		var dl live.DeadLetter
		if json.Unmarshal(r.Value, &dl) != nil {
			continue // not a live worker's dead letter
		}
		switch dl.Outcome {
		case job.Failed.String():
			st.Failed++
		case job.Stale.String():
			st.Stale++
		default:
			st.Refused++
		}
		if st.LastDead == nil {
			st.LastDead = &dl
		}
	}
	return st
}

// topicOf is the Kafka topic of the source named name.
func (c *Console) topicOf(name string) string {
	if c.cfg.Registry != nil {
		if s, err := c.cfg.Registry.Lookup(name); err == nil && s.Topic != "" {
			return s.Topic
		}
	}
	return source.TopicName(name)
}

// unknown says why a Kafka read has no answer.
func (c *Console) unknown(err error) string {
	switch {
	case errors.Is(err, errNoGroup):
		return "no consumer group"
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("unknown (Kafka did not answer within %v)", c.cfg.KafkaTimeout)
	}
	return "unknown (" + err.Error() + ")" // the page says it: no log line per job and page
}

type versionCount struct {
	Version params.Version
	Outputs int
}

// live reads the job's outputs of the last liveWindow.
func (c *Console) live(ctx context.Context, name string, now time.Time) (liveStatus, error) {
	st := liveStatus{Job: name}
	from := now.Add(-liveWindow)
	perMinute := make([]int, int(liveWindow/time.Minute))
	byVersion := map[params.Version]int{}
	for e, err := range c.cfg.Store.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{job.FeatureSource(name)}, From: from, To: now}) {
		if err != nil {
			return st, err
		}
		st.Outputs++
		if i := int(e.Time.Sub(from) / time.Minute); i >= 0 && i < len(perMinute) {
			perMinute[i]++
		}
		rec := job.RecordFromEvent(name, &e)
		if !e.Time.Before(st.LastAt) {
			st.Last, st.LastAt = &rec, e.Time
		}
		byVersion[rec.ParamVersion]++
	}
	for _, v := range slices.Sorted(maps.Keys(byVersion)) {
		st.ByVersion = append(st.ByVersion, versionCount{v, byVersion[v]})
	}
	st.PerMinute = bars(perMinute, fmt.Sprintf("outputs of %s per minute, the last %d minutes", name, len(perMinute)))
	return st, nil
}

// bars draws counts as a small SVG bar chart.
func bars(counts []int, title string) template.HTML {
	const w, h, bw = 160, 32, 16
	top := 1
	for _, n := range counts {
		top = max(top, n)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg role="img" viewBox="0 0 %d %d" width="%d" height="%d" class="bars"><title>%s</title>`, w, h, w, h, template.HTMLEscapeString(title))
	for i, n := range counts {
		bh := float64(n) / float64(top) * (h - 2)
		fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="#1f5fa8"><title>%d</title></rect>`, i*bw, h-bh, bw-2, bh, n)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // the title is escaped
}

type backfill struct {
	ID, RunID, Job, Status string
	Progress               float64
	Events                 int64
	Started                time.Time
	Link                   string // in the Temporal UI; "" without one
}

func (c *Console) jobs(r *http.Request, _ auth.Principal) (any, error) {
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	d := jobsData{Temporal: c.cfg.Temporal != nil}
	var err error
	if d.Jobs, err = catalog.List(ctx, c.cfg.Store); err != nil {
		return d, err
	}
	now := c.cfg.Now()
	// Kafka's answers are read beside the event center's, each job's
	// within KafkaTimeout.
	kctx, kcancel := context.WithTimeout(ctx, c.cfg.KafkaTimeout)
	defer kcancel()
	fromKafka := make([]kafkaStatus, len(d.Jobs))
	var wg sync.WaitGroup
	for i, e := range d.Jobs {
		wg.Go(func() { fromKafka[i] = c.jobKafka(kctx, e, now.Add(-liveWindow)) })
	}
	for _, e := range d.Jobs {
		st, err := c.live(ctx, e.Name, now)
		if err != nil {
			wg.Wait()
			return d, fmt.Errorf("outputs of %s: %w", e.Name, err)
		}
		d.Live = append(d.Live, st)
	}
	wg.Wait()
	for i := range d.Live {
		d.Live[i].kafkaStatus = fromKafka[i]
	}
	if c.cfg.Temporal == nil {
		return d, nil
	}
	resp, err := c.cfg.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: c.cfg.Namespace, PageSize: 50,
		Query: fmt.Sprintf("WorkflowType = '%s'", workflows.BackfillWorkflow), // newest first (ORDER BY is not supported everywhere)
	})
	if err != nil {
		return d, fmt.Errorf("backfills (Temporal visibility): %w", err)
	}
	for _, e := range resp.Executions {
		b := backfill{ID: e.Execution.GetWorkflowId(), RunID: e.Execution.GetRunId(), Status: statusName(e.Status),
			Started: e.GetStartTime().AsTime()}
		fields := e.GetSearchAttributes().GetIndexedFields()
		decode := func(name string, v any) {
			if p, ok := fields[name]; ok {
				converter.GetDefaultDataConverter().FromPayload(p, v) //nolint:errcheck // a missing or odd attribute shows as zero
			}
		}
		decode(workflows.SearchJob.GetName(), &b.Job)
		decode(workflows.SearchProgress.GetName(), &b.Progress)
		decode(workflows.SearchEvents.GetName(), &b.Events)
		if b.Status == "completed" {
			b.Progress = 100
		}
		b.Link = c.workflowLink(b.ID, b.RunID)
		d.Backfills = append(d.Backfills, b)
	}
	return d, nil
}

// workflowLink is the Temporal UI's page of a workflow run ("" without
// Config.TemporalUI).
func (c *Console) workflowLink(id, run string) string {
	if c.cfg.TemporalUI == "" {
		return ""
	}
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s", strings.TrimRight(c.cfg.TemporalUI, "/"), url.PathEscape(c.cfg.Namespace),
		url.PathEscape(id), url.PathEscape(run))
}

// statusName is a workflow status as the pages show it: "running", "completed"…
func statusName(s enumspb.WorkflowExecutionStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "WORKFLOW_EXECUTION_STATUS_"))
}

// paramsData is the parameters page.
type paramsData struct {
	Jobs    []string
	Job     string
	Show    *changes.JobParams
	Pending []pendingChange
	Recent  []changes.Change
	History []params.AuditEntry
	// CanSubmit: the principal holds the operator role on Job.
	CanSubmit bool
	Enabled   bool // a changes.Service is configured
}

type pendingChange struct {
	changes.Change
	// CanDecide: the principal is an approver of the job and not the
	// submitter.
	CanDecide bool
}

func (c *Console) params(r *http.Request, p auth.Principal) (any, error) {
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	d := paramsData{Job: r.URL.Query().Get("job"), Enabled: c.cfg.Changes != nil}
	entries, err := catalog.List(ctx, c.cfg.Store)
	if err != nil {
		return d, err
	}
	for _, e := range entries {
		if len(e.Params) > 0 {
			d.Jobs = append(d.Jobs, e.Name)
		}
	}
	if d.Job == "" && len(d.Jobs) > 0 {
		d.Job = d.Jobs[0]
	}
	if d.Job == "" || c.cfg.Changes == nil {
		return d, nil
	}
	d.CanSubmit = p.Can(auth.RoleOperator, d.Job)
	show, err := c.cfg.Changes.Show(ctx, d.Job)
	if err != nil {
		return d, err
	}
	d.Show = &show
	all, err := c.cfg.Changes.List(ctx, d.Job, "")
	if err != nil {
		return d, err
	}
	// Visibility may not list a change started an instant ago: the one
	// this page was sent back to after submitting is asked for by id.
	if id := r.URL.Query().Get("submitted"); id != "" && !slices.ContainsFunc(all, func(ch changes.Change) bool { return ch.ID == id }) {
		if ch, err := c.cfg.Changes.Get(ctx, id); err == nil && ch.Job == d.Job {
			all = append([]changes.Change{ch}, all...)
		}
	}
	for _, ch := range all {
		if ch.State == workflows.ChangePending {
			d.Pending = append(d.Pending, pendingChange{Change: ch, CanDecide: p.Can(auth.RoleApprover, d.Job) && ch.Submitter != p.ID})
		} else if len(d.Recent) < 20 {
			d.Recent = append(d.Recent, ch)
		}
	}
	if d.History, err = c.cfg.Changes.History(ctx, d.Job); err != nil {
		return d, err
	}
	slices.Reverse(d.History) // newest first
	return d, nil
}

// submit submits the form's change: a value per declared parameter that
// differs from the current one (empty fields are left alone; the text
// "default" resets a parameter).
func (c *Console) submit(r *http.Request, p auth.Principal) (string, error) {
	job := r.PostFormValue("job")
	back := "/params?job=" + url.QueryEscape(job)
	if c.cfg.Changes == nil {
		return back, fmt.Errorf("parameter changes need Temporal, which this server is not connected to")
	}
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	show, err := c.cfg.Changes.Show(ctx, job)
	if err != nil {
		return back, err
	}
	sub := changes.Submission{Changes: params.Values{}, Reason: strings.TrimSpace(r.PostFormValue("reason"))}
	if base, err := strconv.ParseInt(r.PostFormValue("base"), 10, 64); err == nil {
		v := params.Version(base)
		sub.Base = &v
	}
	for _, d := range show.Decls {
		text := strings.TrimSpace(r.PostFormValue("p." + d.Name))
		switch {
		case text == "" || text == fmt.Sprint(show.Values[d.Name]):
		case text == "default":
			sub.Changes[d.Name] = nil
		default:
			sub.Changes[d.Name] = text // the declarations convert text
		}
	}
	if sub.Reason == "" {
		return back, fmt.Errorf("%w: a reason is required", changes.ErrInvalid)
	}
	ch, err := c.cfg.Changes.Submit(ctx, p, job, sub)
	if err != nil {
		return back, err
	}
	return back + "&submitted=" + url.QueryEscape(ch.ID), nil
}

func (c *Console) decide(r *http.Request, p auth.Principal) (string, error) {
	job := r.PostFormValue("job")
	back := "/params?job=" + url.QueryEscape(job)
	if c.cfg.Changes == nil {
		return back, fmt.Errorf("parameter changes need Temporal, which this server is not connected to")
	}
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	approve := r.PostFormValue("decision") == "approve"
	_, err := c.cfg.Changes.Decide(ctx, p, r.PostFormValue("id"), approve, strings.TrimSpace(r.PostFormValue("comment")))
	return back, err
}

// featuresData is the features page: the API's answers.
type featuresData struct {
	Jobs                                   []string
	Job, Entity, At, KnownAt, Where, Limit string
	Lookup, Selection                      *apiAnswer
	Count                                  int
}

// apiAnswer is one answer of the API, as a client gets it.
type apiAnswer struct {
	Request string
	Status  int
	Body    string // indented JSON
}

func (c *Console) features(r *http.Request, _ auth.Principal) (any, error) {
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	q := r.URL.Query()
	d := featuresData{Job: q.Get("job"), Entity: q.Get("entity"), At: q.Get("at"), KnownAt: q.Get("known_at"), Where: q.Get("where"), Limit: q.Get("limit")}
	entries, err := catalog.List(ctx, c.cfg.Store)
	if err != nil {
		return d, err
	}
	for _, e := range entries {
		d.Jobs = append(d.Jobs, e.Name)
	}
	if d.Job == "" && len(d.Jobs) > 0 {
		d.Job = d.Jobs[0]
	}
	if d.Limit == "" {
		d.Limit = "20"
	}
	if d.Job != "" && d.Entity != "" {
		v := url.Values{}
		for k, s := range map[string]string{"at": d.At, "known_at": d.KnownAt} {
			if s != "" {
				v.Set(k, s)
			}
		}
		target := "/v1/features/" + url.PathEscape(d.Job) + "/" + url.PathEscape(d.Entity)
		if len(v) > 0 {
			target += "?" + v.Encode()
		}
		d.Lookup = c.callAPI(r, http.MethodGet, target, nil)
	}
	if d.Job != "" && q.Has("where") {
		limit, err := strconv.Atoi(d.Limit)
		if err != nil || limit <= 0 {
			return d, fmt.Errorf("limit %q: want a positive number", d.Limit)
		}
		req := map[string]any{"where": d.Where, "limit": limit}
		for k, v := range map[string]string{"at": d.At, "known_at": d.KnownAt} {
			if v != "" {
				req[k] = v
			}
		}
		body, _ := json.Marshal(req)
		d.Selection = c.callAPI(r, http.MethodPost, "/v1/features/"+url.PathEscape(d.Job)+":select", body)
		var sel struct {
			Matched int `json:"matched"`
		}
		json.Unmarshal([]byte(d.Selection.Body), &sel) //nolint:errcheck // a problem has no count
		d.Count = sel.Matched
	}
	return d, nil
}

// callAPI sends the API handler the request a client would, in process.
func (c *Console) callAPI(r *http.Request, method, target string, body []byte) *apiAnswer {
	req := httptest.NewRequestWithContext(r.Context(), method, target, strings.NewReader(string(body)))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	c.cfg.API.ServeHTTP(rec, req)
	a := &apiAnswer{Request: method + " " + target, Status: rec.Code, Body: rec.Body.String()}
	if body != nil {
		a.Request += " " + string(body)
	}
	var v any
	if json.Unmarshal(rec.Body.Bytes(), &v) == nil {
		if b, err := json.MarshalIndent(v, "", "  "); err == nil {
			a.Body = string(b)
		}
	}
	return a
}

// sourcesData is the sources page.
type sourcesData struct {
	Now     time.Time
	Sources []sourceRow
	// DeadLetters are the ingest's latest (maxIngestDeadLetters, newest
	// first) when DeadNote is ""; More: there are older ones.
	DeadLetters []ingestDeadLetter
	DeadNote    string
	DeadTopic   string
	More        bool
}

type sourceRow struct {
	Name       string
	Watermark  time.Time
	Behind     string
	Partitions []partitionRow
	// DeadLetters counts the source's among sourcesData.DeadLetters.
	DeadLetters int
	// IngestLag is the ingest's consumer lag on the source's topic, when
	// IngestLagNote is "" (else it says why it is not known).
	Topic         string
	IngestLag     int64
	IngestLagNote string
}

// maxIngestDeadLetters is how many of the ingest's latest dead letters the
// sources page shows.
const maxIngestDeadLetters = 20

// ingestDeadLetter is a record the ingest could not store.
type ingestDeadLetter struct {
	At                time.Time // when it was dead-lettered
	Sources           []string  // of its topic
	Topic             string    // the record's own
	Partition, Offset string
	Reason            string // "<reason>: <detail>"
}

// ingestDeadLetters reads the ingest's latest dead letters.
func (c *Console) ingestDeadLetters(ctx context.Context) ([]ingestDeadLetter, bool, error) {
	if c.kafka == nil {
		return nil, false, nil
	}
	recs, more, err := c.kafka.tail(ctx, c.cfg.DeadLetterTopic, time.Time{}, maxIngestDeadLetters)
	if err != nil {
		return nil, false, err
	}
	var out []ingestDeadLetter
	for _, r := range recs[:min(len(recs), maxIngestDeadLetters)] {
		dl := ingestDeadLetter{At: r.Timestamp}
		for _, h := range r.Headers {
			switch v := string(h.Value); h.Key {
			case ingest.HeaderReason:
				dl.Reason = v
			case ingest.HeaderTopic:
				dl.Topic = v
			case ingest.HeaderPartition:
				dl.Partition = v
			case ingest.HeaderOffset:
				dl.Offset = v
			}
		}
		dl.Sources = c.sourcesOf(dl.Topic)
		out = append(out, dl)
	}
	return out, more || len(recs) > maxIngestDeadLetters, nil
}

// sourcesOf returns the sources carried by topic.
func (c *Console) sourcesOf(topic string) []string {
	var names []string
	if c.cfg.Registry != nil {
		for _, s := range c.cfg.Registry.ByTopic(topic) {
			names = append(names, s.Name)
		}
		return names
	}
	for _, name := range c.cfg.Sources {
		if source.TopicName(name) == topic {
			names = append(names, name)
		}
	}
	return names
}

type partitionRow struct {
	Partition int32
	Watermark time.Time
	Behind    string
	Lagging   bool // more than a minute behind the freshest partition of the source
}

func (c *Console) sources(r *http.Request, _ auth.Principal) (any, error) {
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	now := c.cfg.Now()
	d := sourcesData{Now: now, DeadTopic: c.cfg.DeadLetterTopic}
	// The dead letters are read beside the watermarks, within KafkaTimeout.
	kctx, kcancel := context.WithTimeout(ctx, c.cfg.KafkaTimeout)
	defer kcancel()
	type fromKafka struct {
		letters []ingestDeadLetter
		more    bool
		err     error
		lag     map[string]int64 // by topic
		lagErr  error
	}
	kafka := make(chan fromKafka, 1)
	go func() {
		var k fromKafka
		if c.kafka != nil {
			k.lag, k.lagErr = c.kafka.lagByTopic(kctx, c.cfg.IngestGroup)
		}
		k.letters, k.more, k.err = c.ingestDeadLetters(kctx)
		kafka <- k
	}()
	names := map[string]bool{}
	for _, s := range c.cfg.Sources {
		names[s] = true
	}
	entries, err := catalog.List(ctx, c.cfg.Store)
	if err != nil {
		return d, err
	}
	for _, e := range entries {
		for _, t := range e.Triggers {
			names[t.Source] = true
		}
		for _, s := range e.Reads {
			names[s] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		parts, err := c.cfg.Store.PartitionWatermarks(ctx, name)
		if err != nil {
			return d, fmt.Errorf("source %s: %w", name, err)
		}
		row := sourceRow{Name: name, Topic: c.topicOf(name)}
		var newest time.Time
		for _, t := range parts {
			if t.After(newest) {
				newest = t
			}
		}
		for _, p := range slices.Sorted(maps.Keys(parts)) {
			t := parts[p]
			row.Partitions = append(row.Partitions, partitionRow{Partition: p, Watermark: t, Behind: behind(now, t), Lagging: newest.Sub(t) > time.Minute})
			if row.Watermark.IsZero() || t.Before(row.Watermark) {
				row.Watermark = t
			}
		}
		row.Behind = behind(now, row.Watermark)
		d.Sources = append(d.Sources, row)
	}
	k := <-kafka
	for i := range d.Sources {
		switch row := &d.Sources[i]; {
		case c.kafka == nil:
			row.IngestLagNote = "unknown (no Kafka configured)"
		case k.lagErr != nil:
			row.IngestLagNote = c.unknown(k.lagErr)
		default:
			lag, ok := k.lag[row.Topic]
			row.IngestLag = lag
			if !ok {
				row.IngestLagNote = "none: the ingest does not consume the topic"
			}
		}
	}
	switch {
	case c.kafka == nil:
		d.DeadNote = "unknown (no Kafka configured)"
	case k.err != nil:
		d.DeadNote = c.unknown(k.err)
	default:
		d.DeadLetters, d.More = k.letters, k.more
		for i := range d.Sources {
			for _, l := range d.DeadLetters {
				if slices.Contains(l.Sources, d.Sources[i].Name) {
					d.Sources[i].DeadLetters++
				}
			}
		}
	}
	return d, nil
}

// behind says how far t is behind now.
func behind(now, t time.Time) string {
	if t.IsZero() {
		return "no events yet"
	}
	d := now.Sub(t)
	if d < time.Second {
		return "current"
	}
	return d.Round(time.Second).String()
}

// driftData is the drift page.
type driftData struct {
	Archive string // Config.ArchiveURL
	Runs    []driftRun
	Chart   template.HTML // SVG
	Run     *driftRun     // the one asked for, with its keys
	// RunLink is the Temporal UI's page of Run's workflow ("" without one).
	RunLink string
	// Rebackfills are the re-backfills Run started, when RebackfillNote
	// is "" (else it says why they are not listed).
	Rebackfills    []rebackfillRow
	RebackfillNote string
}

// rebackfillRow is a re-backfill a correction run started (its memo,
// workflows.RebackfillMemo) and the state of its workflow.
type rebackfillRow struct {
	workflows.Rebackfill
	Why    string // Rebackfill.Reason
	Status string // of its workflow in Temporal: "running", "completed"…, or "not started"
	Link   string // to its workflow in the Temporal UI; "" without one
}

type driftRun struct {
	ID      string
	Started time.Time
	Entries []correction.Entry
	Drifted int
}

func (c *Console) drift(r *http.Request, _ auth.Principal) (any, error) {
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	d := driftData{Archive: c.cfg.ArchiveURL}
	entries, err := correction.ReadLedger(ctx, c.cfg.Store, correction.LedgerQuery{})
	if err != nil {
		return d, err
	}
	byRun := map[string]*driftRun{}
	var order []string
	for _, e := range entries {
		run := byRun[e.Run]
		if run == nil {
			run = &driftRun{ID: e.Run, Started: e.Started}
			byRun[e.Run] = run
			order = append(order, e.Run)
		}
		run.Entries = append(run.Entries, e)
		run.Drifted += e.Drifted()
	}
	for _, id := range slices.Backward(order) { // newest first
		d.Runs = append(d.Runs, *byRun[id])
	}
	d.Chart = driftChart(entries)
	if id := r.URL.Query().Get("run"); id != "" {
		run, ok := byRun[id]
		if !ok {
			return d, fmt.Errorf("no correction run %q in the ledger", id)
		}
		d.Run = run
		d.RunLink, d.Rebackfills, d.RebackfillNote = c.rebackfills(ctx, id)
	}
	return d, nil
}

// rebackfills reads the re-backfills the correction run started from its
// workflow's memo, and the state of each one's workflow; note says why
// they are not listed ("" when they are). link is the run's workflow in
// the Temporal UI.
func (c *Console) rebackfills(ctx context.Context, run string) (link string, rows []rebackfillRow, note string) {
	if c.cfg.Temporal == nil {
		return "", nil, "No Temporal client is configured: the run's re-backfills are not listed."
	}
	var notFound *serviceerror.NotFound
	desc, err := c.cfg.Temporal.DescribeWorkflowExecution(ctx, run, "")
	if errors.As(err, &notFound) {
		return "", nil, "The run's workflow is not in Temporal (past its retention?): its re-backfills are not listed."
	}
	if err != nil {
		return "", nil, fmt.Sprintf("The run's re-backfills are unknown: %v", err)
	}
	info := desc.GetWorkflowExecutionInfo()
	link = c.workflowLink(run, info.GetExecution().GetRunId())
	memo, ok := info.GetMemo().GetFields()[workflows.RebackfillMemo]
	if !ok {
		return link, nil, ""
	}
	var rs []workflows.Rebackfill
	if err := converter.GetDefaultDataConverter().FromPayload(memo, &rs); err != nil {
		return link, nil, fmt.Sprintf("The run's re-backfills are unreadable: %v", err)
	}
	for i := range rs {
		row := rebackfillRow{Rebackfill: rs[i], Why: rs[i].Reason(), Status: "not started"}
		child, err := c.cfg.Temporal.DescribeWorkflowExecution(ctx, rs[i].ID, "")
		switch {
		case err == nil:
			ci := child.GetWorkflowExecutionInfo()
			row.Status, row.Link = statusName(ci.GetStatus()), c.workflowLink(rs[i].ID, ci.GetExecution().GetRunId())
		case !errors.As(err, &notFound):
			row.Status = fmt.Sprintf("unknown: %v", err)
		}
		rows = append(rows, row)
	}
	return link, rows, ""
}

// driftChart draws drifted rows per source over runs as an SVG line chart
// ("" without entries).
func driftChart(entries []correction.Entry) template.HTML {
	if len(entries) == 0 {
		return ""
	}
	const w, h, pad = 640, 200, 36
	series := map[string][]correction.Entry{}
	first, last, top := entries[0].Started, entries[0].Started, 1
	for _, e := range entries {
		series[e.Source] = append(series[e.Source], e)
		if e.Started.Before(first) {
			first = e.Started
		}
		if e.Started.After(last) {
			last = e.Started
		}
		top = max(top, e.Drifted())
	}
	span := last.Sub(first)
	x := func(t time.Time) float64 {
		if span == 0 {
			return w / 2
		}
		return pad + float64(t.Sub(first))/float64(span)*(w-2*pad)
	}
	y := func(n int) float64 { return h - pad - float64(n)/float64(top)*(h-2*pad) }
	colors := []string{"#1f5fa8", "#b3261e", "#2e7d32", "#6a3d9a", "#8a5a00"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg role="img" aria-labelledby="drift-chart-title" viewBox="0 0 %d %d" width="%d" height="%d" class="chart">`, w, h+20*len(series), w, h+20*len(series))
	fmt.Fprintf(&b, `<title id="drift-chart-title">Drifted rows per source over correction runs (0 to %d)</title>`, top)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>`, pad, h-pad, w-pad, h-pad, pad, pad, pad, h-pad)
	fmt.Fprintf(&b, `<text x="4" y="%d" font-size="11">%d</text><text x="4" y="%d" font-size="11">0</text>`, pad+4, top, h-pad)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11">%s</text><text x="%d" y="%d" font-size="11" text-anchor="end">%s</text>`,
		pad, h-pad+16, template.HTMLEscapeString(first.UTC().Format("2006-01-02 15:04")), w-pad, h-pad+16, template.HTMLEscapeString(last.UTC().Format("2006-01-02 15:04")))
	names := slices.Sorted(maps.Keys(series))
	for i, name := range names {
		es := series[name]
		sort.Slice(es, func(a, b int) bool { return es[a].Started.Before(es[b].Started) })
		color := colors[i%len(colors)]
		var pts []string
		for _, e := range es {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(e.Started), y(e.Drifted())))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, color, strings.Join(pts, " "))
		for _, e := range es {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s %s: %d drifted</title></circle>`, x(e.Started), y(e.Drifted()), color,
				template.HTMLEscapeString(name), e.Started.UTC().Format(time.RFC3339), e.Drifted())
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d" font-size="12">%s</text>`,
			pad, h+20*i, color, pad+18, h+20*i+11, template.HTMLEscapeString(name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // every text in it is escaped above
}

// pageTitle is the heading of the page name.
func pageTitle(name string) string {
	if name == "params" {
		return "Parameters"
	}
	return strings.ToUpper(name[:1]) + name[1:]
}
