package topology_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	_ "github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/tidemark-dev/tidemark/app/config"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/hbase"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/forward"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/workflows"
)

// The scenario's size: users, and applications per round (three rounds).
const (
	users     = 6
	perRound  = 4
	rounds    = 3
	totalApps = perRound * rounds
)

// TestProductionTopology deploys tidemark as in production, every part its
// own OS process, on the harness's real services:
//
//	MariaDB  → tidemark cdc     → Kafka      (applications, orders)
//	RabbitMQ → tidemark forward → Kafka      (repayments)
//	HTTP     ↗                               (profiles: POST /v1/messages/…)
//	Kafka → 2 × tidemark ingest → HBase
//	Kafka → 2 × tidemark live --job credit-features → HBase feature store, RabbitMQ
//	temporal server start-dev ← 2 × tidemark worker → S3 (the backfill's sink)
//
// all configured by one configuration file. It drives the example job's
// scenario (examples/credit) through MySQL writes, RabbitMQ messages and
// HTTP calls, SIGKILLs one process of each pair mid-run and starts it
// again, then starts a backfill of the same range with the stock
// `temporal workflow start` (its summary read back with the Go SDK), its
// records to S3. Every application's record is then present
// exactly once in the feature store, on the RabbitMQ queue and among the
// backfill's S3 objects, and the backfill's records equal the live ones.
//
// The job's four sources keep their names (the job fetches them by name);
// the registry maps them to this test's tables, queue, HTTP source and
// topics: repayments arrive as RabbitMQ messages, profiles as HTTP calls
// keyed by user id (Message-Id), applications and orders from the binlog.
func TestProductionTopology(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	mcfg := testenv.MySQL(t)
	brokers := testenv.KafkaBrokers(t)
	amqpURL := testenv.AMQPURL(t)
	zk := testenv.HBaseZK(t)
	s3cfg := testenv.S3(t)
	temporalBin := temporalCLI(t)
	ctx := t.Context()
	tmp := t.TempDir()
	bin := build(t, tmp)

	// Unique names: database, topics, queues, HBase namespace, S3 prefix.
	id := randomID(t)
	dbName := mcfg.DB + "_topo_" + id
	ns := "topo_" + id
	prefix := "topology/" + id
	topic := func(s string) string { return "topo." + id + "." + s }
	repayQueue, featQueue := topic("repayments"), topic("features")
	exchange := "tidemark.topo." + id
	taskQueue := "topo-" + id
	db := createDB(t, mcfg, dbName)
	mustExec(t, db, `CREATE TABLE applications (id INT PRIMARY KEY, user_id VARCHAR(16) NOT NULL,
		amount DECIMAL(12,2) NOT NULL, term_months INT NOT NULL, created_at DATETIME(6) NOT NULL)`)
	mustExec(t, db, `CREATE TABLE orders (id INT PRIMARY KEY, user_id VARCHAR(16) NOT NULL,
		principal DECIMAL(12,2) NOT NULL, outstanding DECIMAL(12,2) NOT NULL, status VARCHAR(8) NOT NULL)`)

	regFile := filepath.Join(tmp, "sources.yaml")
	writeFile(t, regFile, fmt.Sprintf(`sources:
  - name: %s
    kind: mysql
    topic: %s
    mysql: {database: %s, table: applications}
  - name: %s
    kind: mysql
    topic: %s
    mysql: {database: %s, table: orders}
    indexes: [{column: user_id}]
  - name: %s
    kind: rabbitmq
    topic: %s
    rabbitmq: {queue: %s}
    indexes: [{column: user_id}]
  - name: %s
    kind: http
    topic: %s
`, credit.Applications, topic("applications"), dbName, credit.Orders, topic("orders"), dbName,
		credit.Repayments, topic("repayments"), repayQueue, credit.Profiles, topic("profiles")))
	kcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	if err := source.EnsureTopics(ctx, kcl, 2, topic("applications"), topic("orders"), topic("repayments"), topic("profiles")); err != nil {
		t.Fatal(err)
	}
	if err := source.EnsureTopics(ctx, kcl, 1, source.DefaultProgressTopic, topic("deadletter")); err != nil {
		t.Fatal(err)
	}
	rmq := rabbitMQ(t, amqpURL, repayQueue, featQueue, exchange)

	temporalAddr, httpAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	_, temporalPort, _ := net.SplitHostPort(temporalAddr)
	cfgFile := filepath.Join(tmp, "tidemark.yaml")
	writeFile(t, cfgFile, fmt.Sprintf(`store: hbase://%s/%s
sources: %s
kafka: {brokers: [%s]}
temporal: {address: %q, namespace: default}
s3: {endpoint: %q, region: %q, accessKey: %q, secretKey: %q, bucket: %q}
amqp: {url: %q}
topics: {deadLetter: %s}
`, zk, ns, regFile, strings.Join(brokers, ", "), temporalAddr, s3cfg.Endpoint, s3cfg.Region, s3cfg.AccessKey,
		s3cfg.SecretKey, s3cfg.Bucket, amqpURL, topic("deadletter")))
	conf := []string{"--config", cfgFile, "--log-level", "info"}

	// The HBase namespace, made small (its default 16 regions per table
	// are slow to create on one node), dropped at the end. Its retention is
	// the default (forever, until the cold tier moves old events out).
	run(t, 2*time.Minute, bin, "hbase", "init", "--config", cfgFile, "--regions", "2", "--buckets", "4")
	hcfg := hbase.Config{ZooKeeper: zk, Namespace: ns}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := hbase.DropNamespace(ctx, hcfg); err != nil {
			t.Logf("dropping HBase namespace %s: %v", ns, err)
		}
	})
	st, err := hbase.Open(ctx, hcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cleanS3(t, s3cfg, prefix)

	// Every part its own process.
	temporal := newProc(t, tmp, "temporal", temporalBin, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
		"--port", temporalPort, "--db-filename", filepath.Join(tmp, "temporal.db"))
	cdcProc := newProc(t, tmp, "cdc", bin, append([]string{"cdc", "--mysql", mcfg.Addr, "--mysql-user", mcfg.User,
		"--mysql-password", mcfg.Password, "--flavor", mcfg.Flavor, "--checkpoint", filepath.Join(tmp, "cdc"),
		"--start", "current"}, conf...)...)
	forwardProc := newProc(t, tmp, "forward", bin, append([]string{"forward", "--http", httpAddr}, conf...)...)
	var ingests, lives, workers [2]*proc
	for i := range 2 {
		n := strconv.Itoa(i + 1)
		ingests[i] = newProc(t, tmp, "ingest-"+n, bin, append([]string{"ingest", "--group", "topo-" + id + "-ingest",
			"--instance-id", "ingest-" + n}, conf...)...)
		lives[i] = newProc(t, tmp, "live-"+n, bin, append([]string{"live", "--job", credit.Name, "--group", "topo-" + id + "-live",
			"--exchange", exchange, "--level", "fetch-strong", "--wait-timeout", "2m"}, conf...)...)
		workers[i] = newProc(t, tmp, "worker-"+n, bin, append([]string{"worker", "--task-queue", taskQueue}, conf...)...)
	}
	all := []*proc{temporal, cdcProc, forwardProc, ingests[0], ingests[1], lives[0], lives[1], workers[0], workers[1]}
	// alive fails the test at once when a process has exited by itself.
	alive := func() {
		t.Helper()
		for _, p := range all {
			if p.cmd != nil && !p.running() {
				t.Fatalf("%s exited: %v", p.name, p.err)
			}
		}
	}
	started := time.Now()
	temporal.start()
	cdcProc.start()
	forwardProc.start()
	for i := range 2 {
		ingests[i].start()
		lives[i].start()
	}
	waitFor(t, "the Temporal server", time.Minute, func() bool {
		cmd := osexec.CommandContext(ctx, temporalBin, "operator", "cluster", "health", "--address", temporalAddr)
		out, err := cmd.Output()
		return err == nil && bytes.Contains(out, []byte("SERVING"))
	})
	for i := range 2 {
		workers[i].start()
	}
	waitFor(t, "the CDC's first checkpoint", time.Minute, func() bool {
		_, err := os.Stat(filepath.Join(tmp, "cdc", "checkpoint.json"))
		return err == nil
	})
	waitFor(t, "the HTTP endpoint", time.Minute, func() bool {
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})

	// The applicants' history: profiles over HTTP, orders in MySQL,
	// repayments over RabbitMQ. All stored before the first application.
	sc := &scenario{t: t, db: db, st: st, rmq: rmq, httpAddr: httpAddr, repayQueue: repayQueue, alive: alive}
	for u := 1; u <= users; u++ {
		sc.profile(u, 2+u%2)
		sc.order(u)
		sc.repayment(u, 10*time.Duration(u)*24*time.Hour, u%3 == 0)
	}
	sc.order(1)
	sc.order(2)
	sc.repayment(1, 200*24*time.Hour, true) // outside the 90-day window
	sc.waitStored()
	t.Logf("history stored %v after the start", time.Since(started).Round(time.Millisecond))

	// The live processes are up once they declared the job's indexes.
	parallel(func() { lives[0].waitLogged("msg=live ", 2*time.Minute) }, func() { lives[1].waitLogged("msg=live ", 2*time.Minute) })

	// Three rounds of applications, each followed by changes of the
	// history (which their runs must not see), with one kill per round:
	// ingest, then live, then worker, SIGKILLed while the round's runs
	// are under way, started again with the round's changes in flight.
	from := time.Now().Add(-time.Second).Truncate(time.Second)
	for r := range rounds {
		for k := range perRound {
			sc.application(r*perRound + k + 1)
		}
		victim := []*proc{ingests[0], lives[0], workers[0]}[r]
		time.Sleep(200 * time.Millisecond)
		victim.kill()
		sc.closeOrder(r + 1)
		sc.order(r + 4)
		sc.repayment(r+2, 0, false)
		sc.profile(r+1, 4)
		time.Sleep(time.Second)
		victim.start()
		sc.waitStored()
	}
	to := time.Now().Add(time.Second).Truncate(time.Second).Add(time.Second)
	t.Logf("scenario written: %d applications, %d orders, %d repayments, %d profile calls", totalApps, sc.orders, sc.repayments, sc.profiles)

	// Live: every application has exactly one record in the feature store.
	feat := job.FeatureSource(credit.Name)
	live := map[string]job.Record{}
	waitFor(t, "every application's features", 3*time.Minute, func() bool {
		alive()
		for a := 1; a <= totalApps; a++ {
			key := strconv.Itoa(a)
			if _, ok := live[key]; ok {
				continue
			}
			e, err := st.AsOf(ctx, eventcenter.AsOf{Source: feat, Key: key, Time: to})
			if err != nil {
				return false
			}
			live[key] = job.RecordFromEvent(credit.Name, &e)
		}
		return true
	})
	t.Logf("all live records stored %v after the start", time.Since(started).Round(time.Millisecond))
	var stored int
	for e, err := range st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{feat}, From: from.Add(-time.Hour), To: to.Add(time.Hour)}) {
		if err != nil {
			t.Fatal(err)
		}
		stored++
		if e.Time.Before(from) || !e.Time.Before(to) {
			t.Errorf("feature event %s at %v outside the scenario's [%v, %v)", e.Key, e.Time, from, to)
		}
	}
	if stored != totalApps {
		t.Errorf("the feature store holds %d feature events, want %d (one per application)", stored, totalApps)
	}
	checkFeatures(t, live)

	// Live: every application's record exactly once on the RabbitMQ queue,
	// equal to the feature store's.
	msgs := drain(t, rmq, featQueue, totalApps)
	seen := map[string]int{}
	for _, m := range msgs {
		var r job.Record
		if err := json.Unmarshal(m.Body, &r); err != nil {
			t.Fatalf("RabbitMQ message %s: %v", m.MessageId, err)
		}
		seen[r.Entity]++
		if want, ok := live[r.Entity]; !ok || !sameRecord(r, want) || m.MessageId != want.ID {
			t.Errorf("RabbitMQ message %s (application %s): %+v, want the feature store's %+v", m.MessageId, r.Entity, r, want)
		}
	}
	for a := 1; a <= totalApps; a++ {
		if n := seen[strconv.Itoa(a)]; n != 1 {
			t.Errorf("application %d: %d RabbitMQ messages, want 1", a, n)
		}
	}

	// The backfill of the same range, started with the stock CLI, its
	// records to S3.
	parallel(func() { workers[0].waitLogged("msg=worker ", 2*time.Minute) }, func() { workers[1].waitLogged("msg=worker ", 2*time.Minute) })
	wfID := "topology-" + id
	input, err := json.Marshal(map[string]any{
		"job": credit.Name, "from": from, "to": to, "chunk": "5s", "parallelism": 4,
		"sink": "s3://" + s3cfg.Bucket + "/" + prefix, "watermark": "wait", "watermarkTimeout": "2m",
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, time.Minute, temporalBin, "workflow", "start", "--address", temporalAddr, "--task-queue", taskQueue,
		"--type", "Backfill", "--workflow-id", wfID, "--input", string(input))
	tc, err := client.Dial(client.Options{HostPort: temporalAddr, Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var sum workflows.Summary
	if err := tc.GetWorkflow(wctx, wfID, "").Get(wctx, &sum); err != nil || sum.Outputs != totalApps || sum.Errors != 0 {
		t.Fatalf("backfill %s: %+v %v", wfID, sum, err)
	}
	t.Logf("backfill done %v after the start: %d chunks, %d events, %d records written, %d resumed",
		time.Since(started).Round(time.Millisecond), sum.Chunks, sum.Events, sum.Written, sum.Resumed)

	// The backfill's records: each application once among the S3 objects,
	// each equal to the live record.
	back := readS3Records(t, s3cfg, prefix+"/"+wfID+"/"+credit.Name+"/")
	count := map[string]int{}
	for _, r := range back {
		count[r.Entity]++
		if want, ok := live[r.Entity]; !ok || !sameRecord(r, want) {
			t.Errorf("backfill record of application %s: %+v\nlive: %+v", r.Entity, r, want)
		}
	}
	for a := 1; a <= totalApps; a++ {
		if n := count[strconv.Itoa(a)]; n != 1 {
			t.Errorf("application %d: %d backfill records in S3, want 1", a, n)
		}
	}

	// Every process ends cleanly on SIGTERM, the Temporal server last.
	for i := len(all) - 1; i >= 0; i-- {
		all[i].stop()
	}
	t.Logf("kills: ingest-1 %d, live-1 %d, worker-1 %d; total %v", ingests[0].kills, lives[0].kills, workers[0].kills,
		time.Since(started).Round(time.Millisecond))
}

// scenario writes the example's inputs through the three entry points and
// remembers what it wrote, so waitStored can wait for all of it in HBase.
type scenario struct {
	t          *testing.T
	db         *sql.DB
	st         eventcenter.Store
	rmq        *amqp.Channel
	httpAddr   string
	repayQueue string
	alive      func() // fails the test if a process exited

	orders, repayments, profiles int
	pending                      []eventcenter.AsOf // written, maybe not stored yet
}

// profile posts user u's profile to the HTTP forwarder (message id: the
// user id, the key the job reads it by).
func (s *scenario) profile(u, kyc int) {
	s.t.Helper()
	body := fmt.Sprintf(`{"age": %d, "monthly_income": {"$d": "%d.00"}, "kyc_level": %d}`, 25+u, 1500+500*u, kyc)
	req, err := http.NewRequest(http.MethodPost, "http://"+s.httpAddr+"/v1/messages/"+credit.Profiles, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(forward.HeaderMessageID, user(u))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	var acc forward.Accepted
	err = json.NewDecoder(resp.Body).Decode(&acc)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("POST profile of %s: %s %v", user(u), resp.Status, err)
	}
	s.profiles++
	s.pending = append(s.pending, eventcenter.AsOf{Source: credit.Profiles, Key: user(u), Time: acc.Time})
}

// order inserts an open order of user u.
func (s *scenario) order(u int) {
	s.t.Helper()
	s.orders++
	s.pending = append(s.pending, eventcenter.AsOf{Source: credit.Orders, Key: strconv.Itoa(s.orders), Time: time.Now()})
	mustExec(s.t, s.db, "INSERT INTO orders VALUES (?, ?, ?, ?, 'open')", s.orders, user(u), 1000*u, 700*u)
}

// closeOrder closes order id.
func (s *scenario) closeOrder(id int) {
	s.t.Helper()
	s.pending = append(s.pending, eventcenter.AsOf{Source: credit.Orders, Key: strconv.Itoa(id), Time: time.Now()})
	mustExec(s.t, s.db, "UPDATE orders SET status = 'closed', outstanding = 0 WHERE id = ?", id)
}

// repayment publishes a repayment of user u, paid ago before now, on the
// forwarded RabbitMQ queue.
func (s *scenario) repayment(u int, ago time.Duration, late bool) {
	s.t.Helper()
	s.repayments++
	id := fmt.Sprintf("rep-%d", s.repayments)
	s.pending = append(s.pending, eventcenter.AsOf{Source: credit.Repayments, Key: id, Time: time.Now()})
	body := fmt.Sprintf(`{"user_id": %q, "order_id": %d, "amount": {"$d": "%d.50"}, "late": %t, "paid_at": {"$t": %q}}`,
		user(u), u, 100*u, late, time.Now().Add(-ago).UTC().Format(time.RFC3339Nano))
	err := s.rmq.PublishWithContext(s.t.Context(), "", s.repayQueue, true, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Body: []byte(body)})
	if err != nil {
		s.t.Fatal(err)
	}
}

// application inserts application id.
func (s *scenario) application(id int) {
	s.t.Helper()
	mustExec(s.t, s.db, "INSERT INTO applications VALUES (?, ?, ?, 12, NOW(6))", id, user((id-1)%users+1), 2000*id)
}

// waitStored waits until every change written so far is in the event
// center: each pending key has an event at or after its write (Time: when
// it was written, give or take a second).
func (s *scenario) waitStored() {
	s.t.Helper()
	waitFor(s.t, fmt.Sprintf("%d changes to be stored", len(s.pending)), 2*time.Minute, func() bool {
		s.alive()
		for len(s.pending) > 0 {
			q := s.pending[0]
			evs, err := s.st.History(s.t.Context(), eventcenter.HistoryQuery{Source: q.Source, Key: q.Key,
				From: q.Time.Add(-time.Second), To: time.Now().Add(time.Hour)})
			if err != nil || len(evs) == 0 {
				return false
			}
			s.pending = s.pending[1:]
		}
		return true
	})
}

func user(u int) string { return "u" + strconv.Itoa(u) }

// checkFeatures makes sure the scenario exercised every entry point: each
// record saw its applicant's profile (HTTP), some saw open orders (MySQL)
// and some repayments (RabbitMQ).
func checkFeatures(t *testing.T, recs map[string]job.Record) {
	t.Helper()
	var orders, repaid bool
	for k, r := range recs {
		if age, _ := r.Features["age"].(int64); age == 0 {
			t.Errorf("application %s: no profile seen: %v", k, r.Features)
		}
		if n, _ := r.Features["open_orders"].(int64); n > 0 {
			orders = true
		}
		if n, _ := r.Features["repayments_90d"].(int64); n > 0 {
			repaid = true
		}
	}
	if !orders || !repaid {
		t.Errorf("no record saw open orders (%v) or repayments (%v): the scenario did not reach the job", orders, repaid)
	}
}

// sameRecord compares records by identity, versions and features (the
// latter by their JSON form: JSON numbers come back as float64).
func sameRecord(a, b job.Record) bool {
	return a.ID == b.ID && a.Job == b.Job && a.JobVersion == b.JobVersion && a.ParamVersion == b.ParamVersion &&
		a.Entity == b.Entity && a.Trigger.Time.Equal(b.Trigger.Time) && a.Trigger.Source == b.Trigger.Source &&
		a.Trigger.Key == b.Trigger.Key && jsonEqual(a.Features, b.Features)
}

func jsonEqual(a, b eventcenter.Row) bool {
	var x, y any
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil || json.Unmarshal(ja, &x) != nil || json.Unmarshal(jb, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// temporalCLI finds the stock CLI: $TIDEMARK_TEMPORAL_CLI (scripts/tools
// prints it) or `temporal` on PATH. Without it the test is skipped, or
// fails under CI=true.
func temporalCLI(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("TIDEMARK_TEMPORAL_CLI"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("TIDEMARK_TEMPORAL_CLI: %v", err)
		}
		return p
	}
	if p, err := osexec.LookPath("temporal"); err == nil {
		return p
	}
	msg := "the temporal CLI is not installed: run `eval \"$(scripts/tools)\"` (it sets TIDEMARK_TEMPORAL_CLI)"
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI must run the production topology: %s", msg)
	}
	t.Skip(msg)
	return ""
}

func randomID(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// createDB creates database name (dropped at the end) and returns a
// connection to it in UTC.
func createDB(t *testing.T, cfg testenv.MySQLConfig, name string) *sql.DB {
	t.Helper()
	root, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/", cfg.User, cfg.Password, cfg.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	mustExec(t, root, "CREATE DATABASE "+name)
	db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s?time_zone=%%27%%2B00%%3A00%%27", cfg.User, cfg.Password, cfg.Addr, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Exec("DROP DATABASE " + name)
		db.Close()
	})
	return db
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// rabbitMQ declares the forwarded queue and the live output's exchange
// with a queue bound to it, all deleted at the end, and returns a channel.
func rabbitMQ(t *testing.T, url, repayQueue, featQueue, exchange string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ch.QueueDelete(repayQueue, false, false, false)
		ch.QueueDelete(featQueue, false, false, false)
		ch.ExchangeDelete(exchange, false, false)
		conn.Close()
	})
	for _, q := range []string{repayQueue, featQueue} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	// As the live output declares it: topic, durable; routing key the job.
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(featQueue, credit.Name, exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	return ch
}

