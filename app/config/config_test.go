package config_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/app/config"
)

func TestParseStore(t *testing.T) {
	for in, want := range map[string]config.StoreURL{
		"pebble://data/eventcenter":      {Kind: config.Pebble, Dir: "data/eventcenter"},
		"pebble:///var/lib/tidemark":     {Kind: config.Pebble, Dir: "/var/lib/tidemark"},
		"data/eventcenter":               {Kind: config.Pebble, Dir: "data/eventcenter"},
		"/abs/dir":                       {Kind: config.Pebble, Dir: "/abs/dir"},
		"./rel.d/x://y":                  {Kind: config.Pebble, Dir: "./rel.d/x://y"},
		"hbase://zk1:2181,zk2:2181/prod": {Kind: config.HBase, ZooKeeper: "zk1:2181,zk2:2181", Namespace: "prod"},
		"hbase://zk1,zk2:2181/prod":      {Kind: config.HBase, ZooKeeper: "zk1,zk2:2181", Namespace: "prod"},
		"hbase:///prod":                  {Kind: config.HBase, Namespace: "prod"},
		"hbase://127.0.0.1:2181":         {Kind: config.HBase, ZooKeeper: "127.0.0.1:2181"},
	} {
		got, err := config.ParseStore(in)
		if err != nil || got != want {
			t.Errorf("ParseStore(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "pebble://", "ftp://host/x", "hbase://zk/ns/extra", "hbase://zk/ns?x=1", "hbase://user@zk/ns"} {
		if got, err := config.ParseStore(in); err == nil {
			t.Errorf("ParseStore(%q) = %+v, want an error", in, got)
		}
	}
}

func TestLoadLayers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tidemark.yaml")
	if err := os.WriteFile(file, []byte(`
store: hbase://zk1,zk2/prod
hotWindow: 48h
kafka:
  brokers: [k1:9092, k2:9092]
temporal:
  address: temporal.example.com:7233
  namespace: prod
  tls: {cert: c.pem, key: k.pem}
s3: {endpoint: "http://127.0.0.1:7070", bucket: b}
topics: {deadLetter: prod.deadletter, progress: prod.progress}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TIDEMARK_TEMPORAL_NAMESPACE": "from-env", "TIDEMARK_KAFKA_BROKERS": " e1:9092, e2:9092 ,",
		"TIDEMARK_PROGRESS_TOPIC": "prod-eu.progress", "TIDEMARK_HOT_WINDOW": "72h", "UNRELATED": "x"}
	c, err := config.Load(file, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if w, err := c.HotWindowDuration(); err != nil || w != 72*time.Hour {
		t.Errorf("hot window %v, %v", w, err)
	}
	want := config.Config{
		Store: "hbase://zk1,zk2/prod", HotWindow: "72h",
		Kafka: config.Kafka{Brokers: []string{"e1:9092", "e2:9092"}},
		Temporal: config.Temporal{Address: "temporal.example.com:7233", Namespace: "from-env",
			TLS: config.TLS{Cert: "c.pem", Key: "k.pem"}},
		S3:     config.S3{Endpoint: "http://127.0.0.1:7070", Bucket: "b"},
		Topics: config.Topics{DeadLetter: "prod.deadletter", Progress: "prod-eu.progress"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}

	var d config.Config
	d.SetDefaults()
	if d.Store != config.DefaultStore || d.Kafka.Brokers[0] != config.DefaultKafkaBroker || d.Temporal.Namespace != "default" ||
		d.Topics.Progress != "tidemark.progress" || d.Topics.DeadLetter != "tidemark.deadletter" {
		t.Errorf("defaults %+v", d)
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	misspelt := filepath.Join(dir, "misspelt.yaml")
	os.WriteFile(misspelt, []byte("kafka:\n  broker: [k1:9092]\n"), 0o644)
	if _, err := config.Load(misspelt, func(string) (string, bool) { return "", false }); err == nil || !strings.Contains(err.Error(), "broker") {
		t.Errorf("a misspelt key: %v", err)
	}
	badEnv := func(k string) (string, bool) { return "maybe", k == "TIDEMARK_TEMPORAL_TLS" }
	if _, err := config.Load("", badEnv); err == nil || !strings.Contains(err.Error(), "TIDEMARK_TEMPORAL_TLS") {
		t.Errorf("a bad variable: %v", err)
	}
	c := config.Config{Temporal: config.Temporal{TLS: config.TLS{Cert: "c.pem"}}, S3: config.S3{AccessKey: "k"},
		Topics: config.Topics{Progress: "prod progress"}, HotWindow: "32d"}
	c.SetDefaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "tls.key") || !strings.Contains(err.Error(), "secretKey") ||
		!strings.Contains(err.Error(), "topics.progress") || !strings.Contains(err.Error(), `hotWindow "32d"`) {
		t.Errorf("Validate: %v", err)
	}
	for _, w := range []string{"-1h", "0s"} {
		if _, err := (&config.Config{HotWindow: w}).HotWindowDuration(); err == nil {
			t.Errorf("hot window %q: no error", w)
		}
	}
}

// TestStoreLockedByAnotherProcess opens an embedded store in a second
// process (this test binary, re-run as a helper) and checks that opening it
// here fails with ErrStoreInUse and a sentence saying so.
func TestStoreLockedByAnotherProcess(t *testing.T) {
	if dir := os.Getenv("TIDEMARK_LOCK_HELPER"); dir != "" {
		s, err := config.OpenStore(context.Background(), config.StoreURL{Kind: config.Pebble, Dir: dir}, config.StoreOptions{})
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error() + "\n")
			os.Exit(1)
		}
		defer s.Close()
		os.Stdout.WriteString("open\n")
		os.Stdin.Read(make([]byte, 1)) // hold the lock until the parent closes stdin
		return
	}
	dir := t.TempDir()
	helper := exec.Command(os.Args[0], "-test.run=^TestStoreLockedByAnotherProcess$")
	helper.Env = append(os.Environ(), "TIDEMARK_LOCK_HELPER="+dir)
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		helper.Wait()
	}()
	line := make([]byte, 5)
	if _, err := stdout.Read(line); err != nil || string(line) != "open\n" {
		t.Fatalf("helper: %q %v", line, err)
	}
	_, err = config.OpenStore(context.Background(), config.StoreURL{Kind: config.Pebble, Dir: dir}, config.StoreOptions{})
	if !errors.Is(err, config.ErrStoreInUse) || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("open a locked folder: %v", err)
	}
	t.Log(err)
}
