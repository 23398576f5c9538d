// Package commands holds the codevector subcommands and their flags.
package commands

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
)

// command is one subcommand: its one-line summary and what runs it.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var subcommands = map[string]command{
	"manager": {"Run the APIKey controller", runManager},
	"gateway": {"Run the authenticating LLM gateway", runGateway},
	"dev":     {"Run everything on this machine: control plane, manager, gateway", runDev},
	"keys":    {"Create, list, revoke and reveal API keys (also kubectl apikey)", runKeys},
}

// kubectlPlugin is the name under which the binary is the kubectl plugin
// `kubectl apikey` (make build links bin/kubectl-apikey to it).
const kubectlPlugin = "kubectl-apikey"

// Main runs the subcommand named in args and returns the exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if filepath.Base(args[0]) == kubectlPlugin {
		if err := runKeysAs(ctx, "kubectl apikey", args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
			return 1
		}
		return 0
	}

	name := ""
	rest := args[1:]
	if len(rest) > 0 {
		name, rest = rest[0], rest[1:]
	}
	cmd, ok := subcommands[name]
	if !ok {
		usage(os.Stderr, filepath.Base(args[0]))
		if name == "" || name == "-h" || name == "--help" || name == "help" {
			return 0
		}
		fmt.Fprintf(os.Stderr, "\nunknown command %q\n", name)
		return 2
	}
	if err := cmd.run(ctx, rest, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "codevector %s: %v\n", name, err)
		return 1
	}
	return 0
}

func usage(w io.Writer, prog string) {
	fmt.Fprintf(w, "Usage: %s <command> [flags]\n\nCommands:\n", prog)
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, subcommands[n].summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> -h' for the flags of a command.\n", prog)
}
