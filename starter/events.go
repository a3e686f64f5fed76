package starter

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/handoff-hq/handoff/webhooks"
	"github.com/handoff-hq/handoff/workflows"
)

// Delivery outcomes of an event.
var (
	// ErrActionFinished means the event's action has already ended; the
	// event changes nothing and is acknowledged.
	ErrActionFinished = errors.New("the event's action has already finished")
	// ErrActionUnknown means no action exists yet for the event.
	ErrActionUnknown = errors.New("no action exists for the event yet")
)

// DeliverPaymentEvent hands a verified payment event to its order's
// workflow as a signal. It returns once Temporal has durably accepted the
// signal; the workflow itself ignores duplicates and stale events.
func (s *Starter) DeliverPaymentEvent(ctx context.Context, e webhooks.PaymentEvent) error {
	id := workflows.OrderWorkflowID(e.OrderID)
	sig := workflows.PaymentSignal{
		EventID: e.EventID, Type: e.Type, ChargeID: e.ChargeID, Status: e.Status, Version: e.Version,
		OccurredAt: e.OccurredAt, FailureCode: e.FailureCode, FailureMessage: e.FailureMessage,
	}
	err := s.client.SignalWorkflow(ctx, id, "", workflows.SignalPaymentEvent, sig)
	var notFound *serviceerror.NotFound
	if !errors.As(err, &notFound) {
		if err != nil {
			return fmt.Errorf("deliver %s to %s: %w", e.EventID, id, err)
		}
		return nil
	}
	// Not running: either finished, or not placed yet.
	desc, derr := s.client.DescribeWorkflow(ctx, id, "")
	if derr == nil && desc.RawResponse.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return fmt.Errorf("deliver %s to %s: %w", e.EventID, id, ErrActionFinished)
	}
	return fmt.Errorf("deliver %s to %s: %w", e.EventID, id, ErrActionUnknown)
}
