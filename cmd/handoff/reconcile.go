package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/handoff-hq/handoff/control"
)

// runReconcile starts a reconciliation now, waits for it and prints its report.
func runReconcile(ctx context.Context, log *slog.Logger, _ []string) error {
	st, closeClient, err := operatorControl(ctx, log)
	if err != nil {
		return err
	}
	defer closeClient()
	id, err := st.StartReconciliation(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("reconciliation %s started\n", id)
	for {
		report, err := st.Reconciliation(ctx, id)
		if errors.Is(err, control.ErrRunning) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
				continue
			}
		}
		if err != nil {
			return err
		}
		out, _ := json.MarshalIndent(report, "", "  ") // a plain struct always encodes
		fmt.Println(string(out))
		return nil
	}
}
