package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/api"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/providers/stripe"
	"github.com/handoff-hq/handoff/providers/stripe/stripetest"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/webhooks"
	"github.com/handoff-hq/handoff/workflows"
)

// stripeStage stands in front of stripe-mock. stripe-mock validates every
// request against Stripe's OpenAPI spec but answers canned objects, so the
// stage forwards each request there first (an invalid request fails as at
// Stripe) and then answers from PaymentIntents and refunds of its own,
// whose status each test sets as the case needs.
type stripeStage struct {
	upstream string

	mu      sync.Mutex
	seq     int
	intents map[string]*stageIntent
	byKey   map[string]string
	refunds []stageRefund
	gets    map[string]int
	// lists and searches count the pages listed and the searches made.
	lists, searches int
}

// list answers a page of PaymentIntents as Stripe does: newest first,
// after starting_after, within created[gte] and created[lte].
func (s *stripeStage) list(q url.Values) map[string]any {
	all := make([]*stageIntent, 0, len(s.intents))
	for _, pi := range s.intents {
		all = append(all, pi)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID > all[j].ID }) // ids grow with creation
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 {
		limit = 10
	}
	gte, _ := strconv.ParseInt(q.Get("created[gte]"), 10, 64)
	lte, _ := strconv.ParseInt(q.Get("created[lte]"), 10, 64)
	after := q.Get("starting_after")
	data := []*stageIntent{}
	more := false
	for _, pi := range all {
		if after != "" && pi.ID >= after || gte != 0 && pi.Created < gte || lte != 0 && pi.Created > lte {
			continue
		}
		if len(data) == limit {
			more = true
			break
		}
		data = append(data, pi)
	}
	return map[string]any{"object": "list", "data": data, "has_more": more}
}

type stageIntent struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Amount           int64             `json:"amount"`
	Currency         string            `json:"currency"`
	Status           string            `json:"status"`
	Created          int64             `json:"created"`
	Metadata         map[string]string `json:"metadata"`
	LastPaymentError *stagePaymentErr  `json:"last_payment_error"`
}

type stagePaymentErr struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type stageRefund struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	Amount        int64             `json:"amount"`
	Status        string            `json:"status"`
	PaymentIntent string            `json:"payment_intent"`
	Metadata      map[string]string `json:"metadata"`
}

func newStripeStage(upstream string) *stripeStage {
	return &stripeStage{upstream: upstream, intents: map[string]*stageIntent{}, byKey: map[string]string{}, gets: map[string]int{}}
}

var searchRef = regexp.MustCompile(`metadata\["` + stripe.MetadataExternalRef + `"\]:"([^"]+)"`)

