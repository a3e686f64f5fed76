package workflows

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

func sighting(system, kind string, count int64, first, last time.Time) DriftSighting {
	return DriftSighting{System: system, Operation: "op", Kind: kind, Field: "f", Example: kind + " example", Count: count, FirstSeen: first, LastSeen: last}
}

func TestMergeDriftAddsUpAndOrders(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	kept := MergeDrift(nil, []DriftSighting{sighting("crm", "unknown_field", 2, t0, t0.Add(time.Minute))})
	kept = MergeDrift(kept, []DriftSighting{
		{System: "crm", Operation: "op", Kind: "unknown_field", Field: "f", Example: "another", Count: 3, FirstSeen: t0.Add(-time.Minute), LastSeen: t0.Add(time.Hour)},
		sighting("accounting", "missing_field", 1, t0, t0),
	})
	if len(kept) != 2 || kept[0].System != "accounting" {
		t.Fatalf("merged = %+v, want accounting then crm", kept)
	}
	crm := kept[1]
	if crm.Count != 5 || !crm.FirstSeen.Equal(t0.Add(-time.Minute)) || !crm.LastSeen.Equal(t0.Add(time.Hour)) || crm.Example != "unknown_field example" {
		t.Errorf("crm = %+v, want 5 sightings from the earliest to the latest, with the first example", crm)
	}
	var many []DriftSighting
	for i := range maxDriftSightings + 10 {
		many = append(many, sighting(fmt.Sprintf("s%04d", i), "unknown_field", 1, t0, t0))
	}
	if got := len(MergeDrift(nil, many)); got != maxDriftSightings {
		t.Errorf("kept %d sightings, want at most %d", got, maxDriftSightings)
	}
}

// The drift workflow merges its batches, forgets a system on request, and
// continues as new with what it keeps.
func TestContractDriftWorkflowKeepsAndContinues(t *testing.T) {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for i := range driftBatchesPerRun {
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(SignalContractDrift, []DriftSighting{sighting("crm", "unknown_field", 1, t0, t0.Add(time.Duration(i)*time.Second))})
		}, time.Duration(i+1)*time.Second)
	}
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalContractDrift, []DriftSighting{sighting("payments", "api_version", 4, t0, t0)})
	}, 1500*time.Millisecond)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateClearDrift, "clear-1", &testsuite.TestUpdateCallback{
			OnAccept: func() {}, OnReject: func(err error) { t.Errorf("clear refused: %v", err) },
			OnComplete: func(v any, err error) {
				if err != nil {
					t.Errorf("clear: %v", err)
				}
			},
		}, ClearDriftRequest{System: "payments"})
	}, 2500*time.Millisecond)
	env.ExecuteWorkflow(ContractDriftWorkflow, ContractDriftState{})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow ended with %v, want to continue as new", err)
	}
	var next ContractDriftState
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if len(next.Drift) != 1 || next.Drift[0].System != "crm" {
		t.Fatalf("continued with %+v, want crm's drift alone (payments' was cleared)", next.Drift)
	}
	if got := next.Drift[0].Count; got != driftBatchesPerRun-1 && got != driftBatchesPerRun {
		t.Errorf("crm counted %d, want the %d batches", got, driftBatchesPerRun)
	}
}
