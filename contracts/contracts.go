// Package contracts holds handoff's integration contracts: one
// machine-readable file per system and provider, embedded in the binary.
// A contract is the maintained document the integration is built against —
// which system owns which field, which events create, update or delete
// records, the required fields and their formats, how records are matched
// across systems, what happens to missing or invalid data, the expected
// answers and their classification, timeouts, rate limits, authentication,
// and the pinned API version — and the code reads its defaults and rules
// from it: the provider's timeouts, rate limit and concurrency, the check
// of every outgoing request before it is sent, the classification of the
// answers it declares, and the look-up of records. `handoff contracts`
// renders them for reviewers.
package contracts

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/system"
)

//go:embed *.yaml
var files embed.FS

// Contract is one provider's contract for one system.
type Contract struct {
	System   string `yaml:"system"`
	Provider string `yaml:"provider"`
	Summary  string `yaml:"summary"`
	API      API    `yaml:"api"`
	Auth     Auth   `yaml:"auth"`
	Limits   Limits `yaml:"limits"`
	// Ownership says which system owns each field handoff carries.
	Ownership []Ownership `yaml:"ownership"`
	// Events are the provider's events and what they do to records.
	Events []Event `yaml:"events"`
	// Records are the provider's records and how each is matched to
	// handoff's actions.
	Records []Record `yaml:"records"`
	// Invalid says what happens when data is missing or invalid.
	Invalid    string      `yaml:"invalid_data"`
	Operations []Operation `yaml:"operations"`
	// Source names the file the contract was read from.
	Source string `yaml:"-"`
}

// API is the provider's API as pinned.
type API struct {
	BaseURL string `yaml:"base_url"`
	Version string `yaml:"version"`
	// VersionHeader carries the pinned version on every request.
	VersionHeader string `yaml:"version_header"`
	// Changes is where the provider announces changes.
	Changes string `yaml:"changes"`
}

// Auth is how handoff authenticates and what it may do.
type Auth struct {
	// Scheme: api_key, oauth2_client_credentials, smtp or none.
	Scheme      string `yaml:"scheme"`
	Permissions string `yaml:"permissions"`
}

// Limits are the provider's timeouts, rate limits and constraints; the
// defaults of the provider's settings (environment variables override).
type Limits struct {
	Timeout        Duration `yaml:"timeout"`
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// RateLimit is calls per second across all workers.
	RateLimit   float64 `yaml:"rate_limit"`
	Concurrency int     `yaml:"concurrency"`
	Constraints string  `yaml:"constraints"`
}

// Ownership names the one owner of some fields of a record: a system, or
// the application (through handoff's API). Only the owner's changes to a
// field count; a record several systems hold ("customer") is kept at its
// owners' values.
type Ownership struct {
	// Record is the kind of record, as handoff names it: "customer",
	// "charge", "invoice", "message".
	Record string `yaml:"record"`
	// Fields are the record's fields, as handoff names them ("email",
	// "billing_address").
	Fields []string `yaml:"fields"`
	Owner  string   `yaml:"owner"`
	// OnConflict is what a change by a system that is not the owner
	// meets, for a record several systems hold: write_back (the owner's
	// value is written back over it) or flag (kept for review).
	OnConflict string `yaml:"on_conflict"`
	Note       string `yaml:"note"`
}

// OwnerApplication owns what the application sends through handoff's API.
const OwnerApplication = "application"

// Conflict policies of a field several systems hold.
const (
	OnConflictWriteBack = "write_back"
	OnConflictFlag      = "flag"
)

// FieldOwner is the owner of one field, and where it is declared.
type FieldOwner struct {
	Owner      string
	OnConflict string
	Source     string
}

