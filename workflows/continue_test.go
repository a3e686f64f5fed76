package workflows

import (
	"errors"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"
)

// TestLongOrdersContinueAsNewWithTheirProgress makes every history "long":
// the order continues as new at its first safe point, and each continued
// run picks up where the last stopped, without calling a provider twice.
func TestLongOrdersContinueAsNewWithTheirProgress(t *testing.T) {
	old := continueAsNewAfterActivities
	continueAsNewAfterActivities = 2
	defer func() { continueAsNewAfterActivities = old }()

	fakes := newFakeProviders()
	in := OrderInput{Order: testOrder(), CorrelationID: "corr-1", PaymentTimeout: time.Hour, PaymentWebhookWait: time.Minute}
	runs := 0
	var result OrderResult
	for ; runs < 20; runs++ {
		env := newOrderEnv(fakes)
		env.ExecuteWorkflow(OrderWorkflow, in)
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			var next OrderInput
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
				t.Fatalf("decode continue-as-new input: %v", err)
			}
			if next.Resume == nil {
				t.Fatal("continued without a checkpoint")
			}
			in = next
			continue
		}
		if err != nil {
			t.Fatalf("run %d: %v", runs, err)
		}
		if err := env.GetWorkflowResult(&result); err != nil {
			t.Fatal(err)
		}
		break
	}
	if runs == 0 {
		t.Fatal("the order never continued as new")
	}
	if result.State.Status != action.StatusCompleted || result.State.CorrelationID != "corr-1" {
		t.Fatalf("after %d continuations: %+v, want completed with its correlation id", runs, result.State)
	}
	for _, op := range []string{"upsert_contact", "create_charge", "create_invoice", "send_message"} {
		if got := fakes.count(op); got != 1 {
			t.Errorf("%s calls = %d over %d runs, want 1", op, got, runs+1)
		}
	}
	t.Logf("completed after %d continue-as-new", runs)
}
