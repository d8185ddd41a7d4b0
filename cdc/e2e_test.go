package cdc_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/cdc"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/source"
)

// buildTidemark builds cmd/tidemark once per test binary.
var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// TestMain removes the binary buildTidemark built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

func buildTidemark(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tidemark-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "tidemark")
		cmd := osexec.Command("go", "build", "-o", binary, "github.com/tidemark-dev/tidemark/cmd/tidemark")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/tidemark: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// proc is a tidemark subprocess that the test kills and restarts.
type proc struct {
	t     *testing.T
	name  string
	args  []string
	log   *os.File
	cmd   *osexec.Cmd
	kills int
}

func (p *proc) start() {
	p.t.Helper()
	cmd := osexec.Command(binary, p.args...)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd = cmd
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	p.kills++
	fmt.Fprintf(p.log, "\n=== test: SIGKILL %s (kill %d) ===\n\n", p.name, p.kills)
}

// stop ends the process with SIGTERM and fails the test if it exits badly.
func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			p.t.Errorf("%s exited: %v (log %s)", p.name, err, p.log.Name())
		}
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		p.t.Errorf("%s did not stop on SIGTERM (log %s)", p.name, p.log.Name())
	}
}

// scrape returns the samples of a metric family from a /metrics endpoint.
func scrape(addr, name string) (map[string]float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, err
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// TestEndToEndKill runs a mixed workload of at least 100k row changes over
// three tables of the real MariaDB through `tidemark cdc` → Kafka →
// `tidemark ingest` → the embedded event center, SIGKILLing the CDC and the
// ingest processes several times during the load. Afterwards the event
// center's as-of state of every row equals the table, and it holds exactly
// one event per row change: none lost, none duplicated.
//
// TIDEMARK_E2E_CHANGES sets the row changes (default 100000),
// TIDEMARK_E2E_KILLS the kills of each process (default 3).
func TestEndToEndKill(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	mcfg, db, dbName := testDB(t)
	brokers := testenv.KafkaBrokers(t)
	target := int64(100000)
	if v, err := strconv.ParseInt(os.Getenv("TIDEMARK_E2E_CHANGES"), 10, 64); err == nil {
		target = v
	}
	kills := 3
	if v, err := strconv.Atoi(os.Getenv("TIDEMARK_E2E_KILLS")); err == nil {
		kills = v
	}
	for _, ddl := range workloadTables {
		exec(t, db, ddl)
	}
	bin := buildTidemark(t)
	_ = bin
	tmp := t.TempDir()
	topic := "e2e." + dbName
	reg := fmt.Sprintf(`
sources:
  - name: mysql.%s.{table}
    kind: mysql
    topic: %s
    mysql: {database: %s, table: "*"}
    indexes: [{column: user_id}]
`, dbName, topic, dbName)
	regFile := filepath.Join(tmp, "sources.yaml")
	if err := os.WriteFile(regFile, []byte(reg), 0o644); err != nil {
		t.Fatal(err)
	}
	kcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	ctx := context.Background()
	if err := source.EnsureTopics(ctx, kcl, 4, topic); err != nil {
		t.Fatal(err)
	}
	if err := source.EnsureTopics(ctx, kcl, 1, source.DefaultProgressTopic, "tidemark.deadletter"); err != nil {
		t.Fatal(err)
	}

	logf := func(name string) *os.File {
		f, err := os.Create(filepath.Join(tmp, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			f.Close()
			if t.Failed() {
				b, _ := os.ReadFile(f.Name())
				if len(b) > 8000 {
					b = b[len(b)-8000:]
				}
				t.Logf("--- tail of %s:\n%s", name, b)
			}
		})
		return f
	}
	metricsAddr := testenv.FreeAddr(t)
	common := []string{"-sources", regFile, "-brokers", strings.Join(brokers, ","), "-log-level", "info"}
	cdcProc := &proc{t: t, name: "cdc", log: logf("cdc"), args: append([]string{"cdc",
		"-mysql", mcfg.Addr, "-mysql-user", mcfg.User, "-mysql-password", mcfg.Password, "-flavor", mcfg.Flavor,
		"-server-id", "4242", "-checkpoint", filepath.Join(tmp, "cdc"), "-start", "current"}, common...)}
	ingestProc := &proc{t: t, name: "ingest", log: logf("ingest"), args: append([]string{"ingest",
		"-store", filepath.Join(tmp, "store"), "-group", "e2e-" + dbName, "-instance-id", "e2e-1",
		"-metrics", metricsAddr}, common...)}
	cdcProc.start()
	waitFor(t, "the first checkpoint", 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(tmp, "cdc", "checkpoint.json"))
		return err == nil
	})
	ingestProc.start()

	// The load, and the kills while it runs.
	start := time.Now()
	w := newWorkload(db, 8, target)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		w.run(ctx, t)
	}()
	for i := 0; cdcProc.kills < kills || ingestProc.kills < kills; i++ {
		time.Sleep(time.Duration(1500+300*(i%4)) * time.Millisecond)
		p := cdcProc
		if i%2 == 1 {
			p = ingestProc
		}
		p.kill()
		time.Sleep(300 * time.Millisecond)
		p.start()
	}
	<-loadDone
	loadTime := time.Since(start)
	total := w.done.Load()
	t.Logf("workload: %d row changes in %v (%v), cdc killed %d times, ingest %d times", total, loadTime.Round(time.Millisecond), w.changes, cdcProc.kills, ingestProc.kills)

	// Wait until ingest has stored everything Kafka holds: the CDC's
	// checkpoint reached the end of the binlog, then no lag for a while.
	var binlogEnd string
	if err := db.QueryRow("SELECT CONCAT(@@GLOBAL.gtid_binlog_pos)").Scan(&binlogEnd); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the CDC to catch up", 3*time.Minute, func() bool {
		b, _ := os.ReadFile(filepath.Join(tmp, "cdc", "checkpoint.json"))
		return strings.Contains(string(b), binlogEnd) || gtidReached(string(b), binlogEnd)
	})
	zeroSince := time.Time{}
	waitFor(t, "ingest to catch up", 3*time.Minute, func() bool {
		lag, err := scrape(metricsAddr, "tidemark_ingest_lag_records")
		if err != nil || len(lag) == 0 {
			zeroSince = time.Time{}
			return false
		}
		for _, v := range lag {
			if v != 0 {
				zeroSince = time.Time{}
				return false
			}
		}
		if zeroSince.IsZero() {
			zeroSince = time.Now()
		}
		return time.Since(zeroSince) > 3*time.Second
	})
	caughtUp := time.Since(start)
	// The watermark delay is exported per source, and small: the CDC's
	// progress reports move the watermarks once the load is stored.
	waitFor(t, "small watermark delays", 30*time.Second, func() bool {
		delay, err := scrape(metricsAddr, "tidemark_ingest_watermark_delay_seconds{")
		if err != nil || len(delay) != len(workloadNames) {
			return false
		}
		for _, d := range delay {
			if d > 10 {
				return false
			}
		}
		return true
	})
	ingestProc.stop()
	cdcProc.stop()
	t.Logf("everything stored %v after the load started", caughtUp.Round(time.Millisecond))

	st, err := embedded.Open(embedded.Config{Dir: filepath.Join(tmp, "store")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Now().Add(time.Hour)
	var stored int64
	for _, table := range workloadNames {
		src := fmt.Sprintf("mysql.%s.%s", dbName, table)
		rows := verifyTable(t, db, st, src, dbName, table, at)
		n := int64(countEvents(t, st, src))
		stored += n
		if n != w.changes[table] {
			t.Errorf("%s: %d events stored, %d row changes committed", table, n, w.changes[table])
		}
		wm, err := st.Watermark(ctx, src)
		if err != nil || !wm.After(start.Add(-time.Minute)) {
			t.Errorf("%s: watermark %v (%v) did not follow the load", table, wm, err)
		}
		t.Logf("%s: %d rows equal, %d events = %d row changes, watermark %v", table, rows, n, w.changes[table], wm.Format(time.RFC3339))
	}
	if stored != total {
		t.Errorf("%d events stored, %d row changes", stored, total)
	}
	if total < target {
		t.Errorf("only %d row changes, want %d", total, target)
	}
}

// gtidReached reports whether the checkpoint's GTID set covers want
// (single-domain MariaDB GTIDs "d-s-n").
func gtidReached(checkpoint, want string) bool {
	i := strings.Index(checkpoint, `"gtid": "`)
	if i < 0 {
		return false
	}
	got := checkpoint[i+9:]
	got = got[:strings.IndexByte(got, '"')]
	seq := func(g string) (string, int64) {
		j := strings.LastIndexByte(g, '-')
		if j < 0 {
			return g, -1
		}
		n, _ := strconv.ParseInt(g[j+1:], 10, 64)
		return g[:j], n
	}
	gd, gn := seq(got)
	wd, wn := seq(want)
	return gd == wd && gn >= wn
}

// TestEndToEndCommitOrder: changes are stored in the order their
// transactions committed, and an as-of read before a commit does not see
// the transaction. The real MariaDB, `cdc` and `ingest` over the real
// Kafka, the embedded event center:
//
//	conn1: BEGIN; DELETE … id=X; DO SLEEP(1.5); INSERT (X, k=1); COMMIT
//	conn2, 0.4 s after conn1 began: UPDATE … SET k=k+1000 WHERE id=X
//
// conn2's statement starts before conn1's INSERT but waits for conn1's row
// lock and commits after it: MySQL ends with k=1001, and so must the event
// center (a rows event's own time, its statement's start, orders the
// UPDATE first and leaves k=1).
func TestEndToEndCommitOrder(t *testing.T) {
	mcfg, db, dbName := testDB(t)
	brokers := testenv.KafkaBrokers(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	exec(t, db, "CREATE TABLE counters (id INT NOT NULL PRIMARY KEY, k INT NOT NULL, note VARCHAR(32) NULL)")
	topic := "e2e-order." + dbName
	src := "mysql." + dbName + ".counters"
	reg, err := source.Parse([]byte(fmt.Sprintf(`
sources:
  - name: %s
    kind: mysql
    topic: %s
    mysql: {database: %s, table: counters}
`, src, topic, dbName)))
	if err != nil {
		t.Fatal(err)
	}
	kcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	if err := source.EnsureTopics(ctx, kcl, 2, topic); err != nil {
		t.Fatal(err)
	}
	if err := source.EnsureTopics(ctx, kcl, 1, source.DefaultProgressTopic, "tidemark.deadletter"); err != nil {
		t.Fatal(err)
	}
	st, err := embedded.Open(embedded.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dir := t.TempDir()
	c, err := cdc.New(cdc.Config{Addr: mcfg.Addr, User: mcfg.User, Password: mcfg.Password, Flavor: mcfg.Flavor,
		Sources: reg, Brokers: brokers, Dir: dir, ProgressInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	in, err := ingest.New(ingest.Config{Brokers: brokers, Sources: reg, Store: st, Group: "e2e-order-" + dbName, MarkInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			t.Errorf("cdc: %v", err)
		}
	})
	wg.Go(func() {
		if err := in.Run(ctx); err != nil {
			t.Errorf("ingest: %v", err)
		}
	})
	waitFor(t, "the checkpoint", 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "checkpoint.json"))
		return err == nil
	})

	const x = 19001
	exec(t, db, "INSERT INTO counters VALUES (?, 0, 'before')", x)
	waitFor(t, "the row before the test", 30*time.Second, func() bool { return countEvents(t, st, src) == 1 })

	conn1, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn1.Close()
	conn2, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	conn := func(cn *sql.Conn, q string, args ...any) error {
		_, err := cn.ExecContext(ctx, q, args...)
		if err != nil {
			err = fmt.Errorf("%s: %w", q, err)
		}
		return err
	}
	began := time.Now()
	if err := errors.Join(conn(conn1, "BEGIN"), conn(conn1, "DELETE FROM counters WHERE id = ?", x)); err != nil {
		t.Fatal(err)
	}
	updated := make(chan error, 1)
	go func() {
		time.Sleep(400 * time.Millisecond)
		updated <- conn(conn2, "UPDATE counters SET k = k + 1000 WHERE id = ?", x)
	}()
	if err := errors.Join(conn(conn1, "DO SLEEP(1.5)"), conn(conn1, "INSERT INTO counters VALUES (?, 1, 'reinserted')", x), conn(conn1, "COMMIT")); err != nil {
		t.Fatal(err)
	}
	if err := <-updated; err != nil {
		t.Fatal(err)
	}
	var k int
	if err := db.QueryRow("SELECT k FROM counters WHERE id = ?", x).Scan(&k); err != nil || k != 1001 {
		t.Fatalf("MySQL has k=%d (%v), want 1001: the UPDATE did not wait for the transaction", k, err)
	}
	waitFor(t, "the test's changes", 30*time.Second, func() bool { return countEvents(t, st, src) == 4 })

	// (a) The latest state is MySQL's: the UPDATE committed last.
	verifyTable(t, db, st, src, dbName, "counters", time.Now().Add(time.Hour))
	hist, err := st.History(ctx, eventcenter.HistoryQuery{Source: src, Key: strconv.Itoa(x), From: time.Unix(0, 0), To: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, e := range hist {
		ops = append(ops, fmt.Sprintf("%s@%s", e.Op, e.Time.Format("15:04:05.000000")))
	}
	t.Logf("history of %d: %v", x, ops)
	if len(hist) != 4 || hist[1].Op != eventcenter.OpDelete || hist[2].Op != eventcenter.OpInsert || hist[3].Op != eventcenter.OpUpdate {
		t.Errorf("history of %d: %v, want insert, delete, insert, update", x, ops)
	}

	// (b) An as-of between the DELETE's start and the commit sees the row
	// as it was before the transaction.
	var commit time.Time // of the reinsertion, committed with the DELETE
	for _, e := range hist {
		if e.After["note"] == "reinserted" && e.Op == eventcenter.OpInsert {
			commit = e.Time
		}
	}
	asOf := commit.Add(-time.Nanosecond)
	if !asOf.After(began) {
		t.Fatalf("the transaction's commit time %v is not after its start %v", commit, began)
	}
	ev, err := st.AsOf(ctx, eventcenter.AsOf{Source: src, Key: strconv.Itoa(x), Time: asOf})
	if err != nil || ev.After["k"] != int64(0) || ev.After["note"] != "before" {
		t.Errorf("as of %v (after the DELETE began at %v, before its commit): %v %v, want the row before the transaction",
			asOf.Format("15:04:05.000000"), began.Format("15:04:05.000000"), ev.After, err)
	}
	if len(hist) == 4 && !hist[1].Time.Equal(commit) {
		t.Errorf("the DELETE is stamped %v, its transaction committed at %v", hist[1].Time, commit)
	}
}
