package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/handoff-hq/handoff/apiclient"
)

func startCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start a business action from a JSON file",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "order <file.json | ->",
		Short: "Place an order from a JSON file (- for standard input), as POST /v1/orders does",
		Long: `Place an order from a JSON file with the body of POST /v1/orders, with the API token
(HANDOFF_API_TOKEN). Placing the same order again is safe: handoff answers as it did
the first time and starts nothing new.`,
		Example: `  handoff start order order.json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			order, err := readOrder(args[0])
			if err != nil {
				return err
			}
			c, err := applicationClient()
			if err != nil {
				return err
			}
			placed, replayed, err := c.PlaceOrder(cmd.Context(), order)
			if err != nil {
				return err
			}
			return show(placed, func() error {
				what := "started"
				if replayed {
					what = "already placed with the same contents; nothing new started"
				}
				fmt.Printf("order %s: %s (workflow %s)\n", placed.OrderId, what, placed.WorkflowId)
				return nil
			})
		},
	})
	return cmd
}

// readOrder reads an order's JSON from a file, or standard input for "-".
func readOrder(path string) (apiclient.Order, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return apiclient.Order{}, usageError{fmt.Errorf("read order: %w", err)}
		}
		defer f.Close()
		r = f
	}
	var order apiclient.Order
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&order); err != nil {
		return apiclient.Order{}, usageError{fmt.Errorf("read order %s: %w", path, err)}
	}
	return order, nil
}
