package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
)

// Exit codes of Run.
const (
	ExitOK    = 0 // success, or help asked for
	ExitError = 1 // the command failed
	ExitUsage = 2 // the command line is wrong
)

// NewJob builds a job; the commands add options to the job's own (its
// outputs, a consistency level…). The example job's credit.New is one.
type NewJob func(opts ...job.Option) (*job.Job, error)

// Option configures the CLI Main builds.
type Option func(*cli)

// Jobs are the jobs the binary runs: live (`live --job NAME`), in
// backfills (`worker`) and in `dev`.
func Jobs(jobs ...NewJob) Option {
	return func(a *cli) { a.newJobs = append(a.newJobs, jobs...) }
}

// Indexes are the secondary indexes the jobs' lookups use; the commands
// that run jobs declare them in the event center at start.
func Indexes(ix ...eventcenter.Index) Option {
	return func(a *cli) { a.indexes = append(a.indexes, ix...) }
}

// Name is the binary's name in help and messages. Default: the base name
// of os.Args[0] ("tidemark" under `go run`).
func Name(name string) Option {
	return func(a *cli) { a.name = name }
}

// Main runs the CLI on os.Args until SIGINT or SIGTERM, and exits with
// Run's code.
func Main(opts ...Option) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Stdout, os.Stderr, opts...)
	stop()
	os.Exit(code)
}

// Run runs the command line args (without the program name), writing
// results and help to stdout and errors to stderr, and returns the exit
// code: ExitOK, ExitError or ExitUsage.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, opts ...Option) int {
	a := &cli{stdout: stdout, stderr: stderr, env: os.LookupEnv}
	for _, o := range opts {
		o(a)
	}
	if a.name == "" {
		a.name = binaryName()
	}
	root := a.root()
	args = a.legacy(root, args)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "%s: %v\n", a.name, err)
	var failed runFailure
	if errors.As(err, &failed) && !errors.As(err, new(usageError)) {
		return ExitError
	}
	fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	return ExitUsage
}

func binaryName() string {
	n := filepath.Base(os.Args[0])
	if n == "main" || n == "." || strings.HasPrefix(n, "__debug") {
		return "tidemark"
	}
	return strings.TrimSuffix(n, ".test")
}

// cli is the state every command shares.
type cli struct {
	name           string
	newJobs        []NewJob
	indexes        []eventcenter.Index
	stdout, stderr io.Writer
	env            func(string) (string, bool)
	configFile     string
	exampleJob     string // the job the examples name
}

// usageError is an error of the command line found by a command itself
// (a missing required flag, flags that exclude each other): exit 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// runFailure marks an error returned by a command's RunE; every other
// error cobra returns (flags, arguments, unknown commands) is a usage
// error.
type runFailure struct{ error }

func (e runFailure) Unwrap() error { return e.error }

// root builds the command tree.
func (a *cli) root() *cobra.Command {
	root := &cobra.Command{
		Use:   a.name,
		Short: "tidemark: write a job once, run it live, in backfills and on request",
		Long: a.name + ` runs the parts of tidemark: "dev" starts all of them in one process on embedded
defaults; the other commands run one part each against real services.

Services are configured by an optional YAML file (--config, $TIDEMARK_CONFIG),
overridden by TIDEMARK_* environment variables, overridden by flags
("` + a.name + ` config --help" lists them).`,
		Example:           "  " + a.name + " dev\n  " + a.name + " backfill start --job credit-features --from 2026-11-25 --to 2026-11-26\n  " + a.name + " config check --config tidemark.yaml",
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.PersistentFlags().StringVar(&a.configFile, "config", a.envOr("TIDEMARK_CONFIG", ""), "YAML configuration file ($TIDEMARK_CONFIG)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return err })
	root.AddCommand(
		a.devCmd(), a.liveCmd(), a.workerCmd(false), a.backfillCmd(), a.ingestCmd(), a.cdcCmd(), a.forwardCmd(), a.hbaseCmd(), a.configCmd(), a.jobsCmd(),
		a.tokenCmd(), a.paramsCmd(),
		a.apiCmd(), a.featuresCmd(), a.callCmd(),
		a.correctionCmd(),
		a.tierCmd(),
		a.parityCmd(),
	)
	a.exampleJob = "credit-features"
	if names := a.jobNames(); len(names) > 0 && !slices.Contains(names, a.exampleJob) {
		a.exampleJob = names[0]
	}
	a.finish(root)
	return root
}

// finish gives every command of the tree the same rules: a group (a
// command with subcommands) without one prints its help, an unknown
// subcommand is a usage error, a command without positional parameters
// refuses arguments, the errors a command returns are runFailures, and
// the examples name this binary and one of its jobs.
func (a *cli) finish(c *cobra.Command) {
	c.Example = strings.NewReplacer("  tidemark ", "  "+a.name+" ", "credit-features", a.exampleJob).Replace(c.Example)
	switch {
	case c.HasSubCommands():
		if c.RunE == nil {
			c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
		}
		c.Args = unknownSubcommand
	case c.Args == nil:
		c.Args = noArgs
	}
	if run := c.RunE; run != nil {
		c.RunE = func(c *cobra.Command, args []string) error {
			if err := run(c, args); err != nil {
				return runFailure{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		a.finish(sub)
	}
}

func unknownSubcommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return errors.New(msg)
}

func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q: %q takes flags only", args[0], c.CommandPath())
	}
	return nil
}

func (a *cli) envOr(name, def string) string {
	if v, ok := a.env(name); ok && v != "" {
		return v
	}
	return def
}

// legacy rewrites the old command line forms, for one release, printing a
// deprecation line for each: `worker --job` (the live worker's old name)
// runs live, and single-dash long flags of the command (-job) are read as
// --job.
func (a *cli) legacy(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil {
		return args
	}
	if cmd.Name() == "worker" && cmd.Parent() == root && slices.ContainsFunc(args, isJobFlag) {
		a.deprecated("%q with --job runs the live worker of the job, now %q", a.name+" worker", a.name+" live")
		args = slices.Clone(args)
		args[slices.Index(args, "worker")] = "live"
		if cmd, _, err = root.Find(args); err != nil {
			return args
		}
	}
	out := make([]string, 0, len(args))
	var dashed []string
	for i, arg := range args {
		if arg == "--" {
			out = append(out, args[i:]...)
			break
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(arg, "-"), "=")
		if strings.HasPrefix(arg, "-") && !strings.HasPrefix(arg, "--") && len(name) > 1 && (cmd.Flag(name) != nil || name == "help") {
			dashed = append(dashed, "-"+name)
			arg = "-" + arg
		}
		out = append(out, arg)
	}
	if len(dashed) > 0 {
		a.deprecated("single-dash long flags (%s) are read as --flags; write them with two dashes", strings.Join(dashed, " "))
	}
	return out
}

func isJobFlag(arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return name == "job" && strings.HasPrefix(arg, "-")
}

// deprecated prints a deprecation line on stderr.
func (a *cli) deprecated(format string, args ...any) {
	fmt.Fprintf(a.stderr, "%s: deprecated: %s (the old form goes in the next release)\n", a.name, fmt.Sprintf(format, args...))
}
