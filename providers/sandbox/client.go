package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers"
)

// Client talks to one system of a sandbox (or of anything that speaks its
// API). One Client implements every providers interface; each system gets
// its own Client with its own base URL, e.g. http://localhost:8090/payments.
type Client struct {
	system string
	http   *providers.HTTPClient
}

// NewClient returns a client for the system served at baseURL. Its
// look-ups use the query parameters its contract names for each record
// (opts.Contract), external_ref when none does.
func NewClient(system, baseURL string, opts providers.HTTPOptions) *Client {
	return &Client{system: system, http: providers.NewHTTPClient(system, baseURL, opts)}
}

// HTTP is the client's transport, shared with its authenticator.
func (c *Client) HTTP() *providers.HTTPClient { return c.http }

var (
	_ providers.CRM        = (*Client)(nil)
	_ providers.Payments   = (*Client)(nil)
	_ providers.Accounting = (*Client)(nil)
	_ providers.Mailer     = (*Client)(nil)
)

// UpsertContact creates or updates the contact with the request's e-mail.
func (c *Client) UpsertContact(ctx context.Context, call providers.Call, req providers.ContactRequest) (providers.Contact, error) {
	var out providers.Contact
	err := c.http.Do(ctx, providers.Request{Operation: "upsert_contact", Method: http.MethodPost, Path: "/contacts", Call: call, Body: req}, &out)
	return out, err
}

// CreateCharge asks for a charge; it starts pending.
func (c *Client) CreateCharge(ctx context.Context, call providers.Call, req providers.ChargeRequest) (providers.Charge, error) {
	var out providers.Charge
	err := c.http.Do(ctx, providers.Request{Operation: "create_charge", Method: http.MethodPost, Path: "/charges", Call: call, Body: req}, &out)
	return out, err
}

// GetCharge reads a charge's current state.
func (c *Client) GetCharge(ctx context.Context, call providers.Call, id string) (providers.Charge, error) {
	var out providers.Charge
	err := c.http.Do(ctx, providers.Request{Operation: "get_charge", Method: http.MethodGet, Path: "/charges/" + url.PathEscape(id), Call: call}, &out)
	return out, err
}

// FindCharge looks a charge up by its external reference.
func (c *Client) FindCharge(ctx context.Context, call providers.Call, externalRef string) (providers.Charge, bool, error) {
	return find[providers.Charge](ctx, c, call, "find_charge", "/charges", "charge", externalRef)
}

// RefundCharge refunds a whole charge.
func (c *Client) RefundCharge(ctx context.Context, call providers.Call, req providers.RefundRequest) (providers.Refund, error) {
	var out providers.Refund
	err := c.http.Do(ctx, providers.Request{Operation: "create_refund", Method: http.MethodPost, Path: "/refunds", Call: call, Body: req}, &out)
	return out, err
}

// FindRefund finds a refund of the charge, whoever made it.
func (c *Client) FindRefund(ctx context.Context, call providers.Call, chargeID string) (providers.Refund, bool, error) {
	var page listPage[providers.Refund]
	param, err := c.lookup("find_refund", "refund", "charge")
	if err != nil {
		return providers.Refund{}, false, err
	}
	q := url.Values{param: {chargeID}}
	if err := c.http.Do(ctx, providers.Request{Operation: "find_refund", Method: http.MethodGet, Path: "/refunds?" + q.Encode(), Call: call}, &page); err != nil {
		return providers.Refund{}, false, err
	}
	for _, re := range page.Data {
		if re.Status == "succeeded" || re.Status == "pending" {
			return re, true, nil
		}
	}
	return providers.Refund{}, false, nil
}

// CancelCharge cancels a pending charge; a settled one is answered as it is.
func (c *Client) CancelCharge(ctx context.Context, call providers.Call, id string) (providers.Charge, error) {
	var out providers.Charge
	err := c.http.Do(ctx, providers.Request{Operation: "cancel_charge", Method: http.MethodPost, Path: "/charges/" + url.PathEscape(id) + "/cancel", Call: call}, &out)
	return out, err
}

// VoidInvoice voids an invoice.
func (c *Client) VoidInvoice(ctx context.Context, call providers.Call, id string) (providers.Invoice, error) {
	var out providers.Invoice
	err := c.http.Do(ctx, providers.Request{Operation: "void_invoice", Method: http.MethodPost, Path: "/invoices/" + url.PathEscape(id) + "/void", Call: call}, &out)
	return out, err
}

// CreateInvoice asks for an invoice.
func (c *Client) CreateInvoice(ctx context.Context, call providers.Call, req providers.InvoiceRequest) (providers.Invoice, error) {
	var out providers.Invoice
	err := c.http.Do(ctx, providers.Request{Operation: "create_invoice", Method: http.MethodPost, Path: "/invoices", Call: call, Body: req}, &out)
	return out, err
}

// FindInvoice looks an invoice up by its external reference.
func (c *Client) FindInvoice(ctx context.Context, call providers.Call, externalRef string) (providers.Invoice, bool, error) {
	return find[providers.Invoice](ctx, c, call, "find_invoice", "/invoices", "invoice", externalRef)
}

