package tests

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/api"
	"github.com/handoff-hq/handoff/providers"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
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

// An early event's workflow runs no workflow task before its order comes:
// Temporal holds the first one back for the orphan window (its start
// delay), with the event kept in the history. When the window passes
// without the order, the first task parks the events for an operator at
// once.
func TestAnEarlyEventRunsNoWorkflowTaskBeforeItsOrder(t *testing.T) {
	id := "early-deferred-1"
	wid := action.OrderKey(id).String()
	t.Cleanup(func() { _ = env.client.TerminateWorkflow(context.Background(), wid, "", "test finished") })
	if status := postWebhook(t, "msg_early_deferred_1", id, "ch_early_deferred_1"); status/100 != 2 {
		t.Fatalf("early webhook: %d", status)
	}
	desc, err := env.client.DescribeWorkflow(context.Background(), wid, "")
	if err != nil {
		t.Fatal(err)
	}
	info := desc.RawResponse.GetWorkflowExecutionInfo()
	if delay := info.GetExecutionTime().AsTime().Sub(info.GetStartTime().AsTime()); delay != testOrphanWindow {
		t.Errorf("first workflow task held back %s, want the orphan window %s", delay, testOrphanWindow)
	}
	time.Sleep(time.Second)
	if got := eventTypes(t, env.client, wid); !slices.Equal(got, []string{"WorkflowExecutionStarted", "WorkflowExecutionSignaled"}) {
		t.Errorf("history a second after the event: %v, want it started and signalled only", got)
	}
	state := awaitOrder(t, id, action.StatusNeedsAttention)
	if payment := state.Steps[2]; payment.LastError == nil || payment.LastError.Category != action.CategoryOrphan {
		t.Errorf("payment step = %+v, want an orphan error", payment)
	}
	if waited := time.Since(info.GetStartTime().AsTime()); waited < testOrphanWindow {
		t.Errorf("parked %s after the event, before the window of %s", waited, testOrphanWindow)
	}
	// The first workflow task parked it: no timer waited out the window.
	for _, typ := range eventTypes(t, env.client, wid) {
		if typ == "TimerStarted" {
			t.Errorf("the history holds a timer: %v", eventTypes(t, env.client, wid))
			break
		}
	}
}

// eventTypes lists the types of a workflow's history events, in order.
func eventTypes(t *testing.T, c client.Client, workflowID string) []string {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []string
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.TrimPrefix(ev.GetEventType().String(), "EVENT_TYPE_"))
	}
	return out
}
