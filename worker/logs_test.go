package worker

import (
	"bytes"
	"testing"

	"go.temporal.io/sdk/interceptor"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/workflows"
)

// A workflow's log lines carry the correlation id its action started with.
func TestWorkflowLogsCarryTheCorrelationID(t *testing.T) {
	var buf bytes.Buffer
	env := loggedSuite(&buf).NewTestWorkflowEnvironment()
	env.SetWorkerOptions(sdkworker.Options{Interceptors: []interceptor.WorkerInterceptor{&correlationLogs{}}})
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context) error {
		// The test environment does not keep a start's memo: the
		// workflow sets it, as the API's start does.
		if err := workflow.UpsertMemo(ctx, map[string]any{workflows.MemoCorrelationID: "corr-42"}); err != nil {
			return err
		}
		workflow.GetLogger(ctx).Info("hello from the workflow")
		return nil
	}, workflow.RegisterOptions{Name: "LogTest"})
	env.ExecuteWorkflow("LogTest")
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	lines := jsonLines(&buf, "hello from the workflow")
	if len(lines) == 0 {
		t.Fatalf("the workflow's line was not logged: %s", buf.String())
	}
	if lines[0]["correlation_id"] != "corr-42" {
		t.Errorf("line without the correlation id: %v", lines[0])
	}
}
