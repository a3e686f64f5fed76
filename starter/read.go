package starter

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/handoff-hq/handoff/workflows"
)

// Order returns the current state of an order. A running order answers its
// query; a completed one answers from its result, so that reading it needs no
// worker; one that ended otherwise is reported from its execution status.
func (s *Starter) Order(ctx context.Context, orderID string) (workflows.OrderState, error) {
	id := workflows.OrderWorkflowID(orderID)
	info, err := s.describe(ctx, id)
	if err != nil {
		return workflows.OrderState{}, fmt.Errorf("read order %s: %w", orderID, err)
	}
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		var state workflows.OrderState
		v, err := s.client.QueryWorkflow(ctx, id, "", workflows.QueryOrderState)
		if err == nil {
			err = v.Get(&state)
		}
		if err != nil {
			return workflows.OrderState{}, fmt.Errorf("read order %s: query: %w", orderID, err)
		}
		if state.Status == "" {
			// Started by an early provider event; the order is not placed.
			return workflows.OrderState{}, fmt.Errorf("read order %s: %w", orderID, ErrNotFound)
		}
		return state, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		var result workflows.OrderResult
		if err := s.client.GetWorkflow(ctx, id, "").Get(ctx, &result); err != nil {
			return workflows.OrderState{}, fmt.Errorf("read order %s: result: %w", orderID, err)
		}
		return result.State, nil
	default:
		// Cancelled, terminated, timed out or failed: the workflow's own
		// state ended with it; report what the engine knows.
		memo := memoOf(info)
		status := workflows.StatusNeedsAttention
		if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED {
			status = workflows.StatusCancelled
		}
		return workflows.OrderState{
			OrderID: orderID, Status: status, Steps: []workflows.Step{},
			CorrelationID: memo[MemoCorrelationID], UpdatedAt: info.GetCloseTime().AsTime(),
		}, nil
	}
}