// drain gets every message of queue: at least want of them, then until the
// queue has stayed empty for 3 seconds (so a duplicate arriving late is
// counted too).
func drain(t *testing.T, ch *amqp.Channel, queue string, want int) []amqp.Delivery {
	t.Helper()
	var msgs []amqp.Delivery
	deadline := time.Now().Add(time.Minute)
	var emptySince time.Time
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			msgs, emptySince = append(msgs, d), time.Time{}
			continue
		}
		if emptySince.IsZero() {
			emptySince = time.Now()
		}
		if len(msgs) >= want && time.Since(emptySince) > 3*time.Second {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages on %s after a minute, want %d", len(msgs), queue, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func s3Client(t *testing.T, c testenv.S3Config) *s3.Client {
	t.Helper()
	cl, err := config.S3{Endpoint: c.Endpoint, Region: c.Region, AccessKey: c.AccessKey, SecretKey: c.SecretKey, Bucket: c.Bucket}.S3Client(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// cleanS3 deletes the objects under prefix at the end of the test.
func cleanS3(t *testing.T, c testenv.S3Config, prefix string) {
	cl := s3Client(t, c)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, o := range listS3(t, ctx, cl, c.Bucket, prefix+"/") {
			cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(c.Bucket), Key: o.Key})
		}
	})
}

