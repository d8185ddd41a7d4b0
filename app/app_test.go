package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tidemark-dev/tidemark/examples/credit"
)

// run runs the CLI of the example job in process.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code = Run(ctx, args, &out, &errOut, Name("tidemark"), Jobs(credit.New), Indexes(credit.Indexes()...))
	return code, out.String(), errOut.String()
}

func TestExitCodesAndMessages(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	for _, tc := range []struct {
		name string
		args []string
		code int
		// out must be in stdout; errOnce must be in stderr exactly once.
		out, errOnce string
	}{
		{"no command: help", nil, ExitOK, "Available Commands:", ""},
		{"--help", []string{"--help"}, ExitOK, "Available Commands:", ""},
		{"-h", []string{"-h"}, ExitOK, "Available Commands:", ""},
		{"help command", []string{"help", "backfill", "start"}, ExitOK, "Examples:", ""},
		{"group alone lists its subcommands", []string{"backfill"}, ExitOK, "cancel", ""},
		{"group help", []string{"hbase", "--help"}, ExitOK, "init", ""},
		{"command help", []string{"backfill", "start", "-h"}, ExitOK, "--from time", ""},
		{"deprecated command's help", []string{"backfill", "worker", "--help"}, ExitOK, "--task-queue", ""},
		{"completion", []string{"completion", "bash"}, ExitOK, "bash completion", ""},
		{"jobs group", []string{"jobs"}, ExitOK, "show", ""},
		{"job names complete", []string{"__complete", "live", "--job", ""}, ExitOK, credit.Name, "Completion ended with directive"},

		{"unknown command", []string{"nope"}, ExitUsage, "", `unknown command "nope" for "tidemark"`},
		{"misspelt command", []string{"backfil"}, ExitUsage, "", `did you mean "backfill"?`},
		{"unknown subcommand", []string{"backfill", "nope"}, ExitUsage, "", `unknown command "nope" for "tidemark backfill"`},
		{"unknown flag", []string{"backfill", "start", "--nope"}, ExitUsage, "", "unknown flag: --nope"},
		{"unexpected argument", []string{"backfill", "start", "--job", credit.Name, "extra"}, ExitUsage, "", `unexpected argument "extra"`},
		{"bad date", []string{"backfill", "start", "--from", "yesterday"}, ExitUsage, "", `"yesterday" is not a date`},
		{"bad known-at", []string{"backfill", "start", "--known-at", "soon"}, ExitUsage, "", `want "", "trigger", or a time`},
		{"no range", []string{"backfill", "start", "--job", credit.Name}, ExitUsage, "", "give a range (from, to) or a sample table"},
		{"empty range", []string{"backfill", "start", "--from", "2026-11-26", "--to", "2026-11-25"}, ExitUsage, "", "is empty"},
		{"required flag", []string{"backfill", "status"}, ExitUsage, "", `required flag(s) "id" not set`},
		{"jobs show without a job", []string{"jobs", "show"}, ExitUsage, "", "accepts 1 arg(s), received 0"},
		{"unknown job", []string{"live", "--job", "nope"}, ExitUsage, "", `unknown job "nope" (this binary runs: credit-features)`},
		{"bad log level", []string{"live", "--log-level", "loud"}, ExitUsage, "", `--log-level "loud"`},
		{"bad store URL", []string{"live", "--store", "ftp://x"}, ExitUsage, "", `unknown kind "ftp"`},
		{"hbase command on pebble", []string{"hbase", "drop", "--store", "pebble://x"}, ExitUsage, "", "is not an HBase store"},
		{"bad correction parallelism", []string{"worker", "--correction-parallelism", "0"}, ExitUsage, "", "--correction-parallelism 0"},
		{"bad correction in-flight rows", []string{"worker", "--correction-in-flight-rows", "-1"}, ExitUsage, "", "--correction-in-flight-rows -1: want 0"},
		{"deprecated correction in-flight beside rows", []string{"worker", "--correction-in-flight", "4", "--correction-in-flight-rows", "100000"}, ExitUsage, "", "give one"},
		{"huge correction parallelism", []string{"worker", "--correction-parallelism", "1000000000000"}, ExitUsage, "", "want 1 to 1024"},
		{"drop without --yes", []string{"hbase", "drop", "--store", "hbase://127.0.0.1:1/x"}, ExitUsage, "", "add --yes"},

		{"failure", []string{"ingest", "--sources", missing}, ExitError, "", "missing.yaml"},
		{"missing config file", []string{"--config", missing, "live"}, ExitError, "", "missing.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			if !strings.Contains(out, tc.out) {
				t.Errorf("stdout lacks %q:\n%s", tc.out, out)
			}
			if tc.errOnce == "" {
				if errOut != "" {
					t.Errorf("stderr: %s", errOut)
				}
				return
			}
			if n := strings.Count(errOut, tc.errOnce); n != 1 {
				t.Errorf("stderr has %q %d times, want once:\n%s", tc.errOnce, n, errOut)
			}
			if strings.Contains(errOut, "Usage:") || strings.Contains(errOut, "Error:") {
				t.Errorf("stderr has more than the error:\n%s", errOut)
			}
			if tc.code == ExitUsage && !strings.Contains(errOut, "--help' for usage") {
				t.Errorf("a usage error does not point to --help:\n%s", errOut)
			}
		})
	}
}

