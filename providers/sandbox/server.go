// Package sandbox is handoff's provider simulator: a small in-memory REST API
// per system (/payments, /accounting, /crm, /mail) that behaves like the real
// providers where it matters for reliability — Stripe-style Idempotency-Key
// handling, lookup by external reference, cursor-paged lists, charges that
// settle asynchronously — plus a client that implements the providers
// interfaces against it, and test-only endpoints under /_sandbox/ that let a
// test prove nothing happened twice.
package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers"
)

// DeclineEmailPrefix makes a charge fail: the sandbox declines every charge
// whose customer e-mail starts with it, as a test card number would.
const DeclineEmailPrefix = "decline"

// HoldEmailPrefix keeps a charge pending: the sandbox never settles a charge
// whose customer e-mail starts with it, as a payment the customer never
// completes. Only cancelling it ends it.
const HoldEmailPrefix = "pending"

const (
	maxRequestBytes = 64 << 10
	defaultPageSize = 100
	maxPageSize     = 1000
)

// Options configures a Server.
type Options struct {
	// SettleDelay is how long a charge stays pending; default 200 ms.
	SettleDelay time.Duration
	// WebhookDelay is how long every event waits before it is delivered,
	// beside what faults add; default none.
	WebhookDelay time.Duration
	// ClientID and ClientSecret, when set, make every provider call need an
	// access token from POST /oauth/token; TokenTTL is its lifetime
	// (default 1 h).
	ClientID     string
	ClientSecret string
	TokenTTL     time.Duration
	// WebhookURL and WebhookSecret, when set, make the sandbox deliver
	// signed events (Standard Webhooks) to WebhookURL + "/<system>".
	WebhookURL    string
	WebhookSecret string
	// WebhookSecrets, by system, sign the events of the CRM's contacts and
	// accounting's customers; a system without one sends none.
	WebhookSecrets map[string]string
	Logger         *slog.Logger
}

// Server is the sandbox's HTTP handler and its in-memory state.
type Server struct {
	mu sync.Mutex
	// contacts and customers are the CRM's and accounting's customer
	// records; books holds them by system.
	contacts  *book
	customers *book
	books     map[string]*book
	charges   *collection[providers.Charge]
	invoices  *collection[providers.Invoice]
	messages  *collection[providers.Message]
	refunds   *collection[providers.Refund]

	settleDelay time.Duration
	log         *slog.Logger
	mux         *http.ServeMux
	timers      sync.WaitGroup
	faults      faults
	calls       callLog
	auth        *authority
	webhooks    *sender
}

// NewServer returns a sandbox with empty state.
func NewServer(opts Options) *Server {
	if opts.SettleDelay == 0 {
		opts.SettleDelay = 200 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = time.Hour
	}
	// The sandbox keeps its records in memory while Temporal keeps workflows
	// across restarts; an instance tag in every id makes a workflow that
	// outlived a sandbox get "not found" instead of another order's record.
	instance := randomTag()
	s := &Server{
		contacts:    newBook("crm", "contact", "ct_"+instance, crmFields),
		customers:   newBook("accounting", "customer", "cu_"+instance, accountingFields),
		charges:     newCollection[providers.Charge]("ch_" + instance),
		invoices:    newCollection[providers.Invoice]("in_" + instance),
		messages:    newCollection[providers.Message]("msg_" + instance),
		refunds:     newCollection[providers.Refund]("re_" + instance),
		settleDelay: opts.SettleDelay,
		log:         opts.Logger,
		mux:         http.NewServeMux(),
		auth: &authority{clientID: opts.ClientID, secret: opts.ClientSecret, ttl: opts.TokenTTL,
			tokens: map[string]time.Time{}},
		webhooks: newSender(strings.TrimRight(opts.WebhookURL, "/"), opts.WebhookSecret, opts.WebhookSecrets, instance, opts.WebhookDelay, opts.Logger),
	}
	s.books = map[string]*book{"crm": s.contacts, "accounting": s.customers}
	s.routes()
	return s
}

