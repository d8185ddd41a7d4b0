package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tidemark-dev/tidemark/app/config"
)

// TestKafkaTLSAndSASL: the Kafka TLS and SASL settings come from the file
// and the environment, give the clients their options, and a bad setting
// fails with a sentence naming the key.
func TestKafkaTLSAndSASL(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tidemark.yaml")
	if err := os.WriteFile(file, []byte(`
kafka:
  brokers: [k1:9093]
  tls: {enabled: true, serverName: kafka.internal}
  sasl: {mechanism: scram-sha-512, user: tidemark}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TIDEMARK_KAFKA_SASL_PASSWORD": "s3cret"}
	c, err := config.Load(file, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := config.Kafka{Brokers: []string{"k1:9093"}, TLS: config.TLS{Enabled: true, ServerName: "kafka.internal"},
		SASL: config.SASL{Mechanism: "scram-sha-512", User: "tidemark", Password: "s3cret"}}
	if !reflect.DeepEqual(c.Kafka, want) {
		t.Fatalf("kafka: got %+v, want %+v", c.Kafka, want)
	}
	opts, err := c.Kafka.KafkaOptions()
	if err != nil || len(opts) != 2 {
		t.Fatalf("KafkaOptions: %d options, %v; want TLS and SASL", len(opts), err)
	}
	if opts, err := c.Kafka.ClientOptions(); err != nil || len(opts) != 3 {
		t.Fatalf("ClientOptions: %d options, %v; want brokers, TLS and SASL", len(opts), err)
	}
	if opts, err := (config.Kafka{Brokers: []string{"k:9092"}}).KafkaOptions(); err != nil || len(opts) != 0 {
		t.Fatalf("KafkaOptions of a plain cluster: %d options, %v", len(opts), err)
	}

	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"unknown mechanism", map[string]string{"TIDEMARK_KAFKA_SASL_MECHANISM": "GSSAPI", "TIDEMARK_KAFKA_SASL_USER": "u", "TIDEMARK_KAFKA_SASL_PASSWORD": "p"},
			`kafka.sasl.mechanism "GSSAPI": want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`},
		{"mechanism without password", map[string]string{"TIDEMARK_KAFKA_SASL_MECHANISM": "PLAIN", "TIDEMARK_KAFKA_SASL_USER": "u"},
			"kafka.sasl.mechanism PLAIN needs kafka.sasl.user and kafka.sasl.password"},
		{"user without mechanism", map[string]string{"TIDEMARK_KAFKA_SASL_USER": "u", "TIDEMARK_KAFKA_SASL_PASSWORD": "p"},
			"kafka.sasl.user and kafka.sasl.password need kafka.sasl.mechanism"},
		{"cert without key", map[string]string{"TIDEMARK_KAFKA_TLS_CERT": "c.pem"}, "kafka.tls.cert and kafka.tls.key go together"},
	} {
		cfg, err := config.Load("", func(k string) (string, bool) { v, ok := c.env[k]; return v, ok })
		if err != nil {
			t.Fatalf("%s: Load: %v", c.name, err)
		}
		cfg.SetDefaults()
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate: %v; want %q", c.name, err, c.want)
		}
		if _, err := cfg.Kafka.KafkaOptions(); c.name != "cert without key" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: KafkaOptions: %v; want %q", c.name, err, c.want)
		}
	}

	if _, err := config.Load("", func(k string) (string, bool) { return "yes please", k == "TIDEMARK_KAFKA_TLS" }); err == nil ||
		!strings.Contains(err.Error(), "TIDEMARK_KAFKA_TLS") {
		t.Errorf("a bad $TIDEMARK_KAFKA_TLS: %v", err)
	}
	missing := config.Kafka{TLS: config.TLS{CA: filepath.Join(dir, "nope.pem")}}
	if _, err := missing.KafkaOptions(); err == nil || !strings.Contains(err.Error(), "kafka.tls.ca") {
		t.Errorf("an unreadable CA file: %v", err)
	}
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (config.Kafka{TLS: config.TLS{CA: notPEM}}).KafkaOptions(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a CA file without a certificate: %v", err)
	}
}
