package workers_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/correction"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/eventcenter/hbase"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

// TestCorrectionWorkflow runs the Correction workflow on a real Temporal
// server against the real MariaDB: a table with a composite key whose
// event center holds a wrong row, a row MySQL no longer has and nothing of
// the rest; the workflow's ledger names the drift by kind, the event center
// is corrected, the progress query reports the run done, and a second run
// writes nothing. The table is planned a chunk at a time and the run
// continues as new after 2 chunks, so the first run ends continued as new
// and the second finishes its work. With TIDEMARK_UPDATE_HISTORIES=1 it
// writes the histories of the replay test (workflows/testdata/
// correction_can_first.json and correction.json, the last run).
func TestCorrectionWorkflow(t *testing.T) {
	ctx := context.Background()
	db, dbName := scratchDatabase(t, "corrwf",
		"CREATE TABLE %s.pairs (tenant VARCHAR(8) NOT NULL, seq INT NOT NULL, v VARCHAR(8), PRIMARY KEY (tenant, seq))")
	for i := range 25 {
		if _, err := db.ExecContext(ctx, "INSERT INTO "+dbName+".pairs VALUES (?, ?, 'ok')", []string{"a", "b"}[i%2], i); err != nil {
			t.Fatal(err)
		}
	}
	reg, err := source.Parse([]byte(fmt.Sprintf("sources:\n  - {name: 'mysql.wf.{table}', kind: mysql, mysql: {database: %s, table: '*'}}\n", dbName)))
	if err != nil {
		t.Fatal(err)
	}
	src := "mysql.wf.pairs"
	st := openStore(t, "")
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	pos := eventcenter.Position{Log: 1, Offset: 1 << 16}
	if err := st.Append(ctx, []eventcenter.Event{
		{Source: src, Key: `"a","0"`, Time: past, Pos: pos, Op: eventcenter.OpInsert, After: eventcenter.Row{"tenant": "a", "seq": int64(0), "v": "bad"}},
		{Source: src, Key: `"z","1"`, Time: past, Pos: pos, Op: eventcenter.OpInsert, After: eventcenter.Row{"tenant": "z", "seq": int64(1), "v": "gone"}},
	}); err != nil {
		t.Fatal(err)
	}
	// No CDC runs here: the source's watermark is set past every snapshot.
	if err := st.AdvanceWatermark(ctx, src, 0, time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}

	srv := server(t, false)
	c := dial(t, srv)
	queue := "correction"
	archive := t.TempDir()
	startWorker(t, c, queue, workers.Deps{Store: st, Correction: &activities.Correction{DB: db, Store: st, Sources: reg,
		Options: correction.Options{Archive: outputs.Dir(archive)}}})

	in := workflows.CorrectionInput{ChunkRows: 10, KeyChunk: 5, Parallelism: 2, PageChunks: 1, MaxChunksPerRun: 2}
	wf, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "correction-1", TaskQueue: queue}, workflows.CorrectionWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	firstRun := wf.GetRunID() // Get moves it to the last run
	var sum workflows.CorrectionSummary
	if err := wf.Get(ctx, &sum); err != nil { // follows continue-as-new
		t.Fatal(err)
	}
	first, err := c.DescribeWorkflowExecution(ctx, "correction-1", firstRun)
	if err != nil {
		t.Fatal(err)
	}
	if st := first.WorkflowExecutionInfo.Status; st != enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
		t.Errorf("the first run ended %v, want continued as new", st)
	}
	if len(sum.Entries) != 1 {
		t.Fatalf("entries %+v", sum.Entries)
	}
	e := sum.Entries[0]
	if e.Skipped != "" || e.Compared != 26 || e.Missing != 24 || e.Extra != 1 || e.Different != 1 || e.Corrections != 26 || e.Chunks != 4 ||
		e.Columns["v"] != 1 || len(e.Keys[correction.KindExtra]) != 1 || e.Keys[correction.KindExtra][0] != `"z","1"` {
		t.Errorf("entry %+v", e)
	}
	// Every chunk archived, dated the run's start, across both runs.
	folder := "snapshots/" + src + "/" + e.Started.UTC().Format("2006-01-02/150405.000000") + "/"
	if e.Archived != 4 || len(e.Objects) != 4 || e.ArchiveFolder() != folder {
		t.Errorf("archive: %d objects (%d listed) in %q, want 4 in %q", e.Archived, len(e.Objects), e.ArchiveFolder(), folder)
	}
	for _, o := range e.Objects {
		if _, err := os.Stat(filepath.Join(archive, o)); err != nil {
			t.Errorf("archive object: %v", err)
		}
	}
	v, err := c.QueryWorkflow(ctx, "correction-1", "", workflows.ProgressQuery)
	if err != nil {
		t.Fatal(err)
	}
	var p workflows.CorrectionProgress
	if err := v.Get(&p); err != nil {
		t.Fatal(err)
	}
	if p.State != "done" || p.Percent != 100 || p.Compared != 26 || p.Corrections != 26 {
		t.Errorf("progress %+v", p)
	}
	ledger, err := correction.ReadLedger(ctx, st, correction.LedgerQuery{Run: "correction-1"})
	if err != nil || len(ledger) != 1 || ledger[0].Missing != 24 {
		t.Errorf("ledger %+v (%v)", ledger, err)
	}
	if os.Getenv("TIDEMARK_UPDATE_HISTORIES") == "1" {
		writeRunHistory(t, c, "correction-1", firstRun, "correction_can_first.json")
		writeHistory(t, c, "correction-1", "correction.json", nil)
	}
	again := runCorrection(t, c, "correction-2", queue, in)
	if e := again.Entries[0]; e.Corrections != 0 || e.Drifted() != 0 {
		t.Errorf("second run: %+v", e)
	}
}

