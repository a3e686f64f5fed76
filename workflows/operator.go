package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

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

// ErrTypeNotApplicable is the failure type of an update that does not apply
// to the action as it stands; its message says why.
const ErrTypeNotApplicable = "NotApplicable"

// Compensation steps, added to an order's steps when it is cancelled.
const (
	StepRefund      = "refund"
	StepVoidInvoice = "void_invoice"
)

var (
	// errCancelled unwinds an order that is to be cancelled.
	errCancelled = errors.New("order cancelled")
	// errSkipped tells a parked step that the operator skipped it.
	errSkipped = errors.New("step skipped")
)

// skippable lists the steps an order can go on without.
var skippable = map[string]bool{StepCustomer: true, StepInvoice: true, StepConfirmation: true, StepVoidInvoice: true}

// OperatorRequest is the argument of the retry, skip, abort and cancel updates.
type OperatorRequest struct {
	// Reason is recorded with the action; operators should give one.
	Reason string
	// Customer, on retry, replaces the order's customer details; it is
	// validated like a new order.
	Customer *Customer
}

// OperatorResult is the answer of an accepted update.
type OperatorResult struct {
	// Status is the action's status once the update took effect.
	Status string
	Step   string
}

// DoneSteps keeps what the steps produced, for the steps after them and
// for compensation.
type DoneSteps struct {
	Contact activities.UpsertCustomerResult
	Charge  activities.CreateChargeResult
	Invoice activities.CreateInvoiceResult
	Paid    bool
}

func notApplicable(format string, args ...any) error {
	return temporal.NewApplicationError(fmt.Sprintf(format, args...), ErrTypeNotApplicable)
}

// registerOperatorUpdates installs the retry, skip, abort and cancel
// updates. Their validators reject, with a reason, what does not apply, so
// a rejected update leaves nothing in the history.
func (o *orderRun) registerOperatorUpdates(ctx workflow.Context) error {
	parkedOnly := func(what string) func(workflow.Context, OperatorRequest) error {
		return func(_ workflow.Context, req OperatorRequest) error {
			if o.parkedStep == "" {
				return notApplicable("%s applies to an action waiting for an operator; this one is %s", what, o.statusText())
			}
			if o.resolution != "" {
				return notApplicable("the %s step already has an operator's answer (%s)", o.parkedStep, o.resolution)
			}
			if what == UpdateAbort && o.compensating {
				return notApplicable("the order is being cancelled; retry the %s step to finish undoing it", o.parkedStep)
			}
			if what == UpdateSkip && !skippable[o.parkedStep] {
				return notApplicable("the %s step cannot be skipped; retry or abort it", o.parkedStep)
			}
			if what == UpdateRetry && req.Customer != nil {
				return o.validateCorrection(*req.Customer)
			}
			return nil
		}
	}
	resolve := func(what string) func(workflow.Context, OperatorRequest) (OperatorResult, error) {
		return func(ctx workflow.Context, req OperatorRequest) (OperatorResult, error) {
			step := o.parkedStep
			if what == UpdateRetry && req.Customer != nil {
				o.in.Order.Customer = *req.Customer
				o.in.Order = o.in.Order.Normalize()
			}
			o.resolution = what
			o.logOperator(ctx, what, step, req.Reason)
			return OperatorResult{Status: o.state.Status, Step: step}, nil
		}
	}
	for _, what := range []string{UpdateRetry, UpdateSkip, UpdateAbort} {
		err := workflow.SetUpdateHandlerWithOptions(ctx, what, resolve(what), workflow.UpdateHandlerOptions{Validator: parkedOnly(what)})
		if err != nil {
			return fmt.Errorf("register %s update: %w", what, err)
		}
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateCancel,
		func(ctx workflow.Context, req OperatorRequest) (OperatorResult, error) {
			if !o.cancelRequested && !o.compensating {
				o.cancelRequested = true
				o.logOperator(ctx, UpdateCancel, o.parkedStep, req.Reason)
				// A step already running finishes first; the order says at
				// once that it is being cancelled.
				if err := o.setStatus(ctx, StatusCancelling); err != nil {
					return OperatorResult{}, err
				}
			}
			return OperatorResult{Status: o.state.Status}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(workflow.Context, OperatorRequest) error {
			switch o.state.Status {
			case StatusCompleted, StatusRejected, StatusCancelled:
				return notApplicable("the order is already %s", o.state.Status)
			}
			return nil
		}},
	)
}

