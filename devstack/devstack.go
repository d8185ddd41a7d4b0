// Package devstack runs the whole system in one process on embedded
// defaults, for `tidemark dev` and for tests of the whole: a Temporal
// server with its Web UI, a Kafka-protocol broker (kfake), the embedded
// event center in a data folder, a local folder as the cold tier, the
// ingest, the HTTP API, the Temporal workers and a live worker of every
// job of the stack (Config.Jobs; by default the example job,
// examples/credit), and a demo scenario that produces the credit example's
// live data.
//
// Every address is fixed and configurable, so that the stock `temporal`
// CLI, a browser and Kafka clients can reach the stack; an address already
// in use fails the start with ErrAddrInUse, naming it.
package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/tidemark-dev/tidemark/api"
	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/console"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/forward"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/internal/devtemporal"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/params/changes"
	"github.com/tidemark-dev/tidemark/params/notify"
	"github.com/tidemark-dev/tidemark/params/paramshttp"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

// ErrAddrInUse: a configured address is taken by another process.
var ErrAddrInUse = errors.New("devstack: address in use")

// Config configures a Stack. Every field has a default.
type Config struct {
	// DataDir holds the event center (eventcenter/), the cold tier
	// (cold/), Temporal's database (temporal.db) and backfill files
	// (backfills/). Default ".tidemark-dev".
	DataDir string
	// TemporalAddr is the Temporal frontend (gRPC). Default "127.0.0.1:7233".
	TemporalAddr string
	// UIAddr is the Temporal Web UI. Default "127.0.0.1:8233"; "off" for none.
	UIAddr string
	// KafkaAddr is the Kafka-protocol broker. Default "127.0.0.1:9092".
	KafkaAddr string
	// APIAddr is tidemark's HTTP API. Default "127.0.0.1:8080".
	APIAddr string
	// TaskQueue of the workers. Default workflows.TaskQueue ("tidemark").
	TaskQueue string
	// Tokens is the token file of the API and the console. Default
	// DataDir/tokens.yaml; if it does not exist, Start creates it with the
	// demo principals dev-admin, dev-operator and dev-approver, whose
	// tokens DevTokens returns (and PrintWhere prints) that once.
	Tokens string
	// HotWindow: tiering (tidemark tier run) moves the events stored more
	// than this ago from the event center into the cold tier. Default
	// tiered's (32 days), which keeps the demo's day hot.
	HotWindow time.Duration
	// EphemeralTemporal keeps Temporal's state in memory. Default false.
	EphemeralTemporal bool
	// Demo runs the demo scenario; nil for none. Default: none (tidemark
	// dev turns it on). Its Brokers and Store are filled in. It produces
	// the credit example's sources, for its job: Start refuses a Demo if
	// no job of the stack is named DemoJob.
	Demo *Demo
	// Jobs, if set, returns the jobs of the stack, given its event center
	// (for their outputs and indexes), having declared their indexes: each
	// runs live (a live worker consuming its trigger sources' topics of
	// DemoSources) and the workers backfill them. It may publish their
	// definitions to the catalog (tidemark dev does); a backfill plan
	// publishes a job of the workers that the catalog lacks. Default: the
	// credit example, writing to the feature store, its indexes declared
	// and its definition published.
	Jobs func(ctx context.Context, store eventcenter.Store) ([]*job.Job, error)
	// Command is how PrintWhere's example runs the binary's CLI. Default
	// "go run ./cmd/tidemark".
	Command string
	// Metrics, if set, receives the metrics of the ingest, the forwarder
	// and the API; TemporalMetrics, those of the Temporal SDK (the stack's
	// client and workers). Default none.
	Metrics         prometheus.Registerer
	TemporalMetrics client.MetricsHandler
	// Logger. Default slog.Default(). Temporal's server logs warnings and
	// errors to TemporalLog (default DataDir/temporal.log).
	Logger      *slog.Logger
	TemporalLog string
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = ".tidemark-dev"
	}
	if c.TemporalAddr == "" {
		c.TemporalAddr = "127.0.0.1:7233"
	}
	if c.UIAddr == "" {
		c.UIAddr = "127.0.0.1:8233"
	}
	if c.KafkaAddr == "" {
		c.KafkaAddr = "127.0.0.1:9092"
	}
	if c.APIAddr == "" {
		c.APIAddr = "127.0.0.1:8080"
	}
	if c.TaskQueue == "" {
		c.TaskQueue = workflows.TaskQueue
	}
	if c.Command == "" {
		c.Command = "go run ./cmd/tidemark"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Stack is the running system.
type Stack struct {
	cfg      Config
	dataDir  string
	store    *tiered.Store
	temporal *devtemporal.Server
	kafka    *kfake.Cluster
	client   client.Client
	worker   worker.Worker
	api      *http.Server
	console  *console.Console
	kcl      *kgo.Client
	notifier *kgo.Client // publishes approved parameter versions
	apiAddr  string
	tokens   *auth.TokenStore
	tokensAt string     // the token file
	created  []DevToken // the demo principals' tokens, if this start made the token file
	jobs     []*job.Job
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	errs     chan error

	mu      sync.Mutex
	stopped bool
}

// Start starts everything and returns once every part answers. Stop it
// with Stop.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	cfg.setDefaults()
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"eventcenter", "cold", "backfills"} {
		if err := os.MkdirAll(filepath.Join(dataDir, d), 0o755); err != nil {
			return nil, err
		}
	}
	// Check the addresses first: one clear error before anything starts.
	for _, p := range []struct{ name, flag, addr string }{
		{"Temporal", "--temporal", cfg.TemporalAddr}, {"Web UI", "--ui", cfg.UIAddr}, {"Kafka", "--kafka", cfg.KafkaAddr}, {"API", "--api", cfg.APIAddr},
	} {
		if p.addr == "off" {
			continue
		}
		l, lerr := net.Listen("tcp", p.addr)
		if lerr != nil {
			return nil, fmt.Errorf("%w: the %s address %s is taken (another tidemark dev, Temporal or Kafka running?); pick another with %s: %v",
				ErrAddrInUse, p.name, p.addr, p.flag, lerr)
		}
		l.Close()
	}

	s := &Stack{cfg: cfg, dataDir: dataDir, errs: make(chan error, 8)}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	// The event center: the embedded store, hot, behind the cold tier in
	// the data folder (tidemark tier run moves what is older than the hot
	// window there). Every reader is in this process: tiering may evict
	// right after it commits a manifest.
	hot, err := embedded.Open(embedded.Config{Dir: filepath.Join(dataDir, "eventcenter")})
	if err != nil {
		return nil, err
	}
	if s.store, err = tiered.New(tiered.Config{Hot: hot, Cold: tiered.Dir(s.ColdDir()), HotWindow: cfg.HotWindow, EvictGrace: tiered.EvictGraceNone}); err != nil {
		hot.Close()
		return nil, err
	}
	jobs := cfg.Jobs
	if jobs == nil {
		jobs = creditJob
	}
	if s.jobs, err = jobs(ctx, s.store); err != nil {
		return nil, err
	}
	if len(s.jobs) == 0 {
		return nil, errors.New("devstack: Config.Jobs returned no job")
	}
	if cfg.Demo != nil && !slices.ContainsFunc(s.jobs, func(j *job.Job) bool { return j.Name() == DemoJob }) {
		return nil, fmt.Errorf("devstack: the demo scenario feeds the job %s, which is not one of the stack's (%s)", DemoJob, strings.Join(s.jobNames(), ", "))
	}

	logFile := cfg.TemporalLog
	if logFile == "" {
		logFile = filepath.Join(dataDir, "temporal.log")
	}
	tcfg := devtemporal.Config{Addr: cfg.TemporalAddr, UIAddr: cfg.UIAddr, SearchAttributes: workers.SearchAttributes(), LogFile: logFile}
	if !cfg.EphemeralTemporal {
		tcfg.DBFile = filepath.Join(dataDir, "temporal.db")
	}
	if s.temporal, err = devtemporal.Start(ctx, tcfg); err != nil {
		return nil, err
	}

	_, kport, err := net.SplitHostPort(cfg.KafkaAddr)
	if err != nil {
		return nil, fmt.Errorf("devstack: Kafka address %q: %w", cfg.KafkaAddr, err)
	}
	var port int
	fmt.Sscan(kport, &port)
	sources := DemoSources()
	// Every topic of the registry exists from the start (ingest and the
	// forwarder ask for their metadata before anything is produced).
	if s.kafka, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3),
		kfake.SeedTopics(3, sources.Topics()...)); err != nil {
		return nil, fmt.Errorf("devstack: Kafka broker on %s: %w", cfg.KafkaAddr, err)
	}
	brokers := s.kafka.ListenAddrs()

	registry := params.NewEventCenter(s.store, nil)
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel

	var ingMetrics *ingest.Metrics
	var fwdMetrics *forward.Metrics
	if cfg.Metrics != nil {
		ingMetrics, fwdMetrics = ingest.NewMetrics(cfg.Metrics), forward.NewMetrics(cfg.Metrics)
	}
	ing, err := ingest.New(ingest.Config{Brokers: brokers, Sources: sources, Store: s.store, Metrics: ingMetrics, Logger: cfg.Logger.With("part", "ingest")})
	if err != nil {
		return nil, err
	}
	s.goRun("ingest", func() error { return ing.Run(runCtx) })

	for _, j := range s.jobs {
		lw, err := live.New(j, live.Config{Brokers: brokers, Sources: sources, Store: s.store, Params: registry,
			Logger: cfg.Logger.With("part", "live", "job", j.Name()), ParamsTopic: notify.DefaultTopic})
		if err != nil {
			return nil, fmt.Errorf("devstack: live worker of %s: %w", j.Name(), err)
		}
		s.goRun("live worker of "+j.Name(), func() error { return lw.Run(runCtx) })
	}

	s.client, err = s.temporal.NewClient(ctx, client.Options{
		Logger: sdklog.NewStructuredLogger(cfg.Logger.With("part", "temporal-client")), MetricsHandler: cfg.TemporalMetrics,
	})
	if err != nil {
		return nil, err
	}
	if s.notifier, err = kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0)); err != nil {
		return nil, err
	}
	pub := notify.NewPublisher(s.notifier, notify.DefaultTopic)
	tokensFile := cfg.Tokens
	if tokensFile == "" {
		tokensFile = filepath.Join(dataDir, "tokens.yaml")
	}
	s.tokensAt = tokensFile
	if s.tokens, s.created, err = openDevTokens(tokensFile); err != nil {
		return nil, err
	}
	// A backfill's runs write, like the live ones, where the jobs write
	// (unless a backfill names another sink).
	s.worker = workers.New(s.client, cfg.TaskQueue, workers.Deps{Store: s.store, Jobs: s.jobs, Params: registry, Sources: sources, NotifyParams: pub.Notify,
		Directory: s.tokens}, worker.Options{})
	if err := s.worker.Start(); err != nil {
		return nil, err
	}
	// The nightly correction's schedule, visible in the UI; paused, since
	// the dev stack has no MySQL server to compare with.
	if _, err := workers.EnsureCorrectionSchedule(ctx, s.client, cfg.TaskQueue, workers.CorrectionScheduleSpec{Hour: 2,
		Paused: true, Note: "the dev stack has no MySQL server: unpause where workers run with --mysql"}, workflows.CorrectionInput{}); err != nil {
		return nil, err
	}

	if cfg.APIAddr != "off" {
		l, err := net.Listen("tcp", cfg.APIAddr)
		if err != nil {
			return nil, fmt.Errorf("%w: API address %s: %v", ErrAddrInUse, cfg.APIAddr, err)
		}
		s.apiAddr = l.Addr().String()
		// The forwarder turns POST /v1/messages/{source} into Kafka records
		// of the registry's http sources, which the ingest stores.
		kcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			return nil, err
		}
		s.kcl = kcl
		fwd, err := forward.New(forward.Config{Sources: sources, Client: kcl, Metrics: fwdMetrics, Logger: cfg.Logger.With("part", "forward")})
		if err != nil {
			return nil, err
		}
		s.goRun("forwarder", func() error { return fwd.Run(runCtx) })
		acfg := api.Config{Store: s.store, Auth: s.tokens, Logger: cfg.Logger.With("part", "api")}
		if cfg.Metrics != nil {
			acfg.Metrics = api.NewMetrics(cfg.Metrics)
		}
		srv, err := api.New(acfg)
		if err != nil {
			return nil, err
		}
		svc := &changes.Service{Temporal: s.client, TaskQueue: cfg.TaskQueue, Store: s.store, Registry: registry}
		var names []string
		for _, src := range sources.Sources {
			names = append(names, src.Name)
		}
		con, err := console.New(console.Config{Store: s.store, Auth: s.tokens, API: srv, Changes: svc, Temporal: s.client, TemporalUI: s.UIURL(),
			Sources: names, Registry: sources, Brokers: brokers, Logger: cfg.Logger.With("part", "console")})
		if err != nil {
			return nil, err
		}
		s.console = con
		s.api = &http.Server{Handler: s.handler(srv, svc, con, fwd.Handler()), ReadHeaderTimeout: 10 * time.Second}
		s.goRun("API", func() error {
			if err := s.api.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}

	if cfg.Demo != nil {
		d := cfg.Demo
		d.Brokers, d.Store = brokers, s.store
		if d.Logger == nil {
			d.Logger = cfg.Logger.With("part", "demo")
		}
		if d.Start.IsZero() {
			d.Start = time.Now()
		}
		// The sample table of the history this start produces (none on a
		// restart: its history is the first start's).
		if _, err := os.Stat(s.SampleTable()); errors.Is(err, os.ErrNotExist) && !d.Seeded(ctx) {
			if err := d.WriteSampleTable(s.SampleTable()); err != nil {
				return nil, fmt.Errorf("dev: demo sample table: %w", err)
			}
		}
		s.goRun("demo", func() error { return d.Run(runCtx) })
	}
	return s, nil
}

