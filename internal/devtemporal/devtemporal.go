// Package devtemporal runs a Temporal server inside the current process, with
// its Web UI, for `tidemark dev` and for tests that need a real Temporal.
//
// It is the same server as production Temporal (go.temporal.io/server) on
// SQLite persistence, one history shard, every service in this process. The
// frontend listens on a fixed, configurable address so that the stock
// `temporal` CLI and the Web UI can reach it; the other services use free
// ports on the loopback interface. The namespace is created at start, with
// the custom search attributes the caller asks for.
package devtemporal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"

	"github.com/tidemark-dev/tidemark/internal/freeport"
)

// Config configures a Server. Every field has a default.
type Config struct {
	// Addr is the frontend's gRPC address, where SDK clients, workers and
	// the `temporal` CLI connect. Default "127.0.0.1:7233". Port 0 picks a
	// free port (see Server.Addr).
	Addr string
	// UIAddr is the Web UI's HTTP address; its HTTP API is under /api/v1.
	// Default "127.0.0.1:8233". "off" runs no UI. Port 0 picks a free port.
	UIAddr string
	// DBFile is the SQLite file of the server's state; it is created with
	// its schema if absent. Default "": in memory, lost at Stop.
	DBFile string
	// Namespace is created at start (if absent). Default "default".
	Namespace string
	// SearchAttributes are custom search attributes registered in the
	// namespace (at most 10 Keyword, 3 Int, 3 Double… per SQLite's
	// pre-allocated columns). Default none.
	SearchAttributes map[string]enumspb.IndexedValueType
	// LogLevel of the server's own log: "debug", "info", "warn", "error".
	// Default "warn".
	LogLevel string
	// LogFile receives the server's log. Default "": standard error.
	LogFile string
	// StartTimeout bounds the wait for the frontend and the UI to answer.
	// Default 2 minutes (a loaded machine starts the server slowly).
	StartTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:7233"
	}
	if c.UIAddr == "" {
		c.UIAddr = "127.0.0.1:8233"
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if c.LogLevel == "" {
		c.LogLevel = "warn"
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 2 * time.Minute
	}
}

// Validate reports a Config that cannot start a server.
func (c *Config) Validate() error {
	if _, _, err := splitAddr(c.Addr); err != nil {
		return fmt.Errorf("devtemporal: Addr: %w", err)
	}
	if c.UIAddr != "off" {
		if _, _, err := splitAddr(c.UIAddr); err != nil {
			return fmt.Errorf("devtemporal: UIAddr: %w", err)
		}
	}
	if c.StartTimeout < 0 {
		return fmt.Errorf("devtemporal: StartTimeout %v is negative", c.StartTimeout)
	}
	return nil
}

// ErrAddrInUse: a configured address is taken by another process.
var ErrAddrInUse = errors.New("devtemporal: address in use")

// Server is a running Temporal server (and UI).
type Server struct {
	cfg    Config
	addr   string // frontend host:port
	uiAddr string // "" without UI
	srv    temporal.Server
	ui     *uiserver.Server
}

