package api_test

// Load benchmarks of the API with vegeta as a library: each attacks a real
// route and, in the same run and at the same rate, a bare handler on the
// same server answering a fixed body of the same size, so that what the
// route costs stands apart from what HTTP and the load generator cost.
//
//	go test ./api -run '^$' -bench . -benchtime 1x [-attack 10s]
//
// Each reports p50/p99 in ms of the route and of its bare twin. The point
// lookup also ramps its rate up (doubling from 1,000 req/s) and reports
// the first rate at which p99 crosses 5 ms. BenchmarkCall needs the real
// Kafka (and skips, or fails under CI=true, without it).

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/tidemark-dev/tidemark/api"
	"github.com/tidemark-dev/tidemark/client"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
)

var attackFor = flag.Duration("attack", 5*time.Second, "how long each load benchmark attacks at one rate")

// benchServer serves the API and, at /bare, a fixed body of size bytes
// (set once the real answer's size is known).
type benchServer struct {
	*httptest.Server
	bare []byte
}

func newBenchServer(b *testing.B, cfg api.Config) *benchServer {
	b.Helper()
	srv, err := api.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	bs := &benchServer{}
	mux := http.NewServeMux()
	mux.Handle("/", srv)
	mux.HandleFunc("/bare", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(bs.bare)
	})
	bs.Server = httptest.NewServer(mux)
	b.Cleanup(bs.Close)
	return bs
}

// sizeBare makes the bare body as long as the answer to req.
func (bs *benchServer) sizeBare(b *testing.B, req vegeta.Target) {
	b.Helper()
	r, err := http.NewRequest(req.Method, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		b.Fatal(err)
	}
	r.Header = req.Header
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%s %s: %s %s", req.Method, req.URL, resp.Status, body)
	}
	bs.bare = bytes.Repeat([]byte(" "), len(body))
	copy(bs.bare, `{"bare":true}`)
}

type attackResult struct {
	p50, p99 time.Duration
	success  float64
	codes    map[string]int
}

