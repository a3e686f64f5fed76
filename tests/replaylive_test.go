package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/worker"
	"github.com/handoff-hq/handoff/workflows"
)

// TestReplayFromTemporalFindsAnIncompatibleChange places completed and
// still-running orders, replays what Temporal holds of them against this
// code (every one reproduces), against a compatible change (still every
// one), and against an incompatible change to the order workflow, which is
// named with its first differing command for each order.
func TestReplayFromTemporalFindsAnIncompatibleChange(t *testing.T) {
	const completed, open = 12, 3
	var ids []string
	for i := range completed + open {
		o := order(fmt.Sprintf("live-%d", i))
		if i >= completed {
			o = heldOrder(fmt.Sprintf("live-%d", i))
		}
		if status, _, body := call(t, http.MethodPost, "/v1/orders", o, testToken); status != http.StatusAccepted {
			t.Fatalf("place order: %d %s", status, body)
		}
		ids = append(ids, o.OrderID)
	}
	t.Cleanup(func() {
		for _, id := range ids[completed:] {
			_ = env.client.TerminateWorkflow(context.Background(), action.OrderKey(id).String(), "", "test over")
		}
	})
	for i, id := range ids {
		if i < completed {
			awaitOrder(t, id, action.StatusCompleted)
		} else {
			awaitOrder(t, id, action.StatusAwaitingPayment)
		}
	}
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	opts := func(register func(sdkworker.WorkflowRegistry)) worker.LiveReplayOptions {
		return worker.LiveReplayOptions{Query: `WorkflowId STARTS_WITH "order/live-"`, Encryption: testEncryption(), Register: register}
	}
	var report worker.LiveReplayReport
	waitFor(t, "every order in visibility", func() bool {
		var err error
		report, err = worker.ReplayFromTemporal(ctx, env.client, log, opts(nil))
		if err != nil {
			t.Fatal(err)
		}
		return report.Replayed["OrderWorkflow"] == completed+open && report.Open == open
	})
	if len(report.Failures) != 0 {
		t.Fatalf("this code does not reproduce its own histories: %+v", report.Failures)
	}

	// The same from the command line, as `make replay-live` runs it.
	cmd := exec.Command(buildHandoff(t), "replay", "--from-temporal", "--query", `WorkflowId STARTS_WITH "order/live-"`, "-o", "json")
	cmd.Env = append(os.Environ(), "HANDOFF_TEMPORAL_ADDRESS="+env.server.FrontendHostPort(), "HANDOFF_PAYLOAD_KEYS="+testPayloadKey)
	out, err := cmd.Output()
	var cli worker.LiveReplayReport
	if err != nil || json.Unmarshal(out, &cli) != nil || cli.Replayed["OrderWorkflow"] != completed+open || len(cli.Failures) != 0 {
		t.Errorf("handoff replay --from-temporal: %v %+v\n%s", err, cli, out)
	}

	// A query handler added is no command: compatible.
	compatible := func(ctx workflow.Context, in workflows.OrderInput) (workflows.OrderResult, error) {
		if err := workflow.SetQueryHandler(ctx, "release", func() (string, error) { return "next", nil }); err != nil {
			return workflows.OrderResult{}, err
		}
		return workflows.OrderWorkflow(ctx, in)
	}
	report, err = worker.ReplayFromTemporal(ctx, env.client, log, opts(func(r sdkworker.WorkflowRegistry) {
		r.RegisterWorkflowWithOptions(compatible, workflow.RegisterOptions{Name: "OrderWorkflow"})
	}))
	if err != nil || len(report.Failures) != 0 || report.Replayed["OrderWorkflow"] != completed+open {
		t.Fatalf("a compatible change: %v, %+v", err, report)
	}

	// A timer before the first step is a command the histories do not have.
	incompatible := func(ctx workflow.Context, in workflows.OrderInput) (workflows.OrderResult, error) {
		if err := workflow.Sleep(ctx, time.Second); err != nil {
			return workflows.OrderResult{}, err
		}
		return workflows.OrderWorkflow(ctx, in)
	}
	report, err = worker.ReplayFromTemporal(ctx, env.client, log, opts(func(r sdkworker.WorkflowRegistry) {
		r.RegisterWorkflowWithOptions(incompatible, workflow.RegisterOptions{Name: "OrderWorkflow"})
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Failures) != completed+open {
		t.Fatalf("an incompatible change: %d failures, want %d: %+v", len(report.Failures), completed+open, report)
	}
	// The SDK names both sides, or the history event where the code went
	// another way: the first step's activity.
	firstStep := regexp.MustCompile(`Timer|history event \d+, ActivityTaskScheduled UpsertCustomer`)
	openFailures := 0
	for _, f := range report.Failures {
		if !strings.HasPrefix(f.WorkflowID, "order/live-") || f.WorkflowType != "OrderWorkflow" || !firstStep.MatchString(f.Command) {
			t.Errorf("failure %+v: want the order's workflow id and its first step's event (or the timer) as the first difference", f)
		}
		if f.Open {
			openFailures++
		}
	}
	if openFailures != open {
		t.Errorf("%d running orders among the failures, want %d", openFailures, open)
	}
	t.Logf("first difference: %s", report.Failures[0].Command)
}