func (s *stripeStage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if !s.validate(w, r, body) {
		return
	}
	form, _ := url.ParseQuery(string(body))
	s.mu.Lock()
	defer s.mu.Unlock()
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && path == "/v1/payment_intents":
		if id, ok := s.byKey[r.Header.Get("Idempotency-Key")]; ok {
			writeStripe(w, http.StatusOK, s.intents[id])
			return
		}
		s.seq++
		pi := &stageIntent{ID: fmt.Sprintf("pi_stage_%04d", s.seq), Object: "payment_intent", Currency: form.Get("currency"),
			Status: "requires_payment_method", Created: time.Now().Unix(), Metadata: map[string]string{}}
		fmt.Sscan(form.Get("amount"), &pi.Amount)
		for k, v := range form {
			if name, ok := strings.CutPrefix(k, "metadata["); ok {
				pi.Metadata[strings.TrimSuffix(name, "]")] = v[0]
			}
		}
		s.intents[pi.ID] = pi
		s.byKey[r.Header.Get("Idempotency-Key")] = pi.ID
		writeStripe(w, http.StatusOK, pi)
	case r.Method == http.MethodGet && path == "/v1/payment_intents/search":
		refs := map[string]bool{}
		for _, m := range searchRef.FindAllStringSubmatch(r.URL.Query().Get("query"), -1) {
			refs[m[1]] = true
		}
		data := []*stageIntent{}
		for _, pi := range s.intents {
			if refs[pi.Metadata[stripe.MetadataExternalRef]] {
				data = append(data, pi)
			}
		}
		s.searches++
		writeStripe(w, http.StatusOK, map[string]any{"object": "search_result", "data": data, "has_more": false})
	case r.Method == http.MethodGet && path == "/v1/payment_intents":
		s.lists++
		writeStripe(w, http.StatusOK, s.list(r.URL.Query()))
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/payment_intents/"):
		id := strings.TrimPrefix(path, "/v1/payment_intents/")
		s.gets[id]++
		writeStripe(w, http.StatusOK, s.intents[id])
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/cancel"):
		pi := s.intents[strings.TrimSuffix(strings.TrimPrefix(path, "/v1/payment_intents/"), "/cancel")]
		if pi.Status == "succeeded" || pi.Status == "processing" || pi.Status == "canceled" {
			writeStripe(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"type": "invalid_request_error",
				"code": "payment_intent_unexpected_state", "message": "You cannot cancel this PaymentIntent because it has a status of " + pi.Status + "."}})
			return
		}
		pi.Status = "canceled"
		writeStripe(w, http.StatusOK, pi)
	case r.Method == http.MethodPost && path == "/v1/refunds":
		pi := s.intents[form.Get("payment_intent")]
		if pi == nil || pi.Status != "succeeded" {
			writeStripe(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"type": "invalid_request_error",
				"code": "charge_not_refundable", "message": "This PaymentIntent has no successful charge to refund."}})
			return
		}
		s.seq++
		re := stageRefund{ID: fmt.Sprintf("re_stage_%04d", s.seq), Object: "refund", Amount: pi.Amount, Status: "succeeded", PaymentIntent: pi.ID,
			Metadata: map[string]string{stripe.MetadataExternalRef: form.Get("metadata[" + stripe.MetadataExternalRef + "]")}}
		s.refunds = append(s.refunds, re)
		writeStripe(w, http.StatusOK, re)
	case r.Method == http.MethodGet && path == "/v1/refunds":
		data := []stageRefund{}
		for _, re := range s.refunds {
			if re.PaymentIntent == r.URL.Query().Get("payment_intent") {
				data = append(data, re)
			}
		}
		writeStripe(w, http.StatusOK, map[string]any{"object": "list", "data": data})
	default:
		writeStripe(w, http.StatusNotFound, map[string]any{"error": map[string]string{"type": "invalid_request_error", "message": "not staged: " + path}})
	}
}

