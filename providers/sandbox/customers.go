package sandbox

// The sandbox's customer records: the CRM's contacts and the accounting
// system's customers. Both keep a version that grows with every change,
// whoever made it; both take writes that apply only to the version the
// writer read (If-Match), and both send an event for every change.

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers"
)

// party is a customer record: a CRM contact or an accounting customer. It
// is sent as one JSON object, its fields beside id, external_ref and
// version.
type party struct {
	ID          string
	ExternalRef string
	Version     int64
	Fields      map[string]string
}

func (p party) MarshalJSON() ([]byte, error) { return json.Marshal(p.object()) }

// object is the record as one JSON object.
func (p party) object() map[string]any {
	m := map[string]any{"id": p.ID, "external_ref": p.ExternalRef, "version": p.Version}
	for k, v := range p.Fields {
		m[k] = v
	}
	return m
}

// book is one system's customer records.
type book struct {
	system string
	// event names the record in events: "contact", "customer".
	event string
	// fields are the customer fields the system keeps.
	fields  []string
	records *collection[party]
	// byEmail indexes records by normalized e-mail; several records may
	// share one, as people make them by hand.
	byEmail map[string][]string
	// apiWrites counts the changes made through the provider API (not by
	// a person through /_sandbox/records), so that tests can tell
	// handoff's writes from everyone else's.
	apiWrites int
}

func newBook(system, event, prefix string, fields []string) *book {
	return &book{system: system, event: event, fields: fields, records: newCollection[party](prefix), byEmail: map[string][]string{}}
}

// CRM and accounting keep these customer fields.
var (
	crmFields        = []string{action.FieldEmail, action.FieldName, action.FieldPhone, action.FieldBillingAddress}
	accountingFields = []string{action.FieldEmail, action.FieldName, action.FieldBillingAddress, action.FieldTaxID, action.FieldPaymentTerms}
)

// add stores a new record. The caller holds s.mu.
func (b *book) add(fields map[string]string, ref, key string) *party {
	p := &party{ID: b.records.nextID(), ExternalRef: ref, Version: 1, Fields: map[string]string{}}
	for _, f := range b.fields {
		p.Fields[f] = strings.TrimSpace(fields[f])
	}
	b.records.add(p.ID, ref, key, p)
	b.index(p, "")
	return p
}

func (b *book) index(p *party, oldEmail string) {
	if oldEmail != "" {
		old := action.NormalizeEmail(oldEmail)
		b.byEmail[old] = slices.DeleteFunc(b.byEmail[old], func(id string) bool { return id == p.ID })
		if len(b.byEmail[old]) == 0 {
			delete(b.byEmail, old)
		}
	}
	if e := action.NormalizeEmail(p.Fields[action.FieldEmail]); e != "" && !slices.Contains(b.byEmail[e], p.ID) {
		b.byEmail[e] = append(b.byEmail[e], p.ID)
	}
}

// change applies a write to a record: the fields given (only those the
// system keeps) and a new external reference when given. It reports
// whether anything changed; a change makes a new version.
func (b *book) change(p *party, fields map[string]string, ref string) bool {
	oldEmail := p.Fields[action.FieldEmail]
	changed := false
	for _, f := range b.fields {
		if v, ok := fields[f]; ok && strings.TrimSpace(v) != p.Fields[f] {
			p.Fields[f] = strings.TrimSpace(v)
			changed = true
		}
	}
	if ref != "" && ref != p.ExternalRef {
		b.records.setRef(p.ID, ref)
		p.ExternalRef = ref
		changed = true
	}
	if changed {
		p.Version++
		b.index(p, oldEmail)
	}
	return changed
}

func (b *book) remove(id string) bool {
	if p, ok := b.records.get(id); ok {
		e := action.NormalizeEmail(p.Fields[action.FieldEmail])
		b.byEmail[e] = slices.DeleteFunc(b.byEmail[e], func(x string) bool { return x == id })
		if len(b.byEmail[e]) == 0 {
			delete(b.byEmail, e)
		}
	}
	return b.records.remove(id)
}

// first returns the oldest record with the e-mail address.
func (b *book) first(email string) (*party, bool) {
	ids := b.byEmail[action.NormalizeEmail(email)]
	if len(ids) == 0 {
		return nil, false
	}
	return b.records.get(ids[0])
}

// partyEvent is the body of a contact or customer event: the record as it
// now stands.
type partyEvent struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      party  `json:"data"`
}

// recordEvent sends the event for a record's change; the caller holds s.mu.
func (s *Server) recordEvent(b *book, p *party, created bool) {
	if !s.webhooks.enabledFor(b.system) {
		return
	}
	typ := b.event + ".updated"
	if created {
		typ = b.event + ".created"
	}
	ref := p.ExternalRef
	if ref == "" {
		ref = p.ID
	}
	snapshot := *p
	snapshot.Fields = maps.Clone(p.Fields)
	s.webhooks.send(b.system, ref, typ, partyEvent{Type: typ, Data: snapshot},
		s.faults.takeAll(b.system, webhookOperation, ref))
}

