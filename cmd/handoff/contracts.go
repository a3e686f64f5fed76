package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/contracts"
)

func contractsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "contracts",
		Short: "Check the integration contracts and print them as Markdown",
		Long: `Check every contract (the built-in ones, with those of HANDOFF_CONTRACTS_DIR in
their place) against the registry of systems and print them as Markdown for a
reviewer.`,
		RunE: func(*cobra.Command, []string) error { return runContracts() },
	}
}

func runContracts() error {
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
