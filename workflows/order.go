package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/providers"
)

// OrderInput is everything OrderWorkflow needs; it is fixed at start.
type OrderInput struct {
	Order         action.Order
	CorrelationID string
	// PaymentPollInterval is the first pause between looks at a pending charge.
	PaymentPollInterval time.Duration
	// PaymentTimeout is how long the order waits for the charge to settle.
	PaymentTimeout time.Duration
	// PaymentWebhookWait is how long the order waits for the payment
	// webhook before it asks the provider; zero means 30 s.
	PaymentWebhookWait time.Duration
	// AwaitingOrder marks a workflow started by a provider event for an
	// order not placed yet: it keeps the events and waits up to
	// OrphanWindow for the order (the place_order update), then parks.
	AwaitingOrder bool
	OrphanWindow  time.Duration
	// Resume carries an order's progress into a run that continued as new.
	Resume *OrderCheckpoint
	// LatePayment, when set, makes the workflow refund a payment that
	// succeeded after its order had ended without it (rejected or
	// cancelled); its workflow ID is action.LatePaymentKey.
	LatePayment *LatePayment
}

// LatePayment names a charge that succeeded after its order ended; its
// workflow ID is action.LatePaymentKey(order id, charge id).
type LatePayment struct {
	ChargeID string
	EventID  string
}

// OrderCheckpoint is what a continued order keeps from its earlier runs.
type OrderCheckpoint struct {
	State           OrderState
	Done            DoneSteps
	Payment         paymentTracker
	Placed          bool
	RequestHash     string
	CancelRequested bool
}

// OrderResult is the order's final state.
type OrderResult struct {
	State OrderState
	// RequestHash identifies the placed order's content, for orders placed
	// into a workflow that an early event started.
	RequestHash string
}

// Order steps, in the order they run.
const (
	StepCustomer     = action.OrderStepCustomer
	StepCharge       = action.OrderStepCharge
	StepPayment      = action.OrderStepPayment
	StepInvoice      = action.OrderStepInvoice
	StepConfirmation = action.OrderStepConfirmation
)

// stepSystems names the provider each step talks to.
var stepSystems = map[string]string{
	StepCustomer: "crm", StepCharge: "payments", StepPayment: "payments",
	StepInvoice: "accounting", StepConfirmation: "mail",
	StepRefund: "payments", StepVoidInvoice: "accounting", StepCancelCharge: "payments",
}

// a is the nil *Activities through which workflows name activities.
var a *activities.Activities

// OrderWorkflow places an order: it upserts the customer in the CRM, charges
// the payment, waits until the charge settles, creates the invoice and sends
// the confirmation e-mail. Its workflow ID is "order/<order_id>". Every step
// sends the idempotency key "<workflow id>/<step>". A step that fails
// permanently or runs out of attempts parks the order in needs_attention.
func OrderWorkflow(ctx workflow.Context, in OrderInput) (OrderResult, error) {
	o := newOrderRun(ctx, in)
	o.hardened = workflow.GetVersion(ctx, versionHardening, workflow.DefaultVersion, 1) == 1
	if cp := in.Resume; cp != nil {
		o.state, o.done, o.payment, o.placed, o.requestHash = cp.State, cp.Done, cp.Payment, cp.Placed, cp.RequestHash
		o.cancelRequested = cp.CancelRequested
	}
	if err := workflow.SetQueryHandler(ctx, QueryOrderState, func() (OrderState, error) { return o.state, nil }); err != nil {
		return OrderResult{}, fmt.Errorf("register order query: %w", err)
	}
	o.receivePaymentEvents(ctx)
	if err := o.registerOperatorUpdates(ctx); err != nil {
		return OrderResult{}, err
	}
	if err := o.registerPlaceOrder(ctx); err != nil {
		return OrderResult{}, err
	}
	var err error
	switch {
	case in.LatePayment != nil:
		err = o.refundLatePayment(ctx)
	case in.AwaitingOrder && !o.placed:
		err = o.awaitOrder(ctx)
	}
	if err == nil && in.LatePayment == nil {
		err = o.run(ctx)
	}
	var can *workflow.ContinueAsNewError
	switch {
	case errors.As(err, &can):
		return OrderResult{State: o.state, RequestHash: o.requestHash}, err
	case errors.Is(err, errCancelled) && o.hardened:
		// Nothing stops a compensation once it began, a cancellation
		// through Temporal included: it runs on a context that
		// cancellation does not reach.
		disconnected, _ := workflow.NewDisconnectedContext(ctx)
		err = o.compensate(disconnected)
	case errors.Is(err, errCancelled):
		err = o.compensate(ctx)
	case temporal.IsCanceledError(err):
		// Cancelled through Temporal: compensate all the same, on a
		// context the cancellation does not reach.
		disconnected, _ := workflow.NewDisconnectedContext(ctx)
		err = o.compensate(disconnected)
	}
	if err == nil {
		// Let accepted updates finish before the workflow closes.
		err = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	}
	return OrderResult{State: o.state, RequestHash: o.requestHash}, err
}

