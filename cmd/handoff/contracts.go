package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/contracts"
)

// runContracts serves `handoff contracts`: it checks every contract (the
// built-in ones, with those of HANDOFF_CONTRACTS_DIR in their place) against
// the registry of systems and prints them as Markdown for a reviewer.
func runContracts(_ context.Context, _ *slog.Logger, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("usage: handoff contracts (reads HANDOFF_CONTRACTS_DIR when set)")
	}
	overrides, err := config.LoadContracts()
	if err != nil {
		return err
	}
	if err := contracts.Check(overrides...); err != nil {
		return fmt.Errorf("the contracts do not hold:\n%w", err)
	}
	_, err = fmt.Print(contracts.Markdown(contracts.With(overrides)))
	return err
}
