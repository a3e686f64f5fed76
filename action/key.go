// Package action is handoff's vocabulary of business actions, shared by the
// API, the workflows, the activities, the providers and the webhooks: the
// keys that name an action and its steps, the statuses it reports, the
// categories and type names of its failures, the business data of placing
// an order, and the provider events that advance it. It imports nothing of
// handoff, so that every layer can use it.
package action

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Kind is a kind of business action ("order"); it starts every key.
type Kind string

// Kinds of actions.
const (
	// KindOrder is the action "place an order".
	KindOrder Kind = "order"
	// KindLatePayment gives back a payment that succeeded after its order
	// had ended without it.
	KindLatePayment Kind = "late-payment"
)

// Key names one business action: "<kind>/<id>", e.g. "order/A-1001". It is
// the action's workflow ID and its business key.
type Key struct {
	Kind Kind
	ID   string
}

// StepKey names one step of an action: "<kind>/<id>/<step>", e.g.
// "order/A-1001/charge". It is the idempotency key of every provider call
// the step makes, identical on every attempt, and the external reference of
// the record the call makes.
type StepKey struct {
	Action Key
	Step   string
}

var (
	idPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	kindPattern    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	stepPattern    = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)
	errKeyMismatch = fmt.Errorf("not a key of the form <kind>/<id>[/<step>]")
)

// ValidID reports whether id can name an action: 1 to 128 letters, digits
// or . _ : - starting with a letter or digit.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// OrderKey is the key of the order with the given id.
func OrderKey(id string) Key { return Key{Kind: KindOrder, ID: id} }

// LatePaymentKey is the key of the action that gives back the given charge
// of the given order: "late-payment/<order id>.<charge id>".
func LatePaymentKey(orderID, chargeID string) Key {
	return Key{Kind: KindLatePayment, ID: orderID + "." + chargeID}
}

func (k Key) String() string { return string(k.Kind) + "/" + k.ID }

// Step is the key of one of the action's steps.
func (k Key) Step(step string) StepKey { return StepKey{Action: k, Step: step} }

func (s StepKey) String() string { return s.Action.String() + "/" + s.Step }

// ParseKey reads "<kind>/<id>".
func ParseKey(s string) (Key, error) {
	kind, id, ok := strings.Cut(s, "/")
	if !ok || !kindPattern.MatchString(kind) || !idPattern.MatchString(id) {
		return Key{}, fmt.Errorf("parse action key %q: %w", s, errKeyMismatch)
	}
	return Key{Kind: Kind(kind), ID: id}, nil
}

// ParseStepKey reads "<kind>/<id>/<step>".
func ParseStepKey(s string) (StepKey, error) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 || !stepPattern.MatchString(s[i+1:]) {
		return StepKey{}, fmt.Errorf("parse step key %q: %w", s, errKeyMismatch)
	}
	k, err := ParseKey(s[:i])
	if err != nil {
		return StepKey{}, fmt.Errorf("parse step key %q: %w", s, errKeyMismatch)
	}
	return StepKey{Action: k, Step: s[i+1:]}, nil
}

// KindSpec declares a kind of action: the workflow type that carries it out.
type KindSpec struct {
	Kind         Kind
	WorkflowType string
}

var (
	kindsMu sync.RWMutex
	kinds   = []KindSpec{{KindOrder, "OrderWorkflow"}, {KindLatePayment, "OrderWorkflow"}, {KindCustomer, "CustomerWorkflow"}}
)

// RegisterKind adds a kind of action, so that operators can find and answer
// actions of that kind. Call it before the API and workers start.
func RegisterKind(k KindSpec) error {
	if !kindPattern.MatchString(string(k.Kind)) || k.WorkflowType == "" {
		return fmt.Errorf("register action kind %q: want a lower-case kind and its workflow type", k.Kind)
	}
	kindsMu.Lock()
	defer kindsMu.Unlock()
	for _, have := range kinds {
		if have.Kind == k.Kind {
			return fmt.Errorf("register action kind %q: already registered", k.Kind)
		}
	}
	kinds = append(kinds, k)
	return nil
}

// Kinds returns the registered kinds of action.
func Kinds() []KindSpec {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	return slices.Clone(kinds)
}

// Known reports whether actions of this kind are registered.
func (k Kind) Known() bool {
	return slices.ContainsFunc(Kinds(), func(s KindSpec) bool { return s.Kind == k })
}
