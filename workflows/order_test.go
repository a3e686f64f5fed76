package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/providers"
)

// fakeProviders implements every provider interface in memory. It records
// each call (operation and idempotency key) and fails the operations the
// test scripts, in order.
type fakeProviders struct {
	mu      sync.Mutex
	calls   []string
	failing map[string][]error
	charges map[string]providers.Charge
	// chargeStatus is what GetCharge reports; pending turns into it on the
	// second look.
	chargeStatus string
	// hideCharges makes that many FindCharge calls find nothing.
	hideCharges int
	// cancelStatus is what CancelCharge reports; default canceled.
	cancelStatus string
	// refunds holds the refunds made, by charge.
	refunds map[string]providers.Refund
}

func newFakeProviders() *fakeProviders {
	return &fakeProviders{failing: map[string][]error{}, charges: map[string]providers.Charge{}, chargeStatus: providers.ChargeSucceeded,
		cancelStatus: providers.ChargeCanceled, refunds: map[string]providers.Refund{}}
}

func (f *fakeProviders) record(op string, call providers.Call) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op+" "+call.IdempotencyKey)
	if errs := f.failing[op]; len(errs) > 0 {
		f.failing[op] = errs[1:]
		return errs[0]
	}
	return nil
}

func (f *fakeProviders) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if len(c) >= len(op) && c[:len(op)] == op && (len(c) == len(op) || c[len(op)] == ' ') {
			n++
		}
	}
	return n
}

func (f *fakeProviders) UpsertContact(_ context.Context, call providers.Call, req providers.ContactRequest) (providers.Contact, error) {
	if err := f.record("upsert_contact", call); err != nil {
		return providers.Contact{}, err
	}
	return providers.Contact{ID: "ct_1", Email: req.Email, Name: req.Name}, nil
}

func (f *fakeProviders) CreateCharge(_ context.Context, call providers.Call, req providers.ChargeRequest) (providers.Charge, error) {
	ch := providers.Charge{ID: "ch_1", ExternalRef: call.IdempotencyKey, Status: providers.ChargePending, Amount: req.Amount, Currency: req.Currency}
	// The charge is made before a scripted failure: a failure after commit.
	f.mu.Lock()
	f.charges[call.IdempotencyKey] = ch
	f.mu.Unlock()
	if err := f.record("create_charge", call); err != nil {
		return providers.Charge{}, err
	}
	return ch, nil
}

func (f *fakeProviders) GetCharge(_ context.Context, call providers.Call, id string) (providers.Charge, error) {
	if err := f.record("get_charge", call); err != nil {
		return providers.Charge{}, err
	}
	status := providers.ChargePending
	if f.count("get_charge") > 1 {
		f.mu.Lock()
		status = f.chargeStatus
		f.mu.Unlock()
	}
	ch := providers.Charge{ID: id, Status: status}
	if status == providers.ChargeFailed {
		ch.FailureCode, ch.FailureMessage = "card_declined", "Your card was declined."
	}
	return ch, nil
}

