// Command tidemark runs the parts of the system: `tidemark dev` starts all of
// them in one process on embedded defaults; the other subcommands run one
// part each against real services (see `tidemark help`).
//
// Each subcommand lives in a file of its own and registers itself in init;
// it reads flags and environment, builds its package's Config, and runs
// until interrupted. The logic lives in the packages, not here.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	// run parses args with fs (already named) and runs until ctx ends.
	run func(ctx context.Context, fs *flag.FlagSet, args []string) error
}

var commands []command

func register(c command) { commands = append(commands, c) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "tidemark:", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string) error {
	slices.SortFunc(commands, func(a, b command) int { return strings.Compare(a.name, b.name) })
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage()
		return nil
	}
	// Subcommands may be two words ("backfill start"): take the longest match.
	var best *command
	var words int
	for i := range commands {
		parts := strings.Fields(commands[i].name)
		if len(parts) <= len(args) && slices.Equal(parts, args[:len(parts)]) && len(parts) > words {
			best, words = &commands[i], len(parts)
		}
	}
	if best == nil {
		usage()
		return fmt.Errorf("unknown command %q", strings.Join(args, " "))
	}
	fs := flag.NewFlagSet("tidemark "+best.name, flag.ContinueOnError)
	return best.run(ctx, fs, args[words:])
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: tidemark <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-18s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr, "\n`tidemark <command> -h` lists a command's flags.")
}

// envOr returns the environment variable name, or def when it is unset.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}
