package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/api"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/providers/stripe/stripetest"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/webhooks"
	"github.com/handoff-hq/handoff/workflows"
)

// stripeEnv runs handoff with HANDOFF_PAYMENTS_PROVIDER=stripe against the
// stage, in a namespace of its own, with an API that takes signed Stripe
// events.
type stripeEnv struct {
	*isolatedEnv
	stage  *stripetest.Stage
	api    *httptest.Server
	events int
}

const stripeTestWebhookSecret = "whsec_stripe_test_signing_secret_development_only"

func newStripeEnv(t *testing.T) *stripeEnv {
	t.Helper()
	stage := stripetest.NewStage(stripetest.URL(t))
	stageSrv := httptest.NewServer(stage)
	t.Cleanup(stageSrv.Close)
	e := newIsolatedEnv(t, "stripe", func(cfg *config.Config) {
		p, _ := cfg.Provider("payments")
		p.Provider, p.URL, p.APIKey = "stripe", stageSrv.URL, stripetest.Key
		cfg.SetProvider("payments", p)
	})
	srv, err := api.New(api.Options{Orders: e.control, Events: e.control, Operators: e.control, Reconciliations: e.control,
		APITokens: []string{testToken}, OperatorTokens: []string{testOperatorToken}, Ready: func(context.Context) error { return nil },
		Webhooks: map[string]api.WebhookSource{"payments": {Scheme: system.SchemeStripe, Secrets: []string{stripeTestWebhookSecret}}}})
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := httptest.NewServer(srv)
	t.Cleanup(apiSrv.Close)
	return &stripeEnv{isolatedEnv: e, stage: stage, api: apiSrv}
}

