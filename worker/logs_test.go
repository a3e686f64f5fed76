package worker

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/workflows"
)

// A workflow's log lines carry the correlation id its action started with.
func TestWorkflowLogsCarryTheCorrelationID(t *testing.T) {
	var buf bytes.Buffer
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
	env := suite.NewTestWorkflowEnvironment()
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
	for _, l := range strings.Split(buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "hello from the workflow" {
			if m["correlation_id"] != "corr-42" {
				t.Errorf("line without the correlation id: %s", l)
			}
			return
		}
	}
	t.Fatalf("the workflow's line was not logged: %s", buf.String())
}