// Start starts the server and returns once the frontend answers and the
// namespace is usable (and the UI answers, if any).
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	host, port, err := reserve(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("devtemporal: frontend: %w", err)
	}
	s := &Server{cfg: cfg, addr: net.JoinHostPort(host, strconv.Itoa(port))}
	uiHost, uiPort := "", 0
	if cfg.UIAddr != "off" {
		if uiHost, uiPort, err = reserve(cfg.UIAddr); err != nil {
			return nil, fmt.Errorf("devtemporal: UI: %w", err)
		}
		s.uiAddr = net.JoinHostPort(uiHost, strconv.Itoa(uiPort))
	}

	logger, err := newLogger(cfg)
	if err != nil {
		return nil, err
	}
	conf, err := s.serverConfig(host, port)
	if err != nil {
		return nil, err
	}
	if err := prepareDB(conf, cfg); err != nil {
		return nil, err
	}
	hosts := map[primitives.ServiceName]static.Hosts{}
	for _, name := range []primitives.ServiceName{primitives.FrontendService, primitives.HistoryService, primitives.MatchingService, primitives.WorkerService} {
		hosts[name] = static.SingleLocalHost(net.JoinHostPort(host, strconv.Itoa(conf.Services[string(name)].RPC.GRPCPort)))
	}
	authorizer, err := authorization.GetAuthorizerFromConfig(&conf.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("devtemporal: authorizer: %w", err)
	}
	claims, err := authorization.GetClaimMapperFromConfig(&conf.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("devtemporal: claim mapper: %w", err)
	}
	s.srv, err = temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claims }),
		temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			// Search attributes added at run time are usable at once.
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): true,
			// The UI and progress polls list workflows often.
			dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
			dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8192,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("devtemporal: new server: %w", err)
	}
	if err := s.srv.Start(); err != nil {
		return nil, fmt.Errorf("devtemporal: start: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if err := s.waitFrontend(ctx); err != nil {
		s.srv.Stop()
		return nil, err
	}
	if s.uiAddr != "" {
		if err := s.startUI(ctx, uiHost, uiPort); err != nil {
			s.srv.Stop()
			return nil, err
		}
	}
	return s, nil
}

// Addr returns the frontend's gRPC address (host:port).
func (s *Server) Addr() string { return s.addr }

// UIURL returns the Web UI's base URL, e.g. "http://127.0.0.1:8233", or ""
// when the UI is off. Its HTTP API lists workflows at
// UIURL()+"/api/v1/namespaces/{namespace}/workflows".
func (s *Server) UIURL() string {
	if s.uiAddr == "" {
		return ""
	}
	return "http://" + s.uiAddr
}

// Namespace returns the namespace created at start.
func (s *Server) Namespace() string { return s.cfg.Namespace }

// NewClient dials the server; opts.HostPort and an empty opts.Namespace
// are filled in. The caller closes the client.
func (s *Server) NewClient(ctx context.Context, opts client.Options) (client.Client, error) {
	opts.HostPort = s.addr
	if opts.Namespace == "" {
		opts.Namespace = s.cfg.Namespace
	}
	return client.DialContext(ctx, opts)
}

// Stop stops the UI and the server. The server's in-memory state is lost;
// a DBFile keeps it for the next Start.
func (s *Server) Stop() error {
	if s.ui != nil {
		s.ui.Stop()
	}
	return s.srv.Stop()
}

// serverConfig builds the static configuration of a one-process cluster.
func (s *Server) serverConfig(host string, port int) (*config.Config, error) {
	var conf config.Config
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = host
	conf.Persistence.DefaultStore = "sqlite"
	conf.Persistence.VisibilityStore = "sqlite"
	conf.Persistence.NumHistoryShards = 1
	sql := config.SQL{PluginName: sqliteplugin.PluginName, ConnectAttributes: map[string]string{}}
	if s.cfg.DBFile == "" {
		// A shared-cache in-memory database, named uniquely so that two
		// servers in one process (tests) do not share it.
		sql.ConnectAttributes["mode"] = "memory"
		sql.ConnectAttributes["cache"] = "shared"
		sql.DatabaseName = "tidemark-" + strconv.FormatUint(rand.Uint64(), 36)
	} else {
		sql.ConnectAttributes["mode"] = "rwc"
		sql.DatabaseName = s.cfg.DBFile
	}
	conf.Persistence.DataStores = map[string]config.DataStore{"sqlite": {SQL: &sql}}

	httpPort, err := freePort(host)
	if err != nil {
		return nil, err
	}
	conf.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        "active",
		CurrentClusterName:       "active",
		ClusterInformation: map[string]cluster.ClusterInformation{
			"active": {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             s.addr,
				HTTPAddress:            net.JoinHostPort(host, strconv.Itoa(httpPort)),
			},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Services = map[string]config.Service{}
	for _, name := range []string{"frontend", "history", "matching", "worker"} {
		svc := config.Service{RPC: config.RPC{BindOnIP: host}}
		if name == "frontend" {
			svc.RPC.GRPCPort, svc.RPC.HTTPPort = port, httpPort
		} else if svc.RPC.GRPCPort, err = freePort(host); err != nil {
			return nil, err
		}
		conf.Services[name] = svc
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = s.addr
	return &conf, nil
}

// prepareDB creates the schema of a new database file and the namespace.
func prepareDB(conf *config.Config, cfg Config) error {
	sql := conf.Persistence.DataStores["sqlite"].SQL
	if cfg.DBFile != "" {
		if _, err := os.Stat(cfg.DBFile); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(cfg.DBFile), 0o755); err != nil {
				return fmt.Errorf("devtemporal: %w", err)
			}
			if err := sqliteschema.SetupSchema(sql); err != nil {
				return fmt.Errorf("devtemporal: schema of %s: %w", cfg.DBFile, err)
			}
		} else if err != nil {
			return fmt.Errorf("devtemporal: %w", err)
		}
	}
	ns, err := sqliteschema.NewNamespaceConfig("active", cfg.Namespace, false, cfg.SearchAttributes)
	if err != nil {
		return fmt.Errorf("devtemporal: namespace %q: %w", cfg.Namespace, err)
	}
	if err := sqliteschema.CreateNamespaces(sql, ns); err != nil {
		return fmt.Errorf("devtemporal: namespace %q: %w", cfg.Namespace, err)
	}
	return nil
}

