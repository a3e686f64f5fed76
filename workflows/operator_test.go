package workflows

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers"
)

var invoice422 = &providers.Error{System: "accounting", Operation: "create_invoice", Category: action.CategoryPermanent,
	Type: action.TypeInvalidInput, Status: 422, Message: "tax id invalid"}

// operatorRun runs an order over the fakes and, once it is parked (or at
// the given time), sends the update; it returns the final state and the
// update's outcome.
func operatorRun(t *testing.T, fakes *fakeProviders, at time.Duration, update string, req OperatorRequest) (OrderState, error) {
	t.Helper()
	env := newOrderEnv(fakes)
	var updateErr error
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(update, "u1", &testsuite.TestUpdateCallback{
			OnAccept:   func() {},
			OnReject:   func(err error) { updateErr = err },
			OnComplete: func(_ any, err error) { updateErr = errors.Join(updateErr, err) },
		}, req)
	}, at)
	env.ExecuteWorkflow(OrderWorkflow, OrderInput{Order: testOrder(), PaymentTimeout: time.Hour, PaymentWebhookWait: time.Minute})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	var result OrderResult
	if err := env.GetWorkflowResult(&result); err != nil {
		t.Fatalf("workflow: %v", err)
	}
	return result.State, updateErr
}

func stepByName(s OrderState, name string) Step {
	for _, st := range s.Steps {
		if st.Name == name {
			return st
		}
	}
	return Step{}
}

func TestRetryWithCorrectedDataCompletesTheParkedOrder(t *testing.T) {
	fakes := newFakeProviders()
	fakes.failing["create_invoice"] = []error{invoice422}
	corrected := action.Customer{Email: "ada@example.com", Name: "Ada Lovelace Ltd"}
	state, err := operatorRun(t, fakes, 2*time.Hour, UpdateRetry, OperatorRequest{Reason: "tax id fixed", Customer: &corrected})
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if state.Status != action.StatusCompleted {
		t.Fatalf("status = %s, want completed", state.Status)
	}
	if got := fakes.count("create_invoice"); got != 2 {
		t.Errorf("create_invoice calls = %d, want 2 (the failure and the retry)", got)
	}
	for _, c := range fakes.calls {
		if strings.HasPrefix(c, "create_invoice") && c != "create_invoice order/T-1/invoice" {
			t.Errorf("retry used another idempotency key: %s", c)
		}
	}
	if inv := stepByName(state, StepInvoice); inv.Status != action.StepSucceeded || inv.Attempts != 2 || inv.LastError != nil {
		t.Errorf("invoice step = %+v, want succeeded after 2 attempts", inv)
	}
}

func TestSkipGoesOnWithoutTheStep(t *testing.T) {
	fakes := newFakeProviders()
	fakes.failing["create_invoice"] = []error{invoice422}
	state, err := operatorRun(t, fakes, 2*time.Hour, UpdateSkip, OperatorRequest{Reason: "invoiced by hand"})
	if err != nil {
		t.Fatalf("skip: %v", err)
	}
	if state.Status != action.StatusCompleted || stepByName(state, StepInvoice).Status != action.StepSkipped || stepByName(state, StepConfirmation).Status != action.StepSucceeded {
		t.Errorf("state = %+v, want completed with the invoice skipped", state)
	}
}

func TestAbortOfAPaidOrderRefundsAndVoids(t *testing.T) {
	fakes := newFakeProviders()
	mailDown := &providers.Error{Category: action.CategoryPermanent, Type: action.TypeForbidden, Status: 403, Message: "sender blocked"}
	fakes.failing["send_message"] = []error{mailDown}
	state, err := operatorRun(t, fakes, 2*time.Hour, UpdateAbort, OperatorRequest{Reason: "customer asked"})
	if err != nil {
		t.Fatalf("abort: %v", err)
	}
	if state.Status != action.StatusCancelled {
		t.Fatalf("status = %s, want cancelled", state.Status)
	}
	if fakes.count("create_refund") != 1 || fakes.count("void_invoice") != 1 {
		t.Errorf("calls = %v, want one refund and one void", fakes.calls)
	}
	// Compensation runs in reverse: the invoice is voided before the refund.
	last := strings.Join(fakes.calls, "|")
	if strings.Index(last, "void_invoice order/T-1/void_invoice") > strings.Index(last, "create_refund order/T-1/refund") {
		t.Errorf("calls = %v, want the void before the refund", fakes.calls)
	}
	if stepByName(state, StepRefund).Status != action.StepSucceeded || stepByName(state, StepVoidInvoice).Status != action.StepSucceeded {
		t.Errorf("steps = %+v, want refund and void_invoice succeeded", state.Steps)
	}
}

