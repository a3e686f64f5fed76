package main

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/spf13/cobra"

	"github.com/handoff-hq/handoff/apiclient"
	"github.com/handoff-hq/handoff/config"
)

func actionsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "actions",
		Short: "List parked actions; retry, skip or abort one",
		Long: `An action that cannot finish by itself (a provider refused a step for a reason a
person must fix) parks with status needs_attention and waits. List them, then answer
each: retry the step (with the same idempotency key, optionally with corrected
customer details), skip it and go on, or abort (undo what was done, end cancelled).`,
	}
	cmd.AddCommand(actionsListCommand())
	for _, answer := range []struct {
		name  apiclient.ResolveActionParamsAnswer
		short string
	}{
		{apiclient.ResolveActionParamsAnswerRetry, "Retry the step the action waits at"},
		{apiclient.ResolveActionParamsAnswerSkip, "Skip the step the action waits at and go on"},
		{apiclient.ResolveActionParamsAnswerAbort, "Undo what the action did and end it cancelled"},
	} {
		cmd.AddCommand(resolveCommand(answer.name, answer.short))
	}
	return cmd
}

func actionsListCommand() *cobra.Command {
	var status, provider, step string
	var all bool
	var pageSize int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List actions, most recently started first",
		Example: `  handoff actions list
  handoff actions list --provider accounting --all --output json`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := operatorClient()
			if err != nil {
				return err
			}
			params := apiclient.ListActionsParams{PageSize: &pageSize}
			if status != "" {
				params.Status = (*apiclient.ActionStatus)(&status)
			}
			if provider != "" {
				params.Provider = &provider
			}
			if step != "" {
				params.Step = &step
			}
			var list apiclient.ActionList
			for {
				page, err := c.Actions(cmd.Context(), params)
				if err != nil {
					return err
				}
				list.Actions = append(list.Actions, page.Actions...)
				list.NextPageToken = page.NextPageToken
				if !all || deref(page.NextPageToken) == "" {
					break
				}
				params.PageToken = page.NextPageToken
			}
			if list.Actions == nil {
				list.Actions = []apiclient.ListedAction{}
			}
			return show(list, func() error {
				rows := make([][]string, 0, len(list.Actions))
				for _, a := range list.Actions {
					rows = append(rows, []string{a.WorkflowId, string(a.Status), deref(a.Step), deref(a.ErrorCategory),
						deref(a.Provider), a.StartedAt.Local().Format(time.DateTime), deref(a.Reason)})
				}
				if err := table("WORKFLOW ID\tSTATUS\tSTEP\tCATEGORY\tPROVIDER\tSTARTED\tREASON", rows); err != nil {
					return err
				}
				if deref(list.NextPageToken) != "" {
					fmt.Println("(more: --all follows every page)")
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&status, "status", "needs_attention", "only actions in this status, or every action with \"\" (processing, awaiting_payment, completed, needs_attention, cancelling, cancelled, rejected, synced)")
	f.StringVar(&provider, "provider", "", "only actions waiting at a step of this system (payments, accounting, crm, mail, …)")
	f.StringVar(&step, "step", "", "only actions waiting at this step (customer, charge, invoice, confirmation, …)")
	f.BoolVar(&all, "all", false, "follow every page")
	f.IntVar(&pageSize, "page-size", 50, "actions per page (1 to 100)")
	_ = cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions([]string{"processing", "awaiting_payment", "completed",
		"needs_attention", "cancelling", "cancelled", "rejected", "synced"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("provider", cobra.FixedCompletions([]string{"payments", "accounting", "crm", "mail"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func resolveCommand(answer apiclient.ResolveActionParamsAnswer, short string) *cobra.Command {
	var reason, email, name, record string
	cmd := &cobra.Command{
		Use:     string(answer) + " <workflow_id>",
		Short:   short,
		Example: "  handoff actions " + string(answer) + " order/A-1001 --reason 'tax id fixed in accounting'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (email == "") != (name == "") {
				return usageError{errors.New("--customer-email and --customer-name go together")}
			}
			c, err := operatorClient()
			if err != nil {
				return err
			}
			req := apiclient.OperatorRequest{Reason: optional(reason)}
			if email != "" || name != "" {
				req.Customer = &apiclient.Customer{Email: openapi_types.Email(email), Name: name}
			}
			if record != "" {
				req.Record = &record
			}
			done, err := c.Resolve(cmd.Context(), args[0], answer, req)
			if err != nil {
				return err
			}
			return show(done, func() error {
				fmt.Printf("%s %s: accepted (step %s; status %s until it goes on)\n", answer, done.WorkflowId, deref(done.Step), done.Status)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded with the action; skipping a cancelled order's compensation step needs one)")
	if answer == apiclient.ResolveActionParamsAnswerRetry {
		cmd.Flags().StringVar(&email, "customer-email", "", "corrected customer e-mail (with --customer-name)")
		cmd.Flags().StringVar(&name, "customer-name", "", "corrected customer name (with --customer-email)")
		cmd.Flags().StringVar(&record, "record", "", "for a customer parked as ambiguous_match: the record that holds the customer")
	}
	return cmd
}

func ordersCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "orders", Short: "Read or cancel an order"}
	showCmd := &cobra.Command{
		Use:   "show <order_id>",
		Short: "Show where an order stands, step by step",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := orderClient()
			if err != nil {
				return err
			}
			o, err := c.Order(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return showOrder(o)
		},
	}
	var reason string
	cancel := &cobra.Command{
		Use:   "cancel <order_id>",
		Short: "Cancel an order: its charge is refunded, its invoice voided",
		Long: `Ask an order to stop and undo what it did. It reports cancelling at once; a step
already running finishes first; then the invoice is voided and the charge cancelled
or refunded, and the order ends cancelled. Cancelling twice refunds once.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := orderClient()
			if err != nil {
				return err
			}
			done, err := c.CancelOrder(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			return show(done, func() error {
				fmt.Printf("order %s: %s; what it did is being undone\n", args[0], done.Status)
				return nil
			})
		},
	}
	cancel.Flags().StringVar(&reason, "reason", "", "why (recorded with the order)")
	cmd.AddCommand(showCmd, cancel)
	return cmd
}

// orderClient reads and cancels orders with the operator token, or with
// the API token when there is no operator token.
func orderClient() (*apiclient.Handoff, error) {
	return clientWith(func(s config.CLI) (string, string) {
		if s.OperatorToken == "" && s.APIToken != "" {
			return s.APIToken, "HANDOFF_API_TOKEN"
		}
		return s.OperatorToken, "HANDOFF_OPERATOR_TOKEN"
	})
}

func showOrder(o apiclient.OrderState) error {
	return show(o, func() error {
		fmt.Printf("order %s: %s (updated %s)\n\n", o.OrderId, o.Status, o.UpdatedAt.Local().Format(time.DateTime))
		rows := make([][]string, 0, len(o.Steps))
		for _, s := range o.Steps {
			last := ""
			if s.LastError != nil {
				last = string(s.LastError.Category) + ": " + s.LastError.Message
			}
			rows = append(rows, []string{s.Name, string(s.Status), strconv.Itoa(s.Attempts), s.RemoteRef, last})
		}
		return table("STEP\tSTATUS\tATTEMPTS\tREMOTE REF\tLAST ERROR", rows)
	})
}

func providersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "providers",
		Short: "Pause, resume or show a provider",
		Long: `Pause the calls to a provider during its outage or maintenance: no call reaches it
while paused; calls wait (and count in its backlog) and go on when it is resumed.`,
	}
	for _, op := range []struct{ name, short string }{
		{"status", "Show a provider's pause state and backlog"},
		{"pause", "Stop calling a provider; calls wait until it is resumed"},
		{"resume", "Call a paused provider again; the waiting calls go on"},
	} {
		var reason string
		sub := &cobra.Command{
			Use:       op.name + " <system>",
			Short:     op.short,
			Args:      cobra.ExactArgs(1),
			ValidArgs: []string{"payments", "accounting", "crm", "mail"},
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := operatorClient()
				if err != nil {
					return err
				}
				var status apiclient.ProviderStatus
				if op.name == "status" {
					status, err = c.Provider(cmd.Context(), args[0])
				} else {
					status, err = c.ControlProvider(cmd.Context(), args[0], apiclient.ControlProviderParamsOp(op.name), reason)
				}
				if err != nil {
					return err
				}
				return show(status, func() error {
					since := ""
					if status.PausedSince != nil {
						since = status.PausedSince.Local().Format(time.DateTime)
					}
					return table("SYSTEM\tPAUSED\tSINCE\tREASON\tBACKLOG\tOLDEST WAITING", [][]string{{status.System, strconv.FormatBool(status.Paused),
						since, deref(status.Reason), strconv.FormatInt(status.Backlog, 10),
						time.Duration(float64(status.BacklogAgeSeconds) * float64(time.Second)).Round(time.Second).String()}})
				})
			},
		}
		if op.name != "status" {
			sub.Flags().StringVar(&reason, "reason", "", "why (recorded with the pause)")
		}
		cmd.AddCommand(sub)
	}
	return cmd
}

// optional is nil for "", so that an empty value is left out.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