func attack(b *testing.B, rate int, d time.Duration, tr vegeta.Targeter) attackResult {
	b.Helper()
	a := vegeta.NewAttacker(vegeta.KeepAlive(true), vegeta.Timeout(10*time.Second))
	var m vegeta.Metrics
	for res := range a.Attack(tr, vegeta.Rate{Freq: rate, Per: time.Second}, d, "") {
		m.Add(res)
	}
	m.Close()
	return attackResult{p50: m.Latencies.P50, p99: m.Latencies.P99, success: m.Success, codes: m.StatusCodes}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pair attacks the route, then the bare handler, at rate, and reports both.
func pair(b *testing.B, bs *benchServer, rate int, route vegeta.Targeter, bare vegeta.Target) {
	b.Helper()
	r := attack(b, rate, *attackFor, route)
	z := attack(b, rate, *attackFor, vegeta.NewStaticTargeter(bare))
	if r.success < 1 {
		b.Errorf("route: success %.4f, status codes %v", r.success, r.codes)
	}
	b.ReportMetric(ms(r.p50), "p50-ms")
	b.ReportMetric(ms(r.p99), "p99-ms")
	b.ReportMetric(ms(z.p50), "bare-p50-ms")
	b.ReportMetric(ms(z.p99), "bare-p99-ms")
	b.ReportMetric(float64(rate), "req/s")
	b.Logf("at %d req/s for %v: route p50 %v p99 %v; bare p50 %v p99 %v", rate, *attackFor, r.p50, r.p99, z.p50, z.p99)
}

// fillFeatures stores the latest features of n entities of job "scores":
// score uniform in [0, 1), segment one of four, trigger times spread over
// the 30 days before t0.
func fillFeatures(b *testing.B, st eventcenter.Store, n int) {
	b.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	evs := make([]eventcenter.Event, 0, 10000)
	for i := range n {
		at := t0.Add(-time.Duration(r.Int64N(int64(30 * 24 * time.Hour))))
		rec := record(entityName(i), at, uint64(i), eventcenter.Row{"score": r.Float64(), "segment": string(rune('a' + i%4)), "limit": int64(r.IntN(20000))})
		evs = append(evs, rec.Event(job.FeatureSource("scores")))
		if len(evs) == cap(evs) || i == n-1 {
			if err := st.Append(ctx, evs); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
		}
	}
}

func entityName(i int) string { return fmt.Sprintf("user-%07d", i) }

func benchStore(b *testing.B, entities int) eventcenter.Store {
	b.Helper()
	st := openStore(b, nil)
	publish(b, st, "scores", "test.apps")
	fillFeatures(b, st, entities)
	return st
}

// BenchmarkLookup: point lookups of random entities among 100k at 1,000
// req/s beside the bare handler; then the rate doubles until p99 crosses
// 5 ms, reported as p99>5ms-req/s (0: not crossed by 32,000 req/s).
func BenchmarkLookup(b *testing.B) {
	const n = 100_000
	st := benchStore(b, n)
	bs := newBenchServer(b, api.Config{Store: st})
	route := func(t *vegeta.Target) error { // called concurrently
		t.Method, t.URL = http.MethodGet, bs.URL+"/v1/features/scores/"+entityName(rand.IntN(n))
		return nil
	}
	bs.sizeBare(b, vegeta.Target{Method: http.MethodGet, URL: bs.URL + "/v1/features/scores/" + entityName(7)})
	pair(b, bs, 1000, route, vegeta.Target{Method: http.MethodGet, URL: bs.URL + "/bare"})
	crossed := 0
	for rate := 2000; rate <= 32000; rate *= 2 {
		res := attack(b, rate, *attackFor, route)
		b.Logf("ramp: %d req/s: p99 %v, success %.4f", rate, res.p99, res.success)
		if res.p99 > 5*time.Millisecond || res.success < 1 {
			crossed = rate
			break
		}
	}
	b.ReportMetric(float64(crossed), "p99>5ms-req/s")
}

// BenchmarkBatch100: batches of 100 random entities among 100k, 100 req/s.
func BenchmarkBatch100(b *testing.B) {
	const n = 100_000
	st := benchStore(b, n)
	bs := newBenchServer(b, api.Config{Store: st})
	body := func() []byte { // called concurrently
		ents := make([]string, 100)
		for i := range ents {
			ents[i] = entityName(rand.IntN(n))
		}
		v, _ := json.Marshal(api.BatchRequest{Entities: ents})
		return v
	}
	h := http.Header{"Content-Type": {"application/json"}}
	route := func(t *vegeta.Target) error {
		t.Method, t.URL, t.Body, t.Header = http.MethodPost, bs.URL+"/v1/features/scores:batch", body(), h
		return nil
	}
	bs.sizeBare(b, vegeta.Target{Method: http.MethodPost, URL: bs.URL + "/v1/features/scores:batch", Body: body(), Header: h})
	pair(b, bs, 100, route, vegeta.Target{Method: http.MethodPost, URL: bs.URL + "/bare", Body: body(), Header: h})
}

// BenchmarkSelect1M: a selection over 1M entities whose result is 1% of
// them (score < 0.01: about 10,000 entities, all in one page), 5 req/s.
func BenchmarkSelect1M(b *testing.B) {
	const n = 1_000_000
	st := benchStore(b, n)
	bs := newBenchServer(b, api.Config{Store: st})
	body, _ := json.Marshal(api.SelectRequest{Where: "score < 0.01", Limit: 10000})
	h := http.Header{"Content-Type": {"application/json"}}
	req := vegeta.Target{Method: http.MethodPost, URL: bs.URL + "/v1/features/scores:select", Body: body, Header: h}
	start := time.Now()
	bs.sizeBare(b, req) // builds the table
	b.Logf("first selection (builds the table of %d entities): %v", n, time.Since(start))
	pair(b, bs, 5, vegeta.NewStaticTargeter(req), vegeta.Target{Method: http.MethodPost, URL: bs.URL + "/bare", Body: body, Header: h})
}

// BenchmarkCall: synchronous calls through the real Kafka, the live
// worker and the results topic, 200 req/s.
func BenchmarkCall(b *testing.B) {
	cs := startCallStack(b)
	h := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer t-reader"}}
	url := cs.url + "/v1/calls/" + cs.name + "?timeout=2s"
	var n atomic.Int64
	route := func(t *vegeta.Target) error { // called concurrently
		t.Method, t.URL, t.Header, t.Body = http.MethodPost, url, h, fmt.Appendf(nil, `{"amount":%d}`, n.Add(1))
		return nil
	}
	resp, err := cs.client.Call(context.Background(), cs.name, map[string]any{"amount": 1}, client.CallOptions{Timeout: 10 * time.Second})
	if err != nil || resp.Record == nil {
		b.Fatalf("warm-up call: %+v, %v", resp, err)
	}
	rec, _ := json.Marshal(resp.Record)
	bare := bytes.Repeat([]byte(" "), len(rec)+1) // the answer's size, its newline included
	cs.bare.Store(&bare)
	r := attack(b, 200, *attackFor, route)
	z := attack(b, 200, *attackFor, vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodPost, URL: cs.url + "/bare", Header: h, Body: []byte(`{"amount":1}`)}))
	if r.success < 1 {
		b.Errorf("calls: success %.4f, status codes %v", r.success, r.codes)
	}
	b.ReportMetric(ms(r.p50), "p50-ms")
	b.ReportMetric(ms(r.p99), "p99-ms")
	b.ReportMetric(ms(z.p50), "bare-p50-ms")
	b.ReportMetric(ms(z.p99), "bare-p99-ms")
	b.Logf("at 200 req/s for %v: calls p50 %v p99 %v; bare p50 %v p99 %v", *attackFor, r.p50, r.p99, z.p50, z.p99)
}
