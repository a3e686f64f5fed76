package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/workflows"
)

// loggedSuite is a test suite whose SDK logger writes JSON lines to buf.
func loggedSuite(buf *bytes.Buffer) *testsuite.WorkflowTestSuite {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewJSONHandler(buf, nil))))
	return &suite
}

// jsonLines returns the lines of buf with the message msg.
func jsonLines(buf *bytes.Buffer, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// A provider activity's logger carries its call's correlation id.
func TestActivityLogsCarryTheCallsCorrelationID(t *testing.T) {
	var buf bytes.Buffer
	env := loggedSuite(&buf).NewTestActivityEnvironment()
	env.SetWorkerOptions(sdkworker.Options{Interceptors: []interceptor.WorkerInterceptor{&correlationLogs{}}})
	type input struct {
		Call  providers.Call
		Email string
	}
	env.RegisterActivityWithOptions(func(ctx context.Context, in input) error {
		activity.GetLogger(ctx).Info("hello from the activity")
		return nil
	}, activity.RegisterOptions{Name: "Greet"})
	if _, err := env.ExecuteActivity("Greet", input{Call: providers.Call{CorrelationID: "corr-7", IdempotencyKey: "order/A/charge"}}); err != nil {
		t.Fatal(err)
	}
	lines := jsonLines(&buf, "hello from the activity")
	if len(lines) != 1 || lines[0]["correlation_id"] != "corr-7" {
		t.Fatalf("want one line with correlation_id corr-7, got %v\n%s", lines, buf.String())
	}
}

// Finished orders are counted by status; a paid order whose invoice was
// skipped and a completed one whose confirmation was skipped are counted
// as such; reconciliation differences by kind and result.
func TestOutcomesCountFinishedWorkflows(t *testing.T) {
	o := NewOutcomes(prometheus.NewRegistry())
	step := func(name string, st action.StepStatus) workflows.Step { return workflows.Step{Name: name, Status: st} }
	o.finished(workflows.OrderResult{State: workflows.OrderState{Status: action.StatusCompleted, Steps: []workflows.Step{
		step(workflows.StepCharge, action.StepSucceeded), step(workflows.StepInvoice, action.StepSkipped), step(workflows.StepConfirmation, action.StepSkipped)}}})
	o.finished(workflows.OrderResult{State: workflows.OrderState{Status: action.StatusCompleted, Steps: []workflows.Step{
		step(workflows.StepCharge, action.StepSucceeded), step(workflows.StepInvoice, action.StepSucceeded), step(workflows.StepConfirmation, action.StepSucceeded)}}})
	o.finished(workflows.OrderResult{State: workflows.OrderState{Status: action.StatusCancelled}})
	o.finished(workflows.OrderResult{State: workflows.OrderState{Status: action.StatusProcessing}}) // continued as new
	o.finished(workflows.ReconcileReport{RepairedByKind: map[string]int{"invoice_missing": 3}, FlaggedByKind: map[string]int{"duplicate_invoices": 1}, FinishedAt: time.Unix(1700000000, 0)})
	for name, c := range map[string]struct {
		got  prometheus.Collector
		want float64
	}{
		"completed":            {o.ordersFinished.WithLabelValues("completed"), 2},
		"cancelled":            {o.ordersFinished.WithLabelValues("cancelled"), 1},
		"processing":           {o.ordersFinished.WithLabelValues("processing"), 0},
		"paid without invoice": {o.paidWithoutInvoice, 1},
		"confirmation":         {o.confirmationNotSent, 1},
		"repaired":             {o.reconcileDiffs.WithLabelValues("invoice_missing", "repaired"), 3},
		"flagged":              {o.reconcileDiffs.WithLabelValues("duplicate_invoices", "flagged"), 1},
		"runs":                 {o.reconcileRuns, 1},
		"last run":             {o.reconcileFinished, 1700000000},
	} {
		if got := testutil.ToFloat64(c.got); got != c.want {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
}

// A webhook's news is logged when the workflow takes it, with the request
// that brought it, and its processing delay is observed.
func TestWebhookNewsIsLoggedAndTimedWhenApplied(t *testing.T) {
	var buf bytes.Buffer
	env := loggedSuite(&buf).NewTestWorkflowEnvironment()
	o := NewOutcomes(prometheus.NewRegistry())
	env.SetWorkerOptions(sdkworker.Options{Interceptors: []interceptor.WorkerInterceptor{&correlationLogs{}, &outcomeCounter{outcomes: o}}})
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context) error {
		var ev action.PaymentEvent
		workflow.GetSignalChannel(ctx, workflows.SignalPaymentEvent).Receive(ctx, &ev)
		return nil
	}, workflow.RegisterOptions{Name: "Waits"})
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalPaymentEvent, action.PaymentEvent{EventID: "evt_1", ReceivedAt: time.Now().Add(-2 * time.Second), RequestID: "req-9"})
	}, time.Second)
	env.ExecuteWorkflow("Waits")
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	lines := jsonLines(&buf, "webhook applied")
	if len(lines) != 1 || lines[0]["event_id"] != "evt_1" || lines[0]["webhook_correlation_id"] != "req-9" || lines[0]["system"] != "payments" {
		t.Fatalf("want one webhook applied line, got %v", lines)
	}
	if d := lines[0]["delay_ms"].(float64); d < 2000 {
		t.Errorf("delay_ms %v, want at least 2000", d)
	}
	if n := testutil.CollectAndCount(o.processingDelay, "handoff_webhook_processing_delay_seconds"); n != 1 {
		t.Errorf("%d processing delay series, want 1", n)
	}
}
