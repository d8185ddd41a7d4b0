package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tidemark-dev/tidemark/app/config"
)

// settings are the configuration flags of one command: each is bound to a
// field of config.Config and overrides it when given.
type settings struct {
	a     *cli
	cmd   *cobra.Command
	binds []func(*config.Config)
}

func (a *cli) settings(cmd *cobra.Command) *settings { return &settings{a: a, cmd: cmd} }

// str adds a string flag bound to the field f returns.
func (s *settings) str(name, usage string, f func(*config.Config) *string) {
	v := new(string)
	s.cmd.Flags().StringVar(v, name, "", usage)
	s.binds = append(s.binds, func(c *config.Config) {
		if s.cmd.Flags().Changed(name) {
			*f(c) = *v
		}
	})
}

// store adds --store.
func (s *settings) store() {
	s.str("store", `event center URL: pebble://PATH (embedded store in a folder) or hbase://ZK1,ZK2/NAMESPACE (default "`+config.DefaultStore+`"; config "store", $TIDEMARK_STORE)`,
		func(c *config.Config) *string { return &c.Store })
}

// sources adds --sources; def is the command's default when nothing sets it.
func (s *settings) sources(def string) {
	usage := `source registry file, YAML or JSON (config "sources", $TIDEMARK_SOURCES)`
	if def != "" {
		usage = fmt.Sprintf(`source registry file, YAML or JSON (default %q; config "sources", $TIDEMARK_SOURCES)`, def)
	}
	s.str("sources", usage, func(c *config.Config) *string { return &c.Sources })
}

// brokers adds --brokers.
func (s *settings) brokers() {
	v := new(string)
	s.cmd.Flags().StringVar(v, "brokers", "", `Kafka seed brokers, comma separated (default "`+config.DefaultKafkaBroker+`"; config "kafka.brokers", $TIDEMARK_KAFKA_BROKERS)`)
	s.binds = append(s.binds, func(c *config.Config) {
		if s.cmd.Flags().Changed("brokers") {
			c.Kafka.Brokers = config.SplitList(*v)
		}
	})
}

// temporal adds the flags of the Temporal connection, named as the
// Temporal CLI names them.
func (s *settings) temporal() {
	s.str("address", `Temporal frontend host:port (default "`+config.DefaultTemporalAddress+`"; config "temporal.address", $TIDEMARK_TEMPORAL_ADDRESS)`,
		func(c *config.Config) *string { return &c.Temporal.Address })
	s.str("namespace", `Temporal namespace (default "`+config.DefaultNamespace+`"; config "temporal.namespace", $TIDEMARK_TEMPORAL_NAMESPACE)`,
		func(c *config.Config) *string { return &c.Temporal.Namespace })
	s.str("api-key", `Temporal API key, e.g. of Temporal Cloud (config "temporal.apiKey", $TIDEMARK_TEMPORAL_API_KEY)`,
		func(c *config.Config) *string { return &c.Temporal.APIKey })
	s.str("tls-cert-path", `client certificate of mTLS, PEM (config "temporal.tls.cert", $TIDEMARK_TEMPORAL_TLS_CERT)`,
		func(c *config.Config) *string { return &c.Temporal.TLS.Cert })
	s.str("tls-key-path", `client key of mTLS, PEM (config "temporal.tls.key", $TIDEMARK_TEMPORAL_TLS_KEY)`,
		func(c *config.Config) *string { return &c.Temporal.TLS.Key })
	s.str("tls-ca-path", `server CA, PEM (default: the system's; config "temporal.tls.ca", $TIDEMARK_TEMPORAL_TLS_CA)`,
		func(c *config.Config) *string { return &c.Temporal.TLS.CA })
	s.str("tls-server-name", `server name checked in the server's certificate (config "temporal.tls.serverName", $TIDEMARK_TEMPORAL_TLS_SERVER_NAME)`,
		func(c *config.Config) *string { return &c.Temporal.TLS.ServerName })
	tlsOn := new(bool)
	s.cmd.Flags().BoolVar(tlsOn, "tls", false, `connect to Temporal with TLS (config "temporal.tls.enabled", $TIDEMARK_TEMPORAL_TLS)`)
	s.binds = append(s.binds, func(c *config.Config) {
		if s.cmd.Flags().Changed("tls") {
			c.Temporal.TLS.Enabled = *tlsOn
		}
	})
}

