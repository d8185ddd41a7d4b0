package app

import (
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// TestConfigCheck checks a configuration from a file, a variable and
// flags: the store and Kafka answer, Temporal (a closed port) does not,
// S3 and RabbitMQ are not configured; one line per service, exit 1.
func TestConfigCheck(t *testing.T) {
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	t.Setenv("TIDEMARK_STORE", "pebble://"+filepath.Join(dir, "from-env"))
	for _, v := range []string{"TIDEMARK_S3_ENDPOINT", "TIDEMARK_S3_REGION", "TIDEMARK_S3_ACCESS_KEY", "TIDEMARK_S3_SECRET_KEY", "TIDEMARK_S3_BUCKET", "TIDEMARK_AMQP_URL", "TIDEMARK_SOURCES"} {
		t.Setenv(v, "")
	}
	file := filepath.Join(dir, "tidemark.yaml")
	writeFile(t, file, "store: pebble:///nonexistent/overridden\nkafka: {brokers: ["+closed+"]}\ntemporal: {address: "+closed+"}\n")

	code, out, errOut := run(t, "config", "check", "--config", file, "--brokers", strings.Join(kafka.ListenAddrs(), ","), "--timeout", "3s")
	if code != ExitError {
		t.Errorf("exit %d, want %d", code, ExitError)
	}
	for _, want := range []string{
		`(?m)^store\s+pebble://` + regexp.QuoteMeta(filepath.Join(dir, "from-env")) + `\s+OK$`,
		`(?m)^sources\s+not configured$`,
		`(?m)^kafka\s+` + regexp.QuoteMeta(kafka.ListenAddrs()[0]) + `\s+OK$`,
		`(?m)^temporal\s+` + regexp.QuoteMeta(closed) + ` namespace default\s+FAILED: .+$`,
		`(?m)^s3\s+AWS\s+not configured$`,
		`(?m)^amqp\s+not configured$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("stdout does not match %s:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "1 of the configured services failed the check") {
		t.Errorf("stderr: %s", errOut)
	}
}
