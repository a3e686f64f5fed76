package workflows

import (
	"maps"
	"slices"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/contracts"
	"github.com/handoff-hq/handoff/system"
)

// FieldRule is a customer field's owner and what a change by anyone else
// meets, from the contracts (contracts.Owners).
type FieldRule struct {
	Owner string `json:"owner"`
	// OnConflict: write_back (the owner's value is written back) or flag
	// (the other value stays where it was made, recorded for review).
	OnConflict string `json:"on_conflict,omitempty"`
}

// CustomerSystem is a system that keeps customer records, from its
// contract: whether handoff makes a record there when none matches, and
// whether a record without the customer's reference is matched by e-mail.
type CustomerSystem struct {
	Name string `json:"name"`
	// Fields are the customer fields its records keep.
	Fields     []string `json:"fields"`
	Create     bool     `json:"create"`
	MatchEmail bool     `json:"match_email"`
}

// FieldState is one customer field: its value, who owns it, and who set it.
type FieldState struct {
	Value string `json:"value"`
	// Version counts the changes the field took; 0 while no source gave
	// it a value.
	Version   int64     `json:"version"`
	Owner     string    `json:"owner,omitempty"`
	Source    string    `json:"source,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SystemRecord is the record that holds the customer in one system, as
// handoff last saw it.
type SystemRecord struct {
	RecordID    string `json:"record_id,omitempty"`
	ExternalRef string `json:"external_ref,omitempty"`
	// Version is the record's version when handoff last saw it; events
	// with this version or an older one change nothing.
	Version int64             `json:"version"`
	Values  map[string]string `json:"values,omitempty"`
	// Flagged are values the system holds against their owner's, kept
	// there for review as the contract says (on_conflict: flag).
	Flagged map[string]string `json:"flagged,omitempty"`
	// MatchedBy says how the record was found. Looked says a look found
	// nothing, for the e-mail address MatchedEmail.
	MatchedBy    string `json:"matched_by,omitempty"`
	Looked       bool   `json:"looked,omitempty"`
	MatchedEmail string `json:"matched_email,omitempty"`
	// Skipped is a system an operator chose not to keep this customer in.
	Skipped bool `json:"skipped,omitempty"`
}

func (s *SystemRecord) linked() bool { return s.RecordID != "" }

// Conflict is a change that did not win: made by a source that does not
// own the field, or carrying a value the field cannot have.
type Conflict struct {
	At         time.Time `json:"at"`
	Field      string    `json:"field"`
	Source     string    `json:"source"`
	Value      string    `json:"value"`
	Owner      string    `json:"owner,omitempty"`
	OwnerValue string    `json:"owner_value,omitempty"`
	// Resolution: written_back, flagged, not_propagated (the
	// application's change of a field it does not own), owner_wins (a
	// value given before the owner's was known), rejected (invalid).
	Resolution string `json:"resolution"`
	Reason     string `json:"reason,omitempty"`
}

// Conflict resolutions.
const (
	ResolutionWrittenBack   = "written_back"
	ResolutionFlagged       = "flagged"
	ResolutionNotPropagated = "not_propagated"
	ResolutionOwnerWins     = "owner_wins"
	ResolutionRejected      = "rejected"
)

// maxConflicts bounds the conflicts a customer keeps: the latest.
const maxConflicts = 20

// ApplicationSource is what the application last sent for the customer.
type ApplicationSource struct {
	Version     int64             `json:"version"`
	RequestHash string            `json:"request_hash,omitempty"`
	Values      map[string]string `json:"values,omitempty"`
}

// CustomerBook is what a customer's workflow knows: every field's value,
// every system's record, what the application sent, and the conflicts.
// Its rules decide, per field, which change wins and what every system
// must be written; it is plain data, carried across continue-as-new.
type CustomerBook struct {
	CustomerID  string                   `json:"customer_id"`
	Rules       map[string]FieldRule     `json:"rules"`
	Fields      map[string]*FieldState   `json:"fields"`
	Systems     map[string]*SystemRecord `json:"systems"`
	Application ApplicationSource        `json:"application"`
	Conflicts   []Conflict               `json:"conflicts"`
	// Ignored counts changes that changed nothing: duplicates, events
	// older than what was seen, handoff's own writes coming back.
	Ignored int64 `json:"ignored"`
	// Writes numbers handoff's writes, for their idempotency keys.
	Writes int64 `json:"writes"`
}

// NewCustomerBook is the book of a customer no source has spoken of yet.
func NewCustomerBook(id string, rules map[string]FieldRule) *CustomerBook {
	return &CustomerBook{CustomerID: id, Rules: rules, Fields: map[string]*FieldState{}, Systems: map[string]*SystemRecord{}}
}

// Ref is the reference the customer's records hold.
func (b *CustomerBook) Ref() string { return action.CustomerKey(b.CustomerID).String() }

// Value is a field's current value, empty when none is known.
func (b *CustomerBook) Value(field string) string {
	if f := b.Fields[field]; f != nil {
		return f.Value
	}
	return ""
}

func (b *CustomerBook) system(name string) *SystemRecord {
	s := b.Systems[name]
	if s == nil {
		s = &SystemRecord{}
		b.Systems[name] = s
	}
	return s
}

// Observe applies one source's news: what changed since that source last
// spoke is offered field by field to the rules. It reports whether the
// change was new (not a duplicate, not older than what was seen).
func (b *CustomerBook) Observe(ch action.CustomerChange, now time.Time) bool {
	if ch.Source == action.SourceApplication {
		if ch.Version <= b.Application.Version {
			b.Ignored++
			return false
		}
		prev := b.Application.Values
		values := maps.Clone(prev)
		if values == nil {
			values = map[string]string{}
		}
		for _, f := range sortedKeys(ch.Fields) {
			v := ch.Fields[f]
			values[f] = v
			if old, ok := prev[f]; ok && old == v {
				continue
			}
			b.offer(f, ch.Source, v, false, now)
		}
		b.Application = ApplicationSource{Version: ch.Version, RequestHash: ch.RequestHash, Values: values}
		return true
	}
	s := b.system(ch.Source)
	if s.linked() && (ch.RecordID != s.RecordID || ch.Version <= s.Version) {
		// Another record of the system, or news older than what was seen.
		b.Ignored++
		return false
	}
	first := s.Version == 0
	for _, f := range sortedKeys(ch.Fields) {
		v := ch.Fields[f]
		if !first && s.Values[f] == v {
			continue
		}
		b.offer(f, ch.Source, v, first, now)
	}
	s.RecordID, s.ExternalRef, s.Version, s.Values = ch.RecordID, ch.ExternalRef, ch.Version, maps.Clone(ch.Fields)
	return true
}

// offer decides one source's value of one field. The owner's value wins;
// a source that does not own the field gives it a value only while the
// owner has given none. first marks a record seen for the first time,
// whose values are what it holds, not changes it made.
func (b *CustomerBook) offer(field, source, value string, first bool, now time.Time) {
	rule := b.Rules[field]
	if reason := action.CheckCustomerField(field, value); reason != "" && (value != "" || field == action.FieldEmail) {
		b.conflict(Conflict{At: now, Field: field, Source: source, Value: value, Owner: rule.Owner,
			OwnerValue: b.Value(field), Resolution: ResolutionRejected, Reason: field + " " + reason})
		return
	}
	cur := b.Fields[field]
	if cur == nil {
		cur = &FieldState{Owner: rule.Owner}
		b.Fields[field] = cur
	}
	cur.Owner = rule.Owner
	known := cur.Version > 0
	accept := !known || rule.Owner == "" || rule.Owner == source || (cur.Source != rule.Owner && !first)
	if !accept {
		if value == cur.Value {
			return
		}
		c := Conflict{At: now, Field: field, Source: source, Value: value, Owner: rule.Owner, OwnerValue: cur.Value, Resolution: ResolutionWrittenBack}
		switch {
		case source == action.SourceApplication:
			c.Resolution = ResolutionNotPropagated
		case rule.OnConflict == "flag":
			c.Resolution = ResolutionFlagged
			s := b.system(source)
			if s.Flagged == nil {
				s.Flagged = map[string]string{}
			}
			s.Flagged[field] = value
		}
		b.conflict(c)
		return
	}
	if known && cur.Value == value {
		if source == rule.Owner {
			cur.Source = source // the owner confirms the value
		}
		return
	}
	if known && rule.Owner == source && cur.Source != source && cur.Source != "" {
		// A value given before the owner's was known gives way to it.
		b.conflict(Conflict{At: now, Field: field, Source: cur.Source, Value: cur.Value, Owner: rule.Owner, OwnerValue: value, Resolution: ResolutionOwnerWins})
	}
	cur.Value, cur.Source, cur.UpdatedAt = value, source, now
	cur.Version++
	for _, name := range sortedKeys(b.Systems) {
		delete(b.Systems[name].Flagged, field) // the owner's change goes everywhere
	}
}

func (b *CustomerBook) conflict(c Conflict) {
	b.Conflicts = append(b.Conflicts, c)
	if n := len(b.Conflicts); n > maxConflicts {
		b.Conflicts = slices.Clone(b.Conflicts[n-maxConflicts:])
	}
}

// Plan is what one system's record must be written: the fields whose
// value differs from the customer's, and the reference when it holds
// another. ok is false when the record is right as it is.
func (b *CustomerBook) Plan(system string) (fields map[string]string, ref string, ok bool) {
	s := b.Systems[system]
	if s == nil || !s.linked() || s.Skipped {
		return nil, "", false
	}
	fields = map[string]string{}
	for _, f := range sortedKeys(s.Values) {
		want := b.Fields[f]
		if want == nil || want.Version == 0 || s.Values[f] == want.Value {
			continue
		}
		if flagged, ok := s.Flagged[f]; ok && flagged == s.Values[f] {
			continue // kept there for review
		}
		fields[f] = want.Value
	}
	if s.ExternalRef != b.Ref() {
		ref = b.Ref()
	}
	return fields, ref, len(fields) > 0 || ref != ""
}

// NeedsMatch reports whether the customer's record in the system is still
// to be found: something is known of the customer, the system holds no
// record of it yet, no operator skipped it, and no look found nothing for
// today's e-mail address already.
func (b *CustomerBook) NeedsMatch(system string) bool {
	if len(b.Fields) == 0 {
		return false
	}
	s := b.Systems[system]
	if s == nil {
		return true
	}
	return !s.linked() && !s.Skipped && (!s.Looked || s.MatchedEmail != b.Value(action.FieldEmail))
}

// Values are the customer's known values of the given fields, for a
// record handoff makes.
func (b *CustomerBook) Values(fields []string) map[string]string {
	out := map[string]string{}
	for _, f := range fields {
		if st := b.Fields[f]; st != nil && st.Version > 0 {
			out[f] = st.Value
		}
	}
	return out
}

// sortedKeys are a map's keys in order, so that workflow code reads maps
// the same way on every replay.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	// The keys are sorted below: the order they are read in does not matter.
	//workflowcheck:ignore
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// CustomerRulesFrom reads the customer's field owners and the systems that
// keep customer records from the contracts of the configured providers.
func CustomerRulesFrom(cs []contracts.Contract) (map[string]FieldRule, []CustomerSystem) {
	rules := map[string]FieldRule{}
	for f, o := range contracts.Owners(cs, "customer") {
		rules[f] = FieldRule{Owner: o.Owner, OnConflict: o.OnConflict}
	}
	records := contracts.CustomerRecords(cs)
	var systems []CustomerSystem
	for _, s := range system.All() {
		if r, ok := records[s.Name]; ok {
			systems = append(systems, CustomerSystem{Name: s.Name, Fields: slices.Clone(r.Fields), Create: r.Create, MatchEmail: r.Fallback == action.FieldEmail})
		}
	}
	return rules, systems
}
