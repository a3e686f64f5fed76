package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/providers"
)

// OrderInput is everything OrderWorkflow needs; it is fixed at start.
type OrderInput struct {
	Order         action.Order `json:"order"`
	CorrelationID string       `json:"correlation_id"`
	// PaymentPollInterval is the first pause between looks at a pending charge.
	PaymentPollInterval time.Duration `json:"payment_poll_interval"`
	// PaymentTimeout is how long the order waits for the charge to settle.
	PaymentTimeout time.Duration `json:"payment_timeout"`
	// PaymentWebhookWait is how long the order waits for the payment
	// webhook before it asks the provider; zero means 30 s.
	PaymentWebhookWait time.Duration `json:"payment_webhook_wait"`
	// AwaitingOrder marks a workflow started by a provider event for an
	// order not placed yet: it keeps the events and waits up to
	// OrphanWindow for the order (the place_order update), then parks.
	AwaitingOrder bool          `json:"awaiting_order"`
	OrphanWindow  time.Duration `json:"orphan_window"`
	// StartDelayed marks such a workflow started with Temporal's start
	// delay set to its orphan window: its first workflow task runs when
	// the order is placed, another event comes, or the window has passed,
	// so the window's remainder is all it waits.
	StartDelayed bool `json:"start_delayed,omitempty"`
	// Resume carries an order's progress into a run that continued as new.
	Resume *OrderCheckpoint `json:"resume"`
	// LatePayment, when set, makes the workflow refund a payment that
	// succeeded after its order had ended without it (rejected or
	// cancelled); its workflow ID is action.LatePaymentKey.
	LatePayment *LatePayment `json:"late_payment"`
	// Revision is the behaviour the order's workflow follows, chosen by
	// whoever started it: OrderRevision for orders this release starts.
	// Zero marks an order an earlier release started, whose GetVersion
	// markers decide its behaviour.
	Revision int `json:"revision,omitempty"`
}

// OrderRevision is the behaviour of the orders this release starts: they
// are hardened and wait for the payment webhook, but not when it came
// during the charge step, and say that they await payment only once it did
// not come within a short grace (paymentGrace). Chosen at start, it spares each
// order the GetVersion markers of those changes, each a history event and a
// search-attribute write. A worker refuses orders of a revision it does not
// know (its workflow task fails until a worker that knows it takes it), so
// the workers are upgraded before the API that starts orders.
const OrderRevision = 1

// LatePayment names a charge that succeeded after its order ended; its
// workflow ID is action.LatePaymentKey(order id, charge id).
type LatePayment struct {
	ChargeID string `json:"charge_id"`
	EventID  string `json:"event_id"`
}

// OrderCheckpoint is what a continued order keeps from its earlier runs.
type OrderCheckpoint struct {
	State           OrderState     `json:"state"`
	Done            DoneSteps      `json:"done"`
	Payment         paymentTracker `json:"payment"`
	Placed          bool           `json:"placed"`
	RequestHash     string         `json:"request_hash"`
	CancelRequested bool           `json:"cancel_requested"`
}

// OrderResult is the order's final state.
type OrderResult struct {
	State OrderState `json:"state"`
	// RequestHash identifies the placed order's content, for orders placed
	// into a workflow that an early event started.
	RequestHash string `json:"request_hash"`
}

// Order steps, in the order they run.
const (
	StepCustomer     = action.OrderStepCustomer
	StepCharge       = action.OrderStepCharge
	StepPayment      = action.OrderStepPayment
	StepInvoice      = action.OrderStepInvoice
	StepConfirmation = action.OrderStepConfirmation
)

// a is the nil *Activities through which workflows name activities.
var a *activities.Activities

