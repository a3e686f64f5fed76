package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers/sandbox"
)

// stepTargets names, for each step of an order, the provider call it makes
// and the collection its record lands in.
var stepTargets = []struct {
	step, system, operation, collection string
}{
	{"customer", "crm", "upsert_contact", "contacts"},
	{"charge", "payments", "create_charge", "charges"},
	{"payment", "payments", "get_charge", ""},
	{"invoice", "accounting", "create_invoice", "invoices"},
	{"confirmation", "mail", "send_message", "messages"},
}

func addFault(t *testing.T, f sandbox.Fault) {
	t.Helper()
	raw, _ := json.Marshal(f)
	resp, err := http.Post(env.provider.URL+"/_sandbox/faults", "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("add fault %+v: %d", f, resp.StatusCode)
	}
}

// holdWebhooks delays the order's payment webhooks past its webhook wait,
// so that the order asks the provider for the charge.
func holdWebhooks(t *testing.T, orderID string) {
	t.Helper()
	addFault(t, sandbox.Fault{System: "payments", Mode: sandbox.FaultDelayWebhooks, KeyPrefix: action.OrderKey(orderID).String() + "/",
		LatencyMS: int(3 * testWebhookWait / time.Millisecond), Count: 2})
}

func clearFaults(t *testing.T) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, env.provider.URL+"/_sandbox/faults", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func activeFaults(t *testing.T) []sandbox.Fault {
	t.Helper()
	resp, err := http.Get(env.provider.URL + "/_sandbox/faults")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Faults []sandbox.Fault }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Faults
}

// assertExactlyOnce checks through the sandbox's state that the order made
// one record of each kind, under its own idempotency keys.
func assertExactlyOnce(t *testing.T, orderID string) {
	t.Helper()
	st := env.sandbox.State()
	for _, target := range stepTargets {
		if target.collection == "" {
			continue
		}
		if got := countFor(st, target.system, target.collection, orderID, target.step); got != 1 {
			t.Errorf("order %s: %s %s = %d, want exactly 1", orderID, target.system, target.collection, got)
		}
	}
}

func placeOrders(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if status, _, body := call(t, http.MethodPost, "/v1/orders", order(id), testToken); status != http.StatusAccepted {
			t.Fatalf("place %s: %d %s", id, status, body)
		}
	}
}

// TestEveryTemporaryFaultOnEveryStepEndsInExactlyOneOfEach injects each
// fault mode into each step's provider call and proves that every order
// still completes with exactly one contact, charge, invoice and e-mail.
func TestEveryTemporaryFaultOnEveryStepEndsInExactlyOneOfEach(t *testing.T) {
	modes := []sandbox.Fault{
		{Mode: sandbox.FaultStatus, Status: 503, Count: 2},
		{Mode: sandbox.FaultStatus, Status: 500, Count: 1},
		{Mode: sandbox.FaultRateLimit, RetryAfter: 1, Count: 1},
		{Mode: sandbox.FaultTimeoutAfterCommit, Count: 1},
		{Mode: sandbox.FaultTimeoutBeforeCommit, Count: 1},
		{Mode: sandbox.FaultLatency, LatencyMS: 300, Count: 1},
		{Mode: sandbox.FaultExpiredToken, Count: 1},
	}
	defer clearFaults(t)
	for _, mode := range modes {
		t.Run(fmt.Sprintf("%s-%d", mode.Mode, mode.Status), func(t *testing.T) {
			var ids []string
			for _, target := range stepTargets {
				id := fmt.Sprintf("fault-%s-%d-%s", mode.Mode, mode.Status, target.step)
				f := mode
				f.System, f.Operation = target.system, target.operation
				if target.operation == "get_charge" {
					// Reads carry no idempotency key, and the order reads the
					// charge only when its webhook is late: make it late.
					holdWebhooks(t, id)
				} else {
					f.KeyPrefix = action.OrderKey(id).String() + "/"
				}
				addFault(t, f)
				ids = append(ids, id)
			}
			placeOrders(t, ids...)
			for i, id := range ids {
				state := awaitOrder(t, id, action.StatusCompleted, action.StatusNeedsAttention)
				if state.Status != action.StatusCompleted {
					t.Errorf("order %s = %s, want completed: %+v", id, state.Status, state.Steps)
					continue
				}
				assertExactlyOnce(t, id)
				target := stepTargets[i]
				if mode.Mode == sandbox.FaultTimeoutAfterCommit && target.collection != "" && target.step != "customer" {
					// The create went through but its answer was lost: the
					// retry found the record by its reference and adopted it.
					key := action.OrderKey(id).String() + "/" + target.step
					if got := len(env.sandbox.Calls(target.system, target.operation, key)); got != 1 {
						t.Errorf("%s: %d create calls, want 1 (then adoption)", key, got)
					}
					if got := state.Steps[i].Attempts; got != 2 {
						t.Errorf("%s: %d attempts, want 2", key, got)
					}
				}
			}
			if left := activeFaults(t); len(left) != 0 {
				t.Errorf("faults not consumed: %+v", left)
			}
		})
	}
}

