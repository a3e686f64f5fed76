package main

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/worker"
)

func replayCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "replay <history.json | directory>...",
		Short: "Replay workflow histories (JSON files) against the current code",
		Long: `Replay recorded workflow histories (temporal workflow show -o json) against the
workflows of this binary: a change that would break a running workflow fails here.
A directory stands for every *.json in it. Encrypted histories need the keys of
HANDOFF_PAYLOAD_KEYS.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			log, err := logger("json")
			if err != nil {
				return err
			}
			return runReplay(log, args)
		},
	}
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
