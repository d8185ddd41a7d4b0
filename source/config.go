package source

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// ErrUnknownSource: a name or topic that no registered source matches.
var ErrUnknownSource = errors.New("source: unknown source")

// Kind says how a source's changes reach Kafka.
type Kind string

// The kinds of source.
const (
	KindMySQL    Kind = "mysql"    // binlog rows, published by package cdc
	KindKafka    Kind = "kafka"    // a topic written by other systems
	KindRabbitMQ Kind = "rabbitmq" // a queue, forwarded by package forward
	KindHTTP     Kind = "http"     // POST /v1/messages/{source}, package forward
)

// Config is the registry: every source the event center ingests.
type Config struct {
	Sources []Source `json:"sources"`
}

// Source is one registered source (or, for MySQL, a pattern of sources).
type Source struct {
	// Name names the source's events (eventcenter.Event.Source), e.g.
	// "mysql.loan.orders". For kind mysql it may hold the placeholders
	// {db} and {table}, making it a pattern with one source per matching
	// table. Required; printable ASCII without spaces.
	Name string `json:"name"`
	// Kind is mysql, kafka, rabbitmq or http. Required.
	Kind Kind `json:"kind"`
	// Topic is the Kafka topic carrying the source's records. Default: the
	// name without its placeholders (and the separator before each), with
	// every character Kafka does not allow replaced by '_':
	// "mysql.loan.{table}" → "mysql.loan". Several sources may share a topic.
	Topic string `json:"topic,omitempty"`
	// Indexes are declared in the event center by ingest before it stores
	// the source's first event.
	Indexes []IndexSpec `json:"indexes,omitempty"`

	MySQL    *MySQLOptions    `json:"mysql,omitempty"`
	Kafka    *KafkaOptions    `json:"kafka,omitempty"`
	RabbitMQ *RabbitMQOptions `json:"rabbitmq,omitempty"`
	HTTP     *HTTPOptions     `json:"http,omitempty"`

	nameRE *regexp.Regexp // matches concrete names of a pattern source
}

// IndexSpec declares a secondary index of the source (eventcenter.Index).
type IndexSpec struct {
	Name   string `json:"name"`   // default: Column
	Column string `json:"column"` // required
}

// MySQLOptions select the tables of a mysql source.
type MySQLOptions struct {
	// Database and Table are glob patterns (path.Match) over schema and
	// table names. Required.
	Database string `json:"database"`
	Table    string `json:"table"`
	// Key lists the key columns, in order. Default: the table's primary key
	// (a table without one and without Key is an error at capture time).
	Key []string `json:"key,omitempty"`
}

// KafkaOptions describe a topic written by another system.
type KafkaOptions struct {
	// Format of the record values:
	//   - "json" (default): a JSON object, made a row by [RowFromJSON];
	//   - "raw": any bytes, stored as the row {"value": bytes};
	//   - "wire": the wire format (the record names the event's source).
	// For json and raw the event has Op message, Key the record key (or
	// "partition:offset" when the record has none), Time the record
	// timestamp and Position {partition, offset}.
	Format string `json:"format,omitempty"`
	// Lateness is how far record timestamps of one partition may go back:
	// a partition's watermark trails its newest stored time by it.
	// Default 2s.
	Lateness Duration `json:"lateness,omitempty"`
}

// RabbitMQOptions name the queue of a rabbitmq source.
type RabbitMQOptions struct {
	Queue string `json:"queue"` // required
}

// HTTPOptions limit the HTTP forwarder's requests for a source.
type HTTPOptions struct {
	// MaxBytes bounds a request body. Default 1 MiB.
	MaxBytes int64 `json:"max_bytes,omitempty"`
}

// Duration is a time.Duration written as "5s", "1m30s" in config files.
type Duration time.Duration

// UnmarshalJSON accepts a duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration %s: want a string like \"5s\"", b)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Load reads a Config from a YAML or JSON file and validates it.
func Load(file string) (*Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(file), err)
	}
	return c, nil
}