// TestLegacyForms: for one release, single-dash long flags and the old
// command names work, each with a deprecation line.
func TestLegacyForms(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		out, notes string
	}{
		{"single-dash flags", []string{"backfill", "start", "-job", credit.Name, "-from", "2026-11-26", "-to=2026-11-25"}, ExitUsage, "",
			"single-dash long flags (-job -from -to) are read as --flags"},
		{"single-dash help", []string{"live", "-help"}, ExitOK, "consumes the job's trigger topic", "single-dash"},
		{"worker --job is live", []string{"worker", "-job", credit.Name, "--help"}, ExitOK, "consumes the job's trigger topic", `"tidemark worker" with --job runs the live worker of the job, now "tidemark live"`},
		{"worker is the Temporal worker", []string{"worker", "--help"}, ExitOK, "polls the task queue", ""},
		{"old ingest line", []string{"ingest", "-sources", "/nonexistent/sources.yaml", "-brokers", "127.0.0.1:1", "-log-level", "info",
			"-store", "/tmp/store", "-group", "g", "-instance-id", "i", "-metrics", "127.0.0.1:0"}, ExitError, "",
			"(-sources -brokers -log-level -store -group -instance-id -metrics)"},
		{"old hbase flags", []string{"hbase", "drop", "-zk", "127.0.0.1:1", "-namespace", "scratch"}, ExitUsage, "",
			"--zk and --namespace are parts of --store hbase://ZK/NAMESPACE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.notes) {
				t.Errorf("exit %d (want %d)\nstdout (want %q):\n%s\nstderr (want %q):\n%s", code, tc.code, tc.out, out, tc.notes, errOut)
			}
			if tc.notes == "" && errOut != "" {
				t.Errorf("stderr: %s", errOut)
			}
		})
	}
}