func listS3(t *testing.T, ctx context.Context, cl *s3.Client, bucket, prefix string) []s3types.Object {
	t.Helper()
	var out []s3types.Object
	p := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Errorf("list s3://%s/%s: %v", bucket, prefix, err)
			return out
		}
		out = append(out, page.Contents...)
	}
	return out
}

// readS3Records reads the JSON Lines records of the backfill's objects
// under dir, after checking that it is marked done (_SUCCESS).
func readS3Records(t *testing.T, c testenv.S3Config, dir string) []job.Record {
	t.Helper()
	ctx := t.Context()
	cl := s3Client(t, c)
	var recs []job.Record
	var success bool
	objs := listS3(t, ctx, cl, c.Bucket, dir)
	for _, o := range objs {
		name := strings.TrimPrefix(*o.Key, dir)
		if name == "_SUCCESS" {
			success = true
		}
		if !strings.HasSuffix(name, ".jsonl") {
			continue
		}
		obj, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.Bucket), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(obj.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r job.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: %v", *o.Key, err)
			}
			recs = append(recs, r)
		}
		obj.Body.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if !success {
		keys := make([]string, len(objs))
		for i, o := range objs {
			keys[i] = *o.Key
		}
		t.Errorf("s3://%s/%s has no _SUCCESS: %v", c.Bucket, dir, keys)
	}
	return recs
}
