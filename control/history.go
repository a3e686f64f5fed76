package control

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/workflows"
)

// fromHistory rebuilds the state of a young order, one that kept none in
// its memo yet, from its history, which Temporal serves without a worker:
// the steps whose activities completed (with their attempts and remote
// references), the one scheduled, and the payment step waiting once the
// order started its wait. Such a history is short: an order keeps its
// state in the memo when it first changes status.
func (s *Client) fromHistory(ctx context.Context, id string, state workflows.OrderState) (workflows.OrderState, error) {
	set := func(name string, change func(*workflows.Step)) {
		for i := range state.Steps {
			if state.Steps[i].Name == name {
				change(&state.Steps[i])
			}
		}
	}
	scheduled := map[int64]string{} // scheduled event id → step
	it := s.client.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return state, fmt.Errorf("history of %s: %w", id, err)
		}
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			step, ok := workflows.StepOfActivity(e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName())
			if ok {
				scheduled[e.GetEventId()] = step
				// The steps run in order: those before it have ended
				// (the payment, decided by events, has no call of its own).
				for i := 0; i < len(state.Steps) && state.Steps[i].Name != step; i++ {
					if st := &state.Steps[i]; !st.Status.Done() && st.Status != action.StepFailed {
						st.Status = action.StepSucceeded
					}
				}
				set(step, func(st *workflows.Step) { st.Status = action.StepRunning })
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			attrs := e.GetActivityTaskCompletedEventAttributes()
			step, ok := scheduled[attrs.GetScheduledEventId()]
			if !ok {
				continue
			}
			var out struct {
				Attempt   int32  `json:"attempt"`
				RemoteRef string `json:"remote_ref"`
			}
			_ = s.dc.FromPayloads(attrs.GetResult(), &out) // an unreadable result leaves the reference out
			set(step, func(st *workflows.Step) {
				st.Status, st.Attempts, st.RemoteRef = action.StepSucceeded, st.Attempts+int(out.Attempt), out.RemoteRef
			})
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			// A timer after the charge is the wait for the payment webhook.
			if stepStatus(state, workflows.StepCharge) == action.StepSucceeded {
				set(workflows.StepPayment, func(st *workflows.Step) { st.Status = action.StepWaiting })
			}
		}
		state.UpdatedAt = e.GetEventTime().AsTime()
	}
	return state, nil
}

func stepStatus(state workflows.OrderState, name string) action.StepStatus {
	for _, st := range state.Steps {
		if st.Name == name {
			return st.Status
		}
	}
	return ""
}
