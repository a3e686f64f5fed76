package control

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/workflows"
)

// Delivery outcomes of an event.
var (
	// ErrActionFinished means the event's action has already ended; the
	// event changes nothing and is acknowledged.
	ErrActionFinished = errors.New("the event's action has already finished")
	// ErrActionUnknown means no action exists yet for the event and none
	// could be started to keep it.
	ErrActionUnknown = errors.New("no action exists for the event yet")
	// ErrLatePayment means the event reports a payment that succeeded after
	// its order had ended without it (rejected or cancelled): a workflow
	// that refunds it was started (or runs already).
	ErrLatePayment = errors.New("the payment succeeded after its order ended; it is being refunded")
)

// DeliverPaymentEvent hands a verified payment event to its order's
// workflow as a signal. It returns once Temporal has durably accepted the
// signal; the workflow itself ignores duplicates and stale events.
func (s *Client) DeliverPaymentEvent(ctx context.Context, e action.PaymentEvent) error {
	id := action.OrderKey(e.OrderID).String()
	// An event for an order not placed yet starts the order's workflow,
	// which keeps the event until the order arrives. Its first workflow
	// task waits (Temporal's start delay) until the order is placed,
	// another event comes or the orphan window has passed: the events are
	// durable in its history meanwhile, and an event costs Temporal no
	// workflow task before there is an order to apply it to.
	window := workflows.OrphanWindow(s.opts.OrphanWindow)
	opts := client.StartWorkflowOptions{
		ID:                    id,
		TaskQueue:             workflows.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		StartDelay:            window,
		Memo:                  map[string]any{MemoAwaitingOrder: "true", MemoRevision: revision},
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.SearchBusinessKey.ValueSet(e.OrderID)),
	}
	in := workflows.OrderInput{
		Order: action.Order{OrderID: e.OrderID}, AwaitingOrder: true, OrphanWindow: window, StartDelayed: true,
		Revision: workflows.OrderRevision,
	}
	_, err := s.client.SignalWithStartWorkflow(ctx, id, workflows.SignalPaymentEvent, e, opts, workflows.OrderWorkflow, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case err == nil:
		return nil
	case errors.As(err, &started):
		// The order's workflow has closed and its id is not reused.
		if e.Status == action.PaymentSucceeded {
			return s.latePayment(ctx, e)
		}
		return fmt.Errorf("deliver %s to %s: %w", e.EventID, id, ErrActionFinished)
	default:
		return fmt.Errorf("deliver %s to %s: %w", e.EventID, id, err)
	}
}

// latePayment handles a successful payment for an order that has ended. An
// order that completed was paid by this charge: nothing to do. An order
// that was placed and ended without its payment (rejected, or cancelled
// with its charge's cancellation skipped) must not keep the money: a
// late-payment workflow refunds it, once per order. A workflow that never
// held an order (events whose order never came) is left alone, since the
// order may still be placed and adopt the charge.
func (s *Client) latePayment(ctx context.Context, e action.PaymentEvent) error {
	id := action.OrderKey(e.OrderID).String()
	info, err := s.describe(ctx, id)
	if err != nil {
		return fmt.Errorf("deliver %s to %s: %w", e.EventID, id, err)
	}
	memo := memoOf(s.dc, info)
	placed := memo[MemoAwaitingOrder] != "true" || memo[MemoRequestHash] != ""
	switch status := statusOf(info); {
	case !placed || (status != action.StatusRejected && status != action.StatusCancelled):
		return fmt.Errorf("deliver %s to %s: %w", e.EventID, id, ErrActionFinished)
	}
	late := action.LatePaymentKey(e.OrderID, e.ChargeID).String()
	_, err = s.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: late, TaskQueue: workflows.TaskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		Memo:                                     map[string]any{MemoCorrelationID: memo[MemoCorrelationID], MemoRevision: revision},
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchStatus.ValueSet(string(action.StatusProcessing)),
			workflows.SearchBusinessKey.ValueSet(e.OrderID),
		),
	}, workflows.OrderWorkflow, workflows.OrderInput{
		Order: action.Order{OrderID: e.OrderID}, CorrelationID: memo[MemoCorrelationID],
		PaymentTimeout: s.opts.PaymentTimeout, LatePayment: &workflows.LatePayment{ChargeID: e.ChargeID, EventID: e.EventID},
		Revision: workflows.OrderRevision,
	})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		return fmt.Errorf("refund late payment %s of %s: %w", e.EventID, id, err)
	}
	return fmt.Errorf("deliver %s to %s: %w", e.EventID, id, ErrLatePayment)
}