// creditJob is the default Config.Jobs: the credit example writing to the
// feature store, its indexes declared and its own definition (without the
// stack's outputs) in the catalog, as `tidemark worker` publishes it.
func creditJob(ctx context.Context, store eventcenter.Store) ([]*job.Job, error) {
	if err := credit.DeclareIndexes(ctx, store); err != nil {
		return nil, err
	}
	base, err := credit.New()
	if err != nil {
		return nil, err
	}
	if _, err := catalog.Publish(ctx, store, base); err != nil {
		return nil, err
	}
	j, err := credit.New(job.Outputs(outputs.FeatureStore(store, "")))
	if err != nil {
		return nil, err
	}
	return []*job.Job{j}, nil
}

// goRun runs a part until the stack stops; its error is reported by Wait.
func (s *Stack) goRun(name string, f func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := f(); err != nil {
			s.cfg.Logger.Error("devstack: part stopped", "part", name, "error", err)
			select {
			case s.errs <- fmt.Errorf("%s: %w", name, err):
			default:
			}
		}
	}()
}

// Wait blocks until ctx ends (returning nil) or a part fails.
func (s *Stack) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.errs:
		return err
	}
}

// Addresses of the parts.
func (s *Stack) TemporalAddr() string { return s.temporal.Addr() }

