package workflows

import (
	"errors"
	"time"

	"github.com/handoff-hq/handoff/action"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// UpdatePlaceOrder places an order into the workflow that an early provider
// event started for it.
const UpdatePlaceOrder = "place_order"

// defaultOrphanWindow is how long events wait for their order when the
// input does not say.
const defaultOrphanWindow = 24 * time.Hour

// OrphanWindow is how long events wait for their order: window, or the
// default when it is not positive.
func OrphanWindow(window time.Duration) time.Duration {
	if window <= 0 {
		return defaultOrphanWindow
	}
	return window
}

// PlaceOrderRequest is the place_order update's argument.
type PlaceOrderRequest struct {
	Input       OrderInput `json:"input"`
	RequestHash string     `json:"request_hash"`
}

// PlaceOrderResult says whether the same order had been placed before.
type PlaceOrderResult struct {
	Replayed      bool   `json:"replayed"`
	CorrelationID string `json:"correlation_id"`
}

// awaitOrder keeps the events that arrived before their order and waits for
// the order to be placed. An order that does not come within the orphan
// window parks the workflow for an operator, so the events are not lost.
func (o *orderRun) awaitOrder(ctx workflow.Context) error {
	o.state.Status = ""
	window := OrphanWindow(o.in.OrphanWindow)
	wait := window
	if o.in.StartDelayed {
		// Temporal held this first workflow task back (the start delay)
		// until the order came, another event did, or the window passed:
		// only the rest of the window is left.
		wait = max(window-workflow.Now(ctx).Sub(workflow.GetInfo(ctx).WorkflowStartTime), 0)
	}
	for !o.placed {
		placed := o.placed || o.stopping()
		if !placed && wait > 0 {
			var err error
			if placed, err = workflow.AwaitWithTimeout(ctx, wait, func() bool { return o.placed || o.stopping() }); err != nil {
				return err
			}
		}
		wait = window
		if o.stopping() {
			return ErrCancelled
		}
		if !placed {
			// A retry waits another window; an abort ends the workflow.
			if err := o.parkFailure(ctx, StepPayment, failure{category: action.CategoryOrphan,
				message: "provider events arrived for an order that was never placed within " + window.String()}); err != nil {
				return err
			}
		}
	}
	o.state.Status = ""
	return o.SetStatus(ctx, action.StatusProcessing)
}

// registerPlaceOrder installs the place_order update. Every order has it,
// so that an order placed into a workflow an early event started answers
// repeats idempotently in every run, also after continue-as-new.
func (o *orderRun) registerPlaceOrder(ctx workflow.Context) error {
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdatePlaceOrder,
		func(ctx workflow.Context, req PlaceOrderRequest) (PlaceOrderResult, error) {
			if o.placed {
				return PlaceOrderResult{Replayed: true, CorrelationID: o.in.CorrelationID}, nil
			}
			o.placeOrder(ctx, req)
			if o.hardened {
				// Kept where Temporal serves it without a worker, and after
				// the workflow ends however it ends: the order was placed.
				err := workflow.UpsertMemo(ctx, map[string]any{MemoRequestHash: req.RequestHash, MemoCorrelationID: req.Input.CorrelationID})
				if err != nil {
					return PlaceOrderResult{}, err
				}
			}
			if o.parkedStep != "" {
				// Parked as an orphan: the order came after all, so go on.
				o.resolution = UpdateRetry
			}
			return PlaceOrderResult{CorrelationID: o.in.CorrelationID}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req PlaceOrderRequest) error {
			if req.Input.Order.OrderID != o.in.Order.OrderID {
				return errors.New("the order id does not match the workflow")
			}
			if !o.placed && !o.in.AwaitingOrder {
				return notApplicable("this order was placed directly; place_order does not apply")
			}
			if o.placed && req.RequestHash != o.requestHash {
				return temporal.NewApplicationError("order id already used with a different request", action.TypeConflict)
			}
			return nil
		}},
	)
}

// placeOrder takes the placed order's input; the events already received stay.
func (o *orderRun) placeOrder(ctx workflow.Context, req PlaceOrderRequest) {
	o.placed, o.requestHash = true, req.RequestHash
	o.in = req.Input
	o.correlationID = req.Input.CorrelationID
	o.state.Status = action.StatusProcessing
	o.state.CorrelationID = req.Input.CorrelationID
	o.state.UpdatedAt = workflow.Now(ctx)
}
