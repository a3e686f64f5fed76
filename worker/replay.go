package worker

import (
	"fmt"
	"log/slog"

	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/handoff-hq/handoff/workflows"
)

// registerWorkflows registers every handoff workflow; workers and the
// replayer share it so that a replay checks exactly what runs.
func registerWorkflows(r sdkworker.WorkflowRegistry) {
	r.RegisterWorkflow(workflows.OrderWorkflow)
	r.RegisterWorkflow(workflows.ProviderControlWorkflow)
	r.RegisterWorkflow(workflows.ReconcileWorkflow)
	r.RegisterWorkflow(workflows.CustomerWorkflow)
}

// ReplayFiles replays recorded workflow histories (JSON, as written by
// `temporal workflow show --output json`) against the current workflow
// code. An error names the first history the code no longer reproduces.
func ReplayFiles(logger *slog.Logger, paths ...string) error {
	replayer := sdkworker.NewWorkflowReplayer()
	registerWorkflows(replayer)
	for _, path := range paths {
		if err := replayer.ReplayWorkflowHistoryFromJSONFile(sdklog.NewStructuredLogger(logger), path); err != nil {
			return fmt.Errorf("replay %s: %w", path, err)
		}
	}
	return nil
}