// partyWrite is the body of a create or update: the fields, and the
// external reference to store.
func readPartyWrite(w http.ResponseWriter, r *http.Request) (map[string]string, string, []byte, *apiError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		return nil, "", nil, invalid("body_unreadable", "the body could not be read")
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, "", nil, invalid("body_invalid", "request body is not a JSON object")
	}
	fields := map[string]string{}
	ref := ""
	for k, v := range raw {
		sv, ok := v.(string)
		if !ok {
			return nil, "", nil, invalid("field_invalid", k+" must be a string")
		}
		if k == "external_ref" {
			ref = sv
			continue
		}
		fields[k] = sv
	}
	if e, ok := fields[action.FieldEmail]; ok && !strings.Contains(e, "@") {
		return nil, "", nil, invalid("email_invalid", "email must be an e-mail address")
	}
	return fields, ref, body, nil
}

// createParty serves POST /accounting/customers: a new record, once per
// idempotency key.
func (s *Server) createParty(b *book) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		fields, ref, body, aerr := readPartyWrite(w, r)
		if aerr == nil && strings.TrimSpace(fields[action.FieldEmail]) == "" {
			aerr = invalid("email_missing", "email is required")
		}
		if aerr != nil {
			aerr.write(w)
			return
		}
		key := r.Header.Get(providers.HeaderIdempotencyKey)
		cr := createRequest{body: body, key: key, ref: ref, hash: paramsHash(body)}
		s.mu.Lock()
		defer s.mu.Unlock()
		if replay(w, b.records.byKey, cr) {
			return
		}
		p := b.add(fields, ref, key)
		b.apiWrites++
		s.recordEvent(b, p, true)
		remember(w, b.records.byKey, cr, http.StatusOK, *p)
	}
}

// updateParty serves PATCH /crm/contacts/{id} and /accounting/customers/{id}:
// the fields given, applied only to the version named by If-Match when
// one is; a record that changed since is answered 412.
func (s *Server) updateParty(b *book) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		fields, ref, body, aerr := readPartyWrite(w, r)
		if aerr != nil {
			aerr.write(w)
			return
		}
		cr := createRequest{body: body, key: r.Header.Get(providers.HeaderIdempotencyKey), hash: paramsHash(append([]byte(r.PathValue("id")+" "+r.Header.Get("If-Match")+" "), body...))}
		s.mu.Lock()
		defer s.mu.Unlock()
		if replay(w, b.records.byKey, cr) {
			return
		}
		p, ok := b.records.get(r.PathValue("id"))
		if !ok {
			missing(b.event, r.PathValue("id")).write(w)
			return
		}
		if m := r.Header.Get("If-Match"); m != "" && m != strconv.FormatInt(p.Version, 10) {
			(&apiError{status: http.StatusPreconditionFailed, typ: "invalid_request_error", code: "version_mismatch",
				message: "the record is at version " + strconv.FormatInt(p.Version, 10) + ", not " + m}).write(w)
			return
		}
		if b.change(p, fields, ref) {
			b.apiWrites++
			s.recordEvent(b, p, false)
		}
		remember(w, b.records.byKey, cr, http.StatusOK, *p)
	}
}

// listParties serves GET on a book: by ?external_ref=, ?email= (normalized)
// or ?id=, else a cursor-paged list.
func (s *Server) listParties(b *book) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if emails := q["email"]; len(emails) > 0 {
			s.mu.Lock()
			page := listPage[party]{Object: "list", Data: []party{}}
			for _, e := range emails {
				for _, id := range b.byEmail[action.NormalizeEmail(e)] {
					if p, ok := b.records.get(id); ok {
						page.Data = append(page.Data, *p)
					}
				}
			}
			s.mu.Unlock()
			writeJSON(w, http.StatusOK, page)
			return
		}
		list(s, b.records)(w, r)
	}
}

// byHand serves the record endpoints of customer records (test-only): a
// person makes a record (POST /_sandbox/records/{system}/{kind}), with no
// reference unless one is given and even when another has the same e-mail
// address, or edits one (PATCH …/{id}), in the provider's own screens.
// Either changes the version and sends the event, as any change does, and
// is not counted as an API write.
func (s *Server) byHand(b *book) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		fields, ref, _, aerr := readPartyWrite(w, r)
		if aerr != nil {
			aerr.write(w)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.Method == http.MethodPost {
			p := b.add(fields, ref, "")
			s.recordEvent(b, p, true)
			writeJSON(w, http.StatusCreated, *p)
			return
		}
		p, ok := b.records.get(r.PathValue("id"))
		if !ok {
			missing(b.event, r.PathValue("id")).write(w)
			return
		}
		if b.change(p, fields, ref) {
			s.recordEvent(b, p, false)
		}
		writeJSON(w, http.StatusOK, *p)
	}
}

// Party returns a customer record of the system ("crm", "accounting") by
// id, as its JSON object, for tests.
func (s *Server) Party(system, id string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.books[system]
	if b == nil {
		return nil, false
	}
	p, ok := b.records.get(id)
	if !ok {
		return nil, false
	}
	return p.object(), true
}

// APIWrites counts the changes made to the system's customer records
// through its API, for tests.
func (s *Server) APIWrites(system string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.books[system]; b != nil {
		return b.apiWrites
	}
	return 0
}