// orderRun is one execution of OrderWorkflow and the state it reports.
type orderRun struct {
	in      OrderInput
	state   OrderState
	payment paymentTracker
	// workflowID is the action's key, which prefixes every step's
	// idempotency key.
	workflowID string
	key        action.Key
	// placed and requestHash describe an order placed into a workflow that
	// an early event started.
	placed      bool
	requestHash string

	done DoneSteps
	// parkedStep is the step waiting for an operator, empty when none.
	parkedStep string
	// resolution is the operator's answer to the parked step.
	resolution      string
	cancelRequested bool
	// activitiesThisRun counts activity executions since the run began.
	activitiesThisRun int
	compensating      bool
	// hardened marks orders begun after the changes behind
	// versionHardening: they wait for a call in flight when cancelled,
	// cancel an unsettled charge instead of waiting for it, back off when
	// the provider's record lags an event, and keep their state in the memo.
	hardened bool
}

// InitialSteps are an order's steps before any has run.
func InitialSteps() []Step {
	steps := make([]Step, 0, len(mainSteps))
	for _, name := range mainSteps {
		steps = append(steps, Step{Name: name, Status: action.StepPending})
	}
	return steps
}

func newOrderRun(ctx workflow.Context, in OrderInput) *orderRun {
	steps := InitialSteps()
	id := workflow.GetInfo(ctx).WorkflowExecution.ID
	key, err := action.ParseKey(id)
	if err != nil {
		// Started under an id of another form: its keys keep to it.
		key = action.Key{Kind: action.KindOrder, ID: strings.TrimPrefix(id, string(action.KindOrder)+"/")}
	}
	return &orderRun{
		in:         in,
		workflowID: id,
		key:        key,
		state: OrderState{
			OrderID: in.Order.OrderID, Status: action.StatusProcessing, Steps: steps,
			CorrelationID: in.CorrelationID, UpdatedAt: workflow.Now(ctx),
		},
	}
}

func (o *orderRun) run(ctx workflow.Context) error {
	contact := &o.done.Contact
	err := o.step(ctx, StepCustomer, a.UpsertCustomer, func() any {
		return activities.UpsertCustomerInput{Call: o.call(StepCustomer), Email: o.in.Order.Customer.Email, Name: o.in.Order.Customer.Name}
	}, contact)
	if err != nil {
		return err
	}
	charge := &o.done.Charge
	err = o.step(ctx, StepCharge, a.CreateCharge, func() any {
		return activities.CreateChargeInput{
			Call: o.call(StepCharge), Amount: o.in.Order.Amount, Currency: o.in.Order.Currency,
			Customer: contact.ContactID, Email: o.in.Order.Customer.Email,
			Description: "action.Order " + o.in.Order.OrderID,
		}
	}, charge)
	if err != nil {
		return err
	}
	if !o.done.Paid {
		var paid bool
		// Orders placed before payment webhooks existed poll the charge.
		if workflow.GetVersion(ctx, versionPaymentWebhooks, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			paid, err = o.awaitPayment(ctx, *charge)
		} else if err = o.setStatus(ctx, action.StatusAwaitingPayment); err == nil {
			paid, err = o.awaitPaymentEvents(ctx, charge.ChargeID)
		}
		o.done.Paid = paid
		if err != nil || !paid {
			return err
		}
	}
	invoice := &o.done.Invoice
	err = o.step(ctx, StepInvoice, a.CreateInvoice, func() any {
		return activities.CreateInvoiceInput{
			Call: o.call(StepInvoice), Customer: contact.ContactID, Amount: o.in.Order.Amount,
			Currency: o.in.Order.Currency, ChargeID: charge.ChargeID, Lines: invoiceLines(o.in.Order),
		}
	}, invoice)
	if err != nil {
		return err
	}
	var email activities.SendEmailResult
	err = o.step(ctx, StepConfirmation, a.SendEmail, func() any {
		return activities.SendEmailInput{
			Call: o.call(StepConfirmation), To: o.in.Order.Customer.Email,
			Subject: "Your order " + o.in.Order.OrderID,
			Text:    confirmationText(o.in.Order, invoice.InvoiceID),
		}
	}, &email)
	if err != nil {
		return err
	}
	return o.setStatus(ctx, action.StatusCompleted)
}