// validate sends the request to stripe-mock; a refusal is passed on as the
// answer. It reports whether the request was valid.
func (s *stripeStage) validate(w http.ResponseWriter, r *http.Request, body []byte) bool {
	req, err := http.NewRequest(r.Method, s.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return false
	}
	for _, h := range []string{"Authorization", "Content-Type", "Stripe-Version", "Idempotency-Key"} {
		req.Header.Set(h, r.Header.Get(h))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode < 300 {
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
	return false
}

func writeStripe(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// intentFor waits for the order's PaymentIntent and returns its id.
func (s *stripeStage) intentFor(t *testing.T, orderID string) string {
	t.Helper()
	var id string
	waitFor(t, orderID+"'s PaymentIntent", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, pi := range s.intents {
			if pi.Metadata[stripe.MetadataExternalRef] == action.OrderKey(orderID).Step("charge").String() {
				id = pi.ID
				return true
			}
		}
		return false
	})
	return id
}

// set changes a PaymentIntent as the customer's payment (or Stripe) would.
func (s *stripeStage) set(id, status string, paymentErr *stagePaymentErr) stageIntent {
	s.mu.Lock()
	defer s.mu.Unlock()
	pi := s.intents[id]
	pi.Status, pi.LastPaymentError = status, paymentErr
	return *pi
}

func (s *stripeStage) status(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.intents[id].Status
}

func (s *stripeStage) reads(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[id]
}

func (s *stripeStage) refundsOf(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, re := range s.refunds {
		if re.PaymentIntent == id {
			n++
		}
	}
	return n
}

// stripeEnv runs handoff with HANDOFF_PAYMENTS_PROVIDER=stripe against the
// stage, in a namespace of its own, with an API that takes signed Stripe
// events.
type stripeEnv struct {
	*isolatedEnv
	stage  *stripeStage
	api    *httptest.Server
	events int
}

const stripeTestWebhookSecret = "whsec_stripe_test_signing_secret_development_only"

func newStripeEnv(t *testing.T) *stripeEnv {
	t.Helper()
	stage := newStripeStage(stripetest.URL(t))
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
func (e *stripeEnv) event(t *testing.T, typ string, pi stageIntent) int {
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
	return e.stage.intentFor(t, id)
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
	e := newStripeEnv(t)

	t.Run("succeeded", func(t *testing.T) {
		pi := e.place(t, "stripe-succeeded")
		if status := e.event(t, "payment_intent.succeeded", e.stage.set(pi, "succeeded", nil)); status != http.StatusOK {
			t.Fatalf("event: %d", status)
		}
		state := e.await(t, "stripe-succeeded", action.StatusCompleted, action.StatusRejected)
		if state.Status != action.StatusCompleted || state.Steps[2].RemoteRef != pi {
			t.Errorf("state = %+v, want completed, paid by %s", state, pi)
		}
	})

	t.Run("processing, then succeeded", func(t *testing.T) {
		pi := e.place(t, "stripe-processing")
		e.event(t, "payment_intent.processing", e.stage.set(pi, "processing", nil))
		time.Sleep(300 * time.Millisecond)
		e.event(t, "payment_intent.succeeded", e.stage.set(pi, "succeeded", nil))
		if state := e.await(t, "stripe-processing", action.StatusCompleted, action.StatusRejected); state.Status != action.StatusCompleted {
			t.Errorf("status = %s, want completed", state.Status)
		}
	})

	t.Run("declined, then paid with another card", func(t *testing.T) {
		id := "stripe-retried-card"
		pi := e.place(t, id)
		declined := &stagePaymentErr{Code: "card_declined", Message: "Your card was declined."}
		before := e.stage.reads(pi)
		e.event(t, "payment_intent.payment_failed", e.stage.set(pi, "requires_payment_method", declined))
		// A first decline is not final: having read the declined
		// PaymentIntent, the order keeps waiting.
		waitFor(t, "the order to read the declined PaymentIntent", func() bool { return e.stage.reads(pi) > before })
		time.Sleep(200 * time.Millisecond)
		if r, err := e.control.Order(context.Background(), id); err != nil || r.State.Status != action.StatusAwaitingPayment {
			t.Fatalf("after the decline: %+v %v, want still awaiting payment", r.State, err)
		}
		e.event(t, "payment_intent.succeeded", e.stage.set(pi, "succeeded", nil))
		state := e.await(t, id, action.StatusCompleted, action.StatusRejected)
		if state.Status != action.StatusCompleted || e.stage.refundsOf(pi) != 0 {
			t.Errorf("status %s with %d refunds, want completed and the money kept for the order", state.Status, e.stage.refundsOf(pi))
		}
	})

	t.Run("canceled", func(t *testing.T) {
		id := "stripe-canceled"
		pi := e.place(t, id)
		e.event(t, "payment_intent.canceled", e.stage.set(pi, "canceled", nil))
		if state := e.await(t, id, action.StatusRejected, action.StatusCompleted); state.Status != action.StatusRejected {
			t.Errorf("status = %s, want rejected", state.Status)
		}
	})

	t.Run("an event ahead of the PaymentIntent's record", func(t *testing.T) {
		id := "stripe-lagging"
		pi := e.place(t, id)
		// The event says succeeded; Stripe's record shows it four seconds later.
		succeeded := e.stage.set(pi, "processing", nil)
		succeeded.Status = "succeeded"
		e.event(t, "payment_intent.succeeded", succeeded)
		time.Sleep(4 * time.Second)
		e.stage.set(pi, "succeeded", nil)
		if state := e.await(t, id, action.StatusCompleted, action.StatusRejected); state.Status != action.StatusCompleted {
			t.Errorf("status = %s, want completed", state.Status)
		}
		reads := e.stage.reads(pi)
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
		if got := e.stage.status(pi); got != "canceled" || e.stage.refundsOf(pi) != 0 {
			t.Errorf("PaymentIntent is %s with %d refunds, want canceled: the customer can no longer pay it", got, e.stage.refundsOf(pi))
		}
	})

	t.Run("reconciliation pages through Stripe's PaymentIntents and repairs what is safe", func(t *testing.T) {
		// An invoice lost at the accounting provider behind handoff's back.
		lost := action.OrderKey("stripe-succeeded").Step(action.OrderStepInvoice).String()
		e.send(t, http.MethodDelete, "/_sandbox/records/accounting/invoices/"+e.invoice(t, lost).ID, "")
		// Two PaymentIntents to a page, so that reconciliation pages.
		st, err := control.New(e.client, control.Options{PaymentPollInterval: time.Second, PaymentTimeout: time.Hour, Namespace: "stripe",
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
		e.stage.mu.Lock()
		intents, lists, searches := len(e.stage.intents), e.stage.lists, e.stage.searches
		e.stage.mu.Unlock()
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
		foreign := stageIntent{ID: "pi_someone_else", Object: "payment_intent", Status: "succeeded", Metadata: map[string]string{"shop": "other"}}
		if status := e.event(t, "payment_intent.succeeded", foreign); status != http.StatusAccepted {
			t.Errorf("foreign event: %d, want 202", status)
		}
	})
}
