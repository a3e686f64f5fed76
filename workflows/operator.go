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

// Operator updates: the safe ways out of needs_attention, and cancellation.
const (
	UpdateRetry  = "retry"
	UpdateSkip   = "skip"
	UpdateAbort  = "abort"
	UpdateCancel = "cancel"
)

// Compensation steps, added to an order's steps when it is cancelled.
const (
	StepRefund      = action.OrderStepRefund
	StepVoidInvoice = action.OrderStepVoidInvoice
	// StepCancelCharge finds the order's charge when its answer was lost
	// and cancels it at the provider when it has not settled.
	StepCancelCharge = action.OrderStepCancelCharge
)

// ErrCancelled is what RunStep returns when the action is to stop and
// undo what it did: an operator aborted a parked step or cancelled it.
var ErrCancelled = errors.New("action cancelled")

// errSkipped tells a parked step that the operator skipped it.
var errSkipped = errors.New("step skipped")

// OperatorRequest is the argument of the retry, skip, abort and cancel updates.
type OperatorRequest struct {
	// Reason is recorded with the action; operators should give one.
	Reason string `json:"reason"`
	// Customer, on retry, replaces the order's customer details; it is
	// validated like a new order.
	Customer *action.Customer `json:"customer"`
	// Record, on retry of a customer's match step parked as
	// ambiguous_match, names the record (one of the candidates) that
	// holds the customer.
	Record string `json:"record"`
}

// OperatorResult is the answer of an accepted update.
type OperatorResult struct {
	// Status is the action's status once the update took effect.
	Status action.Status `json:"status"`
	Step   string        `json:"step"`
}

// DoneSteps keeps what the steps produced, for the steps after them and
// for compensation.
type DoneSteps struct {
	Contact activities.UpsertCustomerResult `json:"contact"`
	Charge  activities.CreateChargeResult   `json:"charge"`
	Invoice activities.CreateInvoiceResult  `json:"invoice"`
	Paid    bool                            `json:"paid"`
}

func notApplicable(format string, args ...any) error {
	return temporal.NewApplicationError(fmt.Sprintf(format, args...), action.TypeNotApplicable)
}

// validateCorrection is the workflow's own, deterministic check of a
// customer correction; callers validate it fully first (Customer.Validate).
func validateCorrection(c action.Customer) error {
	if strings.TrimSpace(c.Name) == "" || !strings.Contains(c.Email, "@") {
		return notApplicable("customer correction: a name and an e-mail address are required")
	}
	return nil
}

// compensate undoes, in reverse order, what a cancelled order did: it voids
// the invoice, and makes sure the order keeps no money (see undoCharge),
// each with its own idempotency key, so running it twice changes nothing.
// The CRM contact and a sent e-mail stay.
func (o *orderRun) compensate(ctx workflow.Context) error {
	// Compensation steps run to the end: a further cancel changes nothing.
	o.compensating = true
	if err := o.SetStatus(ctx, action.StatusCancelling); err != nil {
		return err
	}
	if id := o.done.Invoice.InvoiceID; id != "" {
		o.addStep(StepVoidInvoice)
		var out activities.VoidInvoiceResult
		err := RunStep(ctx, o.Run, StepVoidInvoice, a.VoidInvoice, func() activities.VoidInvoiceInput {
			return activities.VoidInvoiceInput{Call: o.Call(StepVoidInvoice), InvoiceID: id}
		}, &out)
		if err != nil && !errors.Is(err, ErrCancelled) {
			return err
		}
	}
	var err error
	if o.hardened {
		err = o.undoCharge(ctx)
	} else {
		err = o.refundWhenPaid(ctx)
	}
	if err != nil {
		return err
	}
	return o.SetStatus(ctx, action.StatusCancelled)
}

// undoCharge makes sure a cancelled order keeps no money. A charge that has
// not settled is cancelled at the provider, so that the customer can no
// longer pay an order that is gone; a charge that took money is refunded
// (adopting a refund that exists already). Every wait is bounded, and a
// call that fails for good parks like any other step.
func (o *orderRun) undoCharge(ctx workflow.Context) error {
	id, err := o.chargeToUndo(ctx)
	if err != nil || id == "" {
		return err
	}
	paid := o.done.Paid
	if !paid {
		status, known := o.payment.outcomeFor(id)
		if known && status != providers.ChargeSucceeded {
			return nil // declined in the provider's own order: nothing was taken
		}
		if !known {
			if status, err = o.cancelCharge(ctx, id); err != nil {
				return err
			}
		}
		paid = status == providers.ChargeSucceeded
	}
	if !paid {
		return nil
	}
	o.addStep(StepRefund)
	var out activities.RefundChargeResult
	err = RunStep(ctx, o.Run, StepRefund, a.RefundCharge, func() activities.RefundChargeInput {
		return activities.RefundChargeInput{Call: o.Call(StepRefund), ChargeID: id}
	}, &out)
	if err != nil && !errors.Is(err, ErrCancelled) {
		return err
	}
	return nil
}

// chargeToUndo names the order's charge. When the charge step was tried but
// its answer never came back, the provider may hold a charge all the same:
// it is looked up by its reference, now that no call of the step can still
// be in flight.
func (o *orderRun) chargeToUndo(ctx workflow.Context) (string, error) {
	if id := o.done.Charge.ChargeID; id != "" || !o.chargeAttempted() {
		return id, nil
	}
	o.addStep(StepCancelCharge)
	var found activities.FindChargeResult
	err := RunStep(ctx, o.Run, StepCancelCharge, a.FindCharge, func() activities.FindChargeInput {
		return activities.FindChargeInput{Call: o.Call(StepCharge)}
	}, &found)
	if err != nil || !found.Found {
		return "", err
	}
	return found.ChargeID, nil
}

