package starter

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/handoff-hq/handoff/webhooks"
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
)

// DeliverPaymentEvent hands a verified payment event to its order's
// workflow as a signal. It returns once Temporal has durably accepted the
// signal; the workflow itself ignores duplicates and stale events.
func (s *Starter) DeliverPaymentEvent(ctx context.Context, e webhooks.PaymentEvent) error {
	id := workflows.OrderWorkflowID(e.OrderID)
	// An event for an order not placed yet starts the order's workflow,
	// which keeps the event until the order arrives.
	opts := client.StartWorkflowOptions{
		ID:                    id,
		TaskQueue:             workflows.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		Memo:                  map[string]any{MemoAwaitingOrder: "true"},
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.SearchBusinessKey.ValueSet(e.OrderID)),
	}
	in := workflows.OrderInput{
		Order: workflows.Order{OrderID: e.OrderID}, AwaitingOrder: true, OrphanWindow: s.opts.OrphanWindow,
	}
	_, err := s.client.SignalWithStartWorkflow(ctx, id, workflows.SignalPaymentEvent, e, opts, workflows.OrderWorkflow, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case err == nil:
		return nil
	case errors.As(err, &started):
		// The order's workflow has closed and its id is not reused.
		return fmt.Errorf("deliver %s to %s: %w", e.EventID, id, ErrActionFinished)
	default:
		return fmt.Errorf("deliver %s to %s: %w", e.EventID, id, err)
	}
}
