package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/client"

	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/console"
	"github.com/tidemark-dev/tidemark/correction"
	"github.com/tidemark-dev/tidemark/devstack"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/workflows"
)

// dev is a dev stack with its demo on free ports and a fresh data folder,
// as `tidemark dev` starts it, with the demo tokens it created.
type dev struct {
	// started is before the stack started: the demo's history is before
	// it, its live applications after.
	started time.Time
	stack   *devstack.Stack
	base    string
	tokens  map[string]string // principal → token
}

// lagPartition is a partition of the applications' source that the test
// holds an hour behind the others.
const lagPartition = 97

const history = 300

func startDev(t testing.TB) *dev {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the dev stack")
	}
	ctx := context.Background()
	started := time.Now().UTC().Truncate(time.Second)
	st, err := devstack.Start(ctx, devstack.Config{DataDir: t.TempDir(), TemporalAddr: testenv.FreeAddr(t), UIAddr: "off", KafkaAddr: testenv.FreeAddr(t),
		APIAddr: testenv.FreeAddr(t), EphemeralTemporal: true, Demo: &devstack.Demo{HistoryApps: history, Rate: 5},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Stop)
	d := &dev{started: started, stack: st, base: st.APIURL(), tokens: map[string]string{}}
	for _, tok := range st.DevTokens() {
		d.tokens[tok.Principal] = tok.Token
	}
	if len(d.tokens) != 3 {
		t.Fatalf("the dev stack created tokens %v, want dev-admin, dev-operator and dev-approver", st.DevTokens())
	}
	// The demo's history has gone through the live worker.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(fmt.Sprintf("%s/v1/features/%s/app-%d", d.base, credit.Name, history))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo's last historical application has no features after 2 minutes (%v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := st.Store().AdvanceWatermark(ctx, credit.Applications, lagPartition, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Two nightly correction runs in the drift ledger (the dev stack has no
	// MySQL to compare with).
	night := time.Now().UTC().Truncate(24 * time.Hour)
	var ledger []correction.Entry
	for i, drifted := range []int{7, 2} {
		started := night.Add(time.Duration(i-1)*24*time.Hour + 2*time.Hour)
		run := fmt.Sprintf("correction-%d", i+1)
		ledger = append(ledger,
			correction.Entry{Run: run, Source: credit.Applications, Started: started, Chunks: 1, Objects: []string{"archive/" + run + "/applications-0.parquet"},
				Drift: correction.Drift{Compared: 1000, Missing: drifted, Corrections: drifted, Keys: map[string][]string{"missing": {fmt.Sprintf("app-%d", 900+i)}}}},
			correction.Entry{Run: run, Source: credit.Orders, Started: started, Chunks: 1, Drift: correction.Drift{Compared: 500, Different: drifted * 2}})
	}
	if err := correction.WriteLedger(ctx, st.Store(), ledger); err != nil {
		t.Fatal(err)
	}
	kafkaTroubles(t, st)
	startRebackfill(t, st)
	return d
}

// rebackfillJob is the job the correction run "correction-2" re-backfilled,
// in the workflow rebackfillID.
const (
	rebackfillJob = credit.Name
	rebackfillID  = "correction-2/rebackfill/" + rebackfillJob
)

// startRebackfill starts the workflows of correction-2 and of its
// re-backfill as the correction workflow leaves them: the run's memo
// lists the re-backfill, whose Backfill workflow runs. Both wait on a task
// queue no worker polls (the dev stack has no MySQL for a real run), so
// they stay running.
func startRebackfill(t testing.TB, st *devstack.Stack) {
	t.Helper()
	ctx := context.Background()
	const queue = "console-test-unpolled"
	first := time.Now().Add(-26 * time.Hour).UTC().Truncate(time.Second)
	memo := map[string]any{workflows.RebackfillMemo: []workflows.Rebackfill{{Job: rebackfillJob, ID: rebackfillID, From: first, To: time.Now().UTC(),
		Sources: []workflows.RebackfillSource{{Source: credit.Applications, Keys: 7, First: first}}, Sink: "featurestore", Write: "replace"}}}
	if _, err := st.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "correction-2", TaskQueue: queue, Memo: memo},
		workflows.CorrectionWorkflow, workflows.CorrectionInput{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: rebackfillID, TaskQueue: queue}, workflows.BackfillWorkflow); err != nil {
		t.Fatal(err)
	}
}

