package workflows

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/handoff-hq/handoff/activities"
)

// Every step's final outcome is logged once, with its action, correlation
// id, attempts and the remote record it made.
func TestEveryStepsOutcomeIsLoggedOnce(t *testing.T) {
	var buf bytes.Buffer
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
	env := suite.NewTestWorkflowEnvironment()
	fakes := newFakeProviders()
	acts, _ := activities.New(fakes, fakes, fakes, fakes)
	env.RegisterActivity(acts)
	env.SetStartWorkflowOptions(startOptions("order/T-1"))
	env.ExecuteWorkflow(OrderWorkflow, OrderInput{Order: testOrder(), CorrelationID: "corr-1", PaymentPollInterval: time.Second, PaymentTimeout: time.Hour})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	steps := map[string]int{}
	for _, l := range strings.Split(buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["msg"] != "step finished" {
			continue
		}
		if m["action"] != "order/T-1" || m["outcome"] != "succeeded" || m["remote_ref"] == "" {
			t.Errorf("line: %s", l)
		}
		steps[m["step"].(string)]++
	}
	for _, s := range []string{StepCustomer, StepCharge, StepInvoice, StepConfirmation} {
		if steps[s] != 1 {
			t.Errorf("step %s logged %d times, want once (%v)", s, steps[s], steps)
		}
	}
}