// call is the provider call metadata of a step: its key is the step key.
func (o *orderRun) call(step string) providers.Call {
	return providers.Call{IdempotencyKey: o.key.Step(step).String(), CorrelationID: o.in.CorrelationID}
}

// stepResult is implemented by every activity result (through activities.Outcome).
type stepResult interface {
	StepOutcome() activities.Outcome
}

// step runs one activity as a named step, recording its progress. When the
// activity fails for good the order is parked until an operator retries
// (input is built again, so corrections apply), skips (the step is marked
// skipped and result stays empty) or aborts it. step returns nil once the
// step succeeded or was skipped, errCancelled when the order is to be
// cancelled, or the workflow's cancellation.
func (o *orderRun) step(ctx workflow.Context, name string, activity any, input func() any, result stepResult) error {
	for {
		if o.hardened && ctx.Err() != nil {
			return ctx.Err() // cancelled through Temporal while the step before ran
		}
		if o.stopping() {
			return errCancelled
		}
		if o.stepDone(name) {
			return nil // done in an earlier run; its result came with the checkpoint
		}
		if err := o.maybeContinueAsNew(ctx); err != nil {
			return err
		}
		o.markStep(ctx, name, func(s *Step) { s.Status = action.StepRunning })
		o.activitiesThisRun++
		err := workflow.ExecuteActivity(o.activityContext(ctx, name), activity, input()).Get(ctx, result)
		if err == nil {
			out := result.StepOutcome()
			o.markStep(ctx, name, func(s *Step) {
				s.Status, s.Attempts, s.RemoteRef, s.LastError = action.StepSucceeded, s.Attempts+int(out.Attempt), out.RemoteRef, nil
			})
			return nil
		}
		if temporal.IsCanceledError(err) {
			return err
		}
		err = o.park(ctx, name, err)
		if errors.Is(err, errSkipped) {
			o.markStep(ctx, name, func(s *Step) { s.Status = action.StepSkipped })
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// stepHeartbeatTimeout is how soon Temporal notices that a worker died in
// the middle of a provider call and tries the step again elsewhere; the
// provider workers heartbeat while a call runs.
const stepHeartbeatTimeout = 10 * time.Second

// activityContext sends a step's activity to its provider's task queue with a
// timeout and a bounded retry policy.
func (o *orderRun) activityContext(ctx workflow.Context, step string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: ProviderTaskQueue(stepSystems[step]),
		// Room for a lookup and a create, each bounded by the HTTP client's
		// own timeout, so that the client's classification is what fails.
		StartToCloseTimeout: 45 * time.Second,
		HeartbeatTimeout:    stepHeartbeatTimeout,
		// An order cancelled through Temporal while a call is in flight
		// waits for the call to end: the call runs on to the provider
		// anyway, and compensation must know what it did.
		WaitForCancellation: o.hardened,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
			MaximumAttempts:    MaxStepAttempts,
		},
	})
}

// versionParkReasonMemo marks the change that records a parked step's
// reason in the memo.
const versionParkReasonMemo = "park-reason-memo"

// MemoReason is the memo field holding why an action needs attention.
const MemoReason = "reason"

// versionPaymentWebhooks marks the change from polling the charge to waiting
// for the payment webhook.
const versionPaymentWebhooks = "payment-webhooks"

// versionHardening marks the changes that keep money and waits bounded
// (see orderRun.hardened).
const versionHardening = "hardening"