// event delivers a signed Stripe event about the PaymentIntent, as Stripe
// would, and returns the API's status.
func (e *stripeEnv) event(t *testing.T, typ string, pi stripetest.Intent) int {
	t.Helper()
	e.events++
	body, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("evt_stage_%04d", e.events), "object": "event", "type": typ,
		"created": time.Now().Unix(), "data": map[string]any{"object": pi}})
	req, _ := http.NewRequest(http.MethodPost, e.api.URL+"/webhooks/payments", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhooks.HeaderStripeSignature, webhooks.SignStripe(stripeTestWebhookSecret, time.Now().Unix(), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (e *stripeEnv) place(t *testing.T, id string) string {
	t.Helper()
	if _, err := e.control.PlaceOrder(context.Background(), order(id), "stripe-test"); err != nil {
		t.Fatal(err)
	}
	var pi string
	waitFor(t, id+"'s PaymentIntent", func() bool {
		var ok bool
		pi, ok = e.stage.IntentByRef(action.OrderKey(id).Step("charge").String())
		return ok
	})
	return pi
}

func (e *stripeEnv) await(t *testing.T, id string, want ...action.Status) workflows.OrderState {
	t.Helper()
	var state workflows.OrderState
	waitFor(t, fmt.Sprintf("%s to be one of %v", id, want), func() bool {
		r, err := e.control.Order(context.Background(), id)
		state = r.State
		for _, w := range want {
			if err == nil && state.Status == w {
				return true
			}
		}
		return false
	})
	return state
}

// TestOrdersOnStripeFollowThePaymentIntentLifecycle runs orders end to end
// with HANDOFF_PAYMENTS_PROVIDER=stripe, driving each PaymentIntent through
// its lifecycle with signed Stripe events.
func TestOrdersOnStripeFollowThePaymentIntentLifecycle(t *testing.T) {
	selfContained(t)
	e := newStripeEnv(t)

	t.Run("succeeded", func(t *testing.T) {
		pi := e.place(t, "stripe-succeeded")
		if status := e.event(t, "payment_intent.succeeded", e.stage.Set(pi, "succeeded", nil)); status != http.StatusOK {
			t.Fatalf("event: %d", status)
		}
		state := e.await(t, "stripe-succeeded", action.StatusCompleted, action.StatusRejected)
		if state.Status != action.StatusCompleted || state.Steps[2].RemoteRef != pi {
			t.Errorf("state = %+v, want completed, paid by %s", state, pi)
		}
	})

	t.Run("processing, then succeeded", func(t *testing.T) {
		pi := e.place(t, "stripe-processing")
		e.event(t, "payment_intent.processing", e.stage.Set(pi, "processing", nil))
		time.Sleep(300 * time.Millisecond)
		e.event(t, "payment_intent.succeeded", e.stage.Set(pi, "succeeded", nil))
		if state := e.await(t, "stripe-processing", action.StatusCompleted, action.StatusRejected); state.Status != action.StatusCompleted {
			t.Errorf("status = %s, want completed", state.Status)
		}
	})

	t.Run("declined, then paid with another card", func(t *testing.T) {
		id := "stripe-retried-card"
		pi := e.place(t, id)
		declined := &stripetest.PaymentError{Code: "card_declined", Message: "Your card was declined."}
		before := e.stage.Reads(pi)
		e.event(t, "payment_intent.payment_failed", e.stage.Set(pi, "requires_payment_method", declined))
		// A first decline is not final: having read the declined
		// PaymentIntent, the order keeps waiting.
		waitFor(t, "the order to read the declined PaymentIntent", func() bool { return e.stage.Reads(pi) > before })
		time.Sleep(200 * time.Millisecond)
		if r, err := e.control.Order(context.Background(), id); err != nil || r.State.Status != action.StatusAwaitingPayment {
			t.Fatalf("after the decline: %+v %v, want still awaiting payment", r.State, err)
		}
		e.event(t, "payment_intent.succeeded", e.stage.Set(pi, "succeeded", nil))
		state := e.await(t, id, action.StatusCompleted, action.StatusRejected)
		if state.Status != action.StatusCompleted || e.stage.RefundsOf(pi) != 0 {
			t.Errorf("status %s with %d refunds, want completed and the money kept for the order", state.Status, e.stage.RefundsOf(pi))
		}
	})

	t.Run("canceled", func(t *testing.T) {
		id := "stripe-canceled"
		pi := e.place(t, id)
		e.event(t, "payment_intent.canceled", e.stage.Set(pi, "canceled", nil))
		if state := e.await(t, id, action.StatusRejected, action.StatusCompleted); state.Status != action.StatusRejected {
			t.Errorf("status = %s, want rejected", state.Status)
		}
	})

	t.Run("an event ahead of the PaymentIntent's record", func(t *testing.T) {
		id := "stripe-lagging"
		pi := e.place(t, id)
		// The event says succeeded; Stripe's record shows it four seconds later.
		succeeded := e.stage.Set(pi, "processing", nil)
		succeeded.Status = "succeeded"
		e.event(t, "payment_intent.succeeded", succeeded)
		time.Sleep(4 * time.Second)
		e.stage.Set(pi, "succeeded", nil)
		if state := e.await(t, id, action.StatusCompleted, action.StatusRejected); state.Status != action.StatusCompleted {
			t.Errorf("status = %s, want completed", state.Status)
		}
		reads := e.stage.Reads(pi)
		t.Logf("PaymentIntent read %d times while its record lagged the event by 4 s", reads)
		if reads > 8 {
			t.Errorf("PaymentIntent read %d times, want a handful", reads)
		}
	})

	t.Run("an order cancelled before payment cancels its PaymentIntent", func(t *testing.T) {
		id := "stripe-cancelled-order"
		pi := e.place(t, id)
		e.await(t, id, action.StatusAwaitingPayment)
		if _, err := e.control.CancelOrder(context.Background(), id, "customer left"); err != nil {
			t.Fatal(err)
		}
		e.await(t, id, action.StatusCancelled)
		if got := e.stage.Status(pi); got != "canceled" || e.stage.RefundsOf(pi) != 0 {
			t.Errorf("PaymentIntent is %s with %d refunds, want canceled: the customer can no longer pay it", got, e.stage.RefundsOf(pi))
		}
	})

	t.Run("reconciliation pages through Stripe's PaymentIntents and repairs what is safe", func(t *testing.T) {
		// An invoice lost at the accounting provider behind handoff's back.
		lost := action.OrderKey("stripe-succeeded").Step(action.OrderStepInvoice).String()
		e.send(t, http.MethodDelete, "/_sandbox/records/accounting/invoices/"+e.invoice(t, lost).ID, "")
		// Two PaymentIntents to a page, so that reconciliation pages.
		st, err := control.New(e.client, control.Options{DataConverter: codec.DataConverter(testEncryption()), PaymentPollInterval: time.Second, PaymentTimeout: time.Hour, Namespace: "stripe",
			Reconcile: workflows.ReconcileInput{PageSize: 2, Grace: 0, PagesPerRun: 2}})
		if err != nil {
			t.Fatal(err)
		}
		id, err := st.StartReconciliation(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var report workflows.ReconcileReport
		waitFor(t, "the reconciliation on Stripe", func() bool {
			report, err = st.Reconciliation(context.Background(), id)
			return !errors.Is(err, control.ErrRunning)
		})
		raw, _ := json.Marshal(report)
		t.Logf("reconciliation on Stripe: %s", raw)
		if err != nil {
			t.Fatalf("reconciliation %s: %v", id, err)
		}
		intents, lists, searches := e.stage.Counts()
		if report.Repaired != 1 || report.Differences["invoice_missing"] != 1 || report.Flagged != 0 {
			t.Errorf("repaired %d, flagged %d, differences %v; want the lost invoice repaired and nothing flagged", report.Repaired, report.Flagged, report.Differences)
		}
		if report.Compared.Charges != intents || lists < (intents+1)/2 || searches == 0 {
			t.Errorf("compared %d charges in %d pages and %d searches; want all %d PaymentIntents, two to a page, and the invoices' charges searched",
				report.Compared.Charges, lists, searches, intents)
		}
		if inv := e.invoice(t, lost); inv.Amount == 0 {
			t.Errorf("the repaired invoice = %+v", inv)
		}
	})

	t.Run("a foreign PaymentIntent's event is acknowledged", func(t *testing.T) {
		foreign := stripetest.Intent{ID: "pi_someone_else", Object: "payment_intent", Status: "succeeded", Metadata: map[string]string{"shop": "other"}}
		if status := e.event(t, "payment_intent.succeeded", foreign); status != http.StatusAccepted {
			t.Errorf("foreign event: %d, want 202", status)
		}
	})
}