// TestPermanentFaultsStopTheStepAfterOneAttempt gives each step a 422: the
// order stops in needs_attention with the error named, after one attempt.
func TestPermanentFaultsStopTheStepAfterOneAttempt(t *testing.T) {
	defer clearFaults(t)
	for i, target := range stepTargets {
		t.Run(target.step, func(t *testing.T) {
			id := "permanent-" + target.step
			f := sandbox.Fault{System: target.system, Operation: target.operation, Mode: sandbox.FaultStatus, Status: 422, Count: 1}
			if target.operation == "get_charge" {
				holdWebhooks(t, id)
			} else {
				f.KeyPrefix = action.OrderKey(id).String() + "/"
			}
			addFault(t, f)
			placeOrders(t, id)
			state := awaitOrder(t, id, action.StatusNeedsAttention, action.StatusCompleted)
			defer func() {
				_ = env.client.TerminateWorkflow(context.Background(), action.OrderKey(id).String(), "", "test finished")
			}()
			step := state.Steps[i]
			if state.Status != action.StatusNeedsAttention || step.Status != action.StepFailed || step.LastError == nil ||
				step.LastError.Category != action.CategoryPermanent || !strings.Contains(step.LastError.Message, "InvalidInput") {
				t.Fatalf("order = %s, step = %+v; want needs_attention, the step failed as permanent InvalidInput", state.Status, step)
			}
			if target.step != "payment" && step.Attempts != 1 {
				t.Errorf("attempts = %d, want 1", step.Attempts)
			}
			key := action.OrderKey(id).String() + "/" + target.step
			if target.operation == "get_charge" {
				key = ""
			}
			if got := len(env.sandbox.Calls(target.system, target.operation, key)); key != "" && got != 1 {
				t.Errorf("%s calls for %s = %d, want exactly 1", target.operation, key, got)
			}
		})
	}
}

// TestRetriesAreJittered fails 50 orders' first CRM call together and
// measures when each came back: with full jitter the retries spread out
// instead of arriving in lockstep.
func TestRetriesAreJittered(t *testing.T) {
	const n = 50
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%02d", failFirstCRMCallPrefix, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, _, body, err := send(http.MethodPost, "/v1/orders", order(ids[i]), testToken); err != nil || status != http.StatusAccepted {
				t.Errorf("place %s: %d %s %v", ids[i], status, body, err)
			}
		}()
	}
	wg.Wait()
	var delays []float64
	for _, id := range ids {
		awaitOrder(t, id, action.StatusCompleted)
		key := action.OrderKey(id).Step("customer").String()
		failed, ok := firstCRMFailure.Load(key)
		calls := env.sandbox.Calls("crm", "upsert_contact", key)
		if !ok || len(calls) != 1 {
			t.Fatalf("order %s: failed first=%v, served %d CRM calls; want one failure, then one retry", id, ok, len(calls))
		}
		delays = append(delays, calls[0].Time.Sub(failed.(time.Time)).Seconds())
	}
	sort.Float64s(delays)
	mean, sd := meanSD(delays)
	t.Logf("retry delays over %d orders: min %.3fs median %.3fs max %.3fs mean %.3fs sd %.3fs",
		n, delays[0], delays[n/2], delays[n-1], mean, sd)
	// Without jitter every delay would be the same; full jitter over
	// [1 s, 2 s] has a standard deviation near 0.29 s.
	if sd < 0.12 || delays[n-1]-delays[0] < 0.4 {
		t.Errorf("retry delays sd %.3fs, range %.3fs: the retries came back in lockstep", sd, delays[n-1]-delays[0])
	}
}

func meanSD(xs []float64) (float64, float64) {
	var sum, sq float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / float64(len(xs))
	for _, x := range xs {
		sq += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sq / float64(len(xs)))
}

// TestRetryAfterIsHonoured answers 429 with Retry-After: 3 and checks the
// retry waited at least that long.
func TestRetryAfterIsHonoured(t *testing.T) {
	defer clearFaults(t)
	id := "retry-after-1"
	addFault(t, sandbox.Fault{System: "mail", Operation: "send_message", KeyPrefix: action.OrderKey(id).String() + "/",
		Mode: sandbox.FaultRateLimit, RetryAfter: 3, Count: 1})
	placeOrders(t, id)
	awaitOrder(t, id, action.StatusCompleted)
	calls := env.sandbox.Calls("mail", "send_message", action.OrderKey(id).Step("confirmation").String())
	if len(calls) != 2 {
		t.Fatalf("e-mail calls = %d, want 2", len(calls))
	}
	if gap := calls[1].Time.Sub(calls[0].Time); gap < 3*time.Second {
		t.Errorf("retried after %s, want no sooner than Retry-After: 3", gap)
	}
	assertExactlyOnce(t, id)
}

// TestRevokedCredentialsParkTheOrderAsUnauthorized withdraws the provider
// client: the call fails as Unauthorized once, without looping.
func TestRevokedCredentialsParkTheOrderAsUnauthorized(t *testing.T) {
	revoke := func(method string) {
		req, _ := http.NewRequest(method, env.provider.URL+"/_sandbox/revoke", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	revoke(http.MethodPost)
	defer revoke(http.MethodDelete)
	crmCalls := len(env.sandbox.Calls("crm", "", ""))
	id := "revoked-1"
	placeOrders(t, id)
	state := awaitOrder(t, id, action.StatusNeedsAttention, action.StatusCompleted)
	defer func() {
		_ = env.client.TerminateWorkflow(context.Background(), action.OrderKey(id).String(), "", "test finished")
	}()
	customer := state.Steps[0]
	if state.Status != action.StatusNeedsAttention || customer.LastError == nil ||
		customer.LastError.Category != action.CategoryPermanent || !strings.Contains(customer.LastError.Message, "Unauthorized") || customer.Attempts != 1 {
		t.Errorf("order %s, customer step %+v; want needs_attention after one Unauthorized attempt", state.Status, customer)
	}
	// The step's first call (the look-up of the contact by e-mail) is
	// refused; nothing is sent after it.
	if got := len(env.sandbox.Calls("crm", "", "")) - crmCalls; got != 1 {
		t.Errorf("CRM calls = %d, want 1", got)
	}
}
