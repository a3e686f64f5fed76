package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/worker"
)

func replayCommand() *cobra.Command {
	var live bool
	var opts worker.LiveReplayOptions
	var output string
	cmd := &cobra.Command{
		Use:   "replay <history.json | directory>... | --from-temporal",
		Short: "Replay workflow histories (JSON files, or fetched from Temporal) against the current code",
		Long: `Replay recorded workflow histories (temporal workflow show -o json) against the
workflows of this binary: a change that would break a running workflow fails here.
A directory stands for every *.json in it.

With --from-temporal, the histories are fetched from the Temporal cluster of
HANDOFF_TEMPORAL_ADDRESS: of every handoff workflow type, the running ones (--open)
and the most recently closed (--closed). Each history the code does not reproduce
is listed with its workflow id and the first differing command, and the command
exits 1. Run it with a new release's binary before deploying it.

Encrypted histories need the keys of HANDOFF_PAYLOAD_KEYS.`,
		Example: `  handoff replay tests/testdata/histories
  handoff replay --from-temporal --open 20 --closed 200`,
		Args: func(cmd *cobra.Command, args []string) error {
			if live {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.MinimumNArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			log, err := logger("json")
			if err != nil {
				return err
			}
			if live {
				return runLiveReplay(cmd.Context(), log, opts, output)
			}
			return runReplay(log, args)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&live, "from-temporal", false, "fetch the histories from Temporal instead of files")
	f.IntVar(&opts.Open, "open", 20, "with --from-temporal: running workflows of each type to replay")
	f.IntVar(&opts.Closed, "closed", 200, "with --from-temporal: most recently closed workflows of each type to replay")
	f.StringVar(&opts.Query, "query", "", "with --from-temporal: a visibility query that narrows the workflows, such as 'HandoffBusinessKey STARTS_WITH \"A-\"'")
	f.StringVarP(&output, "output", "o", "table", "with --from-temporal: how the report is printed: table or json")
	return cmd
}

// runLiveReplay replays a sample of the histories Temporal holds and
// reports those the code does not reproduce.
func runLiveReplay(ctx context.Context, log *slog.Logger, opts worker.LiveReplayOptions, output string) error {
	cfg, err := loadConfig(config.ValidateOptions{})
	if err != nil {
		return err
	}
	c, err := worker.Dial(ctx, cfg.Temporal, log)
	if err != nil {
		return err
	}
	defer c.Close()
	opts.Encryption = cfg.Temporal.Encryption
	opts.Progress = func(done, total int) {
		if done%50 == 0 || done == total {
			fmt.Fprintf(os.Stderr, "replayed %d of %d histories\n", done, total)
		}
	}
	report, err := worker.ReplayFromTemporal(ctx, c, log, opts)
	if err != nil {
		return err
	}
	if output == "json" {
		if err := printJSON(report); err != nil {
			return err
		}
	} else {
		total := 0
		var kinds []string
		for _, typ := range slices.Sorted(maps.Keys(report.Replayed)) {
			total += report.Replayed[typ]
			kinds = append(kinds, fmt.Sprintf("%s %d", typ, report.Replayed[typ]))
		}
		fmt.Printf("replayed %d histories from Temporal (%s): %d not reproduced\n", total, strings.Join(kinds, ", "), len(report.Failures))
		var rows [][]string
		for _, f := range report.Failures {
			state := "closed"
			if f.Open {
				state = "running"
			}
			rows = append(rows, []string{f.WorkflowID, f.WorkflowType, state, f.Command})
		}
		if len(rows) > 0 {
			if err := table("WORKFLOW ID\tTYPE\tSTATE\tFIRST DIFFERENCE", rows); err != nil {
				return err
			}
		}
	}
	if n := len(report.Failures); n > 0 {
		return fmt.Errorf("%d histories are not reproduced by this code, first %s: %s", n, report.Failures[0].WorkflowID, report.Failures[0].Command)
	}
	return nil
}

// runReplay replays history files, or every *.json in a directory.
func runReplay(log *slog.Logger, args []string) error {
	var paths []string
	for _, arg := range args {
		matches, err := filepath.Glob(filepath.Join(arg, "*.json"))
		if err != nil {
			return fmt.Errorf("list histories in %s: %w", arg, err)
		}
		if len(matches) == 0 {
			matches = []string{arg}
		}
		paths = append(paths, matches...)
	}
	cfg, err := loadConfig(config.ValidateOptions{})
	if err != nil {
		return err
	}
	if err := worker.ReplayFilesWith(log, cfg.Temporal.Encryption, paths...); err != nil {
		return err
	}
	fmt.Printf("replayed %d histories: all deterministic\n", len(paths))
	return nil
}