// TestEveryCommandHasExamples walks the tree: every command has a short
// description and examples, every flag a usage text.
func TestEveryCommandHasExamples(t *testing.T) {
	a := &cli{name: "tidemark", newJobs: []NewJob{credit.New}, stdout: new(bytes.Buffer), stderr: new(bytes.Buffer), env: os.LookupEnv}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Short == "" {
			t.Errorf("%s: no short description", c.CommandPath())
		}
		if c.Example == "" && !c.Hidden {
			t.Errorf("%s: no examples", c.CommandPath())
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Usage == "" {
				t.Errorf("%s --%s: no usage", c.CommandPath(), f.Name)
			}
		})
		for _, sub := range c.Commands() {
			if sub.Name() != "completion" && sub.Name() != "help" {
				walk(sub)
			}
		}
	}
	walk(a.root())
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"2026-11-25":                     time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC),
		"2026-11-25T10:30:00Z":           time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC),
		"2026-11-25T10:30:00.25Z":        time.Date(2026, 11, 25, 10, 30, 0, 250e6, time.UTC),
		"2026-11-25T10:30:00+01:00":      time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC),
		"2026-11-25T10:30:00.123456789Z": time.Date(2026, 11, 25, 10, 30, 0, 123456789, time.UTC),
	} {
		got, err := ParseTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "yesterday", "2026-11-25 10:30", "2026-11-25T10:30", "25.11.2026", "2026-13-01", "1732492800"} {
		if got, err := ParseTime(in); err == nil {
			t.Errorf("ParseTime(%q) = %v, want an error", in, got)
		}
	}
}

// TestDateFlags: every date flag reads dates through ParseTime; --known-at
// keeps a time in RFC 3339 for the workflow.
func TestDateFlags(t *testing.T) {
	var f backfillFlags
	f.job = credit.Name
	cmd := &cobra.Command{}
	f.register(cmd.Flags())
	if err := cmd.Flags().Parse([]string{"--from", "2026-11-25", "--to", "2026-11-25T12:00:00+01:00", "--known-at", "2026-11-26"}); err != nil {
		t.Fatal(err)
	}
	in, err := f.input()
	if err != nil {
		t.Fatal(err)
	}
	if !in.From.Equal(time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)) || !in.To.Equal(time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("range [%v, %v)", in.From, in.To)
	}
	if in.KnownAt != "2026-11-26T00:00:00Z" {
		t.Errorf("known-at %q", in.KnownAt)
	}
}

// TestSamplePathIsTheCallers: a relative --sample path is the caller's,
// made absolute before the workflow (whose worker may run elsewhere) gets
// it; URIs and absolute paths pass as they are.
func TestSamplePathIsTheCallers(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for arg, want := range map[string]string{
		"sample.csv":            filepath.Join(wd, "sample.csv"),
		"../t/s.parquet":        filepath.Join(filepath.Dir(wd), "t", "s.parquet"),
		"/abs/s.csv":            "/abs/s.csv",
		"file:///abs/s.csv":     "file:///abs/s.csv",
		"s3://bucket/s.parquet": "s3://bucket/s.parquet",
	} {
		var f backfillFlags
		f.job = credit.Name
		cmd := &cobra.Command{}
		f.register(cmd.Flags())
		if err := cmd.Flags().Parse([]string{"--sample", arg}); err != nil {
			t.Fatal(err)
		}
		in, err := f.input()
		if err != nil || in.Sample != want {
			t.Errorf("--sample %s: %q, %v; want %q", arg, in.Sample, err, want)
		}
	}
}

// TestFormatNeedsAFileSink: --format with a sink that writes records (the
// job's outputs, the feature store) is refused before anything starts.
func TestFormatNeedsAFileSink(t *testing.T) {
	for _, c := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"--format", "parquet"}, false},
		{[]string{"--format", "jsonl", "--sink", "featurestore"}, false},
		{[]string{"--format", "parquet", "--sink", "file:///tmp/out"}, true},
		{[]string{"--format", "parquet", "--sink", "s3://b/p"}, true},
		{[]string{"--sink", "featurestore"}, true},
	} {
		var f backfillFlags
		f.job = credit.Name
		cmd := &cobra.Command{}
		f.register(cmd.Flags())
		if err := cmd.Flags().Parse(append([]string{"--from", "2026-11-25", "--to", "2026-11-26"}, c.args...)); err != nil {
			t.Fatal(err)
		}
		_, err := f.input()
		if (err == nil) != c.ok || err != nil && !strings.Contains(err.Error(), "only file:// and s3:// sinks write files") {
			t.Errorf("%q: %v", c.args, err)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