// Owners returns the owner of every field of the record that the
// contracts declare, by field.
func Owners(cs []Contract, record string) map[string]FieldOwner {
	out := map[string]FieldOwner{}
	for _, c := range cs {
		for _, o := range c.Ownership {
			if o.Record != record {
				continue
			}
			for _, f := range o.Fields {
				if _, seen := out[f]; !seen {
					out[f] = FieldOwner{Owner: o.Owner, OnConflict: o.OnConflict, Source: c.Source}
				}
			}
		}
	}
	return out
}

// checkOwners reports every field that two contracts give different
// owners or conflict policies: each field has one owner.
func checkOwners(cs []Contract) []error {
	var errs []error
	type decl struct {
		FieldOwner
		record, field string
	}
	seen := map[string]decl{}
	for _, c := range cs {
		for _, o := range c.Ownership {
			for _, f := range o.Fields {
				k := o.Record + "." + f
				d, ok := seen[k]
				if !ok {
					seen[k] = decl{FieldOwner{o.Owner, o.OnConflict, c.Source}, o.Record, f}
					continue
				}
				if d.Owner != o.Owner || d.OnConflict != o.OnConflict {
					errs = append(errs, fmt.Errorf("ownership of %s: contract %s says %s (%s), contract %s says %s (%s); a field has one owner",
						k, d.Source, d.Owner, policy(d.OnConflict), c.Source, o.Owner, policy(o.OnConflict)))
				}
			}
		}
	}
	return errs
}

func policy(p string) string {
	if p == "" {
		return "no conflict policy"
	}
	return p
}

// Event is one kind of provider event.
type Event struct {
	Name string `yaml:"name"`
	// Effect: creates, updates or deletes a record; or ignored.
	Effect string `yaml:"effect"`
	Record string `yaml:"record"`
	Note   string `yaml:"note"`
}

// Record is one kind of provider record and how it is matched.
type Record struct {
	Name string `yaml:"name"`
	// Match is the field that holds handoff's step key ("external_ref",
	// "metadata.handoff_external_ref").
	Match string `yaml:"match"`
	// Lookup is how a record is found by that field: the query parameter
	// of its list ("external_ref"), "search", or "none".
	Lookup string `yaml:"lookup"`
	Note   string `yaml:"note"`
}

// Operation is one call handoff makes.
type Operation struct {
	Name   string `yaml:"name"`
	Method string `yaml:"method"`
	Path   string `yaml:"path"`
	// Timeout overrides the provider's for this operation.
	Timeout Duration `yaml:"timeout"`
	// Required fields must be present and non-empty in every request;
	// Formats say what a field's value must look like (a named format, or
	// a regular expression).
	Required []string          `yaml:"required"`
	Formats  map[string]string `yaml:"formats"`
	// Optional fields may be sent. An operation that declares its fields
	// (required or optional) sends no other: a field the contract does
	// not name is refused before it is sent.
	Optional []string `yaml:"optional"`
	// Example is a valid request, for the conformance tests and readers.
	Example map[string]any `yaml:"example"`
	// Responses are the answers expected and what each means.
	Responses []Response `yaml:"responses"`
	// Ambiguity says what an unanswered call means and what handoff does.
	Ambiguity string `yaml:"ambiguity"`
}

// Response is one expected answer: a status (and, for errors, the
// provider's error type or code) and its classification.
type Response struct {
	Status    int    `yaml:"status"`
	ErrorType string `yaml:"error_type"`
	Code      string `yaml:"code"`
	// Category and Type classify an error answer (temporary, permanent,
	// ambiguous; a handoff failure type name).
	Category action.Category `yaml:"category"`
	Type     string          `yaml:"type"`
	Note     string          `yaml:"note"`
}

// Duration is a time.Duration written as "15s".
type Duration time.Duration

// UnmarshalYAML reads "15s", "500ms", ….
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// Parse reads one contract.
func Parse(name string, data []byte) (Contract, error) {
	var c Contract
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Contract{}, fmt.Errorf("contract %s: %w", name, err)
	}
	c.Source = name
	return c, nil
}

