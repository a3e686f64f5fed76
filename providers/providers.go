// Package providers defines what handoff needs from each external system
// (payments, accounting, CRM, e-mail), the records those systems return, and
// the one place where a provider's answer is classified as temporary,
// permanent or ambiguous. Implementations live in sub-packages: sandbox for
// the local simulator, stripe for Stripe.
package providers

import "context"

// Call carries what every request to a provider sends besides its body.
type Call struct {
	// IdempotencyKey names the action, not the attempt: "<workflow id>/<step>".
	// Every attempt of a step sends the same key, and it is stored as the
	// remote record's external reference.
	IdempotencyKey string
	// CorrelationID ties the provider's logs to the business action.
	CorrelationID string
}

// Contact is a customer record in the CRM.
type Contact struct {
	ID          string `json:"id"`
	Email       string `json:"email"`
	Name        string `json:"name"`
	Phone       string `json:"phone,omitempty"`
	ExternalRef string `json:"external_ref"`
	Version     int64  `json:"version,omitempty"`
}

// ContactRequest creates or updates the contact with the given e-mail.
type ContactRequest struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// Charge statuses.
const (
	ChargePending   = "pending"
	ChargeSucceeded = "succeeded"
	ChargeFailed    = "failed"
	ChargeRefunded  = "refunded"
	// ChargeCanceled is a charge cancelled before it settled: it can no
	// longer take money.
	ChargeCanceled = "canceled"
)

// Charge is a payment at the payments provider.
type Charge struct {
	ID             string `json:"id"`
	ExternalRef    string `json:"external_ref"`
	Status         string `json:"status"`
	Amount         int64  `json:"amount"`
	Currency       string `json:"currency"`
	Customer       string `json:"customer"`
	Email          string `json:"email,omitempty"`
	Created        int64  `json:"created,omitempty"`
	FailureCode    string `json:"failure_code,omitempty"`
	FailureMessage string `json:"failure_message,omitempty"`
}

// ChargeRequest asks for a charge of Amount minor units.
type ChargeRequest struct {
	Amount      int64  `json:"amount"`
	Currency    string `json:"currency"`
	Customer    string `json:"customer"`
	Email       string `json:"email"`
	Description string `json:"description"`
}

// InvoiceLine is one line of an invoice.
type InvoiceLine struct {
	SKU        string `json:"sku"`
	Quantity   int64  `json:"quantity"`
	UnitAmount int64  `json:"unit_amount"`
}

// Invoice is a document at the accounting provider.
type Invoice struct {
	ID          string        `json:"id"`
	ExternalRef string        `json:"external_ref"`
	Status      string        `json:"status"`
	Customer    string        `json:"customer"`
	Amount      int64         `json:"amount"`
	Currency    string        `json:"currency"`
	Charge      string        `json:"charge"`
	Lines       []InvoiceLine `json:"lines"`
	// Created is when the invoice was made (unix seconds), 0 when unknown.
	Created int64 `json:"created,omitempty"`
}

// InvoiceRequest asks for an invoice for a paid charge.
type InvoiceRequest struct {
	Customer string        `json:"customer"`
	Amount   int64         `json:"amount"`
	Currency string        `json:"currency"`
	Charge   string        `json:"charge"`
	Lines    []InvoiceLine `json:"lines"`
}

// Message is an e-mail accepted by the mail provider.
type Message struct {
	ID          string `json:"id"`
	ExternalRef string `json:"external_ref"`
	Status      string `json:"status"`
	To          string `json:"to"`
	Subject     string `json:"subject"`
}

// MessageRequest asks for one e-mail to be sent.
type MessageRequest struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
}

// Refund returns a charge's money.
type Refund struct {
	ID          string `json:"id"`
	ExternalRef string `json:"external_ref"`
	Charge      string `json:"charge"`
	Amount      int64  `json:"amount"`
	Status      string `json:"status"`
}

// RefundRequest asks for a whole charge to be refunded.
type RefundRequest struct {
	Charge string `json:"charge"`
}

// CRM keeps customer records.
type CRM interface {
	UpsertContact(ctx context.Context, call Call, req ContactRequest) (Contact, error)
}

// Payments takes money.
type Payments interface {
	CreateCharge(ctx context.Context, call Call, req ChargeRequest) (Charge, error)
	GetCharge(ctx context.Context, call Call, id string) (Charge, error)
	// FindCharge looks a charge up by its external reference; found is false
	// when none exists.
	FindCharge(ctx context.Context, call Call, externalRef string) (c Charge, found bool, err error)
	// RefundCharge refunds a whole charge; the call's idempotency key makes
	// it happen once.
	RefundCharge(ctx context.Context, call Call, req RefundRequest) (Refund, error)
	// FindRefund looks up a refund of the charge, whoever made it (handoff,
	// or a person at the provider); found is false when there is none.
	FindRefund(ctx context.Context, call Call, chargeID string) (r Refund, found bool, err error)
	// CancelCharge cancels a charge that has not settled, so that it can no
	// longer take money, and returns the charge as it then stands: canceled,
	// or as it was when it had already settled or cannot be cancelled yet.
	CancelCharge(ctx context.Context, call Call, id string) (Charge, error)
}

// Accounting keeps invoices.
type Accounting interface {
	CreateInvoice(ctx context.Context, call Call, req InvoiceRequest) (Invoice, error)
	FindInvoice(ctx context.Context, call Call, externalRef string) (inv Invoice, found bool, err error)
	// VoidInvoice voids an invoice; voiding a void invoice changes nothing.
	VoidInvoice(ctx context.Context, call Call, id string) (Invoice, error)
}

// Mailer sends e-mail.
type Mailer interface {
	SendMessage(ctx context.Context, call Call, req MessageRequest) (Message, error)
	FindMessage(ctx context.Context, call Call, externalRef string) (m Message, found bool, err error)
}

// CustomerRecord is a customer as one system keeps it: a CRM contact, an
// accounting customer. Fields holds the customer fields the system keeps,
// by handoff's names (action.CustomerFields); Version grows with every
// change to the record, whoever made it.
type CustomerRecord struct {
	ID          string            `json:"id"`
	ExternalRef string            `json:"external_ref"`
	Version     int64             `json:"version"`
	Fields      map[string]string `json:"fields"`
}

// CustomerWrite changes a customer record: the fields to set and, when not
// empty, the external reference to store on it. IfVersion, when positive,
// makes the write apply only to that version of the record: a record that
// changed since is answered with ErrStaleRecord.
type CustomerWrite struct {
	Fields      map[string]string
	ExternalRef string
	IfVersion   int64
}

// CustomerQuery finds customer records by the external reference handoff
// stored on them, or by normalized e-mail address.
type CustomerQuery struct {
	ExternalRef string
	Email       string
}

// Customers is a system that keeps customer records (a CRM's contacts, an
// accounting system's customers), for the customer's workflow.
type Customers interface {
	// CustomerFields are the customer fields the system keeps.
	CustomerFields() []string
	FindCustomers(ctx context.Context, call Call, q CustomerQuery) ([]CustomerRecord, error)
	GetCustomer(ctx context.Context, call Call, id string) (CustomerRecord, error)
	// CreateCustomer makes a record holding the fields and the reference;
	// the call's idempotency key makes it once.
	CreateCustomer(ctx context.Context, call Call, w CustomerWrite) (CustomerRecord, error)
	UpdateCustomer(ctx context.Context, call Call, id string, w CustomerWrite) (CustomerRecord, error)
	// ListCustomers pages through every record, for reconciliation.
	ListCustomers(ctx context.Context, call Call, page Page) ([]CustomerRecord, string, error)
}