func (f *fakeProviders) FindCharge(_ context.Context, call providers.Call, ref string) (providers.Charge, bool, error) {
	if err := f.record("find_charge", call); err != nil {
		return providers.Charge{}, false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hideCharges > 0 {
		f.hideCharges--
		return providers.Charge{}, false, nil
	}
	ch, ok := f.charges[ref]
	return ch, ok, nil
}

func (f *fakeProviders) RefundCharge(_ context.Context, call providers.Call, req providers.RefundRequest) (providers.Refund, error) {
	if err := f.record("create_refund", call); err != nil {
		return providers.Refund{}, err
	}
	re := providers.Refund{ID: "re_1", Charge: req.Charge, ExternalRef: call.IdempotencyKey, Status: "succeeded"}
	f.mu.Lock()
	f.refunds[req.Charge] = re
	f.mu.Unlock()
	return re, nil
}

func (f *fakeProviders) FindRefund(_ context.Context, call providers.Call, charge string) (providers.Refund, bool, error) {
	if err := f.record("find_refund", call); err != nil {
		return providers.Refund{}, false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	re, ok := f.refunds[charge]
	return re, ok, nil
}

func (f *fakeProviders) CancelCharge(_ context.Context, call providers.Call, id string) (providers.Charge, error) {
	if err := f.record("cancel_charge", call); err != nil {
		return providers.Charge{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return providers.Charge{ID: id, Status: f.cancelStatus}, nil
}

func (f *fakeProviders) VoidInvoice(_ context.Context, call providers.Call, id string) (providers.Invoice, error) {
	if err := f.record("void_invoice", call); err != nil {
		return providers.Invoice{}, err
	}
	return providers.Invoice{ID: id, Status: "void"}, nil
}

func (f *fakeProviders) CreateInvoice(_ context.Context, call providers.Call, _ providers.InvoiceRequest) (providers.Invoice, error) {
	if err := f.record("create_invoice", call); err != nil {
		return providers.Invoice{}, err
	}
	return providers.Invoice{ID: "in_1"}, nil
}

func (f *fakeProviders) FindInvoice(_ context.Context, call providers.Call, _ string) (providers.Invoice, bool, error) {
	return providers.Invoice{}, false, f.record("find_invoice", call)
}

func (f *fakeProviders) SendMessage(_ context.Context, call providers.Call, _ providers.MessageRequest) (providers.Message, error) {
	if err := f.record("send_message", call); err != nil {
		return providers.Message{}, err
	}
	return providers.Message{ID: "msg_1"}, nil
}

func (f *fakeProviders) FindMessage(_ context.Context, call providers.Call, _ string) (providers.Message, bool, error) {
	return providers.Message{}, false, f.record("find_message", call)
}

func testOrder() action.Order {
	return action.Order{
		OrderID: "T-1", Customer: action.Customer{Email: "ada@example.com", Name: "Ada"}, Currency: "eur", Amount: 3000,
		Items: []action.Item{{SKU: "book", Quantity: 2, UnitAmount: 1500}},
	}
}

// runOrder runs OrderWorkflow over the fakes. Orders that park are read
// through the query and then cancelled, since they wait for an operator.
func runOrder(t *testing.T, fakes *fakeProviders) OrderState {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	acts, err := activities.New(fakes, fakes, fakes, fakes)
	if err != nil {
		t.Fatal(err)
	}
	env.RegisterActivity(acts)
	env.RegisterWorkflow(OrderWorkflow)
	env.SetStartWorkflowOptions(startOptions("order/T-1"))
	var parked *OrderState
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryOrderState)
		if err != nil {
			t.Errorf("query: %v", err)
			return
		}
		var s OrderState
		if err := v.Get(&s); err != nil {
			t.Errorf("decode query: %v", err)
		}
		parked = &s
		env.CancelWorkflow()
	}, 24*time.Hour)
	env.ExecuteWorkflow(OrderWorkflow, OrderInput{
		Order: testOrder(), CorrelationID: "corr-1", PaymentPollInterval: time.Second, PaymentTimeout: time.Hour,
	})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if parked != nil {
		return *parked
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	var result OrderResult
	if err := env.GetWorkflowResult(&result); err != nil {
		t.Fatal(err)
	}
	return result.State
}

func TestOrderWorkflowCompletesWithOneCallPerStep(t *testing.T) {
	fakes := newFakeProviders()
	state := runOrder(t, fakes)
	if state.Status != action.StatusCompleted {
		t.Fatalf("status = %s, want completed (state %+v)", state.Status, state)
	}
	want := []string{
		"upsert_contact order/T-1/customer",
		"find_charge order/T-1/charge",
		"create_charge order/T-1/charge",
		"get_charge order/T-1/payment",
		"get_charge order/T-1/payment",
		"find_invoice order/T-1/invoice",
		"create_invoice order/T-1/invoice",
		"find_message order/T-1/confirmation",
		"send_message order/T-1/confirmation",
	}
	if fmt.Sprint(fakes.calls) != fmt.Sprint(want) {
		t.Errorf("calls = %v\nwant    %v", fakes.calls, want)
	}
	if state.CorrelationID != "corr-1" || state.OrderID != "T-1" {
		t.Errorf("state = %+v, want order T-1 with correlation id corr-1", state)
	}
}

func TestOrderWorkflowAdoptsAChargeMadeBeforeATimeout(t *testing.T) {
	fakes := newFakeProviders()
	fakes.failing["create_charge"] = []error{&providers.Error{Category: action.CategoryAmbiguous, Type: action.TypeAmbiguous, Message: "read timeout"}}
	state := runOrder(t, fakes)
	if state.Status != action.StatusCompleted {
		t.Fatalf("status = %s, want completed", state.Status)
	}
	if got := fakes.count("create_charge"); got != 1 {
		t.Errorf("create_charge calls = %d, want 1: the retry must adopt the charge", got)
	}
	if got := fakes.count("find_charge"); got != 2 {
		t.Errorf("find_charge calls = %d, want 2: one before each attempt", got)
	}
	if charge := state.Steps[1]; charge.Attempts != 2 || charge.RemoteRef != "ch_1" {
		t.Errorf("charge step = %+v, want 2 attempts and ch_1", charge)
	}
}

func TestOrderWorkflowRejectsADeclinedPayment(t *testing.T) {
	fakes := newFakeProviders()
	fakes.chargeStatus = providers.ChargeFailed
	state := runOrder(t, fakes)
	if state.Status != action.StatusRejected {
		t.Fatalf("status = %s, want rejected", state.Status)
	}
	if fakes.count("create_invoice") != 0 || fakes.count("send_message") != 0 {
		t.Errorf("calls = %v, want no invoice and no e-mail", fakes.calls)
	}
	if p := state.Steps[2]; p.Status != action.StepFailed || p.LastError == nil || p.LastError.Category != action.CategoryDeclined {
		t.Errorf("payment step = %+v, want failed as declined", p)
	}
}

func TestOrderWorkflowParksAPermanentFailureAfterOneAttempt(t *testing.T) {
	fakes := newFakeProviders()
	fakes.failing["create_invoice"] = []error{&providers.Error{
		System: "accounting", Operation: "create_invoice", Category: action.CategoryPermanent,
		Type: action.TypeInvalidInput, Status: 422, Message: "tax id invalid",
	}}
	state := runOrder(t, fakes)
	if state.Status != action.StatusNeedsAttention {
		t.Fatalf("status = %s, want needs_attention", state.Status)
	}
	inv := state.Steps[3]
	if inv.Status != action.StepFailed || inv.Attempts != 1 || inv.LastError == nil || inv.LastError.Category != action.CategoryPermanent {
		t.Errorf("invoice step = %+v, want failed after 1 attempt, permanent", inv)
	}
	if got := fakes.count("create_invoice"); got != 1 {
		t.Errorf("create_invoice calls = %d, want exactly 1", got)
	}
	if fakes.count("send_message") != 0 {
		t.Errorf("an e-mail was sent for a parked order")
	}
}

func TestOrderWorkflowParksWhenAttemptsRunOut(t *testing.T) {
	fakes := newFakeProviders()
	unavailable := &providers.Error{Category: action.CategoryTemporary, Type: action.TypeTemporary, Status: 503, Message: "down"}
	for range MaxStepAttempts {
		fakes.failing["send_message"] = append(fakes.failing["send_message"], unavailable)
	}
	state := runOrder(t, fakes)
	if state.Status != action.StatusNeedsAttention {
		t.Fatalf("status = %s, want needs_attention", state.Status)
	}
	mail := state.Steps[4]
	if mail.Attempts != MaxStepAttempts || mail.LastError == nil || mail.LastError.Category != action.CategoryTemporary {
		t.Errorf("confirmation step = %+v, want %d attempts, temporary", mail, MaxStepAttempts)
	}
	if got := fakes.count("send_message"); got != MaxStepAttempts {
		t.Errorf("send_message calls = %d, want %d", got, MaxStepAttempts)
	}
}

func TestDescribeFailureReadsTheActivityDetails(t *testing.T) {
	err := temporal.NewApplicationErrorWithOptions("create invoice", "InvalidInput", temporal.ApplicationErrorOptions{
		NonRetryable: true, Cause: errors.New("422: tax id invalid"),
		Details: []any{activities.FailureDetails{Category: "permanent", Attempt: 1, Status: 422}},
	})
	got := describeFailure(err)
	if got.category != "permanent" || got.attempts != 1 || got.message != "create invoice" {
		t.Errorf("describeFailure = %+v", got)
	}
}

// newOrderEnv is a test environment for order/T-1 with the activities on
// the fakes.
func newOrderEnv(fakes *fakeProviders) *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	acts, _ := activities.New(fakes, fakes, fakes, fakes) // never nil providers
	env.RegisterActivity(acts)
	env.SetStartWorkflowOptions(startOptions("order/T-1"))
	return env
}

func startOptions(id string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: id, TaskQueue: TaskQueue}
}
