// Package config is the one configuration of every tidemark process: where
// the event center is (a store URL), Kafka, Temporal, S3, RabbitMQ, the
// source registry and the shared topic names.
//
// A Config comes from three layers, each overriding the one before: an
// optional YAML file (Load), the TIDEMARK_* environment variables (Env
// lists them) and command-line flags (the app package binds them). Then
// SetDefaults fills what is still empty and Validate checks the result.
// The same Config opens the store (OpenStore), dials Temporal
// (TemporalOptions), builds the S3 client (S3Client) and checks every
// service (Check), so that every command reaches a service the same way.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/tidemark-dev/tidemark/source"
)

// Defaults of Config.
const (
	DefaultStore           = "pebble://.tidemark/eventcenter"
	DefaultKafkaBroker     = "127.0.0.1:9092"
	DefaultTemporalAddress = "127.0.0.1:7233"
	DefaultNamespace       = "default"
	DefaultDeadLetterTopic = "tidemark.deadletter"
	DefaultProgressTopic   = source.DefaultProgressTopic
	DefaultS3Region        = "us-east-1"
)

// Config is a process's view of the services. Every field says its default
// and its environment variable; the YAML keys are the json tags.
type Config struct {
	// Store is the event center's URL: pebble://PATH (the embedded store in
	// a folder; pebble:///abs/path for an absolute one) or
	// hbase://ZK1,ZK2/NAMESPACE (see ParseStore). A bare path means
	// pebble. Default DefaultStore. $TIDEMARK_STORE.
	Store string `json:"store,omitempty"`
	// Cold is the event center's cold tier (eventcenter/tiered):
	// file://PATH (a folder) or s3://BUCKET/PREFIX (on the S3 settings).
	// With it, the store keeps only the hot window (tiering moves the
	// rest; `tidemark tier`) and reads the rest from the cold tier.
	// Default "": no cold tier, the store keeps everything. $TIDEMARK_COLD.
	Cold string `json:"cold,omitempty"`
	// HotWindow is how long the hot store keeps an event with a cold tier:
	// tiering moves the events stored longer ago (a Go duration, e.g.
	// "768h"). Give every process of a deployment the same. Default ""
	// (tiered.Config's default, 32 days). $TIDEMARK_HOT_WINDOW.
	HotWindow string `json:"hotWindow,omitempty"`
	// Sources is the source registry file (YAML or JSON, see package
	// source). Default "": the commands that need one (cdc, forward,
	// ingest) use "sources.yaml". $TIDEMARK_SOURCES.
	Sources  string   `json:"sources,omitempty"`
	Kafka    Kafka    `json:"kafka,omitzero"`
	Temporal Temporal `json:"temporal,omitzero"`
	S3       S3       `json:"s3,omitzero"`
	AMQP     AMQP     `json:"amqp,omitzero"`
	Topics   Topics   `json:"topics,omitzero"`
}

// Kafka is the Kafka cluster every change travels through.
type Kafka struct {
	// Brokers are the seed brokers. Default [DefaultKafkaBroker].
	// $TIDEMARK_KAFKA_BROKERS (comma separated).
	Brokers []string `json:"brokers,omitempty"`
	// TLS of the broker connections. $TIDEMARK_KAFKA_TLS,
	// $TIDEMARK_KAFKA_TLS_CERT, $TIDEMARK_KAFKA_TLS_KEY,
	// $TIDEMARK_KAFKA_TLS_CA, $TIDEMARK_KAFKA_TLS_SERVER_NAME.
	TLS  TLS  `json:"tls,omitzero"`
	SASL SASL `json:"sasl,omitzero"`
}

// SASL authenticates to the Kafka brokers (usually with TLS on).
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (any case).
	// Default none: no SASL. $TIDEMARK_KAFKA_SASL_MECHANISM.
	Mechanism string `json:"mechanism,omitempty"`
	// User and Password, required with a Mechanism.
	// $TIDEMARK_KAFKA_SASL_USER, $TIDEMARK_KAFKA_SASL_PASSWORD.
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
}

