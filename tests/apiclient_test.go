package tests

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/handoff-hq/handoff/apiclient"
)

// Example_apiClient places an order with the generated client, places it
// again with the same body (as a retry after a lost answer would), and
// reads it back once it has completed.
func Example_apiClient() {
	ctx := context.Background()
	// (The tests' transport checks every exchange against openapi.yaml.)
	c, err := apiclient.New(env.api.URL, testToken, apiclient.Options{HTTPClient: &http.Client{Transport: apiCheck}})
	if err != nil {
		fmt.Println(err)
		return
	}
	order := apiclient.Order{
		OrderId:  "client-1",
		Customer: apiclient.Customer{Email: "ada@example.com", Name: "Ada"},
		Currency: "eur", Amount: 2500,
		Items: []apiclient.Item{{Sku: "book", Quantity: 1, UnitAmount: 2500}},
	}
	for range 2 {
		placed, replayed, err := c.PlaceOrder(ctx, order)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(placed.WorkflowId, "replayed:", replayed)
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		state, err := c.Order(ctx, order.OrderId)
		if err == nil && state.Status == apiclient.ActionStatusCompleted {
			fmt.Println(state.OrderId, state.Status, len(state.Steps), "steps")
			break
		}
	}
	// A different body under the same order_id is a conflict.
	order.Amount, order.Items[0].UnitAmount = 3000, 3000
	_, _, err = c.PlaceOrder(ctx, order)
	fmt.Println(err)
	// Output:
	// order/client-1 replayed: false
	// order/client-1 replayed: true
	// client-1 completed 5 steps
	// 409 The business key is already used by a different request: this order_id was already used for an order with other contents
}