func TestUpdatesThatDoNotApplyAreRejectedWithAReason(t *testing.T) {
	tests := []struct {
		name    string
		failing map[string][]error
		update  string
		req     OperatorRequest
		want    string
	}{
		{"retry of an order that is not parked", nil, UpdateRetry, OperatorRequest{}, "waiting for an operator"},
		{"skip of the charge", map[string][]error{"create_charge": {&providers.Error{Category: action.CategoryPermanent, Type: action.TypeCardDeclined, Status: 402}}}, UpdateSkip, OperatorRequest{}, "cannot be skipped"},
		{"retry with an invalid correction", map[string][]error{"create_invoice": {invoice422}}, UpdateRetry, OperatorRequest{Customer: &action.Customer{Email: "nope"}}, "customer correction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fakes := newFakeProviders()
			for k, v := range tt.failing {
				fakes.failing[k] = v
			}
			// The update is sent at 30 s, while the order waits an hour for
			// its payment webhook or is already parked; then it is cancelled.
			env := newOrderEnv(fakes)
			var rejected error
			env.RegisterDelayedCallback(func() {
				env.UpdateWorkflow(tt.update, "u1", &testsuite.TestUpdateCallback{
					OnAccept: func() {}, OnReject: func(err error) { rejected = err }, OnComplete: func(any, error) {},
				}, tt.req)
			}, 30*time.Second)
			env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, 5*time.Hour)
			wait := time.Hour
			if tt.failing["create_invoice"] != nil {
				wait = time.Second // reach the invoice step before the update
			}
			env.ExecuteWorkflow(OrderWorkflow, OrderInput{Order: testOrder(), PaymentTimeout: 10 * time.Hour, PaymentWebhookWait: wait})
			var appErr *temporal.ApplicationError
			if !errors.As(rejected, &appErr) || appErr.Type() != action.TypeNotApplicable || !strings.Contains(appErr.Message(), tt.want) {
				t.Errorf("rejection = %v, want NotApplicable mentioning %q", rejected, tt.want)
			}
		})
	}
}

func TestCancelWhileAwaitingPaymentCancelsTheChargeAtTheProvider(t *testing.T) {
	fakes := newFakeProviders()
	// No webhook comes; the charge is still pending when the order is
	// cancelled, and the provider cancels it.
	state, err := operatorRun(t, fakes, 10*time.Second, UpdateCancel, OperatorRequest{Reason: "no longer wanted"})
	if err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if state.Status != action.StatusCancelled {
		t.Fatalf("status = %s, want cancelled", state.Status)
	}
	if fakes.count("cancel_charge") != 1 || fakes.count("create_refund") != 0 || fakes.count("create_invoice") != 0 || fakes.count("send_message") != 0 {
		t.Errorf("calls = %v, want the charge cancelled, no refund, no invoice or e-mail", fakes.calls)
	}
	if s := stepByName(state, StepCancelCharge); s.Status != action.StepSucceeded {
		t.Errorf("steps = %+v, want cancel_charge succeeded", state.Steps)
	}
}

func TestCancelOfAChargeThatSettledFirstRefundsIt(t *testing.T) {
	fakes := newFakeProviders()
	// The provider answers the cancellation with the charge as it stands:
	// it had succeeded a moment before.
	fakes.cancelStatus = providers.ChargeSucceeded
	state, err := operatorRun(t, fakes, 10*time.Second, UpdateCancel, OperatorRequest{Reason: "no longer wanted"})
	if err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if state.Status != action.StatusCancelled || fakes.count("cancel_charge") != 1 || fakes.count("create_refund") != 1 {
		t.Errorf("status %s, calls = %v, want cancelled with one refund", state.Status, fakes.calls)
	}
}