// OrderWorkflow places an order: it upserts the customer in the CRM, charges
// the payment, waits until the charge settles, creates the invoice and sends
// the confirmation e-mail. Its workflow ID is "order/<order_id>". Every step
// sends the idempotency key "<workflow id>/<step>". A step that fails
// permanently or runs out of attempts parks the order in needs_attention.
func OrderWorkflow(ctx workflow.Context, in OrderInput) (OrderResult, error) {
	if in.Revision > OrderRevision {
		// Blocks the workflow task, which Temporal retries, until a worker
		// that knows the revision takes it.
		panic(fmt.Sprintf("order revision %d is newer than this worker's %d: upgrade the workers", in.Revision, OrderRevision))
	}
	hardened := in.Revision >= 1 || workflow.GetVersion(ctx, versionHardening, workflow.DefaultVersion, 1) == 1
	o := newOrderRun(ctx, in, hardened)
	if cp := in.Resume; cp != nil {
		o.state, o.done, o.payment, o.placed, o.requestHash = cp.State, cp.Done, cp.Payment, cp.Placed, cp.RequestHash
		o.cancelRequested = cp.CancelRequested
	}
	o.receivePaymentEvents(ctx)
	if err := o.RegisterUpdates(ctx); err != nil {
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
	case errors.Is(err, ErrCancelled) && o.hardened, temporal.IsCanceledError(err):
		// Nothing stops a compensation once it began, a cancellation
		// through Temporal included: it runs on a context that
		// cancellation does not reach. Cancelled through Temporal, the
		// order compensates all the same.
		disconnected, _ := workflow.NewDisconnectedContext(ctx)
		err = o.compensate(disconnected)
	case errors.Is(err, ErrCancelled):
		err = o.compensate(ctx)
	}
	if err == nil {
		// Let accepted updates finish before the workflow closes.
		err = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	}
	return OrderResult{State: o.state, RequestHash: o.requestHash}, err
}

// orderRun is one execution of OrderWorkflow: the shared Run, and what an
// order adds to it.
type orderRun struct {
	*Run
	in      OrderInput
	payment paymentTracker
	// revision is the order's behaviour, as it started (see OrderRevision).
	revision int
	// placed and requestHash describe an order placed into a workflow that
	// an early event started.
	placed      bool
	requestHash string

	done DoneSteps
}

// InitialSteps are an order's steps before any has run.
func InitialSteps() []Step {
	steps := make([]Step, 0, len(mainSteps))
	for _, name := range mainSteps {
		steps = append(steps, Step{Name: name, Status: action.StepPending})
	}
	return steps
}

// newOrderRun starts an order's run. hardened says whether the order began
// after versionHardening.
func newOrderRun(ctx workflow.Context, in OrderInput, hardened bool) *orderRun {
	o := &orderRun{in: in, revision: in.Revision}
	o.Run = NewRun(ctx, RunOptions{
		ID: in.Order.OrderID, CorrelationID: in.CorrelationID, Steps: OrderSteps, Initial: InitialSteps(), Legacy: !hardened,
		Hooks: RunHooks{
			ValidateRetry: func(req OperatorRequest) error {
				if req.Customer != nil {
					return validateCorrection(*req.Customer)
				}
				return nil
			},
			Retry: func(_ workflow.Context, req OperatorRequest) {
				if req.Customer != nil {
					o.in.Order.Customer = *req.Customer
					o.in.Order = o.in.Order.Normalize()
				}
			},
			StatusAfterAnswer: func(step string) action.Status {
				if step == StepPayment {
					return action.StatusAwaitingPayment
				}
				return action.StatusProcessing
			},
			Placed:        func() bool { return !o.in.AwaitingOrder || o.placed },
			ContinueAsNew: o.continueAsNew,
		},
	})
	return o
}

