package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/webhooks"
	"github.com/handoff-hq/handoff/workflows"
)

// orderFigures are one side's figures for one round of orders.
type orderFigures struct {
	n         int
	completed int
	elapsed   time.Duration
	// latency is placement to completion, placement the placing call
	// alone (POST /v1/orders, or ExecuteWorkflow).
	latency, placement latencies
	cpu                map[string]time.Duration
	// events and signals are those of each order sampled; kinds counts
	// the events of the last one by type.
	events, signals []int
	kinds           map[string]int
}

func (f orderFigures) rate() float64 {
	if f.elapsed <= 0 {
		return 0
	}
	return float64(f.completed) / f.elapsed.Seconds()
}

// benchOrder is the order both sides place; hold keeps its charge pending.
func benchOrder(id string, hold bool) action.Order {
	email := id + "@example.com"
	if hold {
		email = sandbox.HoldEmailPrefix + "-" + email
	}
	return action.Order{OrderID: id, Customer: action.Customer{Email: email, Name: "Ada Lovelace"},
		Currency: "eur", Amount: 4500, Items: []action.Item{{SKU: "book", Quantity: 3, UnitAmount: 1500}}}
}

// each runs fn for 0..n-1, at most conc at a time.
func each(n, conc int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// timed runs fn for 0..n-1, at most conc at a time, and calls done, one
// call at a time, with the duration of each call that succeeded; it
// returns the first error.
func timed(n, conc int, fn func(i int) error, done func(i int, took time.Duration)) error {
	var mu sync.Mutex
	var firstErr error
	each(n, conc, func(i int) {
		t0 := time.Now()
		err := fn(i)
		took := time.Since(t0)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		done(i, took)
	})
	return firstErr
}

// orders places n orders on one side, Concurrency at a time, each placer
// waiting for its order's result before it places the next.
func (r *rig) orders(ctx context.Context, side string, n int) (orderFigures, error) {
	prefix := r.nextPrefix("o", side)
	f := orderFigures{n: n}
	var mu sync.Mutex
	var firstErr error
	meter := startCPU(r.procs)
	started := time.Now()
	each(n, r.opts.Concurrency, func(i int) {
		id := fmt.Sprintf("%s%04d", prefix, i)
		octx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		t0 := time.Now()
		run, err := r.place(octx, side, benchOrder(id, false))
		placed := time.Since(t0)
		var done bool
		if err == nil {
			done, err = finished(octx, side, run)
		}
		took := time.Since(t0)
		mu.Lock()
		defer mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		f.placement = append(f.placement, placed)
		if done {
			f.completed++
			f.latency = append(f.latency, took)
		}
	})
	f.elapsed = time.Since(started)
	if firstErr != nil {
		return f, fmt.Errorf("%s orders: %w", side, firstErr)
	}
	if err := r.drain(ctx, "order/"+prefix, n); err != nil {
		return f, err
	}
	f.cpu = meter.stop()
	// Ten orders spread over the round tell its history.
	for i := 0; i < n; i += max(1, n/10) {
		events, signals, kinds, err := r.history(ctx, action.OrderKey(fmt.Sprintf("%s%04d", prefix, i)).String())
		if err != nil {
			return f, err
		}
		f.kinds = kinds
		f.events, f.signals = append(f.events, events), append(f.signals, signals)
	}
	return f, nil
}

// place places an order on one side and returns its workflow run.
func (r *rig) place(ctx context.Context, side string, o action.Order) (client.WorkflowRun, error) {
	if side == sideBare {
		return startBare(ctx, r.c, o)
	}
	body, _ := json.Marshal(o)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.api+"/v1/orders", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusAccepted {
		return nil, fmt.Errorf("place %s: %d %s", o.OrderID, resp.StatusCode, raw)
	}
	return r.c.GetWorkflow(ctx, action.OrderKey(o.OrderID).String(), ""), nil
}

// finished waits for an order's result and reports whether it completed.
func finished(ctx context.Context, side string, run client.WorkflowRun) (bool, error) {
	if side == sideBare {
		var status string
		err := run.Get(ctx, &status)
		return status == string(action.StatusCompleted), err
	}
	var res workflows.OrderResult
	err := run.Get(ctx, &res)
	return res.State.Status == action.StatusCompleted, err
}

// history counts a workflow's history events, the signals among them, and
// its events by type.
func (r *rig) history(ctx context.Context, id string) (events, signals int, kinds map[string]int, err error) {
	kinds = map[string]int{}
	it := r.c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return 0, 0, nil, fmt.Errorf("history of %s: %w", id, err)
		}
		events++
		if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED {
			signals++
		}
		kinds[e.GetEventType().String()]++
	}
	return events, signals, kinds, nil
}

