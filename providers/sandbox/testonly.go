package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/handoff-hq/handoff/providers"
)

// maxSeed bounds one seeding request.
const maxSeed = 1_000_000

// SeedRequest asks for finished orders' records, as if handoff had placed
// them: per order a contact, a succeeded charge, an invoice and an e-mail,
// under the references order/<prefix>-<n>/<step>.
type SeedRequest struct {
	Prefix string `json:"prefix"`
	Orders int    `json:"orders"`
	Amount int64  `json:"amount"`
	// AgeHours is how long ago the orders were made; default 1.
	AgeHours int `json:"age_hours,omitempty"`
}

// seed serves POST /_sandbox/seed (test-only): bulk records for
// reconciliation tests and benchmarks, without webhooks.
func (s *Server) seed(w http.ResponseWriter, r *http.Request) {
	var req SeedRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes)).Decode(&req); err != nil || req.Prefix == "" || req.Orders < 1 || req.Orders > maxSeed {
		invalid("seed_invalid", fmt.Sprintf("want {\"prefix\":…, \"orders\": 1 to %d}", maxSeed)).write(w)
		return
	}
	if req.Amount <= 0 {
		req.Amount = 1000
	}
	s.Seed(req)
	writeJSON(w, http.StatusCreated, req)
}

// Seed adds finished orders' records; see SeedRequest.
func (s *Server) Seed(req SeedRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	age := max(req.AgeHours, 1)
	now := time.Now().Add(-time.Duration(age) * time.Hour).Unix()
	for i := range req.Orders {
		key := fmt.Sprintf("order/%s-%d", req.Prefix, i)
		email := fmt.Sprintf("%s-%d@example.com", req.Prefix, i)
		ct := s.addContact(map[string]string{"email": email, "name": "Seeded"}, key+"/customer", "")
		ch := &providers.Charge{ID: s.charges.nextID(), ExternalRef: key + "/charge", Status: providers.ChargeSucceeded,
			Amount: req.Amount, Currency: "eur", Customer: ct.ID, Email: email, Created: now}
		s.charges.add(ch.ID, ch.ExternalRef, "", ch)
		inv := &providers.Invoice{ID: s.invoices.nextID(), ExternalRef: key + "/invoice", Status: "open", Customer: ct.ID,
			Amount: req.Amount, Currency: "eur", Charge: ch.ID, Lines: []providers.InvoiceLine{{SKU: "seeded", Quantity: 1, UnitAmount: req.Amount}}, Created: now}
		s.invoices.add(inv.ID, inv.ExternalRef, "", inv)
		m := &providers.Message{ID: s.messages.nextID(), ExternalRef: key + "/confirmation", Status: "sent", To: email, Subject: "Your order"}
		s.messages.add(m.ID, m.ExternalRef, "", m)
	}
}

// deleteRecord serves DELETE /_sandbox/records/{system}/{kind}/{id}
// (test-only): a record removed behind handoff's back.
func (s *Server) deleteRecord(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	var ok bool
	switch r.PathValue("system") + "/" + r.PathValue("kind") {
	case "accounting/invoices":
		ok = s.invoices.remove(id)
	case "payments/charges":
		ok = s.charges.remove(id)
	case "mail/messages":
		ok = s.messages.remove(id)
	case "crm/contacts":
		ok = s.contacts.remove(id)
	case "accounting/customers":
		ok = s.customers.remove(id)
	}
	if !ok {
		missing("record", "").write(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// patchInvoice serves PATCH /_sandbox/records/accounting/invoices/{id}
// (test-only): an invoice amount edited by hand.
func (s *Server) patchInvoice(w http.ResponseWriter, r *http.Request) {
	var patch struct {
		Amount int64 `json:"amount"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes)).Decode(&patch); err != nil || patch.Amount <= 0 {
		invalid("patch_invalid", `want {"amount": positive}`).write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.invoices.get(r.PathValue("id"))
	if !ok {
		missing("invoice", "").write(w)
		return
	}
	inv.Amount = patch.Amount
	writeJSON(w, http.StatusOK, *inv)
}

// settleCharge serves POST /_sandbox/charges/{id}/settle (test-only): a
// pending charge settles now, {"status":"succeeded"} or "failed", as when a
// customer completes (or fails) a payment late; its event is delivered.
func (s *Server) settleCharge(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes)).Decode(&req); err != nil ||
		(req.Status != providers.ChargeSucceeded && req.Status != providers.ChargeFailed) {
		invalid("settle_invalid", `want {"status":"succeeded"} or {"status":"failed"}`).write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.charges.get(r.PathValue("id"))
	if !ok {
		missing("charge", "").write(w)
		return
	}
	if ch.Status != providers.ChargePending && ch.Status != providers.ChargeCanceled {
		invalid("charge_settled", "the charge is "+ch.Status).write(w)
		return
	}
	ch.Status = req.Status
	ch.FailureCode, ch.FailureMessage = "", ""
	if req.Status == providers.ChargeFailed {
		ch.FailureCode, ch.FailureMessage = "card_declined", "Your card was declined."
	}
	s.chargeEvent(ch, 3)
	writeJSON(w, http.StatusOK, *ch)
}

// ChargeByRef returns the charge with the external reference, for tests.
func (s *Server) ChargeByRef(ref string) (providers.Charge, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.charges.byRef[ref] {
		if ch, ok := s.charges.get(id); ok {
			return *ch, true
		}
	}
	return providers.Charge{}, false
}

// RefundsOf returns the refunds of a charge, whoever made them, for tests.
func (s *Server) RefundsOf(chargeID string) []providers.Refund {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []providers.Refund
	for _, id := range s.refunds.ids {
		if re, ok := s.refunds.get(id); ok && re.Charge == chargeID {
			out = append(out, *re)
		}
	}
	return out
}
