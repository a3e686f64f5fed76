package worker

import (
	"fmt"
	"log/slog"
	"os"

	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/workflows"
)

// registerWorkflows registers every handoff workflow; workers and the
// replayer share it so that a replay checks exactly what runs.
func registerWorkflows(r sdkworker.WorkflowRegistry, v *Versioning) {
	v.registerOrder(r)
	r.RegisterWorkflow(workflows.ProviderControlWorkflow)
	r.RegisterWorkflow(workflows.ReconcileWorkflow)
	r.RegisterWorkflow(workflows.CustomerWorkflow)
	r.RegisterWorkflow(workflows.ContractDriftWorkflow)
}

// ReplayFiles replays recorded workflow histories (JSON, as written by
// `temporal workflow show --output json`) against the current workflow
// code. An error names the first history the code no longer reproduces.
func ReplayFiles(logger *slog.Logger, paths ...string) error {
	return ReplayFilesWith(logger, nil, paths...)
}

// ReplayFilesWith is ReplayFiles for histories whose payloads may be
// encrypted: enc holds their keys (nil for none; plaintext payloads are
// read either way).
func ReplayFilesWith(logger *slog.Logger, enc *codec.Encryption, paths ...string) error {
	replayer, err := sdkworker.NewWorkflowReplayerWithOptions(sdkworker.WorkflowReplayerOptions{
		DataConverter: codec.DataConverter(enc), FailureConverter: codec.FailureConverter(enc),
	})
	if err != nil {
		return fmt.Errorf("replayer: %w", err)
	}
	registerWorkflows(replayer, nil)
	for _, path := range paths {
		// A history of a key the ring lacks cannot replay: say so, by name.
		raw, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("replay %s: %w", path, err)
		}
		if missing := enc.MissingKeys(raw); len(missing) > 0 {
			return fmt.Errorf("replay %s: payloads encrypted with key %q, which is not in HANDOFF_PAYLOAD_KEYS: %w", path, missing[0], codec.ErrUnknownKey)
		}
		if err := replayer.ReplayWorkflowHistoryFromJSONFile(sdklog.NewStructuredLogger(logger), path); err != nil {
			return fmt.Errorf("replay %s: %w", path, err)
		}
	}
	return nil
}
