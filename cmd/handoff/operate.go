package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/worker"
	"github.com/handoff-hq/handoff/workflows"
)

// operatorControl dials Temporal for an operator command.
func operatorControl(ctx context.Context, log *slog.Logger) (*control.Client, func(), error) {
	cfg, err := loadConfig(config.ValidateOptions{})
	if err != nil {
		return nil, nil, err
	}
	c, err := worker.Dial(ctx, cfg.Temporal, log)
	if err != nil {
		return nil, nil, err
	}
	st, err := control.New(c, controlOptions(cfg))
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return st, c.Close, nil
}

// runActions serves `handoff actions list|retry|skip|abort`.
func runActions(ctx context.Context, log *slog.Logger, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: handoff actions list [flags] | handoff actions retry|skip|abort <workflow_id> [flags]")
	}
	fs := flag.NewFlagSet("actions "+args[0], flag.ContinueOnError)
	status := fs.String("status", string(action.StatusNeedsAttention), "list: action status")
	provider := fs.String("provider", "", "list: provider of the parked step")
	step := fs.String("step", "", "list: parked step")
	all := fs.Bool("all", false, "list: follow every page")
	reason := fs.String("reason", "", "why (recorded with the action)")
	email := fs.String("customer-email", "", "retry: corrected customer e-mail")
	name := fs.String("customer-name", "", "retry: corrected customer name")
	target, err := parseWithTarget(fs, args[1:])
	if err != nil {
		return err
	}
	st, closeClient, err := operatorControl(ctx, log)
	if err != nil {
		return err
	}
	defer closeClient()
	if args[0] == "list" {
		return listActions(ctx, st, control.ActionFilter{Status: *status, Provider: *provider, Step: *step, PageSize: 50}, *all)
	}
	if target == "" {
		return fmt.Errorf("usage: handoff actions %s <workflow_id> [--reason …]", args[0])
	}
	req := workflows.OperatorRequest{Reason: *reason}
	if *email != "" || *name != "" {
		req.Customer = &action.Customer{Email: *email, Name: *name}
	}
	result, err := st.Resolve(ctx, target, args[0], req)
	if err != nil {
		return err
	}
	fmt.Printf("%s %s: accepted (step %s)\n", args[0], target, result.Step)
	return nil
}

func listActions(ctx context.Context, st *control.Client, f control.ActionFilter, all bool) error {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "WORKFLOW ID\tSTATUS\tSTEP\tCATEGORY\tPROVIDER\tREASON")
	for {
		page, err := st.ListActions(ctx, f)
		if err != nil {
			return err
		}
		for _, a := range page.Actions {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", a.WorkflowID, a.Status, a.Step, a.ErrorCategory, a.Provider, a.Reason)
		}
		if !all || page.NextPageToken == "" {
			if err := w.Flush(); err != nil {
				return err
			}
			if page.NextPageToken != "" {
				fmt.Println("(more: --all follows every page)")
			}
			return nil
		}
		f.PageToken = page.NextPageToken
	}
}

// runOrders serves `handoff orders cancel <order_id>`.
func runOrders(ctx context.Context, log *slog.Logger, args []string) error {
	if len(args) == 0 || args[0] != "cancel" {
		return errors.New("usage: handoff orders cancel <order_id> [--reason …]")
	}
	fs := flag.NewFlagSet("orders cancel", flag.ContinueOnError)
	reason := fs.String("reason", "", "why (recorded with the order)")
	orderID, err := parseWithTarget(fs, args[1:])
	if err != nil {
		return err
	}
	if orderID == "" {
		return errors.New("usage: handoff orders cancel <order_id> [--reason …]")
	}
	st, closeClient, err := operatorControl(ctx, log)
	if err != nil {
		return err
	}
	defer closeClient()
	if _, err := st.CancelOrder(ctx, orderID, *reason); err != nil {
		return err
	}
	fmt.Printf("order %s: cancelling; what it did is being undone\n", orderID)
	return nil
}

// runProviders serves `handoff providers pause|resume|status <system>`.
func runProviders(ctx context.Context, log *slog.Logger, args []string) error {
	const usage = "usage: handoff providers pause|resume|status <system> [--reason …]"
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("providers "+args[0], flag.ContinueOnError)
	reason := fs.String("reason", "", "why (recorded with the pause)")
	system, err := parseWithTarget(fs, args[1:])
	if err != nil {
		return err
	}
	if system == "" {
		return errors.New(usage)
	}
	st, closeClient, err := operatorControl(ctx, log)
	if err != nil {
		return err
	}
	defer closeClient()
	var status control.ProviderStatus
	switch args[0] {
	case "pause":
		status, err = st.PauseProvider(ctx, system, *reason)
	case "resume":
		status, err = st.ResumeProvider(ctx, system, *reason)
	case "status":
		status, err = st.Provider(ctx, system)
	default:
		return errors.New(usage)
	}
	if err != nil {
		return err
	}
	out, _ := json.MarshalIndent(status, "", "  ") // a plain struct always encodes
	fmt.Println(string(out))
	return nil
}

// parseWithTarget parses flags that may come before or after the one
// positional argument (the workflow id, order id or system), which it returns.
func parseWithTarget(fs *flag.FlagSet, args []string) (string, error) {
	target := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		target, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if target == "" && fs.NArg() > 0 {
		target = fs.Arg(0)
	}
	if fs.NArg() > 1 || (target != "" && fs.NArg() > 0 && fs.Arg(0) != target) {
		return "", fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return target, nil
}