// TestAnOrderPlacedAfterItsEventsWereParkedGoesOn places an order into a
// workflow parked as an orphan: the order proceeds instead of staying stuck.
func TestAnOrderPlacedAfterItsEventsWereParkedGoesOn(t *testing.T) {
	fakes := newFakeProviders()
	env := newOrderEnv(fakes)
	var updateErr error
	env.RegisterDelayedCallback(func() {
		in := OrderInput{Order: testOrder(), CorrelationID: "corr-late", PaymentTimeout: time.Hour, PaymentWebhookWait: time.Minute}
		env.UpdateWorkflow(UpdatePlaceOrder, "p1", &testsuite.TestUpdateCallback{
			OnAccept: func() {}, OnReject: func(err error) { updateErr = err }, OnComplete: func(_ any, err error) { updateErr = errors.Join(updateErr, err) },
		}, PlaceOrderRequest{Input: in, RequestHash: "h1"})
	}, 2*time.Hour)
	env.ExecuteWorkflow(OrderWorkflow, OrderInput{Order: action.Order{OrderID: "T-1"}, AwaitingOrder: true, OrphanWindow: time.Hour})
	if updateErr != nil {
		t.Fatalf("place_order: %v", updateErr)
	}
	var result OrderResult
	if err := env.GetWorkflowResult(&result); err != nil {
		t.Fatal(err)
	}
	if result.State.Status != action.StatusCompleted || result.RequestHash != "h1" || fakes.count("create_charge") != 1 {
		t.Errorf("state = %+v, charges %d; want completed once", result.State, fakes.count("create_charge"))
	}
}

// TestASecondCancelDuringCompensationStillRefunds cancels twice; the refund
// still happens once.
func TestASecondCancelDuringCompensationStillRefunds(t *testing.T) {
	fakes := newFakeProviders()
	fakes.failing["send_message"] = []error{&providers.Error{Category: action.CategoryPermanent, Type: action.TypeForbidden, Status: 403}}
	fakes.failing["void_invoice"] = []error{&providers.Error{Category: action.CategoryPermanent, Type: action.TypeForbidden, Status: 403}}
	env := newOrderEnv(fakes)
	send := func(name string, at time.Duration) {
		env.RegisterDelayedCallback(func() {
			env.UpdateWorkflow(name, name+at.String(), &testsuite.TestUpdateCallback{OnAccept: func() {}, OnReject: func(error) {}, OnComplete: func(any, error) {}}, OperatorRequest{})
		}, at)
	}
	send(UpdateCancel, 2*time.Hour) // parked on the e-mail: compensation starts, void parks
	send(UpdateCancel, 3*time.Hour) // a retried cancel while the void is parked
	send(UpdateAbort, 4*time.Hour)  // refused: compensation cannot be aborted
	send(UpdateRetry, 5*time.Hour)  // the void is retried and succeeds
	env.ExecuteWorkflow(OrderWorkflow, OrderInput{Order: testOrder(), PaymentTimeout: time.Hour, PaymentWebhookWait: time.Minute})
	var result OrderResult
	if err := env.GetWorkflowResult(&result); err != nil {
		t.Fatal(err)
	}
	if result.State.Status != action.StatusCancelled || fakes.count("create_refund") != 1 || fakes.count("void_invoice") != 2 {
		t.Errorf("status %s, calls %v; want cancelled with one refund after the void's retry", result.State.Status, fakes.calls)
	}
}

// TestAbortAfterAnUnansweredChargeFindsAndRefundsIt parks the charge step
// after every attempt timed out while the provider did charge: the abort
// looks the charge up by its reference and refunds it.
func TestAbortAfterAnUnansweredChargeFindsAndRefundsIt(t *testing.T) {
	fakes := newFakeProviders()
	lost := &providers.Error{Category: action.CategoryAmbiguous, Type: action.TypeAmbiguous, Message: "read timeout"}
	for range MaxStepAttempts {
		fakes.failing["create_charge"] = append(fakes.failing["create_charge"], lost)
	}
	// The lookups before each attempt find nothing, as the provider's
	// search lags; the compensation's lookup finds the charge.
	for range MaxStepAttempts {
		fakes.failing["find_charge"] = append(fakes.failing["find_charge"], nil)
	}
	fakes.hideCharges = MaxStepAttempts
	// The charge settled meanwhile: cancelling it answers it succeeded.
	fakes.cancelStatus = providers.ChargeSucceeded
	state, err := operatorRun(t, fakes, 10*time.Hour, UpdateAbort, OperatorRequest{Reason: "provider outage"})
	if err != nil {
		t.Fatalf("abort: %v", err)
	}
	if state.Status != action.StatusCancelled || fakes.count("create_refund") != 1 {
		t.Errorf("status %s, calls %v; want cancelled with the found charge refunded", state.Status, fakes.calls)
	}
}