// Parse reads a Config from YAML or JSON text (JSON is YAML) and validates
// it. Unknown fields are errors.
func Parse(b []byte) (*Config, error) {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

var placeholder = regexp.MustCompile(`[._-]?\{(db|table)\}`)

// Validate fills defaults and reports the first invalid source.
func (c *Config) Validate() error {
	names := map[string]bool{}
	for i := range c.Sources {
		s := &c.Sources[i]
		if err := s.validate(); err != nil {
			return fmt.Errorf("source: sources[%d] %q: %w", i, s.Name, err)
		}
		if names[s.Name] {
			return fmt.Errorf("source: sources[%d]: duplicate name %q", i, s.Name)
		}
		names[s.Name] = true
	}
	return nil
}

func (s *Source) validate() error {
	if err := eventcenter.ValidateSource(s.Name); err != nil {
		return fmt.Errorf("name: %v", err)
	}
	pattern := placeholder.MatchString(s.Name)
	if pattern && s.Kind != KindMySQL {
		return errors.New("only mysql sources may have {db} or {table} in their name")
	}
	if pattern {
		re := regexp.QuoteMeta(s.Name)
		re = strings.NewReplacer(`\{db\}`, `[^.]+`, `\{table\}`, `.+`).Replace(re)
		s.nameRE = regexp.MustCompile("^" + re + "$")
	}
	if s.Topic == "" {
		s.Topic = TopicName(placeholder.ReplaceAllString(s.Name, ""))
	}
	if err := ValidateTopic(s.Topic); err != nil {
		return err
	}
	for j := range s.Indexes {
		ix := &s.Indexes[j]
		if ix.Column == "" {
			return fmt.Errorf("indexes[%d]: missing column", j)
		}
		if ix.Name == "" {
			ix.Name = ix.Column
		}
	}
	for k, set := range map[Kind]bool{KindMySQL: s.MySQL != nil, KindKafka: s.Kafka != nil, KindRabbitMQ: s.RabbitMQ != nil, KindHTTP: s.HTTP != nil} {
		if set && k != s.Kind {
			return fmt.Errorf("%s options on a source of kind %s", k, s.Kind)
		}
	}
	switch s.Kind {
	case KindMySQL:
		if s.MySQL == nil || s.MySQL.Database == "" || s.MySQL.Table == "" {
			return errors.New("kind mysql needs mysql.database and mysql.table")
		}
		for _, p := range []string{s.MySQL.Database, s.MySQL.Table} {
			if _, err := path.Match(p, ""); err != nil {
				return fmt.Errorf("mysql pattern %q: %v", p, err)
			}
		}
		if !pattern && (hasMeta(s.MySQL.Database) || hasMeta(s.MySQL.Table)) {
			return errors.New("a mysql source matching several tables needs {table} (and {db}) in its name")
		}
	case KindKafka:
		if s.Kafka == nil {
			s.Kafka = &KafkaOptions{}
		}
		switch s.Kafka.Format {
		case "":
			s.Kafka.Format = "json"
		case "json", "raw", "wire":
		default:
			return fmt.Errorf("kafka.format %q: want json, raw or wire", s.Kafka.Format)
		}
		if s.Kafka.Lateness == 0 {
			s.Kafka.Lateness = Duration(2 * time.Second)
		}
		if s.Kafka.Lateness < 0 {
			return errors.New("kafka.lateness is negative")
		}
	case KindRabbitMQ:
		if s.RabbitMQ == nil || s.RabbitMQ.Queue == "" {
			return errors.New("kind rabbitmq needs rabbitmq.queue")
		}
	case KindHTTP:
		if s.HTTP == nil {
			s.HTTP = &HTTPOptions{}
		}
		if s.HTTP.MaxBytes == 0 {
			s.HTTP.MaxBytes = 1 << 20
		}
		if s.HTTP.MaxBytes < 0 {
			return errors.New("http.max_bytes is negative")
		}
	default:
		return fmt.Errorf("kind %q: want mysql, kafka, rabbitmq or http", s.Kind)
	}
	return nil
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// IsPattern reports whether the source stands for several (a name with
// {db} or {table}).
func (s *Source) IsPattern() bool { return s.nameRE != nil }

// Matches reports whether name is this source's name or one of its pattern's.
func (s *Source) Matches(name string) bool {
	if s.nameRE != nil {
		return s.nameRE.MatchString(name)
	}
	return s.Name == name
}

// MatchTable reports whether the mysql source captures db.table, and the
// name of that table's events.
func (s *Source) MatchTable(db, table string) (string, bool) {
	if s.Kind != KindMySQL || s.MySQL == nil {
		return "", false
	}
	if ok, _ := path.Match(s.MySQL.Database, db); !ok {
		return "", false
	}
	if ok, _ := path.Match(s.MySQL.Table, table); !ok {
		return "", false
	}
	return strings.NewReplacer("{db}", db, "{table}", table).Replace(s.Name), true
}

// EventIndexes returns the indexes to declare for the concrete source name.
func (s *Source) EventIndexes(name string) []eventcenter.Index {
	out := make([]eventcenter.Index, 0, len(s.Indexes))
	for _, ix := range s.Indexes {
		out = append(out, eventcenter.Index{Source: name, Name: ix.Name, Column: ix.Column})
	}
	return out
}

// Knows reports whether the registry has a source named name (exactly or
// by a pattern), as Lookup finds it.
func (c *Config) Knows(name string) bool {
	_, err := c.Lookup(name)
	return err == nil
}

// Lookup returns the source named name: a source with exactly that name,
// else the pattern source whose pattern matches it.
func (c *Config) Lookup(name string) (*Source, error) {
	var match *Source
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Name == name {
			return s, nil
		}
		if match == nil && s.Matches(name) {
			match = s
		}
	}
	if match == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownSource, name)
	}
	return match, nil
}

// ByKind returns the sources of one kind, in order.
func (c *Config) ByKind(k Kind) []*Source {
	var out []*Source
	for i := range c.Sources {
		if c.Sources[i].Kind == k {
			out = append(out, &c.Sources[i])
		}
	}
	return out
}

// ByTopic returns the sources carried by topic, in order.
func (c *Config) ByTopic(topic string) []*Source {
	var out []*Source
	for i := range c.Sources {
		if c.Sources[i].Topic == topic {
			out = append(out, &c.Sources[i])
		}
	}
	return out
}

// Topics returns every topic of the registry, each once, in order.
func (c *Config) Topics() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range c.Sources {
		if !seen[s.Topic] {
			seen[s.Topic] = true
			out = append(out, s.Topic)
		}
	}
	return out
}

// TopicName makes name a valid Kafka topic: every character but
// [a-zA-Z0-9._-] becomes '_', and it is cut to 249 bytes.
func TopicName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !validTopicByte(c) {
			b[i] = '_'
		}
	}
	if len(b) > 249 {
		b = b[:249]
	}
	return string(b)
}

func validTopicByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// ValidateTopic reports whether t is a valid Kafka topic name.
func ValidateTopic(t string) error {
	if t == "" || t == "." || t == ".." || len(t) > 249 {
		return fmt.Errorf("topic %q: must have 1 to 249 characters and not be . or ..", t)
	}
	for i := 0; i < len(t); i++ {
		if !validTopicByte(t[i]) {
			return fmt.Errorf("topic %q: character %q is not one of [a-zA-Z0-9._-]", t, t[i])
		}
	}
	return nil
}
