package stripetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/handoff-hq/handoff/webhooks"
)

// Stage stands in front of stripe-mock. stripe-mock validates every
// request against Stripe's OpenAPI spec but answers canned objects, so the
// stage forwards each request there first (an invalid request fails as at
// Stripe) and then answers from PaymentIntents and refunds of its own,
// whose status each test sets as the case needs.
type Stage struct {
	upstream string

	mu      sync.Mutex
	seq     int
	intents map[string]*Intent
	byKey   map[string]string
	refunds []Refund
	gets    map[string]int
	// lists and searches count the pages listed and the searches made.
	lists, searches int
}

// list answers a page of PaymentIntents as Stripe does: newest first,
// after starting_after, within created[gte] and created[lte].
func (s *Stage) list(q url.Values) map[string]any {
	all := make([]*Intent, 0, len(s.intents))
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
	data := []*Intent{}
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

// Intent is a staged PaymentIntent.
type Intent struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Amount           int64             `json:"amount"`
	Currency         string            `json:"currency"`
	Status           string            `json:"status"`
	Created          int64             `json:"created"`
	Metadata         map[string]string `json:"metadata"`
	LastPaymentError *PaymentError     `json:"last_payment_error"`
}

// PaymentError is a PaymentIntent's last_payment_error.
type PaymentError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Refund is a staged refund.
type Refund struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	Amount        int64             `json:"amount"`
	Status        string            `json:"status"`
	PaymentIntent string            `json:"payment_intent"`
	Metadata      map[string]string `json:"metadata"`
}

// NewStage stages PaymentIntents in front of the stripe-mock at upstream.
func NewStage(upstream string) *Stage {
	return &Stage{upstream: upstream, intents: map[string]*Intent{}, byKey: map[string]string{}, gets: map[string]int{}}
}

var searchRef = regexp.MustCompile(`metadata\["` + webhooks.StripeExternalRefKey + `"\]:"([^"]+)"`)

// ServeHTTP implements http.Handler.
func (s *Stage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
			writeJSON(w, http.StatusOK, s.intents[id])
			return
		}
		s.seq++
		pi := &Intent{ID: fmt.Sprintf("pi_stage_%04d", s.seq), Object: "payment_intent", Currency: form.Get("currency"),
			Status: "requires_payment_method", Created: time.Now().Unix(), Metadata: map[string]string{}}
		fmt.Sscan(form.Get("amount"), &pi.Amount)
		for k, v := range form {
			if name, ok := strings.CutPrefix(k, "metadata["); ok {
				pi.Metadata[strings.TrimSuffix(name, "]")] = v[0]
			}
		}
		s.intents[pi.ID] = pi
		s.byKey[r.Header.Get("Idempotency-Key")] = pi.ID
		writeJSON(w, http.StatusOK, pi)
	case r.Method == http.MethodGet && path == "/v1/payment_intents/search":
		refs := map[string]bool{}
		for _, m := range searchRef.FindAllStringSubmatch(r.URL.Query().Get("query"), -1) {
			refs[m[1]] = true
		}
		data := []*Intent{}
		for _, pi := range s.intents {
			if refs[pi.Metadata[webhooks.StripeExternalRefKey]] {
				data = append(data, pi)
			}
		}
		s.searches++
		writeJSON(w, http.StatusOK, map[string]any{"object": "search_result", "data": data, "has_more": false})
	case r.Method == http.MethodGet && path == "/v1/payment_intents":
		s.lists++
		writeJSON(w, http.StatusOK, s.list(r.URL.Query()))
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/payment_intents/"):
		id := strings.TrimPrefix(path, "/v1/payment_intents/")
		s.gets[id]++
		writeJSON(w, http.StatusOK, s.intents[id])
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/cancel"):
		pi := s.intents[strings.TrimSuffix(strings.TrimPrefix(path, "/v1/payment_intents/"), "/cancel")]
		if pi.Status == "succeeded" || pi.Status == "processing" || pi.Status == "canceled" {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"type": "invalid_request_error",
				"code": "payment_intent_unexpected_state", "message": "You cannot cancel this PaymentIntent because it has a status of " + pi.Status + "."}})
			return
		}
		pi.Status = "canceled"
		writeJSON(w, http.StatusOK, pi)
	case r.Method == http.MethodPost && path == "/v1/refunds":
		pi := s.intents[form.Get("payment_intent")]
		if pi == nil || pi.Status != "succeeded" {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"type": "invalid_request_error",
				"code": "charge_not_refundable", "message": "This PaymentIntent has no successful charge to refund."}})
			return
		}
		s.seq++
		re := Refund{ID: fmt.Sprintf("re_stage_%04d", s.seq), Object: "refund", Amount: pi.Amount, Status: "succeeded", PaymentIntent: pi.ID,
			Metadata: map[string]string{webhooks.StripeExternalRefKey: form.Get("metadata[" + webhooks.StripeExternalRefKey + "]")}}
		s.refunds = append(s.refunds, re)
		writeJSON(w, http.StatusOK, re)
	case r.Method == http.MethodGet && path == "/v1/refunds":
		data := []Refund{}
		for _, re := range s.refunds {
			if re.PaymentIntent == r.URL.Query().Get("payment_intent") {
				data = append(data, re)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"type": "invalid_request_error", "message": "not staged: " + path}})
	}
}

// validate sends the request to stripe-mock; a refusal is passed on as the
// answer. It reports whether the request was valid.
func (s *Stage) validate(w http.ResponseWriter, r *http.Request, body []byte) bool {
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// IntentByRef returns the PaymentIntent whose metadata holds the external
// reference.
func (s *Stage) IntentByRef(ref string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pi := range s.intents {
		if pi.Metadata[webhooks.StripeExternalRefKey] == ref {
			return pi.ID, true
		}
	}
	return "", false
}

// Counts are the PaymentIntents made, the pages listed and the searches
// made.
func (s *Stage) Counts() (intents, lists, searches int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.intents), s.lists, s.searches
}

// Set changes a PaymentIntent as the customer's payment (or Stripe) would.
func (s *Stage) Set(id, status string, paymentErr *PaymentError) Intent {
	s.mu.Lock()
	defer s.mu.Unlock()
	pi := s.intents[id]
	pi.Status, pi.LastPaymentError = status, paymentErr
	return *pi
}

// Status is the PaymentIntent's status.
func (s *Stage) Status(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.intents[id].Status
}

// Reads counts the reads of the PaymentIntent.
func (s *Stage) Reads(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[id]
}

// RefundsOf counts the refunds of the PaymentIntent.
func (s *Stage) RefundsOf(id string) int {
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