// UIURL is the Temporal Web UI ("" if off).
func (s *Stack) UIURL() string { return s.temporal.UIURL() }

// KafkaAddr is the broker's address.
func (s *Stack) KafkaAddr() string { return s.kafka.ListenAddrs()[0] }

// APIURL is tidemark's HTTP API ("" if off).
func (s *Stack) APIURL() string {
	if s.apiAddr == "" {
		return ""
	}
	return "http://" + s.apiAddr
}

// DataDir is the absolute data folder; ColdDir the cold tier in it.
func (s *Stack) DataDir() string { return s.dataDir }

// ColdDir is the folder of the cold tier.
func (s *Stack) ColdDir() string { return filepath.Join(s.dataDir, "cold") }

// BackfillDir is where the printed example backfill writes its files.
func (s *Stack) BackfillDir() string { return filepath.Join(s.dataDir, "backfills") }

// SampleTable is the demo's sample table (Demo.WriteSampleTable), in the
// data folder.
func (s *Stack) SampleTable() string { return filepath.Join(s.dataDir, "demo-sample.csv") }

// TaskQueue is the workers' task queue.
func (s *Stack) TaskQueue() string { return s.cfg.TaskQueue }

// Store is the event center.
func (s *Stack) Store() eventcenter.Store { return s.store }

