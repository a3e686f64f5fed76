package action

// Category says what a failure means for what happens next. Providers'
// failures are temporary, permanent or ambiguous; an action's steps also
// fail as declined (a payment the customer's bank refused) or orphan
// (provider events whose action never came).
type Category string

// Failure categories.
const (
	// CategoryTemporary failures did not happen at the provider; try again later.
	CategoryTemporary Category = "temporary"
	// CategoryPermanent failures will fail the same way again; an operator must act.
	CategoryPermanent Category = "permanent"
	// CategoryAmbiguous failures may or may not have happened at the
	// provider: the request was sent and no answer came. The next attempt
	// first looks the record up by its external reference.
	CategoryAmbiguous Category = "ambiguous"
	// CategoryDeclined is a payment refused for good.
	CategoryDeclined Category = "declined"
	// CategoryOrphan marks provider events whose action never arrived.
	CategoryOrphan Category = "orphan"
	// CategoryAmbiguousMatch is a record that matches more than one
	// record in another system: an operator picks one.
	CategoryAmbiguousMatch Category = "ambiguous_match"
)

// Failure type names: the Temporal error types of handoff's failures, so
// that retry policies, operators and the API recognise them by name.
const (
	// Provider calls.
	TypeInvalidInput = "InvalidInput"
	TypeUnauthorized = "Unauthorized"
	TypeForbidden    = "Forbidden"
	TypeNotFound     = "NotFound"
	TypeConflict     = "Conflict"
	TypeCardDeclined = "CardDeclined"
	TypeUnsupported  = "Unsupported"
	// TypeStaleRecord is a write refused because the record changed since
	// it was read (412 to If-Match): read it again, then decide.
	TypeStaleRecord = "StaleRecord"
	TypeTemporary   = "ProviderUnavailable"
	TypeAmbiguous   = "AmbiguousOutcome"
	// TypePaused is a call not sent because an operator paused the
	// provider; it is temporary.
	TypePaused = "ProviderPaused"

	// Actions.
	// TypeNotApplicable is an operator's update that does not apply to the
	// action as it stands; its message says why.
	TypeNotApplicable = "NotApplicable"
	// TypePaymentTimeout is a charge that did not settle, or could not be
	// cancelled, in time.
	TypePaymentTimeout = "PaymentTimeout"
)
