package workflows

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers"
)

// sendUpdate sends an operator update at the given workflow time and keeps
// its outcome.
func sendUpdate(env *testsuite.TestWorkflowEnvironment, at time.Duration, name string, req OperatorRequest, outcome *error) {
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(name, name+at.String(), &testsuite.TestUpdateCallback{
			OnAccept:   func() {},
			OnReject:   func(err error) { *outcome = err },
			OnComplete: func(_ any, err error) { *outcome = errors.Join(*outcome, err) },
		}, req)
	}, at)
}

// TestAbortOfAChargeThatNeverSettlesCancelsItAndEnds: the charge stays
// pending; the order parks when the payment timeout passes, the operator
// aborts, and the charge is cancelled at the provider instead of being
// waited for: the order ends, with a bounded number of looks.
func TestAbortOfAChargeThatNeverSettlesCancelsItAndEnds(t *testing.T) {
	fakes := newFakeProviders()
	fakes.chargeStatus = providers.ChargePending
	env := newOrderEnv(fakes)
	var abortErr error
	sendUpdate(env, 3*time.Hour, UpdateAbort, OperatorRequest{Reason: "customer never paid"}, &abortErr)
	env.ExecuteWorkflow(OrderWorkflow, OrderInput{Order: testOrder(), PaymentTimeout: 10 * time.Minute, PaymentWebhookWait: 30 * time.Second})
	if abortErr != nil {
		t.Fatalf("abort: %v", abortErr)
	}
	var result OrderResult
	if err := env.GetWorkflowResult(&result); err != nil {
		t.Fatal(err)
	}
	if result.State.Status != action.StatusCancelled {
		t.Fatalf("status = %s, want cancelled", result.State.Status)
	}
	if got := fakes.count("cancel_charge"); got != 1 {
		t.Errorf("cancel_charge calls = %d, want 1", got)
	}
	if got := fakes.count("create_refund"); got != 0 {
		t.Errorf("refunds = %d, want none: the charge never took money", got)
	}
	// Ten minutes of waiting with backoff capped at a minute: a handful of
	// looks, not one a second.
	if got := fakes.count("get_charge"); got > 25 {
		t.Errorf("get_charge calls = %d in ten minutes, want a bounded handful", got)
	}
}

// TestACancelThatCannotTakeHoldYetParksBoundedAndIsSkippedOnlyWithAReason:
// the provider cannot cancel the charge (it is being processed, as Stripe
// refuses for a processing PaymentIntent); the order asks again with growing
// pauses for at most the payment timeout, then parks the cancel_charge step.
// Skipping it needs a reason, which is recorded.
func TestACancelThatCannotTakeHoldYetParksBoundedAndIsSkippedOnlyWithAReason(t *testing.T) {
	fakes := newFakeProviders()
	fakes.chargeStatus = providers.ChargePending
	fakes.cancelStatus = providers.ChargePending
	env := newOrderEnv(fakes)
	var cancelErr, bareSkip, skipErr error
	sendUpdate(env, time.Minute, UpdateCancel, OperatorRequest{Reason: "not wanted"}, &cancelErr)
	sendUpdate(env, 2*time.Hour, UpdateSkip, OperatorRequest{}, &bareSkip)
	sendUpdate(env, 3*time.Hour, UpdateSkip, OperatorRequest{Reason: "cancelled by hand at the provider"}, &skipErr)
	env.ExecuteWorkflow(OrderWorkflow, OrderInput{Order: testOrder(), PaymentTimeout: 10 * time.Minute, PaymentWebhookWait: time.Hour})
	if cancelErr != nil || skipErr != nil {
		t.Fatalf("cancel: %v, skip: %v", cancelErr, skipErr)
	}
	if bareSkip == nil || !strings.Contains(bareSkip.Error(), "needs a reason") {
		t.Errorf("skip without a reason: %v, want it refused for want of a reason", bareSkip)
	}
	var result OrderResult
	if err := env.GetWorkflowResult(&result); err != nil {
		t.Fatal(err)
	}
	step := stepByName(result.State, StepCancelCharge)
	if result.State.Status != action.StatusCancelled || step.Status != action.StepSkipped {
		t.Fatalf("state = %+v, want cancelled with cancel_charge skipped", result.State)
	}
	if step.Resolution == nil || step.Resolution.Action != UpdateSkip || step.Resolution.Reason != "cancelled by hand at the provider" {
		t.Errorf("resolution = %+v, want the skip and its reason", step.Resolution)
	}
	if got := fakes.count("cancel_charge"); got < 3 || got > 25 {
		t.Errorf("cancel_charge calls = %d in the ten minutes before parking, want a bounded handful", got)
	}
}