// Client is a Temporal client of the stack's server.
func (s *Stack) Client() client.Client { return s.client }

// Stop stops every part, the workers first, and closes the store.
func (s *Stack) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.mu.Unlock()
	if s.worker != nil {
		s.worker.Stop()
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.api != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.api.Shutdown(ctx)
		cancel()
	}
	if s.console != nil {
		s.console.Close()
	}
	s.wg.Wait()
	if s.client != nil {
		s.client.Close()
	}
	if s.kcl != nil {
		s.kcl.Close()
	}
	if s.notifier != nil {
		s.notifier.Close()
	}
	if s.kafka != nil {
		s.kafka.Close()
	}
	if s.temporal != nil {
		s.temporal.Stop()
	}
	if s.store != nil {
		s.store.Close()
	}
}

// PrintWhere writes where everything is and how to start a backfill.
func (s *Stack) PrintWhere(w io.Writer) {
	// The last day up to now: a backfill refuses a range into the future.
	name := s.jobNames()[0] // the example commands' job
	now := time.Now().UTC()
	from, to := now.Add(-24*time.Hour).Truncate(time.Hour).Format(time.RFC3339), now.Truncate(time.Minute).Format(time.RFC3339)
	fmt.Fprintf(w, "tidemark dev is running (Ctrl-C stops it)\n\n")
	fmt.Fprintf(w, "  Temporal Web UI   %s\n", orOff(s.UIURL()))
	fmt.Fprintf(w, "  Temporal (gRPC)   %s   namespace default, task queue %s\n", s.TemporalAddr(), s.TaskQueue())
	fmt.Fprintf(w, "  Kafka broker      %s\n", s.KafkaAddr())
	fmt.Fprintf(w, "  HTTP API          %s   (GET /v1/status, GET /v1/features/%s/{entity}, POST /v1/messages/%s)\n", orOff(s.APIURL()), name, DemoHTTPSource)
	fmt.Fprintf(w, "  data folder       %s   (event center, Temporal DB, logs)\n", s.DataDir())
	fmt.Fprintf(w, "  cold tier         %s\n", s.ColdDir())
	fmt.Fprintf(w, "  console           %s   (sign in with a token of %s)\n", orOff(s.APIURL()), s.tokensAt)
	fmt.Fprintf(w, "  live workers      %s\n", strings.Join(s.jobNames(), ", "))
	if s.cfg.Demo != nil {
		fmt.Fprintf(w, "  demo              credit applications at %.0f/s for job %s\n", s.cfg.Demo.Rate, DemoJob)
	}
	if len(s.created) > 0 {
		fmt.Fprintf(w, "\nDemo tokens (printed this once; `tidemark token create --tokens %s` makes more):\n\n", s.tokensAt)
		for _, t := range s.created {
			fmt.Fprintf(w, "  %-13s %-9s %s\n", t.Principal, t.Role, t.Token)
		}
	}
	fmt.Fprintf(w, "\nStart a backfill of the last day with our CLI (progress bar until done):\n\n")
	fmt.Fprintf(w, "  %s backfill start --address %s --job %s --from %s --to %s --chunk 1h --sink file://%s\n",
		s.cfg.Command, s.TemporalAddr(), name, from, to, s.BackfillDir())
	if _, err := os.Stat(s.SampleTable()); err == nil {
		fmt.Fprintf(w, "\nBuild a training set from the demo's sample table (a row per application, its features beside its label):\n\n")
		fmt.Fprintf(w, "  %s backfill start --address %s --job %s --sample %s --sink file://%s --format parquet\n",
			s.cfg.Command, s.TemporalAddr(), name, s.SampleTable(), s.BackfillDir())
	}
	fmt.Fprintf(w, "\nor the backfill of the last day with the stock temporal CLI (then watch it in the Web UI):\n\n")
	fmt.Fprintf(w, "  temporal workflow start --address %s --task-queue %s --type %s --workflow-id backfill-demo \\\n    --input '{\"job\":\"%s\",\"from\":\"%s\",\"to\":\"%s\",\"chunk\":\"1h\",\"sink\":\"file://%s\"}'\n\n",
		s.TemporalAddr(), s.TaskQueue(), workflows.BackfillWorkflow, name, from, to, s.BackfillDir())
}