// Jobs and records that give the console's Kafka views something to show.
const (
	// failingJob's logic fails on every application whose id ends in 0; its
	// live worker runs beside the stack's.
	failingJob = "console-failing"
	failingErr = "applications ending in 0 fail"
	// laggingJob's consumer group committed offset 0 of the applications'
	// topic and has no worker: its lag is the whole topic.
	laggingJob = "console-lagging"
	// malformed is the reason the ingest gives a record that is not an event.
	malformed = "malformed"
)

// kafkaTroubles publishes failingJob and runs its live worker until the
// test ends, commits laggingJob's group at the start of the applications'
// topic and produces a malformed record to that topic (the ingest
// dead-letters it). It returns once the failing worker has dead-lettered
// the history's failures.
func kafkaTroubles(t testing.TB, st *devstack.Stack) {
	t.Helper()
	ctx := context.Background()
	fail, err := job.New(failingJob, func(c *job.Context) (eventcenter.Row, error) {
		if strings.HasSuffix(c.Trigger().Key, "0") {
			return nil, errors.New(failingErr)
		}
		return eventcenter.Row{"seen": true}, nil
	}, job.Trigger(credit.Applications, job.Ops(eventcenter.OpInsert)), job.Outputs(outputs.FeatureStore(st.Store(), "")))
	if err != nil {
		t.Fatal(err)
	}
	lag, err := job.New(laggingJob, func(*job.Context) (eventcenter.Row, error) { return eventcenter.Row{}, nil },
		job.Trigger(credit.Applications, job.Ops(eventcenter.OpInsert)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Publish(ctx, st.Store(), fail, lag); err != nil {
		t.Fatal(err)
	}
	brokers := []string{st.KafkaAddr()}
	w, err := live.New(fail, live.Config{Brokers: brokers, Sources: devstack.DemoSources(), Store: st.Store(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("the failing job's live worker: %v", err)
		}
	})

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topic := source.TopicName(credit.Applications)
	offsets := kadm.Offsets{topic: {}}
	for p := range int32(3) { // the dev stack's topics have 3 partitions
		offsets[topic][p] = kadm.Offset{Topic: topic, Partition: p, At: 0, LeaderEpoch: -1}
	}
	if err := kadm.NewClient(cl).CommitAllOffsets(ctx, live.DefaultGroup(laggingJob), offsets); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("app-bad"), Value: []byte("not an event")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// The history's applications 10, 20, … 300 have failed.
	for deadline := time.Now().Add(2 * time.Minute); w.Stats().ByOutcome[job.Failed] < history/10; {
		if time.Now().After(deadline) {
			t.Fatalf("the failing job's worker: %+v after 2 minutes, want %d failed runs", w.Stats(), history/10)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// get fetches path signed in with token; it returns the status, the body
// and the time the server took (to the last byte).
func (d *dev) get(t testing.TB, path, token string) (int, string, time.Duration) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, d.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: console.CookieName, Value: token})
	start := time.Now()
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), time.Since(start)
}

// refused posts form to path as who, from the console's own origin, as a
// browser would, and checks that the console sends back to the parameters
// page saying the server did not allow it.
func (d *dev) refused(t *testing.T, who, path string, form url.Values) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	base, err := url.Parse(d.base)
	if err != nil {
		t.Fatal(err)
	}
	jar.SetCookies(base, []*http.Cookie{{Name: console.CookieName, Value: d.tokens[who], Path: "/"}})
	req, err := http.NewRequest(http.MethodPost, d.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", d.base)
	resp, err := (&http.Client{Jar: jar}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if body := string(b); resp.Request.URL.Path != "/params" || !strings.Contains(body, `class="error"`) || !strings.Contains(body, auth.ErrForbidden.Error()) {
		t.Errorf("POST %s as %s: %s at %s, want the parameters page saying %q:\n%s", path, who, resp.Status, resp.Request.URL, auth.ErrForbidden, body)
	}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// pages are the console's pages with what each shows of the demo data.
var pages = []struct{ name, path, want string }{
	{"jobs", "/jobs", credit.Name},
	{"params", "/params?job=" + credit.Name, "max_open_orders"},
	{"lookup", "/features?job=" + credit.Name + "&entity=app-1", `"entity"`},
	{"selection", "/features?job=" + credit.Name + "&where=" + url.QueryEscape("eligible = true or eligible = false") + "&limit=5", "entities match"},
	{"sources", "/sources", credit.Applications},
	{"drift", "/drift", "<svg"},
	{"drift-run", "/drift?run=correction-2", "app-901"},
}

// maxServerTime bounds a page's time with the demo data: the 200 ms,
// with room for a loaded test machine.
const maxServerTime = time.Second

// TestConsole runs the console of `tidemark dev` on its first start with
// the demo data: every page answers 200 with its data, within
// maxServerTime; signed out, a page sends to the sign-in; and, in a real
// headless Chromium, the parameter change flow (with the server refusing
// the posts of those who may not make them), a lookup, a selection, a
// lagging partition, the Kafka views, and on every page it screenshots,
// that each control has an accessible name (TestConsole/browser).
func TestConsole(t *testing.T) {
	d := startDev(t)
	t.Run("pages", func(t *testing.T) {
		if code, _, _ := d.get(t, "/jobs", ""); code != http.StatusSeeOther {
			t.Errorf("GET /jobs signed out: %d, want 303 to the sign-in", code)
		}
		if code, body, _ := d.get(t, "/", d.tokens["dev-operator"]); code != http.StatusSeeOther {
			t.Errorf("GET /: %d\n%s", code, body)
		}
		// The parameter routes of the dev stack's API need a token.
		for _, c := range []struct {
			method, path, token string
			want                int
		}{
			{http.MethodPost, "/v1/jobs/" + credit.Name + "/params/changes", "", http.StatusUnauthorized},
			{http.MethodGet, "/v1/jobs/" + credit.Name + "/params", "", http.StatusUnauthorized},
			{http.MethodGet, "/v1/jobs/" + credit.Name + "/params", d.tokens["dev-approver"], http.StatusOK},
			{http.MethodPost, "/v1/jobs/" + credit.Name + "/params/changes", d.tokens["dev-approver"], http.StatusForbidden}, // no operator role
		} {
			req, err := http.NewRequest(c.method, d.base+c.path, strings.NewReader(`{"changes":{"max_open_orders":4},"reason":"r"}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("%s %s (token %v): %s, want %d", c.method, c.path, c.token != "", resp.Status, c.want)
			}
		}
		// A cross-site form post is refused, whatever its cookie.
		req, err := http.NewRequest(http.MethodPost, d.base+"/params/decide", strings.NewReader("id=param-x-1&decision=approve"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		req.AddCookie(&http.Cookie{Name: console.CookieName, Value: d.tokens["dev-approver"]})
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("a cross-origin POST: %s, want 403", resp.Status)
		}
		for _, p := range pages {
			d.get(t, p.path, d.tokens["dev-operator"]) // warm: a selection table is built at its first use
			code, body, took := d.get(t, p.path, d.tokens["dev-operator"])
			t.Logf("GET %s: %d in %v", p.path, code, took)
			if code != http.StatusOK || !strings.Contains(body, p.want) {
				t.Errorf("GET %s: %d, want 200 with %q:\n%s", p.path, code, p.want, body)
			}
			if strings.Contains(body, `class="error"`) {
				t.Errorf("GET %s shows an error:\n%s", p.path, body)
			}
			if strings.Contains(body, "unknown (") { // the dev stack's console reads its Kafka
				t.Errorf("GET %s shows something unknown:\n%s", p.path, body)
			}
			if took > maxServerTime {
				t.Errorf("GET %s took %v, want at most %v", p.path, took, maxServerTime)
			}
		}
	})
	t.Run("browser", func(t *testing.T) { browserFlow(t, d) })
}

// BenchmarkPages measures each page's time with the demo data, signed in,
// over HTTP on the loopback (the server's time and a local round trip).
//
//	go test -run '^$' -bench BenchmarkPages -benchtime 20x ./console/
func BenchmarkPages(b *testing.B) {
	d := startDev(b)
	for _, p := range pages {
		d.get(b, p.path, d.tokens["dev-operator"]) // warm
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				if code, _, _ := d.get(b, p.path, d.tokens["dev-operator"]); code != http.StatusOK {
					b.Fatalf("GET %s: %d", p.path, code)
				}
			}
		})
	}
}

// chromium returns the path of the Chromium the tests drive: $TIDEMARK_CHROMIUM
// or chromium on the PATH (scripts/tools installs it). Without one the test
// skips, or fails under CI=true.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("TIDEMARK_CHROMIUM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	msg := "no Chromium: run scripts/tools (apt-get install chromium) or set $TIDEMARK_CHROMIUM"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// artifacts is the folder of the screenshots: $TIDEMARK_ARTIFACTS/console
// or a temporary folder, printed.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if a := os.Getenv("TIDEMARK_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

func browserFlow(t *testing.T, d *dev) {
	path := chromium(t)
	shots := artifacts(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	browser, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(browser); err != nil { // starts the browser
		t.Fatal(err)
	}
	// Two browser contexts: cookies apart, as two people's browsers.
	operator, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	defer cancel()
	approver, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	defer cancel()
	operator, cancel = context.WithTimeout(operator, 3*time.Minute)
	defer cancel()
	approver, cancel = context.WithTimeout(approver, 3*time.Minute)
	defer cancel()

	do := func(ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(ctx context.Context, sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	count := func(ctx context.Context, sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
		if err != nil {
			t.Fatalf("count of %s: %v", sel, err)
		}
		return n
	}
	// a11y lists the page's controls without an accessible name (a label,
	// aria-labelledby naming an element, aria-label, or a button's text)
	// and the ids it holds twice (a label or a link would find the first).
	const a11y = `(() => {
		const bad = [];
		for (const e of document.querySelectorAll('input:not([type=hidden]), select, textarea, button')) {
			const by = e.getAttribute('aria-labelledby');
			if (!(e.labels && e.labels.length) && !(by && document.getElementById(by)) && !e.getAttribute('aria-label') &&
				!(e.tagName === 'BUTTON' && e.textContent.trim())) bad.push('no name: ' + e.outerHTML);
		}
		const seen = new Set();
		for (const e of document.querySelectorAll('[id]')) {
			if (seen.has(e.id)) bad.push('id twice: ' + e.id);
			seen.add(e.id);
		}
		return bad;
	})()`
	shot := func(ctx context.Context, name string) {
		t.Helper()
		problems, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](a11y))
		if err != nil {
			t.Fatalf("accessibility of %s: %v", name, err)
		}
		for _, p := range problems {
			t.Errorf("page %s: %s", name, p)
		}
		img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// listed loads the parameters page until it lists a change matching
	// sel: Temporal's visibility, which lists the changes, may lag a
	// change's start (on a loaded machine, by more than a page load).
	listed := func(ctx context.Context, sel string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			do(ctx, "parameters", chromedp.Navigate(d.base+"/params?job="+credit.Name), chromedp.WaitVisible(chromedp.ID("pending")))
			if count(ctx, sel) > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the parameters page lists no %s within 30 s: %s", sel, text(ctx, "#pending + table"))
			}
		}
	}
	login := func(ctx context.Context, who string) {
		t.Helper()
		do(ctx, "sign in as "+who,
			chromedp.Navigate(d.base+"/params?job="+credit.Name),
			chromedp.WaitVisible(chromedp.ID("token")))
		shot(ctx, "login")
		do(ctx, "sign in as "+who,
			chromedp.SendKeys(chromedp.ID("token"), d.tokens[who]),
			chromedp.Submit(chromedp.ID("token")),
			chromedp.WaitVisible(chromedp.ID("pending")))
	}

	// The operator signs in (landing on the page asked for) and submits a
	// change with the keyboard-reachable form.
	login(operator, "dev-operator")
	shot(operator, "login-landing-params")
	// The server refuses a value its declaration does not allow, and says why.
	do(operator, "submit a bad value",
		chromedp.SendKeys(chromedp.CSS(`input[name="p.repayment_window"]`), "forever"),
		chromedp.SendKeys(chromedp.ID("reason"), "bad"),
		chromedp.Submit(chromedp.ID("reason")),
		chromedp.WaitVisible(chromedp.CSS(".error")))
	if got := text(operator, ".error"); !strings.Contains(got, "repayment_window") {
		t.Errorf("the error of a bad value reads %q", got)
	}
	if n := count(operator, "tr.pending"); n != 0 {
		t.Errorf("a bad value made %d pending changes", n)
	}
	shot(operator, "params-invalid")
	do(operator, "submit a change",
		// A fresh page: the refused one may still be settling, and the
		// browser may give its bad value back to the field.
		chromedp.Navigate(d.base+"/params?job="+credit.Name),
		chromedp.WaitVisible(chromedp.ID("pending")),
		chromedp.SendKeys(chromedp.CSS(`input[name="p.max_open_orders"]`), "5"),
		chromedp.SendKeys(chromedp.ID("reason"), "browser test"),
		chromedp.Submit(chromedp.ID("reason")),
		chromedp.WaitVisible(chromedp.CSS("tr.pending, .error")))
	if n := count(operator, ".error"); n != 0 {
		t.Fatalf("the change was refused: %s", text(operator, ".error"))
	}
	if got := text(operator, "tr.pending"); !strings.Contains(got, "max_open_orders=5") || !strings.Contains(got, "dev-operator") {
		t.Errorf("the pending change reads %q", got)
	}
	// The operator, no approver, sees no approve button.
	if n := count(operator, "button.approve"); n != 0 {
		t.Errorf("the operator sees %d approve buttons", n)
	}
	shot(operator, "params-submitted")
	// The server refuses the decision a form without the button would
	// post, of the operator and of a reader, and a reader's change.
	change, err := chromedp.Run(operator, chromedp.Evaluate[string](`document.querySelector("tr.pending").dataset.change`))
	if err != nil {
		t.Fatal(err)
	}
	store, err := auth.OpenTokenStore(filepath.Join(d.stack.DataDir(), "tokens.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if d.tokens["rita"], _, err = store.Create(auth.Principal{ID: "rita"}); err != nil { // a reader
		t.Fatal(err)
	}
	for _, who := range []string{"dev-operator", "rita"} {
		d.refused(t, who, "/params/decide", url.Values{"job": {credit.Name}, "id": {change}, "decision": {"approve"}})
	}
	d.refused(t, "rita", "/params/submit", url.Values{"job": {credit.Name}, "p.max_open_orders": {"6"}, "reason": {"a reader's change"}})
	listed(operator, "tr.pending")
	if got := text(operator, "tr.pending"); count(operator, "tr.pending") != 1 || !strings.Contains(got, "max_open_orders=5") {
		t.Fatalf("after the refused posts, the pending changes read %q, want the operator's alone", got)
	}

	// The approver, in another browser context, approves it.
	login(approver, "dev-approver")
	listed(approver, "tr.pending")
	if n := count(approver, "button.approve"); n != 1 {
		t.Fatalf("the approver sees %d approve buttons, want 1", n)
	}
	shot(approver, "params-approver")
	// With the keyboard: a comment, Tab to the approve button, Enter.
	do(approver, "comment",
		chromedp.SendKeys(chromedp.CSS("tr.pending input[name=comment]"), "ok"),
		chromedp.KeyEvent(kb.Tab))
	if focused, err := chromedp.Run(approver, chromedp.Evaluate[bool](`document.activeElement.matches("button.approve")`)); err != nil || !focused {
		t.Fatalf("Tab from the comment does not reach the approve button (%v)", err)
	}
	do(approver, "approve", chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS(".flash")))
	// Applied: the current value is 5 at a new version; the operator sees it too.
	do(operator, "reload", chromedp.Navigate(d.base+"/params?job="+credit.Name), chromedp.WaitVisible(chromedp.ID("current")))
	if got := text(operator, `td.current[data-param="max_open_orders"]`); got != "5" {
		t.Errorf("max_open_orders after the approval: %q, want 5", got)
	}
	if got := text(operator, "#current"); got != "Version 1 of "+credit.Name {
		t.Errorf("the version after the approval: %q", got)
	}
	if n := count(operator, "tr.pending"); n != 0 {
		t.Errorf("%d changes still pending", n)
	}
	shot(operator, "params-applied")

	// Carol is an operator and an approver: she sees no approve button for
	// her own change; the approver rejects it.
	if d.tokens["carol"], _, err = store.Create(auth.Principal{ID: "carol", Grants: []auth.Grant{{Role: auth.RoleOperator}, {Role: auth.RoleApprover}}}); err != nil {
		t.Fatal(err)
	}
	carol, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	defer cancel()
	carol, cancel = context.WithTimeout(carol, time.Minute)
	defer cancel()
	login(carol, "carol")
	do(carol, "carol submits",
		chromedp.SendKeys(chromedp.CSS(`input[name="p.max_late_repayments"]`), "2"),
		chromedp.SendKeys(chromedp.ID("reason"), "own change"),
		chromedp.Submit(chromedp.ID("reason")),
		chromedp.WaitVisible(chromedp.CSS("tr.pending, .error")))
	if n := count(carol, ".error"); n != 0 {
		t.Fatalf("carol's change was refused: %s", text(carol, ".error"))
	}
	if n := count(carol, "button.approve"); n != 0 {
		t.Errorf("carol, an approver, sees %d approve buttons for her own change", n)
	}
	own, err := chromedp.Run(carol, chromedp.Evaluate[string](`document.querySelector("tr.pending").dataset.change`))
	if err != nil {
		t.Fatal(err)
	}
	d.refused(t, "carol", "/params/decide", url.Values{"job": {credit.Name}, "id": {own}, "decision": {"approve"}})
	shot(carol, "params-own-change")
	listed(approver, "tr.pending button.reject")
	do(approver, "reject carol's change",
		chromedp.Click(chromedp.CSS("tr.pending button.reject")),
		chromedp.WaitVisible(chromedp.CSS(".flash")))
	if n := count(approver, "tr.pending"); n != 0 {
		t.Errorf("%d changes pending after the rejection", n)
	}

	// The jobs page shows live outputs made with the new parameter version.
	newVersion := fmt.Sprintf(`tr.live[data-job=%q] .version[data-version="1"]`, credit.Name)
	for deadline := time.Now().Add(time.Minute); ; {
		do(operator, "jobs", chromedp.Navigate(d.base+"/jobs"), chromedp.WaitVisible(chromedp.ID("live")))
		if count(operator, newVersion) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no output with parameter version 1 on the jobs page within a minute: %s", text(operator, "#live + table"))
		}
		time.Sleep(time.Second)
	}
	// A failing job's failed count and the reason of its latest dead
	// letter; a lagging consumer's lag; an ok job's lag (its worker keeps up).
	row := func(job string) string { return fmt.Sprintf(`tr.live[data-job=%q]`, job) }
	if n, ok := leadingInt(text(operator, row(failingJob)+" td.failed")); !ok || n < history/10 {
		t.Errorf("the failing job's failed count reads %q, want at least %d", text(operator, row(failingJob)+" td.failed"), history/10)
	}
	if got := text(operator, row(failingJob)+" td.deadletter"); !strings.Contains(got, failingErr) || !strings.HasPrefix(got, "failed") {
		t.Errorf("the failing job's latest dead letter reads %q, want a failed run with %q", got, failingErr)
	}
	if got := text(operator, row(failingJob)+" td.stale"); got != "0" {
		t.Errorf("the failing job's stale count reads %q, want 0", got)
	}
	if n, ok := leadingInt(text(operator, row(laggingJob)+" td.lag")); !ok || n < history {
		t.Errorf("the lagging consumer's lag reads %q, want at least the %d applications of the history", text(operator, row(laggingJob)+" td.lag"), history)
	}
	if _, ok := leadingInt(text(operator, row(credit.Name)+" td.lag")); !ok {
		t.Errorf("the live credit job's lag reads %q, want a number", text(operator, row(credit.Name)+" td.lag"))
	}
	shot(operator, "jobs")

	// A lookup and a selection show what the API answers.
	do(operator, "look up",
		chromedp.Navigate(d.base+"/features?job="+credit.Name),
		chromedp.WaitVisible(chromedp.ID("entity")),
		chromedp.SendKeys(chromedp.ID("entity"), "app-1"),
		chromedp.Submit(chromedp.ID("entity")),
		chromedp.WaitVisible(chromedp.ID("lookup")))
	lookup := text(operator, "#lookup pre")
	code, api, _ := d.get(t, "/v1/features/"+credit.Name+"/app-1", "")
	if code != http.StatusOK || !sameJSON(t, lookup, api) {
		t.Errorf("the lookup shows\n%s\nthe API answers %d\n%s", lookup, code, api)
	}
	shot(operator, "features-lookup")
	// A selection as of the stack's start (the demo's history, all of it
	// processed): the live applications keep coming, but this answer holds.
	at := d.started.Format(time.RFC3339)
	do(operator, "select",
		chromedp.SendKeys(chromedp.ID("where"), "eligible = true or eligible = false"),
		chromedp.SendKeys(chromedp.ID("sel-at"), at),
		chromedp.Submit(chromedp.ID("where")),
		chromedp.WaitVisible(chromedp.ID("selection")))
	sel := text(operator, "#selection pre")
	req, err := http.NewRequest(http.MethodPost, d.base+"/v1/features/"+credit.Name+":select", strings.NewReader(`{"where":"eligible = true or eligible = false","limit":20,"at":"`+at+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	apiSel, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !sameJSON(t, sel, string(apiSel)) {
		t.Errorf("the selection shows\n%s\nthe API answers %s\n%s", sel, resp.Status, apiSel)
	}
	if got := text(operator, "#selection .count"); !strings.HasSuffix(got, "entities match.") || strings.HasPrefix(got, "0 ") {
		t.Errorf("the selection's count reads %q", got)
	}
	shot(operator, "features-selection")

	// The sources page shows the lagging partition.
	do(operator, "sources", chromedp.Navigate(d.base+"/sources"), chromedp.WaitVisible(chromedp.ID("dead-letters")))
	if count(operator, "tr.lagging") == 0 {
		t.Errorf("the sources page marks no partition lagging, want partition %d", lagPartition)
	} else if got := text(operator, "tr.lagging"); !strings.HasPrefix(got, fmt.Sprint(lagPartition)) || !strings.Contains(got, "lagging") {
		t.Errorf("the lagging row reads %q", got)
	}
	// the ingest's lag on each source's topic,
	if got := text(operator, fmt.Sprintf(`section[aria-labelledby="s-%s"] .ingest-lag`, credit.Applications)); !isCount(got) {
		t.Errorf("the ingest's lag on the applications reads %q, want a number of records", got)
	}
	// and the ingest's dead letter of the malformed record, with its reason.
	for deadline := time.Now().Add(30 * time.Second); count(operator, "tr.deadletter") == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter on the sources page within 30 s: %s", text(operator, `section[aria-labelledby="dead-letters"]`))
		}
		time.Sleep(500 * time.Millisecond)
		do(operator, "sources", chromedp.Navigate(d.base+"/sources"), chromedp.WaitVisible(chromedp.ID("dead-letters")))
	}
	if got := text(operator, "tr.deadletter"); !strings.Contains(got, credit.Applications) || !strings.Contains(text(operator, "tr.deadletter td.reason"), malformed+": ") {
		t.Errorf("the dead letter reads %q, want a record of %s with the reason %q", got, credit.Applications, malformed)
	}
	shot(operator, "sources")
	do(operator, "drift", chromedp.Navigate(d.base+"/drift"), chromedp.WaitVisible(chromedp.CSS("figure svg")),
		chromedp.Click(chromedp.CSS(`a[href="/drift?run=correction-1"]`)), chromedp.WaitVisible(chromedp.ID("run")))
	if got := text(operator, "#run ~ p"); got == "" {
		t.Errorf("the run's section is empty")
	}
	// The re-backfills of a run, with their workflows' state.
	do(operator, "drift run 2", chromedp.Navigate(d.base+"/drift?run=correction-2"), chromedp.WaitVisible(chromedp.ID("rebackfills")))
	if got := text(operator, "tr.rebackfill"); !strings.Contains(got, rebackfillID) || !strings.Contains(got, credit.Applications+" (7 keys") ||
		text(operator, "tr.rebackfill td.status") != "running" {
		t.Errorf("the re-backfill of correction-2 reads %q, want %s of %s (7 keys), running", got, rebackfillID, credit.Applications)
	}
	if n := count(operator, "tr.rebackfill"); n != 1 {
		t.Errorf("correction-2 lists %d re-backfills, want 1", n)
	}
	shot(operator, "drift")
}

// leadingInt returns the number s starts with, after an optional "≥ ".
func leadingInt(s string) (int, bool) {
	f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(s), "≥ "))
	if len(f) == 0 {
		return 0, false
	}
	n, err := strconv.Atoi(f[0])
	return n, err == nil
}

// isCount reports whether s reads "<n> record(s)".
func isCount(s string) bool {
	_, ok := leadingInt(s)
	return ok && (strings.HasSuffix(s, " records") || strings.HasSuffix(s, " record"))
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Logf("not JSON: %v", err)
		return false
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Logf("not JSON: %v", err)
		return false
	}
	return reflect.DeepEqual(va, vb)
}
