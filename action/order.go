package action

import (
	"fmt"
	"net/mail"
	"regexp"
	"strings"
)

// Order is the business action "place an order", as the application sends it.
// Amounts are in minor units (cents).
type Order struct {
	OrderID  string   `json:"order_id"`
	Customer Customer `json:"customer"`
	Currency string   `json:"currency"`
	Amount   int64    `json:"amount"`
	Items    []Item   `json:"items"`
}

// Customer is who places the order.
type Customer struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// Item is one line of an order.
type Item struct {
	SKU        string `json:"sku"`
	Quantity   int64  `json:"quantity"`
	UnitAmount int64  `json:"unit_amount"`
}

// FieldError names one invalid field of a request.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

var currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)

// maxItems bounds an order's lines.
const maxItems = 1000

// maxAmount keeps amounts and their sums far from overflow.
const maxAmount = 1 << 40

// Normalize trims and lower-cases what has one canonical form, so that the
// same order sent twice is recognised as the same.
func (o Order) Normalize() Order {
	o.OrderID = strings.TrimSpace(o.OrderID)
	o.Customer.Email = strings.TrimSpace(o.Customer.Email)
	o.Customer.Name = strings.TrimSpace(o.Customer.Name)
	o.Currency = strings.ToLower(strings.TrimSpace(o.Currency))
	items := make([]Item, len(o.Items))
	for i, it := range o.Items {
		it.SKU = strings.TrimSpace(it.SKU)
		items[i] = it
	}
	o.Items = items
	return o
}

// Validate reports every invalid field of a normalized order.
func (o Order) Validate() []FieldError {
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
	}
	if !ValidID(o.OrderID) {
		add("order_id", "must be 1 to 128 letters, digits or . _ : - and start with a letter or digit")
	}
	errs = append(errs, o.Customer.Validate()...)
	if !currencyPattern.MatchString(o.Currency) {
		add("currency", "must be a three-letter ISO 4217 code")
	}
	if o.Amount <= 0 || o.Amount > maxAmount {
		add("amount", "must be a positive number of minor units")
	}
	if len(o.Items) == 0 || len(o.Items) > maxItems {
		add("items", "must list 1 to %d items", maxItems)
	}
	var sum int64
	for i, it := range o.Items {
		field := fmt.Sprintf("items[%d]", i)
		if it.SKU == "" {
			add(field+".sku", "is required")
		}
		if it.Quantity <= 0 || it.Quantity > 1_000_000 {
			add(field+".quantity", "must be between 1 and 1000000")
		}
		if it.UnitAmount < 0 || it.UnitAmount > maxAmount {
			add(field+".unit_amount", "must be zero or a positive number of minor units")
		}
		// Saturate so that no sum of valid lines can overflow.
		sum = min(sum+min(max(it.Quantity, 0), 1_000_000)*min(max(it.UnitAmount, 0), maxAmount), maxAmount+1)
	}
	if len(errs) == 0 && sum != o.Amount {
		add("amount", "is %d but the items add up to %d", o.Amount, sum)
	}
	return errs
}

// Validate reports every invalid field of normalized customer details.
// It is not for workflow code: net/mail is not deterministic to the checker.
func (c Customer) Validate() []FieldError {
	var errs []FieldError
	if addr, err := mail.ParseAddress(c.Email); err != nil || addr.Address != c.Email {
		errs = append(errs, FieldError{Field: "customer.email", Detail: "must be an e-mail address"})
	}
	if c.Name == "" {
		errs = append(errs, FieldError{Field: "customer.name", Detail: "is required"})
	}
	return errs
}

// The steps of placing an order, as step keys, the API and operators name
// them; the last three undo a cancelled order.
const (
	OrderStepCustomer     = "customer"
	OrderStepCharge       = "charge"
	OrderStepPayment      = "payment"
	OrderStepInvoice      = "invoice"
	OrderStepConfirmation = "confirmation"
	OrderStepVoidInvoice  = "void_invoice"
	OrderStepCancelCharge = "cancel_charge"
	OrderStepRefund       = "refund"
)
