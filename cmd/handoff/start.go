package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/google/uuid"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/control"
)

// runStart places an order from a JSON file, exactly as POST /v1/orders does.
func runStart(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 || fs.Arg(0) != "order" {
		return fmt.Errorf("usage: handoff start order <file.json | ->")
	}
	order, err := readOrder(fs.Arg(1))
	if err != nil {
		return err
	}
	st, closeClient, err := operatorControl(ctx, log)
	if err != nil {
		return err
	}
	defer closeClient()
	placed, err := st.PlaceOrder(ctx, order, uuid.NewString())
	var invalid *control.ValidationError
	if errors.As(err, &invalid) {
		for _, f := range invalid.Fields {
			fmt.Fprintf(os.Stderr, "  %s: %s\n", f.Field, f.Detail)
		}
	}
	if err != nil {
		return err
	}
	what := "started"
	if placed.Replayed {
		what = "already placed with the same contents; nothing new started"
	}
	fmt.Printf("order %s: %s (workflow %s)\n", placed.OrderID, what, placed.WorkflowID)
	return nil
}

func readOrder(path string) (action.Order, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return action.Order{}, fmt.Errorf("read order: %w", err)
		}
		defer f.Close()
		r = f
	}
	var order action.Order
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&order); err != nil {
		return action.Order{}, fmt.Errorf("read order %s: %w", path, err)
	}
	return order, nil
}