// amqp adds the RabbitMQ URL flag under name.
func (s *settings) amqp(name, usage string) {
	s.str(name, usage+` (config "amqp.url", $TIDEMARK_AMQP_URL)`, func(c *config.Config) *string { return &c.AMQP.URL })
}

// config is the command's configuration: the file, the environment, the
// flags given, the defaults; validated.
func (s *settings) config() (config.Config, error) {
	c, err := config.Load(s.a.configFile, s.a.env)
	if err != nil {
		return c, err
	}
	for _, b := range s.binds {
		b(&c)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return c, usageError{err}
	}
	return c, nil
}

// logFlags are --log-level and --log-format of a long-running command.
type logFlags struct {
	level, format string
}

func (f *logFlags) register(fs *pflag.FlagSet, level string) {
	fs.StringVar(&f.level, "log-level", level, "log level: debug, info, warn, error")
	fs.StringVar(&f.format, "log-format", "text", "log format: text or json")
}

// logger builds the logger of the flags, writing to w, and makes it
// slog's default (for the packages that log through it).
func (f *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", f.level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch f.format {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, usagef("--log-format %q: want text or json", f.format)
	}
	l := slog.New(h)
	slog.SetDefault(l)
	return l, nil
}

// metricsFlag is --metrics of a long-running command.
type metricsFlag struct{ addr string }

func (f *metricsFlag) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.addr, "metrics", "", `address serving Prometheus /metrics, e.g. ":9464" ("": none)`)
}

// registry returns a Prometheus registry with the Go and process
// collectors, served on --metrics (if set) until ctx ends.
func (f *metricsFlag) registry(ctx context.Context, log *slog.Logger) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if f.addr == "" {
		return reg, nil
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() { srv.Close() })
	log.Info("serving metrics", "addr", ln.Addr().String())
	return reg, nil
}

// ParseTime reads a time given on the command line: a date (2026-11-25,
// midnight UTC), RFC 3339 (2026-11-25T10:00:00Z, 2026-11-25T10:00:00+01:00,
// with or without fractional seconds), "now", or a time from now as a
// signed Go duration ("-1h", "-90m", "+15m"). Relative times are read
// against the clock when the flag is parsed and returned in UTC. Every
// date flag uses it.
func ParseTime(s string) (time.Time, error) { return parseTimeAt(s, time.Now()) }

// parseTimeAt is ParseTime with the clock reading now.
func parseTimeAt(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now.UTC(), nil
	}
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		if d, err := time.ParseDuration(s); err == nil {
			return now.UTC().Add(d), nil
		}
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf(`%q is not a date (2026-11-25), an RFC 3339 time (2026-11-25T10:00:00Z), "now" or a time from now (-1h, -90m)`, s)
	}
	return t, nil
}

// timeValue is a flag holding a time read by ParseTime; zero if not given.
type timeValue struct{ t *time.Time }

func (v timeValue) Set(s string) error {
	t, err := ParseTime(s)
	if err == nil {
		*v.t = t
	}
	return err
}

func (v timeValue) String() string {
	if v.t == nil || v.t.IsZero() {
		return ""
	}
	return v.t.Format(time.RFC3339Nano)
}

func (timeValue) Type() string { return "time" }

// choiceValue is a flag holding one of a few words, or (if times) a time
// read by ParseTime and kept in RFC 3339.
type choiceValue struct {
	s     *string
	words []string
	times bool
}

func (v choiceValue) Set(s string) error {
	for _, w := range v.words {
		if s == w {
			*v.s = s
			return nil
		}
	}
	if v.times {
		t, err := ParseTime(s)
		if err != nil {
			return fmt.Errorf("want %s, or a time: %w", quoteAll(v.words), err)
		}
		*v.s = t.Format(time.RFC3339Nano)
		return nil
	}
	return fmt.Errorf("want %s", quoteAll(v.words))
}

func (v choiceValue) String() string { return *v.s }
func (choiceValue) Type() string     { return "string" }

func quoteAll(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = fmt.Sprintf("%q", w)
	}
	return strings.Join(q, ", ")
}
