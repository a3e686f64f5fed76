package tests

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/api"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/workflows"
)

// parkOnInvoice places an order whose invoice creation gets one permanent
// 422, and waits until it needs attention.
func parkOnInvoice(t *testing.T, id string) workflows.OrderState {
	t.Helper()
	addFault(t, sandbox.Fault{System: "accounting", Operation: "create_invoice", KeyPrefix: action.OrderKey(id).String() + "/",
		Mode: sandbox.FaultStatus, Status: 422, Count: 1})
	placeOrders(t, id)
	return awaitOrder(t, id, action.StatusNeedsAttention)
}

func operatorCall(t *testing.T, path string, body any) (int, []byte) {
	t.Helper()
	status, _, raw := call(t, http.MethodPost, path, body, testOperatorToken)
	return status, raw
}

func TestParkedOrderIsListedAndRetriedWithCorrectedData(t *testing.T) {
	defer clearFaults(t)
	id := "op-retry-1"
	parkOnInvoice(t, id)

	// Operators find it: in the API's list (visibility catches up shortly).
	var found *api.ListedAction
	waitFor(t, "the parked order in GET /v1/actions", func() bool {
		status, _, body := call(t, http.MethodGet, "/v1/actions?status=needs_attention&provider=accounting", nil, testOperatorToken)
		var list api.ActionList
		if status != http.StatusOK || json.Unmarshal(body, &list) != nil {
			return false
		}
		for i, a := range list.Actions {
			if a.WorkflowID == action.OrderKey(id).String() {
				found = &list.Actions[i]
				return true
			}
		}
		return false
	})
	if found.Step != "invoice" || found.ErrorCategory != "permanent" || !strings.Contains(found.Reason, "422") || found.Links["web_ui"] == "" {
		t.Errorf("listed action = %+v, want the invoice step, permanent, the reason and a Web UI link", found)
	}

	corrected := map[string]any{"reason": "customer gave a valid tax id", "customer": map[string]string{"email": "ada+" + id + "@example.com", "name": "Ada Lovelace Ltd"}}
	if status, body := operatorCall(t, "/v1/actions/"+action.OrderKey(id).Step("retry").String(), corrected); status != http.StatusOK {
		t.Fatalf("retry: %d %s", status, body)
	}
	state := awaitOrder(t, id, action.StatusCompleted)
	if inv := state.Steps[3]; inv.Status != action.StepSucceeded || inv.Attempts != 2 {
		t.Errorf("invoice step = %+v, want succeeded on the second attempt", inv)
	}
	assertExactlyOnce(t, id)
	if got := len(env.sandbox.Calls("accounting", "create_invoice", action.OrderKey(id).Step("invoice").String())); got != 2 {
		t.Errorf("invoice calls = %d, want 2 under the same key", got)
	}

	// Once it is done, a retry does not apply.
	if status, body := operatorCall(t, "/v1/actions/"+action.OrderKey(id).Step("retry").String(), nil); status != http.StatusConflict {
		t.Errorf("retry of a completed order: %d %s, want 409", status, body)
	}
}

func TestSkipCompletesWithoutTheStep(t *testing.T) {
	defer clearFaults(t)
	id := "op-skip-1"
	parkOnInvoice(t, id)
	if status, body := operatorCall(t, "/v1/actions/"+action.OrderKey(id).Step("skip").String(), map[string]string{"reason": "invoiced by hand"}); status != http.StatusOK {
		t.Fatalf("skip: %d %s", status, body)
	}
	state := awaitOrder(t, id, action.StatusCompleted)
	if state.Steps[3].Status != action.StepSkipped || state.Steps[4].Status != action.StepSucceeded {
		t.Errorf("steps = %+v, want the invoice skipped and the confirmation sent", state.Steps)
	}
	if got := countFor(env.sandbox.State(), "accounting", "invoices", id, "invoice"); got != 0 {
		t.Errorf("invoices = %d, want 0", got)
	}
}