// intakeFigures are one side's figures for one round of webhook intake.
type intakeFigures struct {
	accepted int
	elapsed  time.Duration
	latency  latencies
	cpu      map[string]time.Duration
}

func (f intakeFigures) rate() float64 {
	if f.elapsed <= 0 {
		return 0
	}
	return float64(f.accepted) / f.elapsed.Seconds()
}

// The ways a payment event comes in, for the intake phase: a signed POST
// to each side's webhook endpoint, or what that endpoint does once the
// webhook is verified, called in the bench's own process.
const (
	// intakeAPI is handoff's API.
	intakeAPI = "api"
	// intakeHandoff is handoff's control client, which the API hands
	// verified webhooks to.
	intakeHandoff = "handoff"
	// intakeBareHTTP is the bare worker's webhook endpoint.
	intakeBareHTTP = "http-bare"
	// intakeBare is a bare SignalWithStart.
	intakeBare = "bare"
)

// webhooks delivers payment events for orders not placed yet, the intake
// that starts a workflow with its first event, one of the ways above. The
// workflows they started are terminated afterwards, outside the measure.
func (r *rig) webhooks(ctx context.Context, via string) (intakeFigures, error) {
	prefix := r.nextPrefix("w", via)
	n := r.opts.Webhooks
	var f intakeFigures
	meter := startCPU(r.procs)
	started := time.Now()
	firstErr := timed(n, r.opts.WebhookConcurrency, func(i int) error {
		return r.deliver(ctx, via, fmt.Sprintf("%s%04d", prefix, i))
	}, func(_ int, took time.Duration) {
		f.accepted++
		f.latency = append(f.latency, took)
	})
	f.elapsed = time.Since(started)
	f.cpu = meter.stop()
	if firstErr != nil {
		return f, fmt.Errorf("%s webhooks: %w", via, firstErr)
	}
	return f, r.terminate(ctx, prefix, n)
}