func runCorrection(t *testing.T, c client.Client, id, queue string, in workflows.CorrectionInput) workflows.CorrectionSummary {
	t.Helper()
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: queue}, workflows.CorrectionWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	var sum workflows.CorrectionSummary
	if err := run.Get(context.Background(), &sum); err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestCorrectionSchedule creates the nightly schedule twice (the second
// time with another hour and zone): one schedule, updated, overlap skip.
func TestCorrectionSchedule(t *testing.T) {
	ctx := context.Background()
	srv := server(t, false)
	c := dial(t, srv)
	for i, tc := range []struct {
		hour int
		zone string
	}{{2, "UTC"}, {3, "Europe/Berlin"}} {
		created, err := workers.EnsureCorrectionSchedule(ctx, c, "tidemark", workers.CorrectionScheduleSpec{Hour: tc.hour, Zone: tc.zone}, workflows.CorrectionInput{})
		if err != nil {
			t.Fatal(err)
		}
		if created != (i == 0) {
			t.Errorf("run %d: created %v", i, created)
		}
		d, err := c.ScheduleClient().GetHandle(ctx, workflows.CorrectionSchedule).Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s := d.Schedule
		if s.Policy.Overlap != enumspb.SCHEDULE_OVERLAP_POLICY_SKIP || s.Spec.TimeZoneName != tc.zone ||
			len(s.Spec.Calendars) != 1 || s.Spec.Calendars[0].Hour[0].Start != tc.hour {
			t.Errorf("run %d: schedule %+v, policy %+v", i, s.Spec, s.Policy)
		}
	}
}

// TestCorrectionSurvivesWorkerCrash runs a correction whose worker is a
// process of its own, SIGKILLed while it writes corrections (between two
// batches of a chunk, when the test catches it there); a worker in this
// process takes the chunk over. The event center, HBase shared by both,
// ends with exactly one correction per drifted key — none twice, none
// missing — and MySQL's rows.
func TestCorrectionSurvivesWorkerCrash(t *testing.T) {
	if os.Getenv("TIDEMARK_HELPER_CORRECTION") != "" {
		t.Skip("helper process")
	}
	ctx := context.Background()
	hcfg := hbase.Config{ZooKeeper: testenv.HBaseZK(t), Namespace: "tidemark_corrkill_" + randomHex(), Regions: 1}
	db, dbName := scratchDatabase(t, "corrkill", "CREATE TABLE %s.t (id INT PRIMARY KEY, v VARCHAR(16))")
	const n = 4000
	var q strings.Builder
	q.WriteString("INSERT INTO " + dbName + ".t VALUES ")
	for i := range n {
		if i > 0 {
			q.WriteByte(',')
		}
		fmt.Fprintf(&q, "(%d, 'v%d')", i, i)
	}
	if _, err := db.ExecContext(ctx, q.String()); err != nil {
		t.Fatal(err)
	}
	st, err := hbase.Open(ctx, hcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.Close()
		hbase.DropNamespace(context.Background(), hcfg)
	})
	src := "mysql.kill.t"
	if err := st.AdvanceWatermark(ctx, src, 0, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	regFile := filepath.Join(t.TempDir(), "sources.yaml")
	if err := os.WriteFile(regFile, []byte(fmt.Sprintf("sources:\n  - {name: 'mysql.kill.{table}', kind: mysql, mysql: {database: %s, table: '*'}}\n", dbName)), 0o644); err != nil {
		t.Fatal(err)
	}
	reg, err := source.Load(regFile)
	if err != nil {
		t.Fatal(err)
	}

	srv := server(t, false)
	c := dial(t, srv)
	queue := "correction-kill"
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCorrectionWorker$", "-test.v")
	cmd.Env = append(os.Environ(), "TIDEMARK_HELPER_CORRECTION=1", "TIDEMARK_HELPER_ADDR="+srv.Addr(), "TIDEMARK_HELPER_QUEUE="+queue,
		"TIDEMARK_HELPER_NAMESPACE="+hcfg.Namespace, "TIDEMARK_HELPER_SOURCES="+regFile)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in := workflows.CorrectionInput{ChunkRows: 2000, Parallelism: 1, HeartbeatTimeout: workflows.Duration(3 * time.Second)}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "correction-kill", TaskQueue: queue}, workflows.CorrectionWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	count := func() int {
		m := 0
		for ev, err := range st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{src}, From: eventcenter.MinTime, To: eventcenter.AllTime.To}) {
			if err != nil {
				t.Fatal(err)
			}
			if ev.Op == eventcenter.OpCorrection {
				m++
			}
		}
		return m
	}
	deadline := time.Now().Add(2 * time.Minute)
	seen := 0
	for seen = count(); seen == 0; seen = count() {
		if time.Now().After(deadline) {
			t.Fatal("the helper worker wrote no correction")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if seen < n {
		t.Logf("killed the worker after it stored %d of %d corrections", seen, n)
	} else {
		t.Logf("the worker had stored every correction when it was killed: the takeover did not resume a chunk")
	}
	startWorker(t, c, queue, workers.Deps{Store: st, Correction: &activities.Correction{DB: db, Store: st, Sources: reg}})
	var sum workflows.CorrectionSummary
	if err := run.Get(ctx, &sum); err != nil {
		t.Fatal(err)
	}
	perKey := map[string]int{}
	for ev, err := range st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{src}, From: eventcenter.MinTime, To: eventcenter.AllTime.To}) {
		if err != nil {
			t.Fatal(err)
		}
		perKey[ev.Key]++
		if want := fmt.Sprintf("v%s", ev.Key); ev.Op != eventcenter.OpCorrection || ev.After["v"] != want {
			t.Errorf("key %s: %v %v, want a correction to %s", ev.Key, ev.Op, ev.After, want)
		}
	}
	if len(perKey) != n {
		t.Errorf("%d keys corrected, want %d", len(perKey), n)
	}
	for k, m := range perKey {
		if m != 1 {
			t.Errorf("key %s corrected %d times", k, m)
		}
	}
	t.Logf("ledger: %+v", sum.Entries[0].Drift)
	if e := sum.Entries[0]; e.Missing != n || e.Corrections != n {
		t.Errorf("the ledger counts %d missing, %d corrections, want %d (the dead attempt's are resumed from its heartbeat)", e.Missing, e.Corrections, n)
	}
}

