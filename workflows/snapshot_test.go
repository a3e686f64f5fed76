package workflows

import "testing"

func TestSnapshotShowsTheRunningStepOverTheKeptState(t *testing.T) {
	awaiting := OrderState{OrderID: "A-1", Status: StatusAwaitingPayment, Steps: InitialSteps()}
	awaiting.Steps[0].Status, awaiting.Steps[1].Status, awaiting.Steps[2].Status = StepSucceeded, StepSucceeded, StepWaiting
	tests := []struct {
		name       string
		memo       OrderState
		status     string
		pending    []PendingActivity
		wantStatus string
		want       []string // step statuses, in order
		check      func(t *testing.T, s OrderState)
	}{
		{"not started yet", OrderState{Steps: InitialSteps()}, StatusProcessing,
			[]PendingActivity{{Type: "UpsertCustomer", Attempt: 3, LastFailure: "crm upsert_contact: temporary (503)"}},
			StatusProcessing, []string{StepRunning, StepPending, StepPending, StepPending, StepPending},
			func(t *testing.T, s OrderState) {
				if s.Steps[0].Attempts != 2 || s.Steps[0].LastError == nil {
					t.Errorf("customer step = %+v, want 2 attempts made and the last failure", s.Steps[0])
				}
			}},
		{"waiting for the payment", awaiting, StatusAwaitingPayment, nil,
			StatusAwaitingPayment, []string{StepSucceeded, StepSucceeded, StepWaiting, StepPending, StepPending}, nil},
		{"sending the confirmation after the kept state", awaiting, StatusProcessing, []PendingActivity{{Type: "SendEmail", Attempt: 1}},
			StatusProcessing, []string{StepSucceeded, StepSucceeded, StepSucceeded, StepSucceeded, StepRunning}, nil},
		{"cancelling", awaiting, StatusCancelling, []PendingActivity{{Type: "CancelCharge", Attempt: 1}},
			StatusCancelling, []string{StepSucceeded, StepSucceeded, StepWaiting, StepPending, StepPending, StepRunning}, nil},
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
	if awaiting.Steps[3].Status != StepPending {
		t.Error("Snapshot changed the state it was given")
	}
}
