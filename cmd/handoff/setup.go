package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/spf13/cobra"

	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/worker"
)

func setupCommand() *cobra.Command {
	var retention, wait time.Duration
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Make the namespace and search attributes handoff needs (safe to repeat)",
		Long: `Prepare a Temporal cluster for handoff: the namespace (made when missing, with the
given retention) and handoff's search attributes. Nothing that is already there is
changed, so running it again is safe.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if retention < 24*time.Hour {
				return usageError{fmt.Errorf("--retention %s: Temporal keeps closed workflows at least 24h", retention)}
			}
			log, err := logger("json")
			if err != nil {
				return err
			}
			return runSetup(cmd.Context(), log, retention, wait)
		},
	}
	cmd.Flags().DurationVar(&retention, "retention", 30*24*time.Hour,
		"how long Temporal keeps a closed workflow (a new namespace's retention; an existing one keeps its own)")
	cmd.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for Temporal to answer before giving up")
	return cmd
}

// runSetup prepares a Temporal cluster for handoff: the namespace (made
// when missing, with the given retention) and handoff's search attributes.
// It changes nothing that is already there, so running it again is safe.
func runSetup(ctx context.Context, log *slog.Logger, retention, wait time.Duration) error {
	cfg, err := loadConfig(config.ValidateOptions{})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	ns := cfg.Temporal.Namespace
	var made bool
	err = worker.Retry(ctx, log, "set up namespace "+ns, func(actx context.Context) error {
		made, err = ensureNamespace(actx, cfg.Temporal, ns, retention, log)
		return err
	})
	if err != nil {
		return err
	}
	if made {
		fmt.Printf("namespace %s: created, retention %s\n", ns, retention)
	} else {
		fmt.Printf("namespace %s: present\n", ns)
	}
	// A namespace just made takes a moment to reach every frontend.
	var added []string
	err = worker.Retry(ctx, log, "register search attributes", func(actx context.Context) error {
		c, err := worker.Dial(actx, cfg.Temporal, log)
		if err != nil {
			return err
		}
		defer c.Close()
		added, err = worker.AddSearchAttributes(actx, c, ns)
		return err
	})
	if err != nil {
		return err
	}
	if len(added) > 0 {
		fmt.Printf("search attributes: added %s\n", strings.Join(added, ", "))
	} else {
		fmt.Printf("search attributes: present\n")
	}
	return nil
}

// ensureNamespace registers the namespace unless it exists; it reports
// whether it made it.
func ensureNamespace(ctx context.Context, t config.Temporal, ns string, retention time.Duration, log *slog.Logger) (bool, error) {
	// The system namespace always exists: the client dials through it.
	sys := t
	sys.Namespace = "temporal-system"
	c, err := worker.Dial(ctx, sys, log)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
	var notFound *serviceerror.NamespaceNotFound
	switch {
	case err == nil:
		return false, nil
	case !errors.As(err, &notFound):
		return false, fmt.Errorf("describe namespace %s: %w", ns, err)
	}
	_, err = c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: ns, WorkflowExecutionRetentionPeriod: durationpb.New(retention),
		Description: "handoff's actions",
	})
	var exists *serviceerror.NamespaceAlreadyExists
	if errors.As(err, &exists) {
		return false, nil // another setup made it meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("register namespace %s: %w", ns, err)
	}
	return true, nil
}
