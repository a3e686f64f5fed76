package tests

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/api"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/webhooks"
	"github.com/handoff-hq/handoff/workflows"
)

// stepRank orders step statuses by progress; a step never moves back.
var stepRank = map[action.StepStatus]int{
	action.StepPending: 0, action.StepRunning: 1, action.StepWaiting: 1,
	action.StepSucceeded: 2, action.StepFailed: 2, action.StepSkipped: 2,
}

// progressWatcher polls orders while they run and records any step that
// moved back, or an order that left completed.
type progressWatcher struct {
	mu         sync.Mutex
	last       map[string]workflows.OrderState
	regression []string
}

func (w *progressWatcher) observe(id string, s workflows.OrderState) {
	w.mu.Lock()
	defer w.mu.Unlock()
	prev, ok := w.last[id]
	w.last[id] = s
	if !ok {
		return
	}
	if prev.Status == action.StatusCompleted && s.Status != action.StatusCompleted {
		w.regression = append(w.regression, fmt.Sprintf("%s: %s after completed", id, s.Status))
	}
	for i := range s.Steps {
		if i < len(prev.Steps) && stepRank[s.Steps[i].Status] < stepRank[prev.Steps[i].Status] {
			w.regression = append(w.regression, fmt.Sprintf("%s: step %s went from %s to %s", id, s.Steps[i].Name, prev.Steps[i].Status, s.Steps[i].Status))
		}
	}
}

// TestDuplicatedAndReorderedWebhooksChangeNothing delivers every payment
// webhook of 100 orders twice and holds a third of them back so that later
// events overtake them. Every order completes once, and none ever shows a
// step going back.
func TestDuplicatedAndReorderedWebhooksChangeNothing(t *testing.T) {
	defer clearFaults(t)
	const n = 100
	prefix := action.OrderKey("wh-").String()
	addFault(t, sandbox.Fault{System: "payments", Mode: sandbox.FaultDuplicateWebhooks, KeyPrefix: prefix})
	addFault(t, sandbox.Fault{System: "payments", Mode: sandbox.FaultReorderWebhooks, KeyPrefix: prefix, Rate: 0.33, Seed: 7, LatencyMS: 400})

	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("wh-%03d", i)
	}
	watcher := &progressWatcher{last: map[string]workflows.OrderState{}}
	ctx, stopWatching := context.WithCancel(context.Background())
	var watching sync.WaitGroup
	watching.Add(1)
	go func() {
		defer watching.Done()
		for ctx.Err() == nil {
			for _, id := range ids {
				// A read from the snapshot (a worker slower than the read's
				// 300 ms) is the state at the order's last change of status,
				// older by design: only the workflow's own answers must move
				// forward.
				if status, hdr, body, err := send(http.MethodGet, "/v1/orders/"+id, nil, testToken); err == nil && status == http.StatusOK &&
					hdr.Get(api.HeaderStateSource) != control.SourceSnapshot {
					var s workflows.OrderState
					if decodeJSON(body, &s) == nil {
						watcher.observe(id, s)
					}
				}
			}
		}
	}()

	var placing sync.WaitGroup
	for w := range 10 {
		placing.Add(1)
		go func() {
			defer placing.Done()
			for i := w; i < n; i += 10 {
				if status, _, body, err := send(http.MethodPost, "/v1/orders", order(ids[i]), testToken); err != nil || status != http.StatusAccepted {
					t.Errorf("place %s: %d %s %v", ids[i], status, body, err)
				}
			}
		}()
	}
	placing.Wait()
	for _, id := range ids {
		awaitOrder(t, id, action.StatusCompleted)
		assertExactlyOnce(t, id)
	}
	stopWatching()
	watching.Wait()
	for _, r := range watcher.regression {
		t.Error(r)
	}

	duplicated, held := 0, 0
	for _, d := range env.sandbox.Deliveries() {
		if len(d.Ref) < len(prefix) || d.Ref[:len(prefix)] != prefix {
			continue
		}
		if containsMode(d.Fault, sandbox.FaultDuplicateWebhooks) {
			duplicated++
		}
		if containsMode(d.Fault, sandbox.FaultReorderWebhooks) {
			held++
		}
	}
	t.Logf("%d orders: %d events delivered twice, %d held back to be overtaken", n, duplicated, held)
	if duplicated < 2*n || held < n/3 {
		t.Errorf("duplicated %d, held back %d: the faults did not apply as configured", duplicated, held)
	}
}

func containsMode(faults, mode string) bool {
	return bytes.Contains([]byte(","+faults+","), []byte(","+mode+","))
}

// TestWebhookAckLatencyDoesNotDependOnProviderLatency acknowledges signed
// webhooks while the payments provider answers at once, and again while it
// takes 2 s per call. The endpoint calls no provider, so the sandbox sees
// no call during either burst; the two latency distributions are reported
// side by side (make bench-webhooks prints them).
func TestWebhookAckLatencyDoesNotDependOnProviderLatency(t *testing.T) {
	defer clearFaults(t)
	// A parked order keeps running and so keeps taking events.
	id := rejectInvoicePrefix + "ack-latency"
	placeOrders(t, id)
	state := awaitOrder(t, id, action.StatusNeedsAttention)
	defer func() {
		_ = env.client.TerminateWorkflow(context.Background(), action.OrderKey(id).String(), "", "test finished")
	}()
	charge := state.Steps[1].RemoteRef

	measure := func(label string) []time.Duration {
		before := len(env.sandbox.Calls("", "", ""))
		var out []time.Duration
		for i := range 150 {
			start := time.Now()
			status := postWebhook(t, fmt.Sprintf("msg_ack_%s_%d", label, i), id, charge)
			out = append(out, time.Since(start))
			if status != http.StatusOK {
				t.Fatalf("webhook %d: status %d, want 200", i, status)
			}
		}
		if after := len(env.sandbox.Calls("", "", "")); after != before {
			t.Errorf("%s: the sandbox received %d calls while webhooks were acknowledged, want none", label, after-before)
		}
		return out
	}
	fast := measure("fast")
	addFault(t, sandbox.Fault{System: "payments", Mode: sandbox.FaultLatency, LatencyMS: 2000})
	slow := measure("slow")
	fm, fp := percentiles(fast)
	sm, sp := percentiles(slow)
	t.Logf("webhook acknowledgement, provider latency 0 s: median %s p99 %s; provider latency 2 s: median %s p99 %s; median ratio %.2f",
		fm, fp, sm, sp, float64(sm)/float64(fm))
}

func percentiles(ds []time.Duration) (median, p99 time.Duration) {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[len(s)*99/100]
}

// postWebhook sends a signed payment.pending event for the order's charge,
// as the provider would, and returns the status.
func postWebhook(t *testing.T, eventID, orderID, chargeID string) int {
	t.Helper()
	body := fmt.Sprintf(`{"type":"payment.pending","timestamp":%q,"data":{"charge_id":%q,"external_ref":%q,"status":"pending","version":1}}`,
		time.Now().UTC().Format(time.RFC3339Nano), chargeID, action.OrderKey(orderID).Step("charge").String())
	ts := time.Now().Unix()
	sig, err := webhooks.SignStandard(testWebhookSecret, eventID, ts, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, env.api.URL+"/webhooks/payments", bytes.NewReader([]byte(body)))
	req.Header.Set(webhooks.HeaderID, eventID)
	req.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(webhooks.HeaderSignature, sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
