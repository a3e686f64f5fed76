package workflows

import (
	"testing"

	"github.com/handoff-hq/handoff/action"
)

func TestSnapshotShowsTheRunningStepOverTheKeptState(t *testing.T) {
	awaiting := OrderState{OrderID: "A-1", Status: action.StatusAwaitingPayment, Steps: InitialSteps()}
	awaiting.Steps[0].Status, awaiting.Steps[1].Status, awaiting.Steps[2].Status = action.StepSucceeded, action.StepSucceeded, action.StepWaiting
	tests := []struct {
		name       string
		memo       OrderState
		status     action.Status
		pending    []PendingActivity
		wantStatus action.Status
		want       []action.StepStatus // step statuses, in order
		check      func(t *testing.T, s OrderState)
	}{
		{"not started yet", OrderState{Steps: InitialSteps()}, action.StatusProcessing,
			[]PendingActivity{{Type: "UpsertCustomer", Attempt: 3, LastFailure: "crm upsert_contact: temporary (503)"}},
			action.StatusProcessing, []action.StepStatus{action.StepRunning, action.StepPending, action.StepPending, action.StepPending, action.StepPending},
			func(t *testing.T, s OrderState) {
				if s.Steps[0].Attempts != 2 || s.Steps[0].LastError == nil {
					t.Errorf("customer step = %+v, want 2 attempts made and the last failure", s.Steps[0])
				}
			}},
		{"waiting for the payment", awaiting, action.StatusAwaitingPayment, nil,
			action.StatusAwaitingPayment, []action.StepStatus{action.StepSucceeded, action.StepSucceeded, action.StepWaiting, action.StepPending, action.StepPending}, nil},
		{"sending the confirmation after the kept state", awaiting, action.StatusProcessing, []PendingActivity{{Type: "SendEmail", Attempt: 1}},
			action.StatusProcessing, []action.StepStatus{action.StepSucceeded, action.StepSucceeded, action.StepSucceeded, action.StepSucceeded, action.StepRunning}, nil},
		{"between two steps", OrderState{Steps: InitialSteps()}, action.StatusProcessing, nil,
			action.StatusProcessing, []action.StepStatus{action.StepRunning, action.StepPending, action.StepPending, action.StepPending, action.StepPending}, nil},
		{"waiting for the payment within the grace", awaiting, action.StatusProcessing, nil,
			action.StatusProcessing, []action.StepStatus{action.StepSucceeded, action.StepSucceeded, action.StepWaiting, action.StepPending, action.StepPending}, nil},
		{"cancelling", awaiting, action.StatusCancelling, []PendingActivity{{Type: "CancelCharge", Attempt: 1}},
			action.StatusCancelling, []action.StepStatus{action.StepSucceeded, action.StepSucceeded, action.StepWaiting, action.StepPending, action.StepPending, action.StepRunning}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Snapshot(tt.memo, tt.status, tt.pending)
			if got.Status != tt.wantStatus || len(got.Steps) != len(tt.want) {
				t.Fatalf("snapshot = %+v, want status %s and %d steps", got, tt.wantStatus, len(tt.want))
			}
			for i, w := range tt.want {
				if got.Steps[i].Status != w {
					t.Errorf("step %s = %s, want %s", got.Steps[i].Name, got.Steps[i].Status, w)
				}
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
	// The kept state is not changed by a snapshot.
	if awaiting.Steps[3].Status != action.StepPending {
		t.Error("Snapshot changed the state it was given")
	}
}
