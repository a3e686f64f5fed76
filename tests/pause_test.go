package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/worker"
	"github.com/handoff-hq/handoff/workflows"
)

func providerStatus(t *testing.T, system string) control.ProviderStatus {
	t.Helper()
	status, _, body := call(t, http.MethodGet, "/v1/providers/"+system, nil, testOperatorToken)
	var st control.ProviderStatus
	if status != http.StatusOK || json.Unmarshal(body, &st) != nil {
		t.Fatalf("GET /v1/providers/%s: %d %s", system, status, body)
	}
	return st
}

// TestPausedProviderGetsNoCallsAndDrainsOnResume pauses payments and, the
// moment the pause is answered, places 20 orders at once; it proves that
// they wait at the payment step while the provider receives nothing, then
// resumes and sees every order complete once.
func TestPausedProviderGetsNoCallsAndDrainsOnResume(t *testing.T) {
	before := len(env.sandbox.Calls("payments", "", ""))
	if status, body := operatorCall(t, "/v1/providers/payments/pause", map[string]string{"reason": "provider outage"}); status != http.StatusOK {
		t.Fatalf("pause: %d %s", status, body)
	}
	answered := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			operatorCall(t, "/v1/providers/payments/resume", nil)
		}
	}()

	const n = 20
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("pause-%02d", i)
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, _, body, err := send(http.MethodPost, "/v1/orders", order(id), testToken); err != nil || status != http.StatusAccepted {
				t.Errorf("place %s: %d %s %v", id, status, body, err)
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		waitFor(t, id+" to wait at the charge step", func() bool {
			status, _, body := call(t, http.MethodGet, "/v1/orders/"+id, nil, testToken)
			var s workflows.OrderState
			return status == http.StatusOK && json.Unmarshal(body, &s) == nil && len(s.Steps) > 1 &&
				s.Steps[0].Status == action.StepSucceeded && s.Steps[1].Status == action.StepRunning
		})
	}
	waitFor(t, "the payments backlog to show", func() bool {
		st := providerStatus(t, "payments")
		return st.Paused && st.Backlog > 0
	})
	for _, c := range env.sandbox.Calls("payments", "", "")[before:] {
		if c.Time.After(answered) {
			t.Errorf("the paused provider received %s %s %v after the pause was answered", c.Operation, c.IdempotencyKey, c.Time.Sub(answered))
		}
	}
	for _, id := range ids {
		status, _, body := call(t, http.MethodGet, "/v1/orders/"+id, nil, testToken)
		var s workflows.OrderState
		if status != http.StatusOK || json.Unmarshal(body, &s) != nil || s.Status == action.StatusNeedsAttention {
			t.Errorf("order %s while paused: %s, want waiting", id, body)
		}
	}

	// The pause is durable: a worker process started now, as after a
	// restart, leaves payments alone too.
	restarted, err := worker.New(env.client, testActivities(t), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := restarted.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	running := restarted.Running()
	restarted.Stop()
	if slices.Contains(running, "payments") || len(running) != len(system.Names())-1 {
		t.Errorf("a worker started during the pause polls %v, want every provider but payments", running)
	}

	if status, body := operatorCall(t, "/v1/providers/payments/resume", nil); status != http.StatusOK {
		t.Fatalf("resume: %d %s", status, body)
	}
	resumed = true
	for _, id := range ids {
		awaitOrder(t, id, action.StatusCompleted)
		assertExactlyOnce(t, id)
	}
	if st := providerStatus(t, "payments"); st.Paused {
		t.Errorf("status after resume = %+v, want not paused", st)
	}
	// The control workflow's history, pauses and resumes included, is a
	// replay case.
	recordHistory(t, env.client, workflows.ProviderControlID, "provider_control.json")
}

// Before any worker has started the provider control workflow, a
// provider's status (and the health the operations page and the state
// gauges read) is every provider running with nothing waiting, not an
// error.
func TestProviderStatusBeforeTheControlWorkflowExists(t *testing.T) {
	c := namespaceClient(t, "no-control")
	st, err := control.New(c, control.Options{DataConverter: codec.DataConverter(testEncryption()), PaymentPollInterval: time.Second, PaymentTimeout: time.Hour,
		PaymentWebhookWait: time.Minute, Namespace: "no-control"})
	if err != nil {
		t.Fatal(err)
	}
	status, err := st.Provider(context.Background(), "payments")
	if err != nil {
		t.Fatalf("status before the control workflow exists: %v", err)
	}
	if status.Paused || status.Backlog != 0 || status.System != "payments" {
		t.Errorf("status = %+v, want payments running with nothing waiting", status)
	}
	// The operations page and the state gauges read the same.
	h, err := st.Health(context.Background(), 10)
	if err != nil {
		t.Fatalf("health before the control workflow exists: %v", err)
	}
	if len(h.Providers) != len(system.Names()) || h.ParkedTotal != 0 {
		t.Errorf("health = %+v, want every provider running and nothing parked", h)
	}
}
