package control

import (
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	workflowpb "go.temporal.io/api/workflow/v1"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/workflows"
)

// A young order's read describes it, then reads its history: an activity
// the description still lists but the history saw end is not shown running.
func TestAReadLeavesOutAnActivityItsHistorySawEnd(t *testing.T) {
	running := func(name string) *workflowpb.PendingActivityInfo {
		return &workflowpb.PendingActivityInfo{ActivityType: &commonpb.ActivityType{Name: name}, Attempt: 1}
	}
	state := workflows.OrderState{Status: action.StatusProcessing, Steps: workflows.InitialSteps()}
	state.Steps[0].Status, state.Steps[1].Status = action.StepSucceeded, action.StepRunning
	infos := []*workflowpb.PendingActivityInfo{running("UpsertCustomer")}

	if got := pendingOf(infos, state, true); len(got) != 0 {
		t.Errorf("from the history: pending %+v, want the ended customer call left out", got)
	}
	snap := workflows.Snapshot(state, action.StatusProcessing, pendingOf(infos, state, true))
	if snap.Steps[0].Status != action.StepSucceeded || snap.Steps[1].Status != action.StepRunning {
		t.Errorf("steps = %+v, want the customer done and the charge running", snap.Steps)
	}
	// A state kept in the memo is older than the description: it lists
	// what runs.
	if got := pendingOf(infos, state, false); len(got) != 1 || got[0].Type != "UpsertCustomer" {
		t.Errorf("from the memo: pending %+v, want the customer call", got)
	}
}