// deliver hands one payment event for order id in one way.
func (r *rig) deliver(ctx context.Context, via, id string) error {
	ref := action.OrderKey(id).Step(action.OrderStepCharge).String()
	e := action.PaymentEvent{EventID: "msg_" + id, Type: "payment.pending", OrderID: id, ChargeID: "ch_" + id,
		Status: action.PaymentPending, Version: 1, Ordered: true, OccurredAt: time.Now()}
	switch via {
	case intakeBare:
		return bareSignalWithStart(ctx, r.c, e)
	case intakeHandoff:
		e.ReceivedAt, e.RequestID = time.Now(), "req_"+id
		return r.events.DeliverPaymentEvent(ctx, e)
	}
	endpoint := r.api + "/webhooks/payments"
	if via == intakeBareHTTP {
		endpoint = r.bareWebhooks
	}
	body, _ := json.Marshal(map[string]any{"type": "payment.pending", "timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"data": map[string]any{"charge_id": "ch_" + id, "external_ref": ref, "status": "pending", "amount": 4500, "currency": "eur", "version": 1}})
	ts := time.Now().Unix()
	sig, err := webhooks.SignStandard(r.secret, "msg_"+id, ts, body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhooks.HeaderID, "msg_"+id)
	req.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(webhooks.HeaderSignature, sig)
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook for %s: %d %s", id, resp.StatusCode, raw)
	}
	return nil
}

// terminate ends the n workflows of a phase and waits until they are gone.
func (r *rig) terminate(ctx context.Context, prefix string, n int) error {
	var mu sync.Mutex
	var firstErr error
	each(n, 16, func(i int) {
		err := r.c.TerminateWorkflow(ctx, action.OrderKey(fmt.Sprintf("%s%04d", prefix, i)).String(), "", "benchmark phase over")
		if err != nil {
			mu.Lock()
			firstErr = err
			mu.Unlock()
		}
	})
	if firstErr != nil {
		return fmt.Errorf("terminate %s: %w", prefix, firstErr)
	}
	return r.drain(ctx, "order/"+prefix, n)
}

// readFigures are one side's figures for one round of reads.
type readFigures struct {
	latency latencies
	// sources counts handoff's answers by where they came from (its
	// Handoff-State-Source header).
	sources map[string]int
}

// readOrders is how many running orders the reads spread over.
const readOrders = 16

// reads reads orders that wait for their payment (the charges are held
// pending): GET /v1/orders/{id} against a bare DescribeWorkflowExecution.
func (r *rig) reads(ctx context.Context, side string) (readFigures, error) {
	prefix := r.nextPrefix("r", side)
	f := readFigures{sources: map[string]int{}}
	for i := range readOrders {
		if _, err := r.place(ctx, side, benchOrder(fmt.Sprintf("%s%04d", prefix, i), true)); err != nil {
			return f, err
		}
	}
	// Let every order reach its wait.
	if err := r.waitWaiting(ctx, side, prefix); err != nil {
		return f, err
	}
	sources := make([]string, r.opts.Reads)
	firstErr := timed(r.opts.Reads, 8, func(i int) (err error) {
		sources[i], err = r.read(ctx, side, fmt.Sprintf("%s%04d", prefix, i%readOrders))
		return err
	}, func(i int, took time.Duration) {
		f.latency = append(f.latency, took)
		f.sources[sources[i]]++
	})
	if firstErr != nil {
		return f, firstErr
	}
	return f, r.terminate(ctx, prefix, readOrders)
}

// waitWaiting waits until the phase's orders wait for their payment.
func (r *rig) waitWaiting(ctx context.Context, side, prefix string) error {
	deadline := time.Now().Add(time.Minute)
	for i := range readOrders {
		id := fmt.Sprintf("%s%04d", prefix, i)
		for {
			ok, err := r.waiting(ctx, side, id)
			if err != nil {
				return err
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s order %s does not reach its payment wait", side, id)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// waiting reports whether an order has its charge and waits for payment:
// no activity runs, and (for handoff) its status says so.
func (r *rig) waiting(ctx context.Context, side, id string) (bool, error) {
	d, err := r.c.DescribeWorkflow(ctx, action.OrderKey(id).String(), "")
	if err != nil {
		return false, err
	}
	desc := d.RawResponse
	if len(desc.GetPendingActivities()) > 0 || desc.GetWorkflowExecutionInfo().GetHistoryLength() < 10 {
		return false, nil
	}
	if side == sideBare {
		return true, nil
	}
	var st workflows.OrderState
	if _, err := r.getJSON(ctx, "/v1/orders/"+id, &st); err != nil {
		return false, err
	}
	return st.Status == action.StatusAwaitingPayment, nil
}

// read reads one order: handoff's GET (returning where its answer came
// from) or a bare Describe.
func (r *rig) read(ctx context.Context, side, id string) (string, error) {
	if side == sideBare {
		_, err := r.c.DescribeWorkflow(ctx, action.OrderKey(id).String(), "")
		return "describe", err
	}
	var st workflows.OrderState
	h, err := r.getJSON(ctx, "/v1/orders/"+id, &st)
	if err == nil && st.Status != action.StatusAwaitingPayment {
		err = fmt.Errorf("read %s: status %s, want %s", id, st.Status, action.StatusAwaitingPayment)
	}
	return h.Get("Handoff-State-Source"), err
}

func (r *rig) getJSON(ctx context.Context, path string, v any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.api+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.Header, fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, raw)
	}
	return resp.Header, json.NewDecoder(resp.Body).Decode(v)
}