// SendMessage sends one e-mail.
func (c *Client) SendMessage(ctx context.Context, call providers.Call, req providers.MessageRequest) (providers.Message, error) {
	var out providers.Message
	err := c.http.Do(ctx, providers.Request{Operation: "send_message", Method: http.MethodPost, Path: "/messages", Call: call, Body: req}, &out)
	return out, err
}

// FindMessage looks an e-mail up by its external reference.
func (c *Client) FindMessage(ctx context.Context, call providers.Call, externalRef string) (providers.Message, bool, error) {
	return find[providers.Message](ctx, c, call, "find_message", "/messages", "message", externalRef)
}

// lookup is the query parameter by which the contract says a record is
// found; a record the contract says cannot be looked up fails the call as
// Unsupported.
func (c *Client) lookup(op, record, fallback string) (string, error) {
	param := c.http.Lookup(record, fallback)
	if param == "none" || param == "search" {
		return "", &providers.Error{System: c.system, Operation: op, Category: action.CategoryPermanent, Type: action.TypeUnsupported,
			Err: fmt.Errorf("the contract says a %s cannot be looked up by a query parameter (lookup: %s)", record, param)}
	}
	return param, nil
}

func find[T any](ctx context.Context, c *Client, call providers.Call, op, path, record, ref string) (T, bool, error) {
	var page listPage[T]
	var zero T
	param, err := c.lookup(op, record, "external_ref")
	if err != nil {
		return zero, false, err
	}
	q := url.Values{param: {ref}, "page_size": {"1"}}
	if err := c.http.Do(ctx, providers.Request{Operation: op, Method: http.MethodGet, Path: path + "?" + q.Encode(), Call: call}, &page); err != nil {
		return zero, false, err
	}
	if len(page.Data) == 0 {
		return zero, false, nil
	}
	return page.Data[0], true, nil
}

var (
	_ providers.ChargeLister  = (*Client)(nil)
	_ providers.InvoiceLister = (*Client)(nil)
	_ providers.MessageFinder = (*Client)(nil)
	_ providers.ContactFinder = (*Client)(nil)
)

// ListCharges returns one page of charges after the cursor (the sandbox
// does not filter by creation time).
func (c *Client) ListCharges(ctx context.Context, call providers.Call, page providers.Page) ([]providers.Charge, string, error) {
	return listPageOf[providers.Charge](ctx, c, call, "list_charges", "/charges", page.Cursor, page.Limit)
}

// FindChargesByRefs returns every charge with one of the references.
func (c *Client) FindChargesByRefs(ctx context.Context, call providers.Call, refs []string) ([]providers.Charge, error) {
	return findAll[providers.Charge](ctx, c, call, "find_charges", "/charges", "charge", refs)
}

// ListInvoices returns one page of invoices after the cursor.
func (c *Client) ListInvoices(ctx context.Context, call providers.Call, page providers.Page) ([]providers.Invoice, string, error) {
	return listPageOf[providers.Invoice](ctx, c, call, "list_invoices", "/invoices", page.Cursor, page.Limit)
}

// FindInvoicesByRefs returns every invoice with one of the references.
func (c *Client) FindInvoicesByRefs(ctx context.Context, call providers.Call, refs []string) ([]providers.Invoice, error) {
	return findAll[providers.Invoice](ctx, c, call, "find_invoices", "/invoices", "invoice", refs)
}

// FindMessagesByRefs returns every e-mail with one of the references.
func (c *Client) FindMessagesByRefs(ctx context.Context, call providers.Call, refs []string) ([]providers.Message, error) {
	return findAll[providers.Message](ctx, c, call, "find_messages", "/messages", "message", refs)
}

// FindContactsByIDs returns the contacts with the ids that exist.
func (c *Client) FindContactsByIDs(ctx context.Context, call providers.Call, ids []string) ([]providers.Contact, error) {
	return findAll[providers.Contact](ctx, c, call, "find_contacts", "/contacts", "contact", ids)
}

func listPageOf[T any](ctx context.Context, c *Client, call providers.Call, op, path, cursor string, limit int) ([]T, string, error) {
	q := url.Values{"page_size": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("page_token", cursor)
	}
	var page listPage[T]
	if err := c.http.Do(ctx, providers.Request{Operation: op, Method: http.MethodGet, Path: path + "?" + q.Encode(), Call: call}, &page); err != nil {
		return nil, "", err
	}
	return page.Data, page.NextPageToken, nil
}

func findAll[T any](ctx context.Context, c *Client, call providers.Call, op, path, record string, values []string) ([]T, error) {
	if len(values) == 0 {
		return nil, nil
	}
	param, err := c.lookup(op, record, "external_ref")
	if err != nil {
		return nil, err
	}
	var page listPage[T]
	q := url.Values{param: values}
	if err := c.http.Do(ctx, providers.Request{Operation: op, Method: http.MethodGet, Path: path + "?" + q.Encode(), Call: call}, &page); err != nil {
		return nil, err
	}
	return page.Data, nil
}
