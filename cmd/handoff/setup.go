package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/worker"
)

// runSetup prepares a Temporal cluster for handoff: the namespace (made
// when missing, with the given retention) and handoff's search attributes.
// It changes nothing that is already there, so running it again is safe.
func runSetup(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("setup", flag.ContinueOnError)
	retention := fs.Duration("retention", 30*24*time.Hour,
		"how long Temporal keeps a closed workflow (a new namespace's retention; an existing one keeps its own)")
	wait := fs.Duration("wait", 2*time.Minute, "how long to wait for Temporal to answer before giving up")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return errors.New("usage: handoff setup [--retention 720h] [--wait 2m]")
	}
	if *retention < 24*time.Hour {
		return fmt.Errorf("--retention %s: Temporal keeps closed workflows at least 24h", *retention)
	}
	cfg, err := loadConfig(config.ValidateOptions{})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	ns := cfg.Temporal.Namespace
	var made bool
	err = worker.Retry(ctx, log, "set up namespace "+ns, func(actx context.Context) error {
		made, err = ensureNamespace(actx, cfg.Temporal, ns, *retention, log)
		return err
	})
	if err != nil {
		return err
	}
	if made {
		fmt.Printf("namespace %s: created, retention %s\n", ns, *retention)
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
