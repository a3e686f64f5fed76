// Command handoff-bench measures handoff against the same order written on
// Temporal alone, side by side on one dev server (`make bench`), and prints
// the figures, their ratios and the goals they meet. `handoff-bench
// bare-worker` is the bare side's worker, which the benchmark starts.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-hq/handoff/internal/bench"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bare-worker" {
		if err := bench.RunBareWorker(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "bare worker: %v\n", err)
			os.Exit(1)
		}
		return
	}
	var opts bench.Options
	var env envFlags
	bin := flag.String("bin", "bin", "where temporal and handoff are")
	flag.IntVar(&opts.Orders, "orders", 200, "orders each side places per round")
	flag.IntVar(&opts.Concurrency, "concurrency", 16, "orders in flight at a time")
	flag.IntVar(&opts.Rounds, "rounds", 3, "rounds; every figure is their median")
	flag.IntVar(&opts.Webhooks, "webhooks", 400, "webhooks each side takes per round")
	flag.IntVar(&opts.Reads, "reads", 200, "reads of running orders each side makes per round")
	flag.BoolVar(&opts.InMemory, "memory", false, "run the dev server in memory rather than on its SQLite file")
	flag.StringVar(&opts.Only, "only", "", "run one kind of phase only: orders, webhooks or reads")
	flag.Var(&env, "env", "NAME=value added to handoff's processes (repeatable), e.g. a worker setting")
	keep := flag.Bool("keep", false, "keep the run's directory (logs, the dev server's file)")
	flag.Parse()
	if err := run(opts, *bin, env, *keep); err != nil {
		fmt.Fprintf(os.Stderr, "handoff-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(opts bench.Options, bin string, env []string, keep bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if opts.Bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	if opts.Self, err = os.Executable(); err != nil {
		return err
	}
	if opts.Dir, err = os.MkdirTemp("", "handoff-bench-"); err != nil {
		return err
	}
	if keep {
		fmt.Println("keeping", opts.Dir)
	} else {
		defer os.RemoveAll(opts.Dir)
	}
	opts.Env = env
	started := time.Now()
	opts.Progress = func(s string) { fmt.Printf("  [%5.0fs] %s\n", time.Since(started).Seconds(), s) }
	rep, err := bench.Run(ctx, opts)
	if err != nil {
		return fmt.Errorf("%w (logs in %s with -keep)", err, opts.Dir)
	}
	fmt.Printf("\n%s\nmeasured in %s\n", rep.Table(), time.Since(started).Round(time.Second))
	return nil
}

type envFlags []string

func (e *envFlags) String() string { return strings.Join(*e, " ") }

func (e *envFlags) Set(v string) error {
	if !strings.Contains(v, "=") {
		return fmt.Errorf("%q is not NAME=value", v)
	}
	*e = append(*e, v)
	return nil
}