// awaitPayment polls the charge until it settles, backing off between looks.
// It is the path of orders whose history began before payment webhooks.
// It reports whether the charge succeeded; a declined charge rejects the order.
func (o *orderRun) awaitPayment(ctx workflow.Context, charge activities.CreateChargeResult) (bool, error) {
	if err := o.setStatus(ctx, action.StatusAwaitingPayment); err != nil {
		return false, err
	}
	deadline := workflow.Now(ctx).Add(o.in.PaymentTimeout)
	interval := o.in.PaymentPollInterval
	polls := 0
	for {
		var got activities.GetChargeResult
		err := o.step(ctx, StepPayment, a.GetCharge, func() any {
			return activities.GetChargeInput{Call: o.call(StepPayment), ChargeID: charge.ChargeID}
		}, &got)
		if err != nil {
			return false, err
		}
		polls++
		o.markStep(ctx, StepPayment, func(s *Step) { s.Attempts = polls })
		switch got.Status {
		case providers.ChargeSucceeded:
			return true, o.setStatus(ctx, action.StatusProcessing)
		case providers.ChargeFailed:
			o.markStep(ctx, StepPayment, func(s *Step) {
				s.Status = action.StepFailed
				s.LastError = &StepError{Category: action.CategoryDeclined, Message: got.FailureCode + ": " + got.FailureMessage}
			})
			return false, o.setStatus(ctx, action.StatusRejected)
		}
		if !workflow.Now(ctx).Before(deadline) {
			if err := o.parkPaymentTimeout(ctx, charge.ChargeID, got.Status); err != nil {
				return false, err
			}
			deadline = workflow.Now(ctx).Add(o.in.PaymentTimeout)
		}
		o.markStep(ctx, StepPayment, func(s *Step) { s.Status = action.StepWaiting })
		if _, err := workflow.AwaitWithTimeout(ctx, interval, o.stopping); err != nil {
			return false, err
		}
		if o.stopping() {
			return false, errCancelled
		}
		interval = min(interval*3/2, maxPaymentPollInterval)
	}
}

// parkPaymentTimeout parks an order whose charge did not settle in time.
func (o *orderRun) parkPaymentTimeout(ctx workflow.Context, chargeID, status string) error {
	timeout := temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("charge %s still %s after %s", chargeID, status, o.in.PaymentTimeout), "PaymentTimeout", nil)
	return o.park(ctx, StepPayment, timeout)
}

// park records a step's final failure, marks the order needs_attention with
// search attributes an operator can filter on, and waits until an operator
// resolves it. It returns an error only when the workflow is cancelled.
func (o *orderRun) park(ctx workflow.Context, step string, err error) error {
	return o.parkFailure(ctx, step, describeFailure(err))
}

func (o *orderRun) parkFailure(ctx workflow.Context, step string, failure failure) error {
	o.markStep(ctx, step, func(s *Step) {
		s.Status, s.LastError = action.StepFailed, &StepError{Category: failure.category, Message: failure.message}
		s.Attempts += int(failure.attempts)
	})
	o.state.Status = action.StatusNeedsAttention
	o.state.UpdatedAt = workflow.Now(ctx)
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		SearchStatus.ValueSet(string(action.StatusNeedsAttention)),
		SearchStep.ValueSet(step),
		SearchErrorCategory.ValueSet(string(failure.category)),
		SearchProvider.ValueSet(stepSystems[step]),
	); err != nil {
		return fmt.Errorf("mark order needing attention: %w", err)
	}
	// The reason travels in the memo, so that lists of parked actions show
	// it without asking each workflow; so does the state, for reads while
	// no worker runs.
	if o.hardened {
		if err := workflow.UpsertMemo(ctx, map[string]any{MemoReason: failure.message, MemoState: o.state}); err != nil {
			return fmt.Errorf("record why the order needs attention: %w", err)
		}
	} else if workflow.GetVersion(ctx, versionParkReasonMemo, workflow.DefaultVersion, 1) == 1 {
		if err := workflow.UpsertMemo(ctx, map[string]any{MemoReason: failure.message}); err != nil {
			return fmt.Errorf("record why the order needs attention: %w", err)
		}
	}
	workflow.GetLogger(ctx).Warn("order needs attention", "order_id", o.in.Order.OrderID,
		"correlation_id", o.in.CorrelationID, "step", step, "category", failure.category, "error", failure.message)
	// Operators resolve parked orders with the workflow's retry, skip and
	// abort updates; until then the order waits here, in plain sight.
	return o.waitForOperator(ctx, step)
}

type failure struct {
	category action.Category
	message  string
	attempts int32
}