func (o *orderRun) run(ctx workflow.Context) error {
	contact := &o.done.Contact
	err := RunStep(ctx, o.Run, StepCustomer, a.UpsertCustomer, func() activities.UpsertCustomerInput {
		return activities.UpsertCustomerInput{Call: o.Call(StepCustomer), Email: o.in.Order.Customer.Email, Name: o.in.Order.Customer.Name}
	}, contact)
	if err != nil {
		return err
	}
	if len(contact.Differences) > 0 {
		o.markStep(ctx, StepCustomer, func(s *Step) { s.Notes = contact.Differences })
	}
	charge := &o.done.Charge
	err = RunStep(ctx, o.Run, StepCharge, a.CreateCharge, func() activities.CreateChargeInput {
		return activities.CreateChargeInput{
			Call: o.Call(StepCharge), Amount: o.in.Order.Amount, Currency: o.in.Order.Currency,
			Customer: contact.ContactID, Email: o.in.Order.Customer.Email,
			Description: "Order " + o.in.Order.OrderID,
		}
	}, charge)
	if err != nil {
		return err
	}
	if !o.done.Paid {
		var paid bool
		switch {
		case o.revision >= 1:
			// Says it awaits payment only when it has to wait for long.
			paid, err = o.awaitPaymentEvents(ctx, charge.ChargeID)
		case workflow.GetVersion(ctx, versionPaymentWebhooks, workflow.DefaultVersion, 1) == workflow.DefaultVersion:
			// Orders placed before payment webhooks existed poll the charge.
			paid, err = o.awaitPayment(ctx, *charge)
		default:
			if err = o.SetStatus(ctx, action.StatusAwaitingPayment); err == nil {
				paid, err = o.awaitPaymentEvents(ctx, charge.ChargeID)
			}
		}
		o.done.Paid = paid
		if err != nil || !paid {
			return err
		}
	}
	invoice := &o.done.Invoice
	err = RunStep(ctx, o.Run, StepInvoice, a.CreateInvoice, func() activities.CreateInvoiceInput {
		return activities.CreateInvoiceInput{
			Call: o.Call(StepInvoice), Customer: contact.ContactID, Amount: o.in.Order.Amount,
			Currency: o.in.Order.Currency, ChargeID: charge.ChargeID, Lines: invoiceLines(o.in.Order),
		}
	}, invoice)
	if err != nil {
		return err
	}
	var email activities.SendEmailResult
	err = RunStep(ctx, o.Run, StepConfirmation, a.SendEmail, func() activities.SendEmailInput {
		return activities.SendEmailInput{
			Call: o.Call(StepConfirmation), To: o.in.Order.Customer.Email,
			Confirmation: &activities.Confirmation{OrderID: o.in.Order.OrderID, Name: o.in.Order.Customer.Name,
				Amount: o.in.Order.Amount, Currency: o.in.Order.Currency, InvoiceID: invoice.InvoiceID},
		}
	}, &email)
	if err != nil {
		return err
	}
	return o.SetStatus(ctx, action.StatusCompleted)
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
	if err := o.SetStatus(ctx, action.StatusAwaitingPayment); err != nil {
		return false, err
	}
	deadline := workflow.Now(ctx).Add(o.in.PaymentTimeout)
	interval := o.in.PaymentPollInterval
	polls := 0
	for {
		var got activities.GetChargeResult
		err := RunStep(ctx, o.Run, StepPayment, a.GetCharge, func() activities.GetChargeInput {
			return activities.GetChargeInput{Call: o.Call(StepPayment), ChargeID: charge.ChargeID}
		}, &got)
		if err != nil {
			return false, err
		}
		polls++
		o.markStep(ctx, StepPayment, func(s *Step) { s.Attempts = polls })
		switch got.Status {
		case providers.ChargeSucceeded:
			return true, o.SetStatus(ctx, action.StatusProcessing)
		case providers.ChargeFailed, providers.ChargeCanceled:
			o.markStep(ctx, StepPayment, func(s *Step) {
				s.Status = action.StepFailed
				s.LastError = &StepError{Category: action.CategoryDeclined, Message: got.FailureCode + ": " + got.FailureMessage}
			})
			return false, o.SetStatus(ctx, action.StatusRejected)
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
			return false, ErrCancelled
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

// continueAsNew continues the order as new, carrying its progress (the
// Run decides when). It returns the ContinueAsNewError to end this run with.
func (o *orderRun) continueAsNew(ctx workflow.Context) error {
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
	next.Revision = o.revision
	// The next run starts at once: its window starts whole.
	next.StartDelayed = false
	next.Resume = &OrderCheckpoint{State: o.state, Done: o.done, Payment: o.payment, Placed: o.placed,
		RequestHash: o.requestHash, CancelRequested: o.cancelRequested}
	if o.placed {
		next.AwaitingOrder = false
	}
	return workflow.NewContinueAsNewError(ctx, OrderWorkflow, next)
}
