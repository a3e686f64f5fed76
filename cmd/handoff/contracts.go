package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/handoff-hq/handoff/apiclient"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/contracts"
)

func contractsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "contracts",
		Short: "Check the integration contracts and print them as Markdown",
		Long: `Check every contract (the built-in ones, with those of HANDOFF_CONTRACTS_DIR in
their place) against the registry of systems and print them as Markdown for a
reviewer.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return runContracts() },
	}
	drift := driftCommand()
	addRemoteFlags(drift)
	cmd.AddCommand(drift)
	return cmd
}

// driftCommand lists how providers' answers differed from their contracts,
// through the API.
func driftCommand() *cobra.Command {
	var clear bool
	var reason string
	cmd := &cobra.Command{
		Use:   "drift [--clear [<system>]]",
		Short: "List how providers' answers differed from their contracts",
		Long: `List every way a provider's answers differed from the shape its contract declares,
as the workers read them: by system, operation, kind (missing_field, wrong_type,
wrong_format, unknown_value, unknown_field, api_version) and field, with how often,
when first and last seen, and an example that shows no personal data.

Once a system's contract has been reviewed (and updated, or the provider asked),
--clear forgets its drift (every system's without a system); what the workers read
afterwards is listed again.`,
		Args:      cobra.MaximumNArgs(1),
		ValidArgs: []string{"payments", "accounting", "crm", "mail"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && !clear {
				return usageError{fmt.Errorf("a system is given only with --clear")}
			}
			c, err := operatorClient()
			if err != nil {
				return err
			}
			var drift apiclient.ContractDrift
			if clear {
				system := ""
				if len(args) > 0 {
					system = args[0]
				}
				drift, err = c.ClearContractDrift(cmd.Context(), system, reason)
			} else {
				drift, err = c.ContractDrift(cmd.Context())
			}
			if err != nil {
				return err
			}
			return show(drift, func() error {
				if len(drift.Drift) == 0 {
					_, err := fmt.Println("No drift: every answer read matched its contract.")
					return err
				}
				rows := make([][]string, 0, len(drift.Drift))
				for _, d := range drift.Drift {
					rows = append(rows, []string{d.System, d.Operation, string(d.Kind), d.Field, d.Example, strconv.FormatInt(d.Count, 10),
						d.FirstSeen.Local().Format(time.DateTime), d.LastSeen.Local().Format(time.DateTime)})
				}
				return table("SYSTEM\tOPERATION\tKIND\tFIELD\tEXAMPLE\tCOUNT\tFIRST SEEN\tLAST SEEN", rows)
			})
		},
	}
	cmd.Flags().BoolVar(&clear, "clear", false, "forget the drift of the system given (of every system without one), once its contract is reviewed")
	cmd.Flags().StringVar(&reason, "reason", "", "why the drift is cleared (with --clear)")
	return cmd
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