// waitFrontend waits until the namespace can be described, then registers
// search attributes the namespace lacks (a database file created by an
// earlier version may miss newer ones).
func (s *Server) waitFrontend(ctx context.Context) error {
	var last error
	for {
		c, err := s.NewClient(ctx, client.Options{Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
		if err == nil {
			_, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.cfg.Namespace})
			if err == nil {
				err = addSearchAttributes(ctx, c, s.cfg.Namespace, s.cfg.SearchAttributes)
			}
			c.Close()
			if err == nil {
				return nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("devtemporal: frontend %s did not answer: %w (last: %v)", s.addr, ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// addSearchAttributes registers the attributes of want that the namespace
// does not have.
func addSearchAttributes(ctx context.Context, c client.Client, namespace string, want map[string]enumspb.IndexedValueType) error {
	if len(want) == 0 {
		return nil
	}
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return err
	}
	missing := maps.Clone(want)
	for name := range have.GetCustomAttributes() {
		delete(missing, name)
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	return err
}

func (s *Server) startUI(ctx context.Context, host string, port int) error {
	s.ui = uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
		Host:                host,
		Port:                port,
		TemporalGRPCAddress: s.addr,
		EnableUI:            true,
		DefaultNamespace:    s.cfg.Namespace,
		CORS:                uiconfig.CORS{CookieInsecure: true},
		HideLogs:            true,
	}))
	// Start blocks while serving. It exits the process if it cannot listen
	// (the UI server's own behaviour), which reserve makes unlikely.
	go s.ui.Start()
	var last error
	for {
		resp, err := http.Get(s.UIURL() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("devtemporal: UI %s did not answer: %w (last: %v)", s.UIURL(), ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// reserve resolves addr, picking a free port for port 0 (see freeport),
// and fails with ErrAddrInUse if another process listens there.
func reserve(addr string) (string, int, error) {
	host, port, err := splitAddr(addr)
	if err != nil {
		return "", 0, err
	}
	if port == 0 {
		port, err = freePort(host)
		return host, port, err
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return "", 0, fmt.Errorf("%w: %s: %v", ErrAddrInUse, addr, err)
	}
	l.Close()
	return host, port, nil
}

// freePort returns a port of host nobody listens on (see freeport.Port).
var freePort = freeport.Port

func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, port, nil
}

func newLogger(cfg Config) (log.Logger, error) {
	switch cfg.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return nil, fmt.Errorf("devtemporal: LogLevel %q: want debug, info, warn or error", cfg.LogLevel)
	}
	return log.NewZapLogger(log.BuildZapLogger(log.Config{Level: cfg.LogLevel, OutputFile: cfg.LogFile, Format: "console"})), nil
}
