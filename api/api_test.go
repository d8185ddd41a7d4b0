package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark-dev/tidemark/api"
	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/client"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/eventcenter/hbase"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
)

// staticAuth knows a fixed set of tokens.
type staticAuth map[string]auth.Principal

func (a staticAuth) Authenticate(_ context.Context, token string) (auth.Principal, error) {
	if p, ok := a[token]; ok {
		return p, nil
	}
	return auth.Principal{}, auth.ErrBadToken
}

var testAuth = staticAuth{
	"t-reader": {ID: "svc-reader", Grants: []auth.Grant{{Role: auth.RoleReader}}},
	"t-other":  {ID: "svc-other", Grants: []auth.Grant{{Role: auth.RoleReader}}},
}

// clock is a settable clock for the store's StoredAt stamps.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func openStore(t testing.TB, now func() time.Time) *embedded.Store {
	t.Helper()
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func publish(t testing.TB, st eventcenter.Store, name string, triggers ...string) {
	t.Helper()
	var opts []job.Option
	for _, tr := range triggers {
		opts = append(opts, job.Trigger(tr))
	}
	j, err := job.New(name, func(*job.Context) (eventcenter.Row, error) { return nil, nil }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Publish(context.Background(), st, j); err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

// record is a feature record of job "scores" for entity at trigger time
// at, trigger offset off.
func record(entity string, at time.Time, off uint64, features eventcenter.Row) job.Record {
	trig := eventcenter.ID{Source: "test.apps", Key: entity + "-app", Time: at, Pos: eventcenter.Position{Log: 1, Offset: off}}
	return job.Record{Job: "scores", JobVersion: "1", ParamVersion: 1, Entity: entity, Trigger: trig, Features: features}
}

func newServer(t testing.TB, cfg api.Config) (*httptest.Server, *client.Client) {
	t.Helper()
	s, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return hs, client.New(hs.URL, client.WithToken("t-reader"), client.WithHTTPClient(newDocChecker(t)))
}

// TestLookupEqualsAsOf: point and batch lookups through the API equal the
// event center's AsOf, for random times and known-at times, over records
// with replacement versions (a backfill's Replace) stored later: on the
// embedded store, and on HBase (TestLookupEqualsAsOfHBase).
func TestLookupEqualsAsOf(t *testing.T) {
	clk := &clock{t: t0.Add(24 * time.Hour)}
	checkLookups(t, openStore(t, clk.Now), clk.Now)
}

// TestLookupEqualsAsOfHBase is TestLookupEqualsAsOf on the real HBase
// (batches there are parallel AsOf reads, not one sorted pass).
func TestLookupEqualsAsOfHBase(t *testing.T) {
	clk := &clock{t: t0.Add(24 * time.Hour)}
	checkLookups(t, openHBase(t, clk.Now), clk.Now)
}

// openHBase opens a store in a new namespace of the harness's HBase,
// dropped when the test ends; now, if not nil, stamps StoredAt.
func openHBase(t *testing.T, now func() time.Time) eventcenter.Store {
	t.Helper()
	zk := testenv.HBaseZK(t)
	cfg := hbase.Config{ZooKeeper: zk, Namespace: fmt.Sprintf("tmserving_%d", time.Now().UnixNano()%1e12),
		Regions: 2, Buckets: 4, SoleWriter: true, Now: now}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := hbase.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := hbase.DropNamespace(ctx, cfg); err != nil {
			t.Logf("dropping HBase namespace %s: %v", cfg.Namespace, err)
		}
	})
	return st
}