// TestARefundMadeByHandIsAdoptedNotRepeated aborts a paid order whose
// charge was already refunded at the provider: the refund is found and
// adopted, none is created.
func TestARefundMadeByHandIsAdoptedNotRepeated(t *testing.T) {
	fakes := newFakeProviders()
	fakes.failing["send_message"] = []error{&providers.Error{Category: action.CategoryPermanent, Type: action.TypeForbidden, Status: 403}}
	fakes.refunds["ch_1"] = providers.Refund{ID: "re_by_hand", Charge: "ch_1", Status: "succeeded"}
	state, err := operatorRun(t, fakes, 2*time.Hour, UpdateAbort, OperatorRequest{Reason: "customer withdrew"})
	if err != nil {
		t.Fatalf("abort: %v", err)
	}
	refund := stepByName(state, StepRefund)
	if state.Status != action.StatusCancelled || refund.Status != action.StepSucceeded || refund.RemoteRef != "re_by_hand" {
		t.Errorf("state = %+v, want cancelled with the existing refund adopted", state)
	}
	if got := fakes.count("create_refund"); got != 0 {
		t.Errorf("refunds created = %d, want 0", got)
	}
}

// TestAnEventAheadOfTheProvidersRecordCostsAHandfulOfLooks delivers a
// decisive event whose order is only a timestamp (Stripe's) while the
// provider's record still says pending for five minutes: the order looks
// again with growing pauses, not in a tight loop.
func TestAnEventAheadOfTheProvidersRecordCostsAHandfulOfLooks(t *testing.T) {
	fakes := newFakeProviders()
	fakes.chargeStatus = providers.ChargePending
	env := newOrderEnv(fakes)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalPaymentEvent, action.PaymentEvent{EventID: "evt_1", ChargeID: "ch_1", Status: "succeeded", Version: 1700000000})
	}, time.Second)
	env.RegisterDelayedCallback(func() {
		fakes.mu.Lock()
		fakes.chargeStatus = providers.ChargeSucceeded
		fakes.mu.Unlock()
	}, 5*time.Minute)
	env.ExecuteWorkflow(OrderWorkflow, OrderInput{Order: testOrder(), PaymentTimeout: time.Hour, PaymentWebhookWait: time.Hour})
	var result OrderResult
	if err := env.GetWorkflowResult(&result); err != nil {
		t.Fatal(err)
	}
	if result.State.Status != action.StatusCompleted {
		t.Fatalf("status = %s, want completed once the record caught up", result.State.Status)
	}
	if got := fakes.count("get_charge"); got > 15 {
		t.Errorf("get_charge calls = %d over five minutes of lag, want a handful", got)
	}
}

// TestALatePaymentIsRefunded runs the late-payment workflow for a charge
// that succeeded after its order was rejected: it is refunded once.
func TestALatePaymentIsRefunded(t *testing.T) {
	fakes := newFakeProviders()
	fakes.cancelStatus = providers.ChargeSucceeded
	env := newOrderEnv(fakes)
	env.SetStartWorkflowOptions(startOptions(action.LatePaymentKey("T-1", "ch_1").String()))
	env.ExecuteWorkflow(OrderWorkflow, OrderInput{Order: action.Order{OrderID: "T-1"}, PaymentTimeout: time.Hour,
		LatePayment: &LatePayment{ChargeID: "ch_1", EventID: "evt_9"}})
	var result OrderResult
	if err := env.GetWorkflowResult(&result); err != nil {
		t.Fatal(err)
	}
	if result.State.Status != action.StatusCancelled || fakes.count("create_refund") != 1 {
		t.Errorf("state %+v, calls %v; want cancelled with one refund", result.State, fakes.calls)
	}
	if got := fakes.count("create_charge") + fakes.count("create_invoice") + fakes.count("send_message"); got != 0 {
		t.Errorf("the late-payment workflow placed an order: %v", fakes.calls)
	}
}
