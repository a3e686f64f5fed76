package tests

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/api"
	"github.com/handoff-hq/handoff/providers"
)

// chargeAhead creates the order's charge at the payments provider before
// the order is placed, as an application that charges first would; the
// sandbox then sends its payment webhooks for an order handoff does not
// know yet.
func chargeAhead(t *testing.T, orderID string) providers.Charge {
	t.Helper()
	o := order(orderID)
	ch, err := paymentsClient().CreateCharge(context.Background(), providers.Call{IdempotencyKey: action.OrderKey(orderID).Step("charge").String()},
		providers.ChargeRequest{Amount: o.Amount, Currency: o.Currency, Email: o.Customer.Email})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestEarlyEventsAreKeptAndAppliedWhenTheOrderArrives(t *testing.T) {
	id := "early-1"
	charge := chargeAhead(t, id)
	waitFor(t, "the early payment events to be accepted", func() bool {
		d, ok := lastDelivery(env.sandbox, action.OrderKey(id).Step("charge").String(), "payment.succeeded")
		return ok && d.Delivered
	})
	if status, _, body := call(t, http.MethodGet, "/v1/orders/"+id, nil, testToken); status != http.StatusNotFound {
		t.Errorf("before the order is placed: GET = %d %s, want 404", status, body)
	}

	status, header, body := call(t, http.MethodPost, "/v1/orders", order(id), testToken)
	if status != http.StatusAccepted || header.Get(api.HeaderIdempotentReplayed) != "" {
		t.Fatalf("place order: %d replayed=%q %s", status, header.Get(api.HeaderIdempotentReplayed), body)
	}
	state := awaitOrder(t, id, action.StatusCompleted)
	payment := state.Steps[2]
	if payment.RemoteRef != charge.ID || payment.Attempts != 0 || chargeReads(charge.ID) != 0 {
		t.Errorf("payment step = %+v, charge read %d times; want the early events to have decided %s", payment, chargeReads(charge.ID), charge.ID)
	}
	assertExactlyOnce(t, id)

	// The order placed into the waiting workflow is idempotent like any other.
	if status, header, _ := call(t, http.MethodPost, "/v1/orders", order(id), testToken); status != http.StatusAccepted || header.Get(api.HeaderIdempotentReplayed) != "true" {
		t.Errorf("the same order again: %d replayed=%q, want 202 replayed", status, header.Get(api.HeaderIdempotentReplayed))
	}
	changed := order(id)
	changed.Customer.Name = "Someone Else"
	if status, _, _ := call(t, http.MethodPost, "/v1/orders", changed, testToken); status != http.StatusConflict {
		t.Errorf("another order under the id: %d, want 409", status)
	}
}

func TestEventsWhoseOrderNeverComesAreParked(t *testing.T) {
	id := "orphan-1"
	chargeAhead(t, id)
	state := awaitOrder(t, id, action.StatusNeedsAttention)
	defer func() {
		_ = env.client.TerminateWorkflow(context.Background(), action.OrderKey(id).String(), "", "test finished")
	}()
	payment := state.Steps[2]
	if payment.LastError == nil || payment.LastError.Category != action.CategoryOrphan || !strings.Contains(payment.LastError.Message, "never placed") {
		t.Errorf("payment step = %+v, want an orphan error", payment)
	}
}