var (
	mu        sync.Mutex
	loaded    []Contract
	loadErr   error
	loadOnce  sync.Once
	extra     []Contract
	extraKeys = map[string]bool{}
)

func (c Contract) key() string { return c.System + "/" + c.Provider }

func load() {
	loadOnce.Do(func() {
		var errs []error
		_ = fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
				return err
			}
			data, err := files.ReadFile(path)
			if err == nil {
				var c Contract
				if c, err = Parse(path, data); err == nil {
					loaded = append(loaded, c)
				}
			}
			errs = append(errs, err)
			return nil
		})
		loadErr = errors.Join(errs...)
	})
}

// Register adds the contract of a provider that is not built in (its file
// parsed with Parse). Call it before configuration is loaded.
func Register(c Contract) error {
	mu.Lock()
	defer mu.Unlock()
	k := c.key()
	if extraKeys[k] {
		return fmt.Errorf("register contract %s: already registered", k)
	}
	extraKeys[k] = true
	extra = append(extra, c)
	return nil
}

// LoadDir reads every *.yaml file in dir: contracts a deployment keeps
// itself — a provider that announced a new required field, a rate limit
// raised by agreement — to use in place of the built-in ones of the same
// system and provider without a new build (see With). It reports every
// file that does not parse.
func LoadDir(dir string) ([]Contract, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("contracts in %s: %w", dir, err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("contracts in %s: no *.yaml file", dir)
	}
	var found []Contract
	var errs []error
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c, err := Parse(p, data)
		errs = append(errs, err)
		found = append(found, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return found, nil
}

// With returns every contract with the given ones in place of those of
// the same system and provider, by system and provider.
func With(overrides []Contract) []Contract {
	all := All()
	for _, o := range overrides {
		if i := slices.IndexFunc(all, func(c Contract) bool { return c.key() == o.key() }); i >= 0 {
			all[i] = o
		} else {
			all = append(all, o)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].key() < all[j].key() })
	return all
}

// Find returns the contract of a system's provider among cs.
func Find(cs []Contract, systemName, provider string) (Contract, bool) {
	i := slices.IndexFunc(cs, func(c Contract) bool { return c.System == systemName && c.Provider == provider })
	if i < 0 {
		return Contract{}, false
	}
	return cs[i], true
}

// All returns every contract, built-in and registered, by system and
// provider.
func All() []Contract {
	load()
	mu.Lock()
	defer mu.Unlock()
	all := append(slices.Clone(loaded), extra...)
	sort.Slice(all, func(i, j int) bool { return all[i].key() < all[j].key() })
	return all
}

// For returns the contract of a system's provider.
func For(systemName, provider string) (Contract, bool) {
	return Find(All(), systemName, provider)
}

// Operation returns the named operation.
func (c Contract) Operation(name string) (Operation, bool) {
	i := slices.IndexFunc(c.Operations, func(o Operation) bool { return o.Name == name })
	if i < 0 {
		return Operation{}, false
	}
	return c.Operations[i], true
}

// Record returns the named record.
func (c Contract) Record(name string) (Record, bool) {
	i := slices.IndexFunc(c.Records, func(r Record) bool { return r.Name == name })
	if i < 0 {
		return Record{}, false
	}
	return c.Records[i], true
}

// Timeouts returns the operations' own timeouts, by operation.
func (c Contract) Timeouts() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, op := range c.Operations {
		if op.Timeout > 0 {
			out[op.Name] = time.Duration(op.Timeout)
		}
	}
	return out
}

// Classify returns the classification the contract declares for an
// answer to the operation: the first declared response whose status, and
// error type and code when it names them, match.
func (c Contract) Classify(operation string, status int, errorType, code string) (action.Category, string, bool) {
	op, ok := c.Operation(operation)
	if !ok {
		return "", "", false
	}
	for _, r := range op.Responses {
		if r.Status != status || r.Category == "" || (r.ErrorType != "" && r.ErrorType != errorType) || (r.Code != "" && r.Code != code) {
			continue
		}
		return r.Category, r.Type, true
	}
	return "", "", false
}