// DevToken is a demo principal's token.
type DevToken struct {
	Principal string
	Role      auth.Role
	Token     string
}

// DevTokens returns the demo principals' tokens if this start created the
// token file; nil otherwise (the file keeps hashes only).
func (s *Stack) DevTokens() []DevToken { return s.created }

// openDevTokens opens the token file at path; if it does not exist, it
// creates it with the demo principals and returns their tokens.
func openDevTokens(path string) (*auth.TokenStore, []DevToken, error) {
	_, statErr := os.Stat(path)
	ts, err := auth.OpenTokenStore(path)
	if err != nil || !errors.Is(statErr, os.ErrNotExist) {
		return ts, nil, err
	}
	var created []DevToken
	for _, p := range []struct {
		id   string
		role auth.Role
	}{{"dev-admin", auth.RoleAdmin}, {"dev-operator", auth.RoleOperator}, {"dev-approver", auth.RoleApprover}} {
		tok, _, err := ts.Create(auth.Principal{ID: p.id, Grants: []auth.Grant{{Role: p.role}}})
		if err != nil {
			return nil, nil, err
		}
		created = append(created, DevToken{Principal: p.id, Role: p.role, Token: tok})
	}
	return ts, created, nil
}

func orOff(s string) string {
	if s == "" {
		return "off"
	}
	return s
}

// handler is the HTTP API: health, status, the API server (package api:
// features, selections, the catalog; no calls, which need the callable
// jobs' Kafka results), parameter changes behind the token file, the
// console at /, and the forwarder.
func (s *Stack) handler(srv *api.Server, svc *changes.Service, con *console.Console, forwarder http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"temporal": s.TemporalAddr(), "ui": s.UIURL(), "kafka": s.KafkaAddr(), "data": s.DataDir(), "cold": s.ColdDir(),
			"taskQueue": s.TaskQueue(), "jobs": s.jobNames(),
		})
	})
	srv.Mount(mux)
	paramshttp.MountAuthenticated(mux, svc, s.tokens)
	con.Mount(mux)
	mux.Handle("POST /v1/messages/{source}", forwarder)
	return mux
}

func (s *Stack) jobNames() []string {
	var names []string
	for _, j := range s.jobs {
		names = append(names, j.Name())
	}
	sort.Strings(names)
	return names
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
