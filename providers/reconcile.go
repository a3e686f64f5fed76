package providers

import (
	"context"
	"time"
)

// Page asks for one page of a list: the records after Cursor, at most
// Limit of them. A provider that can filter by creation time lists only
// the records created within [After, Before] (a zero time is open);
// one that cannot lists them all, and the caller filters.
type Page struct {
	Cursor string
	Limit  int
	After  time.Time
	Before time.Time
}

// Reconciliation reads providers in pages and looks records up in batches.
// Not every provider offers this; the reconciliation activities ask for
// these interfaces and say so when one is missing.

// ChargeLister pages through charges and finds them by external reference.
type ChargeLister interface {
	ListCharges(ctx context.Context, call Call, page Page) (charges []Charge, next string, err error)
	FindChargesByRefs(ctx context.Context, call Call, refs []string) ([]Charge, error)
}

// InvoiceLister pages through invoices and finds them by external reference.
type InvoiceLister interface {
	ListInvoices(ctx context.Context, call Call, page Page) (invoices []Invoice, next string, err error)
	FindInvoicesByRefs(ctx context.Context, call Call, refs []string) ([]Invoice, error)
}

// MessageFinder finds e-mails by external reference.
type MessageFinder interface {
	FindMessagesByRefs(ctx context.Context, call Call, refs []string) ([]Message, error)
}

// ContactFinder finds contacts by id.
type ContactFinder interface {
	FindContactsByIDs(ctx context.Context, call Call, ids []string) ([]Contact, error)
}