// cancelCharge cancels the order's unsettled charge at the provider and
// returns its status as it then stands: canceled, or settled when it
// settled first. A charge the provider cannot cancel yet (one being
// processed) is asked again with growing pauses for at most the payment
// timeout; then the step parks, and an operator retries or skips it. A
// skipped step returns no status.
func (o *orderRun) cancelCharge(ctx workflow.Context, id string) (string, error) {
	o.addStep(StepCancelCharge)
	deadline := workflow.Now(ctx).Add(o.in.PaymentTimeout)
	for tries := 1; ; tries++ {
		var got activities.CancelChargeResult
		err := RunStep(ctx, o.Run, StepCancelCharge, a.CancelCharge, func() activities.CancelChargeInput {
			return activities.CancelChargeInput{Call: o.Call(StepCancelCharge), ChargeID: id}
		}, &got)
		if err != nil || o.stepStatus(StepCancelCharge) == action.StepSkipped {
			return "", err
		}
		if got.Status != providers.ChargePending {
			return got.Status, nil
		}
		if !workflow.Now(ctx).Before(deadline) {
			timeout := temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("charge %s could not be cancelled: still pending after %s", id, o.in.PaymentTimeout), "PaymentTimeout", nil)
			err := o.park(ctx, StepCancelCharge, timeout)
			if errors.Is(err, errSkipped) {
				o.markStep(ctx, StepCancelCharge, func(s *Step) { s.Status = action.StepSkipped })
				return "", nil
			}
			if err != nil && !errors.Is(err, ErrCancelled) {
				return "", err
			}
			deadline = workflow.Now(ctx).Add(o.in.PaymentTimeout)
		}
		o.markStep(ctx, StepCancelCharge, func(s *Step) { s.Status = action.StepWaiting })
		if _, err := workflow.AwaitWithTimeout(ctx, o.backoff(tries), func() bool {
			_, known := o.payment.outcomeFor(id)
			return known
		}); err != nil {
			return "", err
		}
		if status, known := o.payment.outcomeFor(id); known {
			return status, nil
		}
	}
}

// refundLatePayment is the whole work of a late-payment workflow: the
// charge succeeded after its order had ended without it, so the money is
// given back (or, when the provider says otherwise, nothing is done).
func (o *orderRun) refundLatePayment(ctx workflow.Context) error {
	o.state.Steps = []Step{}
	o.done.Charge.ChargeID = o.in.LatePayment.ChargeID
	workflow.GetLogger(ctx).Warn("a payment succeeded after its order ended: refunding it", "order_id", o.in.Order.OrderID,
		"charge_id", o.in.LatePayment.ChargeID, "event_id", o.in.LatePayment.EventID)
	return ErrCancelled
}

// refundWhenPaid is the compensation of orders begun before
// versionHardening: it waits for a pending charge to settle and refunds it
// when it took money.
func (o *orderRun) refundWhenPaid(ctx workflow.Context) error {
	id := o.done.Charge.ChargeID
	if id == "" && o.chargeAttempted() {
		// The charge step was tried but its answer never came back: the
		// provider may hold a charge all the same.
		o.addStep(StepRefund)
		var found activities.FindChargeResult
		err := RunStep(ctx, o.Run, StepRefund, a.FindCharge, func() activities.FindChargeInput {
			return activities.FindChargeInput{Call: o.Call(StepCharge)}
		}, &found)
		if err != nil {
			return err
		}
		if found.Found {
			id = found.ChargeID
		}
	}
	if id != "" && o.chargePaid(ctx, id) {
		o.addStep(StepRefund)
		var out activities.RefundChargeResult
		err := RunStep(ctx, o.Run, StepRefund, a.RefundCharge, func() activities.RefundChargeInput {
			return activities.RefundChargeInput{Call: o.Call(StepRefund), ChargeID: id}
		}, &out)
		if err != nil && !errors.Is(err, ErrCancelled) {
			return err
		}
	}
	return nil
}

// chargePaid reports whether the order's charge took money. A charge still
// pending when the order is cancelled is waited for, since it may yet
// succeed and would then need its refund.
func (o *orderRun) chargePaid(ctx workflow.Context, chargeID string) bool {
	if o.done.Paid {
		return true
	}
	for wait := time.Second; ; wait = min(wait*2, time.Minute) {
		// Only events in the provider's own order decide; the provider's
		// record decides the rest.
		if o.payment.settled() && o.payment.Ordered && o.payment.ChargeID == chargeID {
			return o.payment.Status == providers.ChargeSucceeded
		}
		var got activities.GetChargeResult
		err := workflow.ExecuteActivity(o.activityContext(ctx, StepPayment), a.GetCharge,
			activities.GetChargeInput{Call: o.Call(StepPayment), ChargeID: chargeID}).Get(ctx, &got)
		if err == nil && got.Status != providers.ChargePending {
			return got.Status == providers.ChargeSucceeded || got.Status == providers.ChargeRefunded
		}
		if _, err := workflow.AwaitWithTimeout(ctx, wait, o.payment.settled); err != nil {
			return false
		}
	}
}

// chargeAttempted reports whether the charge step ran at least once.
func (o *orderRun) chargeAttempted() bool {
	for _, s := range o.state.Steps {
		if s.Name == StepCharge {
			return s.Status != action.StepPending
		}
	}
	return false
}
