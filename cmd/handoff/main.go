// Command handoff runs handoff and operates it. `dev` runs the whole system
// locally; `worker`, `api` and `sandbox` run one part each; `setup`,
// `replay` and `contracts` prepare and check a release. The operators'
// commands (`actions`, `orders`, `providers`, `reconcile`, `start`) go
// through handoff's HTTP API with a token, so they work from anywhere the
// API is reachable.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/handoff-hq/handoff/config"
)

// Exit codes scripts can rely on.
const (
	exitOK = 0
	// exitFailed: the command failed; for the API's commands, handoff
	// refused the request (not found, conflict, invalid).
	exitFailed = 1
	// exitUsage: a wrong command, flag or argument, or a missing or
	// unsafe configuration.
	exitUsage = 2
	// exitUnauthorized: the API refused the token.
	exitUnauthorized = 3
	// exitUnavailable: the API could not be reached or failed (5xx), after
	// the tries a safe request gets.
	exitUnavailable = 4
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, a second one ends handoff at once.
		<-ctx.Done()
		stop()
	}()
	root := rootCommand()
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil || errors.Is(err, context.Canceled) {
		return
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", cmd.CommandPath(), err)
	code := exitCode(err)
	if _, badConfig := errors.AsType[configError](err); code == exitUsage && !badConfig {
		fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	os.Exit(code)
}

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "handoff",
		Short: "Reliable API integrations on Temporal",
		Long: `handoff carries business actions (orders, customers) out as durable Temporal
workflows against external providers, and lets operators see and repair them.

Commands that run handoff read HANDOFF_* environment variables (see the README).
The operators' commands call handoff's HTTP API: HANDOFF_URL and HANDOFF_OPERATOR_TOKEN
(HANDOFF_API_TOKEN for start), from the environment or a configuration file
(--config, HANDOFF_CONFIG, default ~/.config/handoff/config.env, mode 0600).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddGroup(&cobra.Group{ID: "run", Title: "Run handoff:"}, &cobra.Group{ID: "operate", Title: "Operate it (through the API):"})
	for _, c := range []*cobra.Command{devCommand(), workerCommand(), apiCommand(), sandboxCommand(), setupCommand(), replayCommand(), contractsCommand()} {
		c.GroupID = "run"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{actionsCommand(), ordersCommand(), providersCommand(), reconcileCommand(), startCommand()} {
		c.GroupID = "operate"
		addRemoteFlags(c)
		root.AddCommand(c)
	}
	root.SetHelpCommandGroupID("operate")
	root.SetCompletionCommandGroupID("operate")
	strictArgs(root)
	return root
}

// strictArgs makes every command refuse arguments it does not take, as a
// usage error.
func strictArgs(c *cobra.Command) {
	for _, sub := range c.Commands() {
		strictArgs(sub)
	}
	if !c.Runnable() {
		// A group of commands: an argument can only be a wrong command.
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		}
		c.Args = cobra.ArbitraryArgs
	}
	check := c.Args
	if check == nil {
		check = cobra.NoArgs
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// usageError is a wrong command, flag or argument.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// configError is a configuration the CLI cannot use.
type configError struct{ error }

func configErrorf(format string, args ...any) error { return configError{fmt.Errorf(format, args...)} }

// exitCode is the exit code of a command's error.
func exitCode(err error) int {
	var usage usageError
	var badConfig configError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage), errors.As(err, &badConfig), strings.HasPrefix(err.Error(), "unknown command"):
		return exitUsage
	}
	if code, ok := apiExitCode(err); ok {
		return code
	}
	return exitFailed
}

// logger is the log of a command that runs handoff: JSON lines, or text
// for a person (handoff dev), as HANDOFF_LOG_FORMAT does not say otherwise.
func logger(format string) (*slog.Logger, error) {
	cfg, err := config.LoadLog(format)
	if err != nil {
		return nil, usageError{err}
	}
	return slog.New(cfg.Handler(os.Stderr)), nil
}

// runs makes a command that runs a part of handoff, with its log.
func runs(use, short, format string, run func(ctx context.Context, log *slog.Logger) error) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, RunE: func(cmd *cobra.Command, _ []string) error {
		log, err := logger(format)
		if err != nil {
			return err
		}
		return run(cmd.Context(), log)
	}}
}

func workerCommand() *cobra.Command {
	return runs("worker", "Run the Temporal workers", "json", runWorker)
}

func apiCommand() *cobra.Command {
	return runs("api", "Run the HTTP API", "json", runAPI)
}

func sandboxCommand() *cobra.Command {
	return runs("sandbox", "Run the provider simulator", "json", runSandbox)
}