// stopping reports whether the order is to stop and compensate; once it
// compensates, nothing stops the compensation.
func (o *orderRun) stopping() bool {
	return o.cancelRequested && !o.compensating
}

func (o *orderRun) statusText() string {
	if o.state.Status == "" {
		return "waiting for its order"
	}
	return o.state.Status
}

// validateCorrection is the workflow's own, deterministic check of a
// customer correction; callers validate it fully first (Customer.Validate).
func (o *orderRun) validateCorrection(c Customer) error {
	if strings.TrimSpace(c.Name) == "" || !strings.Contains(c.Email, "@") {
		return notApplicable("customer correction: a name and an e-mail address are required")
	}
	return nil
}

func (o *orderRun) logOperator(ctx workflow.Context, what, step, reason string) {
	workflow.GetLogger(ctx).Info("operator action", "action", what, "step", step, "reason", reason,
		"order_id", o.in.Order.OrderID, "correlation_id", o.in.CorrelationID)
}

// waitForOperator holds a parked step until an operator resolves it or the
// order is cancelled. It returns nil for retry, errSkipped for skip and
// errCancelled for abort or cancel.
func (o *orderRun) waitForOperator(ctx workflow.Context, step string) error {
	o.parkedStep = step
	defer func() { o.parkedStep = "" }()
	if err := workflow.Await(ctx, func() bool { return o.resolution != "" || o.stopping() }); err != nil {
		return err
	}
	resolution := o.resolution
	o.resolution = ""
	if o.stopping() || resolution == UpdateAbort {
		return errCancelled
	}
	status := StatusProcessing
	if step == StepPayment {
		status = StatusAwaitingPayment
	}
	o.state.Status = ""
	if !o.in.AwaitingOrder || o.placed {
		if err := o.setStatus(ctx, status); err != nil {
			return err
		}
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, SearchStep.ValueUnset(), SearchErrorCategory.ValueUnset(), SearchProvider.ValueUnset()); err != nil {
		return fmt.Errorf("clear parked search attributes: %w", err)
	}
	if resolution == UpdateSkip {
		return errSkipped
	}
	o.markStep(ctx, step, func(s *Step) { s.Status = StepPending })
	return nil
}

// compensate undoes, in reverse order, what a cancelled order did: it voids
// the invoice and refunds the charge, each with its own idempotency key, so
// running it twice changes nothing. The CRM contact and a sent e-mail stay.
func (o *orderRun) compensate(ctx workflow.Context) error {
	// Compensation steps run to the end: a further cancel changes nothing.
	o.compensating = true
	if err := o.setStatus(ctx, StatusCancelling); err != nil {
		return err
	}
	if id := o.done.Invoice.InvoiceID; id != "" {
		o.addStep(StepVoidInvoice)
		var out activities.VoidInvoiceResult
		err := o.step(ctx, StepVoidInvoice, a.VoidInvoice, func() any {
			return activities.VoidInvoiceInput{Call: o.call(StepVoidInvoice), InvoiceID: id}
		}, &out)
		if err != nil && !errors.Is(err, errCancelled) {
			return err
		}
	}
	id := o.done.Charge.ChargeID
	if id == "" && o.chargeAttempted() {
		// The charge step was tried but its answer never came back: the
		// provider may hold a charge all the same.
		o.addStep(StepRefund)
		var found activities.FindChargeResult
		err := o.step(ctx, StepRefund, a.FindCharge, func() any {
			return activities.FindChargeInput{Call: o.call(StepCharge)}
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
		err := o.step(ctx, StepRefund, a.RefundCharge, func() any {
			return activities.RefundChargeInput{Call: o.call(StepRefund), ChargeID: id}
		}, &out)
		if err != nil && !errors.Is(err, errCancelled) {
			return err
		}
	}
	return o.setStatus(ctx, StatusCancelled)
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
			activities.GetChargeInput{Call: o.call(StepPayment), ChargeID: chargeID}).Get(ctx, &got)
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
			return s.Status != StepPending
		}
	}
	return false
}

func (o *orderRun) addStep(name string) {
	for _, s := range o.state.Steps {
		if s.Name == name {
			return
		}
	}
	o.state.Steps = append(o.state.Steps, Step{Name: name, Status: StepPending})
}
