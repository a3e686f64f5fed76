package control

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/converter"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/workflows"
)

// defaultQueryTimeout bounds the query that enriches a read of a running
// order; past it the read answers from what Temporal keeps without a worker.
const defaultQueryTimeout = 300 * time.Millisecond

// Where an order's state came from, as OrderRead.Source says.
const (
	// SourceWorkflow is the running workflow's own answer (its query) or
	// its result.
	SourceWorkflow = "workflow"
	// SourceSnapshot is what Temporal keeps without a worker: the state
	// the order kept in its memo at its last change of status, its status
	// search attribute and its running activities.
	SourceSnapshot = "snapshot"
)

// OrderRead is an order's state and where it came from.
type OrderRead struct {
	State  workflows.OrderState
	Source string
}

// Order returns the current state of an order. A running order answers
// from what Temporal keeps without a worker (workflows.Snapshot): the state
// it keeps in its memo at each change of status, its status search
// attribute and its running activity; no workflow task runs for a read. One
// an earlier release started is asked by query first, for at most the
// query timeout, as it was then.
// A completed order answers from its result; one that ended otherwise from
// its execution status and memo.
func (s *Client) Order(ctx context.Context, orderID string) (OrderRead, error) {
	if !action.ValidID(orderID) {
		return OrderRead{}, fmt.Errorf("read order: %w", errNoSuchID)
	}
	id := action.OrderKey(orderID).String()
	desc, err := s.describeRun(ctx, id)
	if err != nil {
		return OrderRead{}, fmt.Errorf("read order %s: %w", orderID, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	memo, state, hasState := orderMemo(s.dc, info)
	status := statusOf(info)
	// A workflow an early provider event started holds no order until the
	// order is placed (which sets its status).
	unplaced := memo[MemoAwaitingOrder] == "true" && memo[MemoRequestHash] == "" && status == ""
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		fromHistory := false
		// Orders of revision 1 on are read from Temporal's record alone;
		// older ones are asked first.
		if memo[MemoRevision] == "" {
			if live, err := s.query(ctx, id); err == nil {
				if live.Status == "" {
					return OrderRead{}, fmt.Errorf("read order %s: %w", orderID, ErrNotFound)
				}
				return OrderRead{State: live, Source: SourceWorkflow}, nil
			} else if ctx.Err() != nil {
				return OrderRead{}, fmt.Errorf("read order %s: %w", orderID, ctx.Err())
			}
		}
		if unplaced {
			return OrderRead{}, fmt.Errorf("read order %s: %w", orderID, ErrNotFound)
		}
		if !hasState {
			// Not yet at its first change of status: its steps are as
			// they start, and the running one shows below; an order of
			// revision 1 on tells from its (short) history which ended.
			state = workflows.OrderState{OrderID: orderID, Steps: workflows.InitialSteps(), CorrelationID: memo[MemoCorrelationID]}
			if fromHistory = memo[MemoRevision] != ""; fromHistory {
				if state, err = s.fromHistory(ctx, id, state); err != nil {
					return OrderRead{}, fmt.Errorf("read order %s: %w", orderID, err)
				}
			}
		}
		snap := workflows.Snapshot(state, status, pendingOf(desc.GetPendingActivities(), state, fromHistory))
		if snap.UpdatedAt.IsZero() {
			snap.UpdatedAt = info.GetStartTime().AsTime()
		}
		return OrderRead{State: snap, Source: SourceSnapshot}, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		var result workflows.OrderResult
		if err := s.client.GetWorkflow(ctx, id, "").Get(ctx, &result); err != nil {
			return OrderRead{}, fmt.Errorf("read order %s: result: %w", orderID, err)
		}
		if result.State.Status == "" {
			return OrderRead{}, fmt.Errorf("read order %s: %w", orderID, ErrNotFound)
		}
		return OrderRead{State: result.State, Source: SourceWorkflow}, nil
	default:
		// Cancelled, terminated, timed out or failed: the workflow's own
		// state ended with it; report what the engine knows.
		if unplaced {
			return OrderRead{}, fmt.Errorf("read order %s: %w", orderID, ErrNotFound)
		}
		if !hasState {
			state = workflows.OrderState{OrderID: orderID, Steps: []workflows.Step{}, CorrelationID: memo[MemoCorrelationID]}
		}
		state.Status = action.StatusNeedsAttention
		if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED {
			state.Status = action.StatusCancelled
		}
		state.UpdatedAt = info.GetCloseTime().AsTime()
		return OrderRead{State: state, Source: SourceSnapshot}, nil
	}
}

// pendingOf lists the activities Temporal reports running. With a state
// read from the history after the description, an activity the history saw
// end is left out: it ended between the two reads.
func pendingOf(infos []*workflowpb.PendingActivityInfo, state workflows.OrderState, fromHistory bool) []workflows.PendingActivity {
	var pending []workflows.PendingActivity
	for _, p := range infos {
		if step, ok := workflows.StepOfActivity(p.GetActivityType().GetName()); ok && fromHistory && stepStatus(state, step).Done() {
			continue
		}
		pending = append(pending, workflows.PendingActivity{
			Type: p.GetActivityType().GetName(), Attempt: p.GetAttempt(), LastFailure: p.GetLastFailure().GetMessage(),
		})
	}
	return pending
}

// query asks a running order for its state, for at most the query timeout.
func (s *Client) query(ctx context.Context, id string) (workflows.OrderState, error) {
	qctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	var state workflows.OrderState
	v, err := s.client.QueryWorkflow(qctx, id, "", workflows.QueryOrderState)
	if err == nil {
		err = v.Get(&state)
	}
	return state, err
}

// orderMemo reads an order workflow's memo: its string fields, and the
// state it kept there, if any.
func orderMemo(dc converter.DataConverter, info *workflowpb.WorkflowExecutionInfo) (map[string]string, workflows.OrderState, bool) {
	strings := memoOf(dc, info)
	var state workflows.OrderState
	p, ok := info.GetMemo().GetFields()[workflows.MemoState]
	if ok && dc.FromPayload(p, &state) != nil {
		ok = false // an unreadable state reads as none
	}
	return strings, state, ok
}

// statusOf reads the HandoffStatus search attribute.
func statusOf(info *workflowpb.WorkflowExecutionInfo) action.Status {
	return action.Status(keyword(info, workflows.SearchStatus.GetName()))
}

// keyword reads a Keyword search attribute; absent or unreadable is empty.
func keyword(info *workflowpb.WorkflowExecutionInfo, name string) string {
	var v string
	if p, ok := info.GetSearchAttributes().GetIndexedFields()[name]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &v)
	}
	return v
}