// describeFailure reads the category and attempt count that activities attach
// to their errors (see activities.FailureDetails).
func describeFailure(err error) failure {
	f := failure{category: action.CategoryTemporary, message: err.Error(), attempts: 1}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		f.message = appErr.Message()
		var cause *temporal.ApplicationError
		if errors.As(errors.Unwrap(appErr), &cause) {
			f.message += ": " + cause.Message()
		}
		var d activities.FailureDetails
		if appErr.HasDetails() && appErr.Details(&d) == nil {
			f.category, f.attempts = d.Category, d.Attempt
		} else if appErr.NonRetryable() {
			f.category = action.CategoryPermanent
		}
	}
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		f.category = action.CategoryAmbiguous
	}
	return f
}

func (o *orderRun) markStep(ctx workflow.Context, name string, change func(*Step)) {
	for i := range o.state.Steps {
		if o.state.Steps[i].Name == name {
			change(&o.state.Steps[i])
		}
	}
	o.state.UpdatedAt = workflow.Now(ctx)
}

// setStatus changes the order's status and the HandoffStatus search
// attribute. A hardened order also keeps its state in the memo whenever it
// enters a status it may stay in for a while, so that GET /v1/orders can
// answer from it while no worker runs; the final state is the result.
func (o *orderRun) setStatus(ctx workflow.Context, status action.Status) error {
	if o.state.Status == status {
		return nil
	}
	o.state.Status = status
	o.state.UpdatedAt = workflow.Now(ctx)
	if err := workflow.UpsertTypedSearchAttributes(ctx, SearchStatus.ValueSet(string(status))); err != nil {
		return fmt.Errorf("set order status %s: %w", status, err)
	}
	switch status {
	case action.StatusCompleted, action.StatusRejected, action.StatusCancelled:
		return nil
	}
	if o.hardened {
		if err := workflow.UpsertMemo(ctx, map[string]any{MemoState: o.state}); err != nil {
			return fmt.Errorf("record order state: %w", err)
		}
	}
	return nil
}

func confirmationText(order action.Order, invoiceID string) string {
	return fmt.Sprintf("Hello %s,\n\nthank you for your order %s. We received your payment of %s %s.\nYour invoice: %s.\n",
		order.Customer.Name, order.OrderID, formatAmount(order.Amount), order.Currency, invoiceID)
}

func formatAmount(minor int64) string {
	return fmt.Sprintf("%d.%02d", minor/100, minor%100)
}

// An order's history is bounded: past this many events, or this many
// activity executions in one run, or when Temporal suggests it, the order
// continues as new with its checkpoint at the next safe point.
var (
	continueAsNewAfterEvents     = 5000
	continueAsNewAfterActivities = 500
)

// stepDone reports whether a step succeeded or was skipped, also in an
// earlier run; payment steps are judged by o.done.Paid instead.
func (o *orderRun) stepDone(name string) bool {
	if name == StepPayment || name == StepRefund || name == StepVoidInvoice || name == StepCancelCharge {
		return false
	}
	for _, s := range o.state.Steps {
		if s.Name == name {
			return s.Status == action.StepSucceeded || s.Status == action.StepSkipped
		}
	}
	return false
}

// maybeContinueAsNew continues the order as new, carrying its progress,
// once its history is long (or Temporal suggests it) and no update is being
// handled. It returns the ContinueAsNewError to end this run with.
func (o *orderRun) maybeContinueAsNew(ctx workflow.Context) error {
	if o.compensating {
		return nil // a cancellation runs to its end in one run
	}
	info := workflow.GetInfo(ctx)
	if info.GetCurrentHistoryLength() < continueAsNewAfterEvents && o.activitiesThisRun < continueAsNewAfterActivities &&
		!info.GetContinueAsNewSuggested() {
		return nil
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	// Events already received but not yet applied travel with the checkpoint.
	ch := workflow.GetSignalChannel(ctx, SignalPaymentEvent)
	for {
		var e action.PaymentEvent
		if !ch.ReceiveAsync(&e) {
			break
		}
		o.payment.apply(e)
	}
	next := o.in
	next.Resume = &OrderCheckpoint{State: o.state, Done: o.done, Payment: o.payment, Placed: o.placed,
		RequestHash: o.requestHash, CancelRequested: o.cancelRequested}
	if o.placed {
		next.AwaitingOrder = false
	}
	return workflow.NewContinueAsNewError(ctx, OrderWorkflow, next)
}
