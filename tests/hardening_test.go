package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/api"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/workflows"
)

// slowCharge makes the order's charge take the given time at the provider,
// which creates it when the time is up, whether or not the caller waited.
func slowCharge(t *testing.T, id string, latency time.Duration) {
	t.Helper()
	addFault(t, sandbox.Fault{System: "payments", Operation: "create_charge", KeyPrefix: action.OrderKey(id).String() + "/",
		Mode: sandbox.FaultLatency, LatencyMS: int(latency / time.Millisecond), Count: 1})
}

// awaitChargeCall waits until the provider has received the order's create.
func awaitChargeCall(t *testing.T, id string) {
	t.Helper()
	waitFor(t, id+"'s charge call to reach the provider", func() bool {
		return len(env.sandbox.Calls("payments", "create_charge", action.OrderKey(id).Step("charge").String())) > 0
	})
}

// assertRefundedOnce checks that the order made one charge and gave its
// money back exactly once.
func assertRefundedOnce(t *testing.T, id string) {
	t.Helper()
	st := env.sandbox.State()
	if got := countFor(st, "payments", "charges", id, "charge"); got != 1 {
		t.Errorf("%s: charges = %d, want 1", id, got)
	}
	if refunds := env.sandbox.RefundsOf(chargeOf(t, id).ID); len(refunds) != 1 {
		t.Errorf("%s: refunds of its charge = %d, want exactly 1", id, len(refunds))
	}
}

// settleBeforeCancel holds the order's charge cancellation back until the
// charge has settled, so that compensation must refund it.
func settleBeforeCancel(t *testing.T, id string) {
	t.Helper()
	addFault(t, sandbox.Fault{System: "payments", Operation: "cancel_charge", KeyPrefix: action.OrderKey(id).String() + "/",
		Mode: sandbox.FaultLatency, LatencyMS: 300, Count: 1})
}

// chargeOf returns the order's charge at the provider.
func chargeOf(t *testing.T, id string) providers.Charge {
	t.Helper()
	ch, found := env.sandbox.ChargeByRef(action.OrderKey(id).Step("charge").String())
	if !found {
		t.Fatalf("%s: no charge at the provider", id)
	}
	return ch
}

// TestCancelDuringASlowChargeKeepsNoMoney cancels an order while its
// charge call is in flight, in each of the three ways an order is stopped:
// the charge lands, settles before compensation reaches it, and is refunded
// exactly once. (A charge that is still pending is cancelled instead; see
// TestACancelledOrderWhoseChargeNeverSettlesCancelsItAtTheProvider.)
func TestCancelDuringASlowChargeKeepsNoMoney(t *testing.T) {
	defer clearFaults(t)
	cases := []struct {
		name   string
		cancel func(t *testing.T, id string)
	}{
		{"cancelled through Temporal", func(t *testing.T, id string) {
			if err := env.client.CancelWorkflow(context.Background(), action.OrderKey(id).String(), ""); err != nil {
				t.Fatal(err)
			}
		}},
		{"cancelled through the API", func(t *testing.T, id string) {
			if status, _, body := call(t, http.MethodPost, "/v1/orders/"+id+"/cancel", map[string]string{"reason": "customer withdrew"}, testToken); status != http.StatusAccepted {
				t.Fatalf("cancel: %d %s", status, body)
			}
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("slow-cancel-%d", i)
			slowCharge(t, id, 1500*time.Millisecond)
			settleBeforeCancel(t, id)
			placeOrders(t, id)
			awaitChargeCall(t, id)
			c.cancel(t, id)
			state := awaitOrder(t, id, action.StatusCancelled, action.StatusCompleted)
			if state.Status != action.StatusCancelled {
				t.Fatalf("status = %s, want cancelled", state.Status)
			}
			assertRefundedOnce(t, id)
			if got := countFor(env.sandbox.State(), "accounting", "invoices", id, "invoice"); got != 0 {
				t.Errorf("invoices = %d, want none for a cancelled order", got)
			}
		})
	}

	// An abort: the charge's answer was lost (the provider committed, then
	// the connection broke) and the look-up before the next attempt was
	// refused, so the charge step parks while the provider holds a charge.
	t.Run("aborted", func(t *testing.T) {
		id := "slow-abort"
		settleBeforeCancel(t, id)
		addFault(t, sandbox.Fault{System: "payments", Operation: "create_charge", KeyPrefix: action.OrderKey(id).String() + "/",
			Mode: sandbox.FaultTimeoutAfterCommit, LatencyMS: 300, Count: 1})
		placeOrders(t, id)
		awaitChargeCall(t, id)
		addFault(t, sandbox.Fault{System: "payments", Operation: "list_charges", Mode: sandbox.FaultStatus, Status: 403, Count: 1})
		state := awaitOrder(t, id, action.StatusNeedsAttention)
		if state.Steps[1].Name != workflows.StepCharge || state.Steps[1].Status != action.StepFailed {
			t.Fatalf("steps = %+v, want the charge step parked", state.Steps)
		}
		if status, body := operatorCall(t, "/v1/actions/"+action.OrderKey(id).Step("abort").String(), map[string]string{"reason": "provider trouble"}); status != http.StatusOK {
			t.Fatalf("abort: %d %s", status, body)
		}
		awaitOrder(t, id, action.StatusCancelled)
		assertRefundedOnce(t, id)
	})
}