func TestAbortOfAPaidOrderRefundsAndVoids(t *testing.T) {
	defer clearFaults(t)
	id := "op-abort-1"
	// The invoice is made, then the e-mail fails for good.
	addFault(t, sandbox.Fault{System: "mail", Operation: "send_message", KeyPrefix: action.OrderKey(id).String() + "/",
		Mode: sandbox.FaultStatus, Status: 403, Count: 1})
	placeOrders(t, id)
	awaitOrder(t, id, action.StatusNeedsAttention)

	// An operation that does not exist is refused.
	if status, body := operatorCall(t, "/v1/actions/"+action.OrderKey(id).Step("bogus").String(), nil); status != http.StatusBadRequest {
		t.Errorf("unknown operation: %d %s, want 400", status, body)
	}
	if status, body := operatorCall(t, "/v1/actions/"+action.OrderKey(id).Step("abort").String(), map[string]string{"reason": "customer withdrew"}); status != http.StatusOK {
		t.Fatalf("abort: %d %s", status, body)
	}
	state := awaitOrder(t, id, action.StatusCancelled)
	st := env.sandbox.State()
	if got := countFor(st, "payments", "refunds", id, "refund"); got != 1 {
		t.Errorf("refunds = %d, want 1", got)
	}
	if got := st["accounting"]["invoices"].ByStatus["void"]; got < 1 {
		t.Errorf("void invoices = %d, want the order's invoice voided", got)
	}
	var refund, void bool
	for _, s := range state.Steps {
		refund = refund || (s.Name == workflows.StepRefund && s.Status == action.StepSucceeded)
		void = void || (s.Name == workflows.StepVoidInvoice && s.Status == action.StepSucceeded)
	}
	if !refund || !void {
		t.Errorf("steps = %+v, want refund and void_invoice succeeded", state.Steps)
	}
	if status, body := operatorCall(t, "/v1/actions/"+action.OrderKey(id).Step("abort").String(), nil); status != http.StatusConflict {
		t.Errorf("second abort: %d %s, want 409", status, body)
	}
}

func TestUpdatesThatDoNotApplyAre409WithAReason(t *testing.T) {
	id := "op-409-1"
	// Hold the payment webhooks so the order is still running, not parked.
	holdWebhooks(t, id)
	defer clearFaults(t)
	placeOrders(t, id)
	awaitPaymentWait(t, id)
	status, body := operatorCall(t, "/v1/actions/"+action.OrderKey(id).Step("skip").String(), nil)
	if status != http.StatusConflict || !strings.Contains(string(body), "waiting for an operator") {
		t.Errorf("skip of a running order: %d %s, want 409 with the reason", status, body)
	}
	awaitOrder(t, id, action.StatusCompleted)
}

func TestCancelAnOrderCompensatesInReverse(t *testing.T) {
	defer clearFaults(t)
	id := "op-cancel-1"
	// Park it on the e-mail: charged and invoiced, then cancelled.
	addFault(t, sandbox.Fault{System: "mail", Operation: "send_message", KeyPrefix: action.OrderKey(id).String() + "/",
		Mode: sandbox.FaultStatus, Status: 422, Count: 1})
	placeOrders(t, id)
	awaitOrder(t, id, action.StatusNeedsAttention)
	status, _, body := call(t, http.MethodPost, "/v1/orders/"+id+"/cancel", map[string]string{"reason": "not wanted"}, testToken)
	if status != http.StatusAccepted {
		t.Fatalf("cancel: %d %s", status, body)
	}
	awaitOrder(t, id, action.StatusCancelled)
	if got := countFor(env.sandbox.State(), "payments", "refunds", id, "refund"); got != 1 {
		t.Errorf("refunds = %d, want 1", got)
	}
	// Cancelling again is a no-op answer, not a second refund.
	status, _, _ = call(t, http.MethodPost, "/v1/orders/"+id+"/cancel", nil, testToken)
	if status != http.StatusConflict {
		t.Errorf("second cancel: %d, want 409 (already cancelled)", status)
	}
	if got := countFor(env.sandbox.State(), "payments", "refunds", id, "refund"); got != 1 {
		t.Errorf("refunds after a second cancel = %d, want 1", got)
	}
}
