package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/activities"
)

// TestReconciliationContinuesAsNewByHistoryLengthAndAlwaysAdvances makes
// every history "long": each run compares one page and continues as new
// with its progress, never without comparing one.
func TestReconciliationContinuesAsNewByHistoryLengthAndAlwaysAdvances(t *testing.T) {
	pages := 0
	comparePage := func(_ context.Context, in activities.ComparePageInput) (activities.ComparePageResult, error) {
		pages++
		if in.After.IsZero() || !in.After.Before(in.Before) {
			t.Errorf("page window [%v, %v], want a look-back window before the grace", in.After, in.Before)
		}
		next := ""
		if in.Phase == activities.PhaseCharges && in.Cursor == "" {
			next = "c1"
		}
		return activities.ComparePageResult{Charges: 1, NextCursor: next}, nil
	}
	in := ReconcileInput{PageSize: 10, Grace: time.Minute}
	var report ReconcileReport
	runs := 0
	for ; runs < 10; runs++ {
		var suite testsuite.WorkflowTestSuite
		env := suite.NewTestWorkflowEnvironment()
		env.RegisterActivityWithOptions(comparePage, activity.RegisterOptions{Name: "ComparePage"})
		env.SetCurrentHistoryLength(reconcileEventsPerRun + 1)
		env.ExecuteWorkflow(ReconcileWorkflow, in)
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := env.GetWorkflowResult(&report); err != nil {
			t.Fatal(err)
		}
		break
	}
	// Three pages: two of charges, one of invoices; one page per run.
	if pages != 3 || runs != 2 || report.Pages != 3 || report.Runs != 3 {
		t.Errorf("pages %d over %d continuations, report %d pages in %d runs; want 3 pages, one per run", pages, runs, report.Pages, report.Runs)
	}
}
