package worker

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/workflows"
)

// reportDrift sends what the provider clients read of contract drift to
// the contract drift workflow every DriftInterval, and once more when the
// workers stop. What cannot be sent is kept for the next time.
func (ws *Workers) reportDrift(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	ticker := time.NewTicker(ws.DriftInterval)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ws.sendDrift(ctx)
			cancel()
			return
		case <-ticker.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ws.sendDrift(ctx)
			cancel()
		}
	}
}

func (ws *Workers) sendDrift(ctx context.Context) {
	taken := ws.drift.Take()
	if len(taken) == 0 {
		return
	}
	if err := SendDrift(ctx, ws.client, taken); err != nil {
		ws.drift.Return(taken)
		ws.log.Warn("report contract drift: kept for the next report", "error", err)
	}
}

// SendDrift signals sightings to the contract drift workflow, starting it
// when it does not run.
func SendDrift(ctx context.Context, c client.Client, taken []providers.Sighting) error {
	batch := make([]workflows.DriftSighting, 0, len(taken))
	for _, s := range taken {
		batch = append(batch, workflows.DriftSighting{System: s.System, Operation: s.Operation, Kind: s.Kind, Field: s.Field, Example: s.Example,
			Count: s.Count, FirstSeen: s.First.UTC(), LastSeen: s.Last.UTC()})
	}
	_, err := c.SignalWithStartWorkflow(ctx, workflows.ContractDriftID, workflows.SignalContractDrift, batch,
		workflows.ContractDriftStart(), workflows.ContractDriftWorkflow, workflows.ContractDriftState{})
	if err != nil {
		return fmt.Errorf("signal contract drift: %w", err)
	}
	return nil
}