// TestHelperCorrectionWorker is the killed worker of
// TestCorrectionSurvivesWorkerCrash, run as a process of its own.
func TestHelperCorrectionWorker(t *testing.T) {
	if os.Getenv("TIDEMARK_HELPER_CORRECTION") == "" {
		t.Skip("run by TestCorrectionSurvivesWorkerCrash")
	}
	ctx := context.Background()
	cfg := testenv.MySQL(t)
	db, err := correction.Open(cfg.Addr, cfg.User, cfg.Password)
	if err != nil {
		t.Fatal(err)
	}
	st, err := hbase.Open(ctx, hbase.Config{ZooKeeper: testenv.HBaseZK(t), Namespace: os.Getenv("TIDEMARK_HELPER_NAMESPACE"), Regions: 1})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := source.Load(os.Getenv("TIDEMARK_HELPER_SOURCES"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Options{HostPort: os.Getenv("TIDEMARK_HELPER_ADDR"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	w := workers.New(c, os.Getenv("TIDEMARK_HELPER_QUEUE"), workers.Deps{Store: st, Correction: &activities.Correction{DB: db, Store: st, Sources: reg}}, worker.Options{})
	if err := w.Run(worker.InterruptCh()); err != nil {
		t.Fatal(err)
	}
}

// scratchDatabase creates a database of its own on the harness's MariaDB,
// named after prefix, runs stmts in it (each names it as %s), and drops it
// when the test ends.
func scratchDatabase(t *testing.T, prefix string, stmts ...string) (*sql.DB, string) {
	t.Helper()
	cfg := testenv.MySQL(t)
	name := cfg.DB + "_" + prefix + "_" + randomHex()
	db, err := correction.Open(cfg.Addr, cfg.User, cfg.Password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec("DROP DATABASE " + name) }) // before the Close: cleanups run last first
	for _, q := range stmts {
		if _, err := db.Exec(fmt.Sprintf(q, name)); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return db, name
}

func randomHex() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// appendGate is an event center whose first Append of a correction waits
// until released, signalling writing first.
type appendGate struct {
	*embedded.Store
	once    sync.Once
	writing chan struct{}
	release chan struct{}
}

func (s *appendGate) Append(ctx context.Context, evs []eventcenter.Event) error {
	for _, e := range evs {
		if e.Op == eventcenter.OpCorrection {
			s.once.Do(func() { close(s.writing); <-s.release })
			break
		}
	}
	return s.Store.Append(ctx, evs)
}

// TestCorrectionResumePointBeforeFirstWrite: when a chunk writes its first
// correction, its resume point is on the server, although the chunk waited
// for the watermark past its first heartbeat (from which the SDK would hold
// a later heartbeat back for 0.8 × the heartbeat timeout): a worker killed
// during the write leaves its retry the point to resume at.
func TestCorrectionResumePointBeforeFirstWrite(t *testing.T) {
	ctx := context.Background()
	db, dbName := scratchDatabase(t, "corrhb", "CREATE TABLE %s.t (id INT PRIMARY KEY, v VARCHAR(16))")
	if _, err := db.ExecContext(ctx, "INSERT INTO "+dbName+".t VALUES (1, 'v1'), (2, 'v2')"); err != nil {
		t.Fatal(err)
	}
	reg, err := source.Parse(fmt.Appendf(nil, "sources:\n  - {name: 'mysql.hb.{table}', kind: mysql, mysql: {database: %s, table: '*'}}\n", dbName))
	if err != nil {
		t.Fatal(err)
	}
	const src = "mysql.hb.t"
	st := &appendGate{Store: openStore(t, ""), writing: make(chan struct{}), release: make(chan struct{})}
	defer close(st.release)
	if err := st.AdvanceWatermark(ctx, src, 0, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	srv := server(t, false)
	c := dial(t, srv)
	queue := "correction-resume-point"
	startWorker(t, c, queue, workers.Deps{Store: st, Correction: &activities.Correction{DB: db, Store: st, Sources: reg}})
	in := workflows.CorrectionInput{Parallelism: 1, NoRebackfill: true, HeartbeatTimeout: workflows.Duration(6 * time.Second)}
	if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "correction-resume-point", TaskQueue: queue}, workflows.CorrectionWorkflow, in); err != nil {
		t.Fatal(err)
	}
	// The CDC's watermark passes the chunk's snapshot after the chunk's
	// first heartbeat (a third of the heartbeat timeout in).
	time.AfterFunc(3*time.Second, func() { st.AdvanceWatermark(ctx, src, 0, time.Now().Add(time.Hour)) })
	select {
	case <-st.writing:
	case <-time.After(time.Minute):
		t.Fatal("no correction written")
	}
	d, err := c.DescribeWorkflowExecution(ctx, "correction-resume-point", "")
	if err != nil {
		t.Fatal(err)
	}
	var p correction.Point
	for _, pa := range d.PendingActivities {
		if pa.ActivityType.GetName() == "CorrectionChunk" && len(pa.HeartbeatDetails.GetPayloads()) > 0 {
			if err := converter.GetDefaultDataConverter().FromPayloads(pa.HeartbeatDetails, &p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if p.File == "" {
		t.Errorf("the chunk's first correction is being written and the server holds no resume point (pending: %+v)", d.PendingActivities)
	}
}
