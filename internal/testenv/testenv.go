// Package testenv connects tests to the real services of the test harness.
//
// Tests never mock MySQL, RabbitMQ, Kafka, HBase or S3: they use the real services that
// `scripts/services up` runs on this machine (or docker-compose.yml runs elsewhere). The
// harness announces each service through environment variables:
//
//	TIDEMARK_MYSQL_ADDR, TIDEMARK_MYSQL_USER, TIDEMARK_MYSQL_PASSWORD, TIDEMARK_MYSQL_DB, TIDEMARK_MYSQL_FLAVOR
//	TIDEMARK_AMQP_URL
//	TIDEMARK_KAFKA_BROKERS (comma separated)
//	TIDEMARK_HBASE_ZK
//	TIDEMARK_S3_ENDPOINT, TIDEMARK_S3_ACCESS_KEY, TIDEMARK_S3_SECRET_KEY, TIDEMARK_S3_REGION, TIDEMARK_S3_BUCKET
//
// Set them with `scripts/services up && eval "$(scripts/services env)"`, or run `scripts/test`,
// which does both and then runs `go test`.
//
// Contract of every accessor here: it reads the service's main variable (the secondary ones
// default to the harness values). When the main variable is unset, the test is skipped with
// the reason and the command to run, except when CI=true: then the test fails, because CI must
// exercise every real service.
package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/internal/freeport"
)

// MySQLConfig locates the MySQL/MariaDB server (binlog ROW/FULL, server_id 1). The user has
// ALL on DB and on `<DB>_%` databases, and the global grants binlog CDC needs.
type MySQLConfig struct {
	Addr     string // host:port
	User     string
	Password string
	DB       string
	Flavor   string // "mariadb" or "mysql", as go-mysql's Flavor
}

// Host and port of Addr, as go-mysql's replication.BinlogSyncerConfig wants them.
func (c MySQLConfig) HostPort() (string, uint16) {
	h, p, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return c.Addr, 3306
	}
	n, _ := strconv.ParseUint(p, 10, 16)
	return h, uint16(n)
}

// DSN in the go-sql-driver/mysql form user:password@tcp(addr)/db?parseTime=true.
func (c MySQLConfig) DSN() string {
	return fmt.Sprintf("%s:%s@tcp(%s)/%s?parseTime=true", c.User, c.Password, c.Addr, c.DB)
}

// S3Config locates the S3 endpoint (path-style addressing, static credentials).
type S3Config struct {
	Endpoint  string // e.g. http://127.0.0.1:7070
	AccessKey string
	SecretKey string
	Region    string
	Bucket    string // exists already
}

// MySQL returns the MySQL/MariaDB server of the harness (TIDEMARK_MYSQL_*).
func MySQL(t testing.TB) MySQLConfig {
	t.Helper()
	return MySQLConfig{
		Addr:     need(t, "TIDEMARK_MYSQL_ADDR", "mariadb"),
		User:     env("TIDEMARK_MYSQL_USER", "tidemark"),
		Password: env("TIDEMARK_MYSQL_PASSWORD", "tidemark"),
		DB:       env("TIDEMARK_MYSQL_DB", "tidemark"),
		Flavor:   env("TIDEMARK_MYSQL_FLAVOR", "mariadb"),
	}
}

// AMQPURL returns the RabbitMQ URL of the harness (TIDEMARK_AMQP_URL).
func AMQPURL(t testing.TB) string {
	t.Helper()
	return need(t, "TIDEMARK_AMQP_URL", "rabbitmq")
}

// KafkaBrokers returns the Kafka bootstrap brokers of the harness (TIDEMARK_KAFKA_BROKERS).
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	var brokers []string
	for _, b := range strings.Split(need(t, "TIDEMARK_KAFKA_BROKERS", "kafka"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	return brokers
}

// HBaseZK returns the ZooKeeper quorum of the HBase of the harness (TIDEMARK_HBASE_ZK).
func HBaseZK(t testing.TB) string {
	t.Helper()
	return need(t, "TIDEMARK_HBASE_ZK", "hbase")
}

// S3 returns the S3 endpoint of the harness (TIDEMARK_S3_*).
func S3(t testing.TB) S3Config {
	t.Helper()
	return S3Config{
		Endpoint:  need(t, "TIDEMARK_S3_ENDPOINT", "s3"),
		AccessKey: env("TIDEMARK_S3_ACCESS_KEY", "tidemark"),
		SecretKey: env("TIDEMARK_S3_SECRET_KEY", "tidemark-secret"),
		Region:    env("TIDEMARK_S3_REGION", "us-east-1"),
		Bucket:    env("TIDEMARK_S3_BUCKET", "tidemark"),
	}
}

// need returns the variable, or skips the test (fails it when CI=true) if it is unset.
func need(t testing.TB, name, service string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	msg := fmt.Sprintf("%s is not set: start the real service with `scripts/services up %s && eval \"$(scripts/services env)\"` (or run scripts/test)", name, service)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI must exercise every real service: %s", msg)
	}
	t.Skip(msg)
	return ""
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// FreeAddr returns a loopback address nobody listens on, for a server the
// test tells its address before the server binds it (see freeport: the
// port is drawn where other processes' connections do not land).
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// LoadAverage is the machine's load average over 1, 5 and 15 minutes, for
// a benchmark's log ("unknown" where /proc/loadavg cannot be read).
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// CPUTime is the CPU time (user and system) this process has used so far:
// on a shared machine, CPU per unit of work is steadier than wall-clock
// rates.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err) // RUSAGE_SELF cannot fail on Linux
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Quiesce waits until this process is idle — under 5 % of a core over a
// quarter of a second — or max has passed, and returns how long it waited:
// a benchmark's fixture settles (an embedded store's compactions after a
// bulk load) before its measured work starts.
func Quiesce(max time.Duration) time.Duration {
	const window = 250 * time.Millisecond
	start := time.Now()
	for time.Since(start) < max {
		before := CPUTime()
		time.Sleep(window)
		if CPUTime()-before < window/20 {
			break
		}
	}
	return time.Since(start)
}

// Watermarker is the part of an event center that TrailWatermark moves.
type Watermarker interface {
	AdvanceWatermark(ctx context.Context, source string, partition int32, t time.Time) error
}

// TrailWatermark moves the watermark of src's partition 0 to the clock
// less lag, now and every `every` until tb ends (never back, should the
// clock step back), as the CDC moves a MySQL source's: TrailWatermark(tb,
// st, src, 0, 10*time.Millisecond) leaves a reader waiting for a time just
// past hardly waiting; (2*time.Second, time.Second) is the CDC's defaults
// on an idle server (its lateness, one heartbeat a second). Close the store
// in a cleanup registered before this call, which then runs after the last
// move.
func TrailWatermark(tb testing.TB, st Watermarker, src string, lag, every time.Duration) {
	tb.Helper()
	var last time.Time
	advance := func() {
		if now := time.Now().Add(-lag); now.After(last) {
			last = now
		}
		if err := st.AdvanceWatermark(context.Background(), src, 0, last); err != nil {
			tb.Error(err)
		}
	}
	advance()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(every):
				advance()
			}
		}
	}()
	tb.Cleanup(func() { close(stop); <-done })
}