// TestACancelledOrderWhoseChargeNeverSettlesCancelsItAtTheProvider: the
// customer never completes the payment. Cancelling the order (by the API
// while it waits, or by an operator's abort once the payment timeout parked
// it) cancels the charge at the provider, so it can no longer take money,
// and the order ends with a short history.
func TestACancelledOrderWhoseChargeNeverSettlesCancelsItAtTheProvider(t *testing.T) {
	st, err := control.New(env.client, control.Options{DataConverter: codec.DataConverter(testEncryption()), PaymentPollInterval: 100 * time.Millisecond, PaymentTimeout: 3 * time.Second, PaymentWebhookWait: testWebhookWait})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cases := []struct {
		id     string
		cancel func(t *testing.T, id string)
	}{
		{"never-settles-cancel", func(t *testing.T, id string) {
			if _, err := st.CancelOrder(ctx, id, "customer gave up"); err != nil {
				t.Fatal(err)
			}
		}},
		{"never-settles-abort", func(t *testing.T, id string) {
			awaitOrder(t, id, action.StatusNeedsAttention)
			if status, body := operatorCall(t, "/v1/actions/"+action.OrderKey(id).Step("abort").String(), map[string]string{"reason": "never paid"}); status != http.StatusOK {
				t.Fatalf("abort: %d %s", status, body)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			if _, err := st.PlaceOrder(ctx, heldOrder(c.id), "never-settles"); err != nil {
				t.Fatal(err)
			}
			awaitOrder(t, c.id, action.StatusAwaitingPayment, action.StatusNeedsAttention)
			c.cancel(t, c.id)
			state := awaitOrder(t, c.id, action.StatusCancelled)
			if s := stepNamed(state, workflows.StepCancelCharge); s == nil || s.Status != action.StepSucceeded {
				t.Errorf("steps = %+v, want cancel_charge succeeded", state.Steps)
			}
			if ch := chargeOf(t, c.id); ch.Status != providers.ChargeCanceled || len(env.sandbox.RefundsOf(ch.ID)) != 0 {
				t.Errorf("charge at the provider is %s with %d refunds, want canceled with none", ch.Status, len(env.sandbox.RefundsOf(ch.ID)))
			}
			if got := historyLength(t, env.client, action.OrderKey(c.id).String()); got > 300 {
				t.Errorf("history has %d events, want a bounded few hundred at most", got)
			} else {
				t.Logf("%s: %d history events", c.id, got)
			}
		})
	}
}

func historyLength(t *testing.T, c client.Client, workflowID string) int {
	t.Helper()
	return len(eventTypes(t, c, workflowID))
}

func stepNamed(s workflows.OrderState, name string) *workflows.Step {
	for i := range s.Steps {
		if s.Steps[i].Name == name {
			return &s.Steps[i]
		}
	}
	return nil
}

// TestARefundMadeByHandIsAdopted: an operator refunded the charge at the
// provider before aborting the order; the abort adopts that refund instead
// of failing on a second one.
func TestARefundMadeByHandIsAdopted(t *testing.T) {
	defer clearFaults(t)
	id := "refund-by-hand"
	addFault(t, sandbox.Fault{System: "mail", Operation: "send_message", KeyPrefix: action.OrderKey(id).String() + "/",
		Mode: sandbox.FaultStatus, Status: 403, Count: 1})
	placeOrders(t, id)
	awaitOrder(t, id, action.StatusNeedsAttention)
	byHand, err := paymentsClient().RefundCharge(context.Background(), providers.Call{IdempotencyKey: "dashboard-refund-1"}, providers.RefundRequest{Charge: chargeOf(t, id).ID})
	if err != nil {
		t.Fatal(err)
	}
	if status, body := operatorCall(t, "/v1/actions/"+action.OrderKey(id).Step("abort").String(), map[string]string{"reason": "refunded by hand"}); status != http.StatusOK {
		t.Fatalf("abort: %d %s", status, body)
	}
	state := awaitOrder(t, id, action.StatusCancelled)
	if s := stepNamed(state, workflows.StepRefund); s == nil || s.Status != action.StepSucceeded || s.RemoteRef != byHand.ID {
		t.Errorf("refund step = %+v, want the refund made by hand (%s) adopted", s, byHand.ID)
	}
	assertRefundedOnce(t, id)
}

// paymentsClient talks to the test sandbox's payments API, as a person at
// the provider's dashboard would.
func paymentsClient() *sandbox.Client {
	c := sandbox.NewClient("payments", env.provider.URL+"/payments", providers.HTTPOptions{})
	c.HTTP().SetAuth(providers.NewClientCredentials("payments", env.provider.URL+"/oauth/token", "test-client", "test-secret-0123456789", c.HTTP().Transport(), 0))
	return c
}

// TestAnOrderArrivingAfterItsEventsWorkflowEndedIsPlaced: early events
// started the order's workflow, which ended without the order (here it is
// terminated; an aborted orphan is the same). The application's order is
// placed all the same, adopts the charge its events were about, and is
// idempotent from then on.
func TestAnOrderArrivingAfterItsEventsWorkflowEndedIsPlaced(t *testing.T) {
	id := "late-order-1"
	charge := chargeAhead(t, id)
	waitFor(t, "the early events to be accepted", func() bool {
		d, ok := lastDelivery(env.sandbox, action.OrderKey(id).Step("charge").String(), "payment.succeeded")
		return ok && d.Delivered
	})
	if err := env.client.TerminateWorkflow(context.Background(), action.OrderKey(id).String(), "", "operator gave up on the events"); err != nil {
		t.Fatal(err)
	}
	status, header, body := call(t, http.MethodPost, "/v1/orders", order(id), testToken)
	if status != http.StatusAccepted || header.Get(api.HeaderIdempotentReplayed) != "" {
		t.Fatalf("place after the events' workflow ended: %d %s, want 202", status, body)
	}
	state := awaitOrder(t, id, action.StatusCompleted)
	if state.Steps[1].RemoteRef != charge.ID {
		t.Errorf("charge step = %+v, want the charge %s adopted", state.Steps[1], charge.ID)
	}
	assertExactlyOnce(t, id)
	if status, header, _ := call(t, http.MethodPost, "/v1/orders", order(id), testToken); status != http.StatusAccepted || header.Get(api.HeaderIdempotentReplayed) != "true" {
		t.Errorf("the same order again: %d replayed=%q, want 202 replayed", status, header.Get(api.HeaderIdempotentReplayed))
	}
	changed := order(id)
	changed.Amount, changed.Items = 100, []action.Item{{SKU: "pen", Quantity: 1, UnitAmount: 100}}
	if status, _, _ := call(t, http.MethodPost, "/v1/orders", changed, testToken); status != http.StatusConflict {
		t.Errorf("another order under the id: %d, want 409", status)
	}
}

// TestReadsOfOrdersNeedNoWorker stops every worker of a namespace and
// reads a parked order and one waiting for its payment: both answer at
// once from what Temporal keeps, with their status and steps.
func TestReadsOfOrdersNeedNoWorker(t *testing.T) {
	selfContained(t)
	e := newIsolatedEnv(t, "reads-without-worker")
	ctx := context.Background()
	e.send(t, http.MethodPost, "/_sandbox/faults", `{"system":"accounting","operation":"create_invoice","mode":"status","status":422}`)
	if _, err := e.control.PlaceOrder(ctx, order("nw-parked"), "no-worker"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.control.PlaceOrder(ctx, heldOrder("nw-waiting"), "no-worker"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the orders to park and to wait", func() bool {
		p, err1 := e.control.Order(ctx, "nw-parked")
		w, err2 := e.control.Order(ctx, "nw-waiting")
		return err1 == nil && err2 == nil && p.State.Status == action.StatusNeedsAttention && w.State.Status == action.StatusAwaitingPayment
	})
	e.stopWorkers(t)

	srv, err := api.New(api.Options{Orders: e.control, Events: e.control, Operators: e.control, Reconciliations: e.control,
		APITokens: []string{testToken}, Ready: func(context.Context) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	httpSrv := httptest.NewServer(srv)
	defer httpSrv.Close()
	checkOpenAPI(httpSrv.URL)
	read := func(id string) (workflows.OrderState, time.Duration) {
		req, _ := http.NewRequest(http.MethodGet, httpSrv.URL+"/v1/orders/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s workflows.OrderState
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&s) != nil {
			t.Fatalf("GET %s without a worker: %d", id, resp.StatusCode)
		}
		if src := resp.Header.Get(api.HeaderStateSource); src != control.SourceSnapshot {
			t.Errorf("GET %s: state source %q, want %q", id, src, control.SourceSnapshot)
		}
		return s, took
	}
	parked, took := read("nw-parked")
	t.Logf("parked order read without a worker in %v", took)
	invoice := stepNamed(parked, workflows.StepInvoice)
	if parked.Status != action.StatusNeedsAttention || invoice == nil || invoice.Status != action.StepFailed ||
		invoice.LastError == nil || invoice.LastError.Category != action.CategoryPermanent || parked.Steps[1].RemoteRef == "" {
		t.Errorf("parked order = %+v, want needs_attention with the failed invoice step and the charge's reference", parked)
	}
	// The read must not wait for a worker: a query without one would hang
	// for about ten seconds. The bound is generous on purpose.
	if took > 5*time.Second {
		t.Errorf("the read took %v: it waited for a worker", took)
	}
	running, took := read("nw-waiting")
	t.Logf("waiting order read without a worker in %v", took)
	if running.Status != action.StatusAwaitingPayment || running.Steps[1].Status != action.StepSucceeded {
		t.Errorf("waiting order = %+v, want awaiting_payment with its charge made", running)
	}
	// What the operations page and the metrics read needs no worker
	// either: the pauses come from the control workflow's memo.
	start := time.Now()
	h, err := e.control.Health(ctx, 10)
	if took := time.Since(start); err != nil || took > 5*time.Second {
		t.Fatalf("health without a worker: %v after %v", err, took)
	}
	if h.ParkedTotal != 1 || len(h.Parked) != 1 || h.Parked[0].Step != workflows.StepInvoice || len(h.Providers) < 4 {
		t.Errorf("health without a worker = %+v, want the parked order at its invoice and every provider", h)
	}
}

// TestOperatorActionsOnWorkflowsThatAreNotActionsAreNotFound sends retry,
// skip and abort to the provider control workflow and to a reconciliation.
func TestOperatorActionsOnWorkflowsThatAreNotActionsAreNotFound(t *testing.T) {
	for _, id := range []string{workflows.ProviderControlID, "reconcile-20261128T000000Z-abcdef12", "order/"} {
		for _, action := range []string{"retry", "skip", "abort"} {
			status, body := operatorCall(t, "/v1/actions/"+id+"/"+action, map[string]string{"reason": "probe"})
			if status != http.StatusNotFound {
				t.Errorf("%s on %s: %d %s, want 404", action, id, status, body)
			}
		}
	}
}

// TestPersonalDataInProviderErrorsIsMasked: the provider's decline names
// the customer's e-mail address and card; neither reaches the order's
// state or the list of parked actions.
func TestPersonalDataInProviderErrorsIsMasked(t *testing.T) {
	id := personalDeclinePrefix + "1"
	placeOrders(t, id)
	state := awaitOrder(t, id, action.StatusNeedsAttention)
	defer operatorCall(t, "/v1/actions/"+action.OrderKey(id).Step("abort").String(), map[string]string{"reason": "test finished"})
	raw, _ := json.Marshal(state)
	for _, secret := range []string{"ada.lovelace@example.com", "4242 4242 4242 4242"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("order state carries %q: %s", secret, raw)
		}
	}
	if charge := state.Steps[1]; charge.LastError == nil || !strings.Contains(charge.LastError.Message, "a***@example.com") || !strings.Contains(charge.LastError.Message, "****4242") {
		t.Errorf("charge step = %+v, want the masked message", charge)
	}
	waitFor(t, "the parked order in the list", func() bool {
		status, _, body := call(t, http.MethodGet, "/v1/actions?status=needs_attention&provider=payments", nil, testOperatorToken)
		return status == http.StatusOK && strings.Contains(string(body), action.OrderKey(id).String())
	})
	_, _, body := call(t, http.MethodGet, "/v1/actions?status=needs_attention&provider=payments", nil, testOperatorToken)
	if strings.Contains(string(body), "ada.lovelace@") || strings.Contains(string(body), "4242 4242") {
		t.Errorf("the list of parked actions carries personal data: %s", body)
	}
}

// TestALatePaymentForACancelledOrderIsRefunded: an order is cancelled
// while its charge is pending; cancelling the charge at the provider fails,
// and an operator skips that step (with a reason). When the customer then
// completes the payment, the success is not ignored: the money is refunded.
func TestALatePaymentForACancelledOrderIsRefunded(t *testing.T) {
	defer clearFaults(t)
	id := "late-payment-1"
	o := heldOrder(id)
	addFault(t, sandbox.Fault{System: "payments", Operation: "cancel_charge", Mode: sandbox.FaultStatus, Status: 403})
	if status, _, body := call(t, http.MethodPost, "/v1/orders", o, testToken); status != http.StatusAccepted {
		t.Fatalf("place: %d %s", status, body)
	}
	awaitOrder(t, id, action.StatusAwaitingPayment)
	if status, _, body := call(t, http.MethodPost, "/v1/orders/"+id+"/cancel", nil, testToken); status != http.StatusAccepted {
		t.Fatalf("cancel: %d %s", status, body)
	}
	awaitOrder(t, id, action.StatusNeedsAttention)
	clearFaults(t)
	if status, body := operatorCall(t, "/v1/actions/"+action.OrderKey(id).Step("skip").String(), map[string]string{}); status != http.StatusConflict {
		t.Errorf("skip without a reason: %d %s, want 409", status, body)
	}
	if status, body := operatorCall(t, "/v1/actions/"+action.OrderKey(id).Step("skip").String(), map[string]string{"reason": "asked the provider by phone"}); status != http.StatusOK {
		t.Fatalf("skip: %d %s", status, body)
	}
	state := awaitOrder(t, id, action.StatusCancelled)
	if s := stepNamed(state, workflows.StepCancelCharge); s == nil || s.Resolution == nil || s.Resolution.Reason != "asked the provider by phone" {
		t.Errorf("cancel_charge step = %+v, want the skip's reason recorded", s)
	}

	// The customer completes the payment after all.
	ch := chargeOf(t, id)
	settle(t, ch.ID, "succeeded")
	awaitCompleted(t, env.client, latePaymentID(id, ch.ID))
	if ch := chargeOf(t, id); ch.Status != providers.ChargeRefunded {
		t.Errorf("charge is %s, want refunded", ch.Status)
	}
	assertRefundedOnce(t, id)
	d, _ := lastDelivery(env.sandbox, action.OrderKey(id).Step("charge").String(), "payment.succeeded")
	if !d.Delivered {
		t.Errorf("the late success was not acknowledged: %+v", d)
	}
}

// Ids no order can have — bytes that are not text, letters outside the
// order id's alphabet — are answered 404 without asking Temporal, which
// refuses them in its request headers.
func TestAnOrderIDNoOrderCanHaveIsNotFound(t *testing.T) {
	for _, id := range []string{"%FF", "%C3%28", "%C3%A9t%C3%A9"} {
		if status, _, body := call(t, http.MethodGet, "/v1/orders/"+id, nil, testToken); status != http.StatusNotFound {
			t.Errorf("GET /v1/orders/%s: %d %s, want 404", id, status, body)
		}
		if status, _, body := call(t, http.MethodPost, "/v1/orders/"+id+"/cancel", nil, testToken); status != http.StatusNotFound {
			t.Errorf("POST /v1/orders/%s/cancel: %d %s, want 404", id, status, body)
		}
	}
}