// namedFormats are the formats a contract may name instead of a regular
// expression.
var namedFormats = map[string]func(any) bool{
	"positive_integer": func(v any) bool {
		switch n := v.(type) {
		case float64:
			return n > 0 && n == float64(int64(n))
		case int:
			return n > 0
		case int64:
			return n > 0
		case string:
			return regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(n)
		}
		return false
	},
	"email":    func(v any) bool { s, ok := v.(string); return ok && emailPattern.MatchString(s) },
	"currency": func(v any) bool { s, ok := v.(string); return ok && currencyPattern.MatchString(s) },
	"nonempty_list": func(v any) bool {
		l, ok := v.([]any)
		return ok && len(l) > 0
	},
}

var (
	emailPattern    = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)
)

// Check reports every way a request's fields break the operation's rules:
// a required field missing or empty, a field of the wrong format, a field
// the contract does not name.
func (op Operation) Check(fields map[string]any) []string {
	var problems []string
	for _, f := range op.Required {
		if empty(fields[f]) {
			problems = append(problems, f+" is required")
		}
	}
	if op.declaresFields() {
		for _, f := range slices.Sorted(maps.Keys(fields)) {
			if !op.declares(f) {
				problems = append(problems, f+" is not a field of the contract")
			}
		}
	}
	names := make([]string, 0, len(op.Formats))
	for f := range op.Formats {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		v, ok := fields[f]
		if !ok || empty(v) {
			continue
		}
		if !matches(op.Formats[f], v) {
			problems = append(problems, fmt.Sprintf("%s must be %s", f, op.Formats[f]))
		}
	}
	return problems
}

// declaresFields reports whether the operation names its request's
// fields.
func (op Operation) declaresFields() bool { return len(op.Required)+len(op.Optional) > 0 }

// declares reports whether the field is one the operation names.
func (op Operation) declares(field string) bool {
	_, formatted := op.Formats[field]
	return formatted || slices.Contains(op.Required, field) || slices.Contains(op.Optional, field)
}

func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(x) == ""
	case []any:
		return len(x) == 0
	}
	return false
}

func matches(format string, v any) bool {
	if named, ok := namedFormats[format]; ok {
		return named(v)
	}
	re, err := regexp.Compile(format)
	if err != nil {
		return false
	}
	s, ok := v.(string)
	if !ok {
		s = fmt.Sprint(v)
	}
	return re.MatchString(s)
}

var (
	schemes    = []string{"api_key", "oauth2_client_credentials", "smtp", "none"}
	effects    = []string{"creates", "updates", "deletes", "ignored"}
	categories = []action.Category{action.CategoryTemporary, action.CategoryPermanent, action.CategoryAmbiguous}
	types      = []string{action.TypeInvalidInput, action.TypeUnauthorized, action.TypeForbidden, action.TypeNotFound, action.TypeConflict,
		action.TypeCardDeclined, action.TypeUnsupported, action.TypeTemporary, action.TypeAmbiguous}
	methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "SMTP"}
)

// Check reads every contract, with the overrides in place (see With), and
// checks it against itself and the registry of systems: every provider
// every system accepts has a contract, every contract names a registered
// system and provider, and its values make sense. It reports every
// problem at once.
func Check(overrides ...Contract) error {
	load()
	errs := []error{loadErr}
	all := With(overrides)
	for _, s := range system.All() {
		for _, kind := range s.Kinds() {
			if !slices.ContainsFunc(all, func(c Contract) bool { return c.System == s.Name && c.Provider == kind }) {
				errs = append(errs, fmt.Errorf("no contract for %s provider %s", s.Name, kind))
			}
		}
	}
	for _, c := range all {
		errs = append(errs, c.check()...)
	}
	errs = append(errs, checkOwners(all)...)
	return errors.Join(errs...)
}

