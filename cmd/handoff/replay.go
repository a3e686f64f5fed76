package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/worker"
)

// runReplay replays history files, or every *.json in a directory.
func runReplay(_ context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("usage: handoff replay <history.json | directory> [more]")
	}
	var paths []string
	for _, arg := range fs.Args() {
		matches, err := filepath.Glob(filepath.Join(arg, "*.json"))
		if err != nil {
			return fmt.Errorf("list histories in %s: %w", arg, err)
		}
		if len(matches) == 0 {
			matches = []string{arg}
		}
		paths = append(paths, matches...)
	}
	// Encrypted histories need the keys of HANDOFF_PAYLOAD_KEYS.
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if err := cfg.Validate(config.ValidateOptions{}); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	if err := worker.ReplayFilesWith(log, cfg.Temporal.Encryption, paths...); err != nil {
		return err
	}
	fmt.Printf("replayed %d histories: all deterministic\n", len(paths))
	return nil
}