func (s *Server) routes() {
	s.handle("POST /crm/contacts", "crm", "upsert_contact", s.upsertContact)
	s.handle("PATCH /crm/contacts/{id}", "crm", "update_contact", s.updateParty(s.contacts))
	s.handle("GET /crm/contacts/{id}", "crm", "get_contact", getOne(s, s.contacts.records))
	s.handle("GET /crm/contacts", "crm", "list_contacts", s.listParties(s.contacts))

	s.handle("POST /accounting/customers", "accounting", "create_customer", s.createParty(s.customers))
	s.handle("PATCH /accounting/customers/{id}", "accounting", "update_customer", s.updateParty(s.customers))
	s.handle("GET /accounting/customers/{id}", "accounting", "get_customer", getOne(s, s.customers.records))
	s.handle("GET /accounting/customers", "accounting", "list_customers", s.listParties(s.customers))

	s.handle("POST /payments/charges", "payments", "create_charge", s.createCharge)
	s.handle("GET /payments/charges/{id}", "payments", "get_charge", getOne(s, s.charges))
	s.handle("GET /payments/charges", "payments", "list_charges", list(s, s.charges))

	s.handle("POST /payments/charges/{id}/cancel", "payments", "cancel_charge", s.cancelCharge)

	s.handle("POST /payments/refunds", "payments", "create_refund", s.createRefund)
	s.handle("GET /payments/refunds", "payments", "list_refunds", s.listRefunds)

	s.handle("POST /accounting/invoices", "accounting", "create_invoice", s.createInvoice)
	s.handle("POST /accounting/invoices/{id}/void", "accounting", "void_invoice", s.voidInvoice)
	s.handle("GET /accounting/invoices/{id}", "accounting", "get_invoice", getOne(s, s.invoices))
	s.handle("GET /accounting/invoices", "accounting", "list_invoices", list(s, s.invoices))

	s.handle("POST /mail/messages", "mail", "send_message", s.sendMessage)
	s.handle("GET /mail/messages/{id}", "mail", "get_message", getOne(s, s.messages))
	s.handle("GET /mail/messages", "mail", "list_messages", list(s, s.messages))

	s.mux.HandleFunc("POST /oauth/token", s.auth.token)

	s.mux.HandleFunc("GET /_sandbox/state", s.state)
	s.mux.HandleFunc("GET /_sandbox/calls", s.getCalls)
	s.mux.HandleFunc("GET /_sandbox/webhooks", s.getDeliveries)
	s.mux.HandleFunc("GET /_sandbox/faults", s.getFaults)
	s.mux.HandleFunc("POST /_sandbox/faults", s.postFault)
	s.mux.HandleFunc("DELETE /_sandbox/faults", s.deleteFaults)
	s.mux.HandleFunc("POST /_sandbox/revoke", func(w http.ResponseWriter, _ *http.Request) {
		s.auth.revokeClient()
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("DELETE /_sandbox/revoke", func(w http.ResponseWriter, _ *http.Request) {
		s.auth.restore()
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("POST /_sandbox/seed", s.seed)
	s.mux.HandleFunc("POST /_sandbox/charges/{id}/settle", s.settleCharge)
	s.mux.HandleFunc("DELETE /_sandbox/records/{system}/{kind}/{id}", s.deleteRecord)
	s.mux.HandleFunc("PATCH /_sandbox/records/accounting/invoices/{id}", s.patchInvoice)
	s.mux.HandleFunc("POST /_sandbox/records/crm/contacts", s.byHand(s.contacts))
	s.mux.HandleFunc("PATCH /_sandbox/records/crm/contacts/{id}", s.byHand(s.contacts))
	s.mux.HandleFunc("POST /_sandbox/records/accounting/customers", s.byHand(s.customers))
	s.mux.HandleFunc("PATCH /_sandbox/records/accounting/customers/{id}", s.byHand(s.customers))
	s.mux.HandleFunc("GET /_sandbox/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
}

// handle registers a provider operation. Every operation goes through here:
// it is logged, its token checked, and an active fault applied to it.
func (s *Server) handle(pattern, system, operation string, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		call := Call{Time: time.Now(), System: system, Operation: operation,
			IdempotencyKey: r.Header.Get(providers.HeaderIdempotencyKey), Path: r.URL.RequestURI()}
		s.log.Debug("sandbox call", "system", system, "operation", operation,
			"idempotency_key", call.IdempotencyKey, "correlation_id", r.Header.Get(providers.HeaderCorrelationID))
		f := s.faults.take(system, operation, call.IdempotencyKey)
		if f != nil {
			call.Fault = f.Mode
		}
		s.calls.add(call)
		// Every answer names the API version it speaks, as a provider's
		// does (its contracts' version_header).
		w.Header().Set(HeaderVersion, APIVersion)
		if f != nil && f.Mode == FaultExpiredToken {
			s.inject(f, w, r, h)
			return
		}
		if aerr := s.auth.check(r); aerr != nil {
			aerr.write(w)
			return
		}
		if f != nil && s.inject(f, w, r, h) {
			return
		}
		h(w, r)
	})
}

// HeaderVersion carries the sandbox API's version on every answer;
// APIVersion is the version it speaks, the one its contracts pin.
const (
	HeaderVersion = "Sandbox-Version"
	APIVersion    = "1"
)

// TokensIssued counts the access tokens the sandbox has issued.
func (s *Server) TokensIssued() int { return s.auth.tokensIssued() }

func randomTag() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail on supported platforms
	return hex.EncodeToString(b)
}

// ServeHTTP serves the sandbox API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close waits for pending charge settlements, then stops delivering webhooks.
func (s *Server) Close() {
	s.timers.Wait()
	s.webhooks.close()
}

func (s *Server) upsertContact(w http.ResponseWriter, r *http.Request) {
	var req struct {
		providers.ContactRequest
		Phone          string `json:"phone"`
		BillingAddress string `json:"billing_address"`
	}
	cr, aerr := readCreate(w, r, &req)
	if aerr != nil {
		aerr.write(w)
		return
	}
	req.Email = strings.TrimSpace(req.Email)
	if !strings.Contains(req.Email, "@") {
		invalid("email_invalid", "email must be an e-mail address").write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if replay(w, s.contacts.records.byKey, cr) {
		return
	}
	if c, ok := s.contacts.first(req.Email); ok {
		if s.contacts.change(c, map[string]string{action.FieldName: req.Name}, "") {
			s.contacts.apiWrites++
			s.recordEvent(s.contacts, c, false)
		}
		remember(w, s.contacts.records.byKey, cr, http.StatusOK, *c)
		return
	}
	c := s.addContact(map[string]string{action.FieldEmail: req.Email, action.FieldName: req.Name, action.FieldPhone: req.Phone,
		action.FieldBillingAddress: req.BillingAddress}, cr.ref, cr.key)
	s.contacts.apiWrites++
	s.recordEvent(s.contacts, c, true)
	remember(w, s.contacts.records.byKey, cr, http.StatusOK, *c)
}

// create serves every create call the same way: read and validate the
// body, answer a repeated idempotency key from memory, or build the new
// record (under s.mu), store it under its key and reference, and remember
// the answer. A build that refuses answers its error, which is not
// remembered.
func create[T any, R any](s *Server, w http.ResponseWriter, r *http.Request, c *collection[T], validate func(*R) *apiError, build func(id string, cr createRequest, req *R) (*T, *apiError)) {
	var req R
	cr, aerr := readCreate(w, r, &req)
	if aerr == nil && validate != nil {
		aerr = validate(&req)
	}
	if aerr != nil {
		aerr.write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if replay(w, c.byKey, cr) {
		return
	}
	id := c.nextID()
	rec, aerr := build(id, cr, &req)
	if aerr != nil {
		aerr.write(w)
		return
	}
	c.add(id, cr.ref, cr.key, rec)
	remember(w, c.byKey, cr, http.StatusOK, *rec)
}

func (s *Server) createCharge(w http.ResponseWriter, r *http.Request) {
	create(s, w, r, s.charges, func(req *providers.ChargeRequest) *apiError { return validateMoney(req.Amount, req.Currency) },
		func(id string, cr createRequest, req *providers.ChargeRequest) (*providers.Charge, *apiError) {
			ch := &providers.Charge{ID: id, ExternalRef: cr.ref, Status: providers.ChargePending,
				Amount: req.Amount, Currency: strings.ToLower(req.Currency), Customer: req.Customer,
				Email: req.Email, Created: time.Now().Unix()}
			s.chargeEvent(ch, 1)
			if email := strings.ToLower(req.Email); !strings.HasPrefix(email, HoldEmailPrefix) {
				s.settleLater(ch, strings.HasPrefix(email, DeclineEmailPrefix))
			}
			return ch, nil
		})
}

// settleLater moves a pending charge to succeeded (or failed) after the
// settle delay, as a card network would.
func (s *Server) settleLater(ch *providers.Charge, decline bool) {
	s.timers.Add(1)
	time.AfterFunc(s.settleDelay, func() {
		defer s.timers.Done()
		s.mu.Lock()
		defer s.mu.Unlock()
		if ch.Status != providers.ChargePending {
			return // cancelled meanwhile
		}
		if decline {
			ch.Status, ch.FailureCode, ch.FailureMessage = providers.ChargeFailed, "card_declined", "Your card was declined."
		} else {
			ch.Status = providers.ChargeSucceeded
		}
		s.chargeEvent(ch, 2)
	})
}

func (s *Server) createInvoice(w http.ResponseWriter, r *http.Request) {
	create(s, w, r, s.invoices, func(req *providers.InvoiceRequest) *apiError {
		if aerr := validateMoney(req.Amount, req.Currency); aerr != nil {
			return aerr
		}
		if len(req.Lines) == 0 {
			return invalid("lines_missing", "an invoice needs at least one line")
		}
		return nil
	}, func(id string, cr createRequest, req *providers.InvoiceRequest) (*providers.Invoice, *apiError) {
		return &providers.Invoice{ID: id, ExternalRef: cr.ref, Status: "open", Customer: req.Customer,
			Amount: req.Amount, Currency: strings.ToLower(req.Currency), Charge: req.Charge, Lines: req.Lines, Created: time.Now().Unix()}, nil
	})
}

func (s *Server) sendMessage(w http.ResponseWriter, r *http.Request) {
	create(s, w, r, s.messages, func(req *providers.MessageRequest) *apiError {
		if !strings.Contains(req.To, "@") {
			return invalid("to_invalid", "to must be an e-mail address")
		}
		return nil
	}, func(id string, cr createRequest, req *providers.MessageRequest) (*providers.Message, *apiError) {
		return &providers.Message{ID: id, ExternalRef: cr.ref, Status: "sent", To: req.To, Subject: req.Subject}, nil
	})
}

func validateMoney(amount int64, currency string) *apiError {
	if amount <= 0 {
		return invalid("amount_invalid", "amount must be a positive number of minor units")
	}
	if len(currency) != 3 {
		return invalid("currency_invalid", "currency must be a three-letter ISO 4217 code")
	}
	return nil
}

// State is the answer of GET /_sandbox/state: per system and collection, how
// many records exist in all, per idempotency key, per external reference and
// per status.
type State map[string]map[string]collectionState

func (s *Server) state(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.State())
}

// State returns a snapshot of the sandbox's record counts.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return State{
		"crm": {"contacts": s.contacts.records.state(nil)},
		"payments": {
			"charges": s.charges.state(func(c *providers.Charge) string { return c.Status }),
			"refunds": s.refunds.state(func(r *providers.Refund) string { return r.Status }),
		},
		"accounting": {
			"invoices":  s.invoices.state(func(i *providers.Invoice) string { return i.Status }),
			"customers": s.customers.records.state(nil),
		},
		"mail": {"messages": s.messages.state(func(m *providers.Message) string { return m.Status })},
	}
}

// createRefund refunds a whole succeeded charge, once per charge: a second
// refund of the same charge under another key is refused, as providers do.
func (s *Server) createRefund(w http.ResponseWriter, r *http.Request) {
	create(s, w, r, s.refunds, nil, func(id string, cr createRequest, req *providers.RefundRequest) (*providers.Refund, *apiError) {
		ch, ok := s.charges.get(req.Charge)
		switch {
		case !ok:
			return nil, missing("charge", req.Charge)
		case ch.Status != providers.ChargeSucceeded:
			return nil, invalid("charge_not_refundable", "only a succeeded charge can be refunded; this one is "+ch.Status)
		}
		ch.Status = providers.ChargeRefunded
		return &providers.Refund{ID: id, ExternalRef: cr.ref, Charge: ch.ID, Amount: ch.Amount, Status: "succeeded"}, nil
	})
}

// cancelCharge cancels a pending charge, so that it can no longer succeed,
// and answers the charge as it then stands: a charge that had already
// settled (or was cancelled before) is answered unchanged, so cancelling
// is idempotent.
func (s *Server) cancelCharge(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.charges.get(r.PathValue("id"))
	if !ok {
		missing("charge", r.PathValue("id")).write(w)
		return
	}
	if ch.Status == providers.ChargePending {
		ch.Status, ch.FailureCode, ch.FailureMessage = providers.ChargeCanceled, "canceled", "The charge was cancelled before it settled."
		s.chargeEvent(ch, 2)
	}
	writeJSON(w, http.StatusOK, *ch)
}

// listRefunds lists refunds; ?charge= finds every refund of one charge,
// whoever made it.
func (s *Server) listRefunds(w http.ResponseWriter, r *http.Request) {
	charge := r.URL.Query().Get("charge")
	if charge == "" {
		list(s, s.refunds)(w, r)
		return
	}
	s.mu.Lock()
	page := listPage[providers.Refund]{Object: "list", Data: []providers.Refund{}}
	for _, id := range s.refunds.ids {
		if re, _ := s.refunds.get(id); re.Charge == charge {
			page.Data = append(page.Data, *re)
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, page)
}

// voidInvoice voids an invoice; voiding it again answers the void invoice.
func (s *Server) voidInvoice(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.invoices.get(r.PathValue("id"))
	if !ok {
		missing("invoice", r.PathValue("id")).write(w)
		return
	}
	inv.Status = "void"
	writeJSON(w, http.StatusOK, *inv)
}

// addContact stores a new contact. The caller holds s.mu.
func (s *Server) addContact(fields map[string]string, ref, key string) *party {
	return s.contacts.add(fields, ref, key)
}