func (c Contract) check() []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("contract %s: "+format, append([]any{c.Source}, args...)...))
	}
	s, ok := system.Lookup(c.System)
	switch {
	case !ok:
		add("system %q is not registered", c.System)
	case !slices.Contains(s.Kinds(), c.Provider):
		add("system %s does not accept provider %q", c.System, c.Provider)
	}
	if !slices.Contains(schemes, c.Auth.Scheme) {
		add("auth scheme %q: want one of %s", c.Auth.Scheme, strings.Join(schemes, ", "))
	}
	if c.Limits.Timeout <= 0 || c.Limits.ConnectTimeout <= 0 || c.Limits.RateLimit <= 0 || c.Limits.Concurrency < 1 {
		add("limits: timeout, connect_timeout, rate_limit and concurrency must be positive")
	}
	if time.Duration(c.Limits.Timeout) > system.MaxCallTimeout || time.Duration(c.Limits.ConnectTimeout) > system.MaxCallTimeout {
		add("limits: timeout and connect_timeout are at most %s, so that a look-up and a call fit in one attempt of a step (%s)", system.MaxCallTimeout, system.StepTimeout)
	}
	if c.API.Version == "" || c.API.Changes == "" {
		add("api: the pinned version and where changes are announced are required")
	}
	if c.Invalid == "" {
		add("invalid_data: say what happens when data is missing or invalid")
	}
	for _, o := range c.Ownership {
		what := o.Record + " " + strings.Join(o.Fields, ", ")
		if o.Record == "" || len(o.Fields) == 0 {
			add("ownership: a record and its fields are required (%q)", what)
		}
		if _, ok := system.Lookup(o.Owner); !ok && o.Owner != OwnerApplication {
			add("ownership of %s: owner %q is neither a system nor the application", what, o.Owner)
		}
		if o.OnConflict != "" && o.OnConflict != OnConflictWriteBack && o.OnConflict != OnConflictFlag {
			add("ownership of %s: on_conflict %q: want %s or %s", what, o.OnConflict, OnConflictWriteBack, OnConflictFlag)
		}
	}
	for _, e := range c.Events {
		if !slices.Contains(effects, e.Effect) {
			add("event %s: effect %q: want one of %s", e.Name, e.Effect, strings.Join(effects, ", "))
		}
	}
	if len(c.Operations) == 0 {
		add("no operations")
	}
	for _, op := range c.Operations {
		if time.Duration(op.Timeout) > system.MaxCallTimeout {
			add("operation %s: timeout is at most %s", op.Name, system.MaxCallTimeout)
		}
		if !slices.Contains(methods, op.Method) || op.Path == "" {
			add("operation %s: a method (%s) and a path are required", op.Name, strings.Join(methods, ", "))
		}
		for f := range op.Formats {
			if op.declaresFields() && !op.declares(f) {
				add("operation %s: format of %s, which is neither required nor optional", op.Name, f)
			}
		}
		for f, format := range op.Formats {
			if _, named := namedFormats[format]; !named {
				if _, err := regexp.Compile(format); err != nil {
					add("operation %s: format of %s: %v", op.Name, f, err)
				}
			}
		}
		if problems := op.Check(op.Example); len(problems) > 0 {
			add("operation %s: its example breaks its own rules: %s", op.Name, strings.Join(problems, "; "))
		}
		for _, r := range op.Responses {
			if r.Status < 100 || r.Status > 599 {
				add("operation %s: status %d", op.Name, r.Status)
			}
			if r.Status >= 300 && (!slices.Contains(categories, r.Category) || !slices.Contains(types, r.Type)) {
				add("operation %s: answer %d must be classified: a category (temporary, permanent, ambiguous) and a type name", op.Name, r.Status)
			}
		}
	}
	return errs
}