// The SASL mechanisms, as SASL.Mechanism names them.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Temporal is the Temporal service of backfills: a self-hosted cluster, or
// Temporal Cloud with mTLS or an API key.
type Temporal struct {
	// Address is the frontend's host:port. Default DefaultTemporalAddress.
	// $TIDEMARK_TEMPORAL_ADDRESS.
	Address string `json:"address,omitempty"`
	// Namespace. Default DefaultNamespace. $TIDEMARK_TEMPORAL_NAMESPACE.
	Namespace string `json:"namespace,omitempty"`
	// APIKey authenticates with an API key (Temporal Cloud); it turns TLS
	// on unless TLS says otherwise. Default none. $TIDEMARK_TEMPORAL_API_KEY.
	APIKey string `json:"apiKey,omitempty"`
	// TLS of the Temporal connection. $TIDEMARK_TEMPORAL_TLS ("true" or
	// "false"), $TIDEMARK_TEMPORAL_TLS_CERT, $TIDEMARK_TEMPORAL_TLS_KEY,
	// $TIDEMARK_TEMPORAL_TLS_CA, $TIDEMARK_TEMPORAL_TLS_SERVER_NAME.
	TLS TLS `json:"tls,omitzero"`
}

// TLS of a connection (Temporal's, Kafka's). It is on when Enabled, or
// when any file is set; Cert and Key together give mTLS.
type TLS struct {
	// Enabled turns TLS on with the system's roots. Default false.
	Enabled bool `json:"enabled,omitempty"`
	// Cert and Key are PEM files of the client certificate (mTLS).
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
	// CA is a PEM file of the server's CA. Default: the system's roots.
	CA string `json:"ca,omitempty"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `json:"serverName,omitempty"`
}

// On reports whether the connection uses TLS.
func (t TLS) On() bool { return t.Enabled || t.Cert != "" || t.Key != "" || t.CA != "" }

// S3 is where sample tables are read and backfill sinks written. Without
// keys the AWS default credential chain applies (environment, shared
// files, instance roles); Endpoint and static keys serve local S3 servers.
type S3 struct {
	// Endpoint of an S3-compatible server, e.g. http://127.0.0.1:7070
	// (path-style addressing). Default: AWS. $TIDEMARK_S3_ENDPOINT.
	Endpoint string `json:"endpoint,omitempty"`
	// Region. Default: the AWS chain's, else DefaultS3Region.
	// $TIDEMARK_S3_REGION.
	Region string `json:"region,omitempty"`
	// AccessKey and SecretKey are static credentials; both or neither.
	// $TIDEMARK_S3_ACCESS_KEY, $TIDEMARK_S3_SECRET_KEY.
	AccessKey string `json:"accessKey,omitempty"`
	SecretKey string `json:"secretKey,omitempty"`
	// Bucket is checked by `tidemark config check`. Default none.
	// $TIDEMARK_S3_BUCKET.
	Bucket string `json:"bucket,omitempty"`
}

// Configured reports whether anything of S3 is set.
func (s S3) Configured() bool { return s != S3{} }

// AMQP is the RabbitMQ broker of the rabbitmq sources and outputs.
type AMQP struct {
	// URL, e.g. amqp://guest:guest@127.0.0.1:5672/. Default none.
	// $TIDEMARK_AMQP_URL.
	URL string `json:"url,omitempty"`
}

// Topics are the names of the Kafka topics every process of a deployment
// shares. Deployments on one Kafka cluster keep apart by giving them
// different names.
type Topics struct {
	// Progress carries the progress reports of cdc and forward to ingest,
	// which moves the sources' watermarks by them. Default
	// DefaultProgressTopic. $TIDEMARK_PROGRESS_TOPIC.
	Progress string `json:"progress,omitempty"`
	// DeadLetter receives the records ingest cannot store; a live worker
	// sends the triggers its job cannot handle to DeadLetter + "." + the
	// job's name. Default DefaultDeadLetterTopic.
	// $TIDEMARK_DEADLETTER_TOPIC.
	DeadLetter string `json:"deadLetter,omitempty"`
}

// Load reads the YAML file path (none if path is ""), then overrides its
// values with the environment variables lookup finds (os.LookupEnv in
// binaries). Unknown keys in the file are errors, so a misspelt key does
// not silently fall back to a default.
func Load(path string, lookup func(string) (string, bool)) (Config, error) {
	var c Config
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		if len(bytes.TrimSpace(b)) > 0 {
			if err := yaml.UnmarshalStrict(b, &c); err != nil {
				return c, fmt.Errorf("config: %s: %w", path, err)
			}
		}
	}
	for _, v := range envVars {
		if s, ok := lookup(v.name); ok && s != "" {
			if err := v.set(&c, s); err != nil {
				return c, fmt.Errorf("config: $%s: %w", v.name, err)
			}
		}
	}
	return c, nil
}

// envVar is one environment variable and the field it sets.
type envVar struct {
	name string
	set  func(c *Config, v string) error
}

func str(f func(c *Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *f(c) = v; return nil }
}

var envVars = []envVar{
	{"TIDEMARK_STORE", str(func(c *Config) *string { return &c.Store })},
	{"TIDEMARK_COLD", str(func(c *Config) *string { return &c.Cold })},
	{"TIDEMARK_HOT_WINDOW", str(func(c *Config) *string { return &c.HotWindow })},
	{"TIDEMARK_SOURCES", str(func(c *Config) *string { return &c.Sources })},
	{"TIDEMARK_KAFKA_BROKERS", func(c *Config, v string) error { c.Kafka.Brokers = SplitList(v); return nil }},
	{"TIDEMARK_KAFKA_TLS", func(c *Config, v string) (err error) { c.Kafka.TLS.Enabled, err = strconv.ParseBool(v); return err }},
	{"TIDEMARK_KAFKA_TLS_CERT", str(func(c *Config) *string { return &c.Kafka.TLS.Cert })},
	{"TIDEMARK_KAFKA_TLS_KEY", str(func(c *Config) *string { return &c.Kafka.TLS.Key })},
	{"TIDEMARK_KAFKA_TLS_CA", str(func(c *Config) *string { return &c.Kafka.TLS.CA })},
	{"TIDEMARK_KAFKA_TLS_SERVER_NAME", str(func(c *Config) *string { return &c.Kafka.TLS.ServerName })},
	{"TIDEMARK_KAFKA_SASL_MECHANISM", str(func(c *Config) *string { return &c.Kafka.SASL.Mechanism })},
	{"TIDEMARK_KAFKA_SASL_USER", str(func(c *Config) *string { return &c.Kafka.SASL.User })},
	{"TIDEMARK_KAFKA_SASL_PASSWORD", str(func(c *Config) *string { return &c.Kafka.SASL.Password })},
	{"TIDEMARK_TEMPORAL_ADDRESS", str(func(c *Config) *string { return &c.Temporal.Address })},
	{"TIDEMARK_TEMPORAL_NAMESPACE", str(func(c *Config) *string { return &c.Temporal.Namespace })},
	{"TIDEMARK_TEMPORAL_API_KEY", str(func(c *Config) *string { return &c.Temporal.APIKey })},
	{"TIDEMARK_TEMPORAL_TLS", func(c *Config, v string) (err error) { c.Temporal.TLS.Enabled, err = strconv.ParseBool(v); return err }},
	{"TIDEMARK_TEMPORAL_TLS_CERT", str(func(c *Config) *string { return &c.Temporal.TLS.Cert })},
	{"TIDEMARK_TEMPORAL_TLS_KEY", str(func(c *Config) *string { return &c.Temporal.TLS.Key })},
	{"TIDEMARK_TEMPORAL_TLS_CA", str(func(c *Config) *string { return &c.Temporal.TLS.CA })},
	{"TIDEMARK_TEMPORAL_TLS_SERVER_NAME", str(func(c *Config) *string { return &c.Temporal.TLS.ServerName })},
	{"TIDEMARK_S3_ENDPOINT", str(func(c *Config) *string { return &c.S3.Endpoint })},
	{"TIDEMARK_S3_REGION", str(func(c *Config) *string { return &c.S3.Region })},
	{"TIDEMARK_S3_ACCESS_KEY", str(func(c *Config) *string { return &c.S3.AccessKey })},
	{"TIDEMARK_S3_SECRET_KEY", str(func(c *Config) *string { return &c.S3.SecretKey })},
	{"TIDEMARK_S3_BUCKET", str(func(c *Config) *string { return &c.S3.Bucket })},
	{"TIDEMARK_AMQP_URL", str(func(c *Config) *string { return &c.AMQP.URL })},
	{"TIDEMARK_PROGRESS_TOPIC", str(func(c *Config) *string { return &c.Topics.Progress })},
	{"TIDEMARK_DEADLETTER_TOPIC", str(func(c *Config) *string { return &c.Topics.DeadLetter })},
}

// Env lists the environment variables Load reads, in a stable order.
func Env() []string {
	names := make([]string, len(envVars))
	for i, v := range envVars {
		names[i] = v.name
	}
	return names
}

// SplitList splits a comma-separated list, dropping blanks.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// SetDefaults fills every empty field with its default.
func (c *Config) SetDefaults() {
	if c.Store == "" {
		c.Store = DefaultStore
	}
	if len(c.Kafka.Brokers) == 0 {
		c.Kafka.Brokers = []string{DefaultKafkaBroker}
	}
	if c.Temporal.Address == "" {
		c.Temporal.Address = DefaultTemporalAddress
	}
	if c.Temporal.Namespace == "" {
		c.Temporal.Namespace = DefaultNamespace
	}
	if c.Topics.Progress == "" {
		c.Topics.Progress = DefaultProgressTopic
	}
	if c.Topics.DeadLetter == "" {
		c.Topics.DeadLetter = DefaultDeadLetterTopic
	}
}

// HotWindowDuration returns HotWindow as a duration, 0 if unset (the
// tiered store's default then).
func (c *Config) HotWindowDuration() (time.Duration, error) {
	if c.HotWindow == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(c.HotWindow)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("config: hotWindow %q: want a positive duration such as 768h (32 days)", c.HotWindow)
	}
	return d, nil
}

// Validate reports values no service would accept, naming the key.
func (c *Config) Validate() error {
	var errs []error
	if _, err := ParseStore(c.Store); err != nil {
		errs = append(errs, err)
	}
	if c.Cold != "" {
		if _, _, err := ParseCold(c.Cold); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := c.HotWindowDuration(); err != nil {
		errs = append(errs, err)
	}
	if (c.Temporal.TLS.Cert == "") != (c.Temporal.TLS.Key == "") {
		errs = append(errs, errors.New("config: temporal.tls.cert and temporal.tls.key go together (mTLS)"))
	}
	if (c.Kafka.TLS.Cert == "") != (c.Kafka.TLS.Key == "") {
		errs = append(errs, errors.New("config: kafka.tls.cert and kafka.tls.key go together (mTLS)"))
	}
	if err := c.Kafka.SASL.validate(); err != nil {
		errs = append(errs, err)
	}
	if (c.S3.AccessKey == "") != (c.S3.SecretKey == "") {
		errs = append(errs, errors.New("config: s3.accessKey and s3.secretKey go together"))
	}
	if err := source.ValidateTopic(c.Topics.Progress); err != nil {
		errs = append(errs, fmt.Errorf("config: topics.progress: %w", err))
	}
	if err := source.ValidateTopic(c.Topics.DeadLetter); err != nil {
		errs = append(errs, fmt.Errorf("config: topics.deadLetter: %w", err))
	}
	return errors.Join(errs...)
}