// checkLookups writes random feature records of job "scores" to st (whose
// StoredAt stamps come from now) and compares the API's lookups with st's
// AsOf.
func checkLookups(t *testing.T, st eventcenter.Store, now func() time.Time) {
	ctx := context.Background()
	publish(t, st, "scores", "test.apps")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	entities := []string{"u1", "u2", "u3", "u/4 with space"}
	var stamps []time.Time
	for i := range 60 {
		ent := entities[r.IntN(len(entities))]
		rec := record(ent, t0.Add(time.Duration(r.IntN(20))*time.Minute), uint64(i), eventcenter.Row{"score": float64(r.IntN(100)) / 10, "n": int64(i)})
		e := rec.Event(job.FeatureSource("scores"))
		if r.IntN(4) == 0 { // a replacement version of an earlier trigger
			pos, err := job.ReplacementPos(e.Pos, uint32(1+r.IntN(3)))
			if err != nil {
				t.Fatal(err)
			}
			e.Pos = pos
		}
		if err := st.Append(ctx, []eventcenter.Event{e}); err != nil {
			t.Fatal(err)
		}
		stamps = append(stamps, now())
	}
	_, c := newServer(t, api.Config{Store: st})
	for range 200 {
		ent := entities[r.IntN(len(entities))]
		var at, knownAt time.Time
		if r.IntN(4) > 0 {
			at = t0.Add(time.Duration(r.IntN(22)-1) * time.Minute)
		}
		if r.IntN(2) == 0 {
			knownAt = stamps[r.IntN(len(stamps))]
		}
		q := eventcenter.AsOf{Source: job.FeatureSource("scores"), Key: ent, Time: at, KnownAt: knownAt}
		if at.IsZero() {
			q.Time = eventcenter.MaxTime
		}
		want, werr := st.AsOf(ctx, q)
		got, gerr := c.Features(ctx, "scores", ent, at, knownAt)
		if errors.Is(werr, eventcenter.ErrNotFound) {
			var p *api.Problem
			if !errors.As(gerr, &p) || p.Status != http.StatusNotFound || p.Type != "urn:tidemark:problem:unknown-entity" {
				t.Fatalf("%s at %v known %v: store has nothing, API answered %v", ent, at, knownAt, gerr)
			}
		} else {
			if werr != nil || gerr != nil {
				t.Fatal(werr, gerr)
			}
			if w, g := mustJSON(t, job.RecordFromEvent("scores", &want)), mustJSON(t, got); w != g {
				t.Fatalf("%s at %v known %v:\n got %s\nwant %s", ent, at, knownAt, g, w)
			}
		}
		res, err := c.Batch(ctx, "scores", entities, at, knownAt)
		if err != nil {
			t.Fatal(err)
		}
		for i, br := range res {
			q.Key = entities[i]
			want, werr := st.AsOf(ctx, q)
			switch {
			case errors.Is(werr, eventcenter.ErrNotFound):
				if br.Record != nil {
					t.Fatalf("batch: %s: a record where the store has none", br.Entity)
				}
			case werr != nil:
				t.Fatal(werr)
			case br.Record == nil || mustJSON(t, job.RecordFromEvent("scores", &want)) != mustJSON(t, *br.Record):
				t.Fatalf("batch: %s: %v, want %v", br.Entity, br.Record, want)
			}
		}
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	// Through a map, so that numbers compare as JSON gives them back.
	var m any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(m)
	return string(b)
}

func writeFeatures(t *testing.T, st eventcenter.Store, n int) {
	t.Helper()
	var evs []eventcenter.Event
	for i := range n {
		rec := record(fmt.Sprintf("u%03d", i), t0, uint64(i), eventcenter.Row{"score": float64(i % 10), "segment": []string{"a", "b"}[i%2]})
		evs = append(evs, rec.Event(job.FeatureSource("scores")))
	}
	if err := st.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

func TestSelect(t *testing.T) { checkSelect(t, openStore(t, nil)) }

// TestSelectHBase is TestSelect on the real HBase (its streaming replay
// builds the table).
func TestSelectHBase(t *testing.T) { checkSelect(t, openHBase(t, nil)) }

func checkSelect(t *testing.T, st eventcenter.Store) {
	ctx := context.Background()
	publish(t, st, "scores", "test.apps")
	writeFeatures(t, st, 100)
	_, c := newServer(t, api.Config{Store: st})
	var got []string
	req := api.SelectRequest{Where: "score >= 8 and segment = 'a'", Features: []string{"score"}, Limit: 3}
	for {
		sel, err := c.Select(ctx, "scores", req)
		if err != nil {
			t.Fatal(err)
		}
		if sel.Matched != 10 {
			t.Fatalf("matched %d, want 10", sel.Matched)
		}
		for _, e := range sel.Entities {
			if e.Features["score"] != 8.0 {
				t.Fatalf("%s: score %v", e.Entity, e.Features["score"])
			}
			got = append(got, e.Entity)
		}
		if sel.Next == "" {
			break
		}
		req.Cursor = sel.Next
	}
	if want := "u008 u018 u028 u038 u048 u058 u068 u078 u088 u098"; strings.Join(got, " ") != want {
		t.Fatalf("got %v, want %s", got, want)
	}
	// As of a time before every record: nothing.
	sel, err := c.Select(ctx, "scores", api.SelectRequest{Where: "score >= 0", At: t0.Add(-time.Second).Format(time.RFC3339)})
	var p *api.Problem
	if err == nil || !errors.As(err, &p) || !strings.Contains(p.Detail, "unknown feature") {
		t.Fatalf("as of before the features: %v, %v (want an unknown feature)", sel, err)
	}
}

// TestBadInput: each bad request is a 4xx problem saying what is wrong.
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, nil)
	publish(t, st, "scores", "test.apps")
	writeFeatures(t, st, 10)
	_, c := newServer(t, api.Config{Store: st, MaxBatch: 5, JobsTTL: 50 * time.Millisecond})
	check := func(what string, err error, status int, slug string, ext map[string]any) {
		t.Helper()
		var p *api.Problem
		if !errors.As(err, &p) {
			t.Fatalf("%s: %v, want a problem", what, err)
		}
		if p.Status != status || p.Type != "urn:tidemark:problem:"+slug {
			t.Fatalf("%s: %d %s (%s), want %d %s", what, p.Status, p.Type, p.Detail, status, slug)
		}
		for k, v := range ext {
			if fmt.Sprint(p.Extensions[k]) != fmt.Sprint(v) {
				t.Fatalf("%s: %s = %v, want %v (%+v)", what, k, p.Extensions[k], v, p)
			}
		}
	}
	_, err := c.Features(ctx, "nope", "u001", time.Time{}, time.Time{})
	check("unknown job", err, 404, "unknown-job", map[string]any{"known": []string{"scores"}})
	_, err = c.Features(ctx, "scores", "nobody", time.Time{}, time.Time{})
	check("unknown entity", err, 404, "unknown-entity", nil)
	_, err = c.Batch(ctx, "scores", []string{"1", "2", "3", "4", "5", "6"}, time.Time{}, time.Time{})
	check("oversized batch", err, 413, "batch-too-large", map[string]any{"max": 5})
	_, err = c.Batch(ctx, "scores", []string{"u001", ""}, time.Time{}, time.Time{})
	check("an empty entity", err, 400, "bad-entity", nil)
	_, err = c.Batch(ctx, "nope", []string{"1"}, time.Time{}, time.Time{})
	check("batch of an unknown job", err, 404, "unknown-job", nil)
	_, err = c.Select(ctx, "scores", api.SelectRequest{Where: "score > 1 and (segment = 'a' or"})
	check("malformed predicate", err, 400, "bad-predicate", map[string]any{"position": 31})
	_, err = c.Select(ctx, "scores", api.SelectRequest{Where: "score > 1 and segment > 3"})
	check("wrong type", err, 400, "bad-predicate", map[string]any{"position": 14})
	_, err = c.Select(ctx, "scores", api.SelectRequest{Where: "score > 1", Limit: 1 << 20})
	check("limit", err, 400, "bad-limit", nil)
	_, err = c.Select(ctx, "scores", api.SelectRequest{Where: "score > 1", At: "yesterday"})
	check("bad time", err, 400, "bad-time", map[string]any{"parameter": "at"})
	_, err = c.Call(ctx, "scores", map[string]any{"x": 1}, client.CallOptions{})
	check("calls without Kafka", err, 501, "no-calls", nil)
	// A job published after the server read the catalog is found once
	// its copy is JobsTTL old.
	publish(t, st, "later", "test.apps")
	time.Sleep(60 * time.Millisecond)
	_, err = c.Features(ctx, "later", "u001", time.Time{}, time.Time{})
	check("a job published later", err, 404, "unknown-entity", nil)
}

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, nil)
	publish(t, st, "scores", "test.apps")
	writeFeatures(t, st, 3)
	m := api.NewMetrics(prometheus.NewRegistry())
	_, c := newServer(t, api.Config{Store: st, Metrics: m})
	if _, err := c.Features(ctx, "scores", "u001", time.Time{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	c.Features(ctx, "scores", "nobody", time.Time{}, time.Time{})
	c.Select(ctx, "scores", api.SelectRequest{Where: "score >"})
	for _, want := range []struct {
		route, code string
	}{{"GET /v1/features/{job}/{entity}", "200"}, {"GET /v1/features/{job}/{entity}", "404"}, {"POST /v1/features/{job}:{action}", "400"}} {
		if n := testutil.ToFloat64(m.Requests.WithLabelValues(want.route, want.code)); n != 1 {
			t.Errorf("%s %s: %v answers counted, want 1", want.route, want.code, n)
		}
	}
}
