package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/handoff-hq/handoff/apiclient"
)

func reconcileCommand() *cobra.Command {
	var noWait bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Reconcile the providers now: show progress, then the report",
		Long: `Start a reconciliation now: every charge is compared with its invoice, e-mail and
CRM contact, and every invoice with its charge. Safe differences are repaired with the
order's own idempotent steps; the rest are flagged for a person, never changed.

While it runs, its progress (phase, pages, records, repaired, flagged) is printed on
standard error; the report is printed at the end. With --no-wait, only its id is
printed: read it later with 'handoff reconcile show <id>'. Stopping the command
(Ctrl-C) stops the waiting, not the reconciliation.`,
		Example: `  handoff reconcile
  id=$(handoff reconcile --no-wait) && handoff reconcile show "$id" --wait`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := operatorClient()
			if err != nil {
				return err
			}
			started, err := c.StartReconciliation(cmd.Context())
			if err != nil {
				return err
			}
			if noWait {
				return show(started, func() error {
					fmt.Println(started.Id)
					return nil
				})
			}
			fmt.Fprintf(os.Stderr, "reconciliation %s started\n", started.Id)
			return awaitReconciliation(cmd.Context(), c, started.Id, interval)
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "print the reconciliation's id and return at once")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "how often progress is read")

	var wait bool
	showCmd := &cobra.Command{
		Use:   "show <id | latest>",
		Short: "Show a reconciliation: its report, or its progress while it runs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := operatorClient()
			if err != nil {
				return err
			}
			if wait {
				return awaitReconciliation(cmd.Context(), c, args[0], interval)
			}
			report, running, err := c.Reconciliation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if running != nil {
				return show(running, func() error {
					fmt.Println(progressLine(*running))
					return nil
				})
			}
			return showReport(*report)
		},
	}
	showCmd.Flags().BoolVar(&wait, "wait", false, "wait until it has finished, showing its progress")
	showCmd.Flags().DurationVar(&interval, "interval", time.Second, "how often progress is read (with --wait)")
	cmd.AddCommand(showCmd)
	return cmd
}

// awaitReconciliation prints a reconciliation's progress on standard error
// whenever it changes, and its report once it has finished.
func awaitReconciliation(ctx context.Context, c *apiclient.Handoff, id string, interval time.Duration) error {
	last := ""
	for {
		report, running, err := c.Reconciliation(ctx, id)
		if ctx.Err() != nil {
			fmt.Fprintf(os.Stderr, "stopped waiting; reconciliation %s goes on: handoff reconcile show %s\n", id, id)
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("%w (reconciliation %s goes on: handoff reconcile show %s)", err, id, id)
		}
		if report != nil {
			return showReport(*report)
		}
		if line := progressLine(*running); line != last {
			fmt.Fprintln(os.Stderr, line)
			last = line
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}

func progressLine(r apiclient.ReconciliationAnswer) string {
	p := r.Progress
	if p == nil {
		return fmt.Sprintf("reconciliation %s: running, comparing its first page", r.Id)
	}
	return fmt.Sprintf("reconciliation %s: running, phase %s: %d pages, %d records compared, %d repaired, %d flagged, %d in flight",
		r.Id, p.Phase, p.Pages, p.Records, p.Repaired, p.Flagged, p.InFlight)
}

func showReport(r apiclient.ReconcileReport) error {
	return show(r, func() error {
		fmt.Printf("reconciliation %s: finished in %.1fs (%d pages, %d runs)\n", r.Id, r.DurationSeconds, r.Pages, r.Runs)
		fmt.Printf("  compared     %d charges, %d invoices, %d messages, %d contacts%s\n", r.Compared.Charges, r.Compared.Invoices,
			r.Compared.Messages, r.Compared.Contacts, within(byKind(r.Compared.Records)))
		differences := byKind(&r.Differences)
		if differences == "" {
			differences = "none"
		}
		fmt.Printf("  differences  %s\n", differences)
		fmt.Printf("  repaired     %d%s\n", r.Repaired, within(byKind(r.RepairedByKind)))
		fmt.Printf("  flagged      %d%s\n", r.Flagged, within(byKind(r.FlaggedByKind)))
		fmt.Printf("  in flight    %d (left to their running orders)\n", r.InFlight)
		if r.NotRepairedOverCap > 0 {
			fmt.Printf("  over the cap %d safe differences flagged instead of repaired (cap %d)\n", r.NotRepairedOverCap, r.RepairCap)
		}
		if r.NotCompared != nil {
			fmt.Printf("  not compared %s\n", strings.Join(*r.NotCompared, ", "))
		}
		var rows [][]string
		for _, items := range []struct {
			what  string
			items []apiclient.ReportItem
		}{{"repaired", r.RepairedItems}, {"flagged", r.FlaggedItems}} {
			for _, it := range items.items {
				rows = append(rows, []string{items.what, it.Kind, deref(it.OrderKey), it.Reason})
			}
		}
		if len(rows) == 0 {
			return nil
		}
		fmt.Println()
		if err := table("\tKIND\tACTION\tREASON", rows); err != nil {
			return err
		}
		if r.Truncated != nil && *r.Truncated {
			fmt.Println("(more items than the report lists; the counts are exact)")
		}
		return nil
	})
}

// byKind writes counts by kind as "kind n, kind n", sorted by kind.
func byKind(m *map[string]int) string {
	if m == nil {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(*m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, (*m)[k]))
	}
	return strings.Join(parts, ", ")
}

// within is " (what)", or "" for nothing.
func within(what string) string {
	if what == "" {
		return ""
	}
	return " (" + what + ")"
}
