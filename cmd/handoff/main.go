// Command handoff runs handoff: `dev` runs the whole system locally, `worker`,
// `api` and `sandbox` run one part each, `start` places an order from a JSON
// file, and `replay` checks recorded workflow histories against the code.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/handoff-hq/handoff/config"
)

const usage = `usage: handoff <command> [flags]

commands:
  dev       run the whole system locally: Temporal dev server, worker, API, sandbox
  worker    run the Temporal workers
  api       run the HTTP API
  sandbox   run the provider simulator
  setup     make the namespace and search attributes handoff needs (safe to repeat)
  start     place an order from a JSON file (- for standard input)
  replay    replay workflow histories (JSON files) against the current code
  actions   list parked actions; retry, skip or abort one
  orders    cancel an order (its charge is refunded, its invoice voided)
  providers pause, resume or show a provider
  reconcile reconcile the providers now and print the report
  contracts check the integration contracts and print them as Markdown

Configuration is read from HANDOFF_* environment variables; see the README.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, a second one ends handoff at once.
		<-ctx.Done()
		stop()
	}()
	// Logs are JSON lines, except in `handoff dev`, which a person reads.
	format := "json"
	if os.Args[1] == "dev" {
		format = "text"
	}
	logCfg, err := config.LoadLog(format)
	if err != nil {
		fmt.Fprintf(os.Stderr, "handoff: %v\n", err)
		os.Exit(2)
	}
	logger := slog.New(logCfg.Handler(os.Stderr))
	commands := map[string]func(context.Context, *slog.Logger, []string) error{
		"dev": runDev, "worker": runWorker, "api": runAPI, "sandbox": runSandbox, "setup": runSetup,
		"start": runStart, "replay": runReplay,
		"actions": runActions, "orders": runOrders, "providers": runProviders, "reconcile": runReconcile,
		"contracts": runContracts,
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "handoff: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err := cmd(ctx, logger, os.Args[2:]); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "handoff %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
