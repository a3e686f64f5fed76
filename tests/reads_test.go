package tests

import (
	"context"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/workflows"
)

// TestAYoungOrderIsReadFromItsHistory reads an order that waits for its
// payment within the grace, before it kept any state in its memo, with
// every worker stopped: the read tells from the order's short history that
// its customer and charge steps succeeded, with their references, and that
// its payment step waits; no workflow task answers it.
func TestAYoungOrderIsReadFromItsHistory(t *testing.T) {
	selfContained(t)
	const namespace = "young-reads"
	e := newIsolatedEnv(t, namespace)
	// A long webhook wait, so that the order stays in its grace (2 s)
	// once its worker is gone.
	st, err := control.New(e.client, control.Options{DataConverter: codec.DataConverter(testEncryption()), PaymentPollInterval: time.Second, PaymentTimeout: time.Hour,
		PaymentWebhookWait: time.Hour, Namespace: namespace})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := "young-1"
	if _, err := st.PlaceOrder(ctx, heldOrder(id), "young-read"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.TerminateWorkflow(ctx, action.OrderKey(id).String(), "", "test over") })
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := st.Order(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if paymentWaiting(r.State) {
			if r.State.Status != action.StatusProcessing {
				t.Fatalf("the order left its grace (2 s) before a read every 20 ms saw it: status %s", r.State.Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the order did not reach its payment wait: %+v", r.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.stopWorkers(t)
	r, err := st.Order(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Source != control.SourceSnapshot || r.State.Status != action.StatusProcessing {
		t.Fatalf("read = %s %+v, want processing from Temporal's record", r.Source, r.State)
	}
	customer, charge, payment := stepNamed(r.State, workflows.StepCustomer), stepNamed(r.State, workflows.StepCharge), stepNamed(r.State, workflows.StepPayment)
	if customer.Status != action.StepSucceeded || customer.RemoteRef == "" || customer.Attempts != 1 ||
		charge.Status != action.StepSucceeded || charge.RemoteRef == "" || payment.Status != action.StepWaiting {
		t.Errorf("steps = %+v, want customer and charge succeeded with their references, payment waiting", r.State.Steps)
	}
}
