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
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/handoff-hq/handoff/action"
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
	// Shapes are the records the provider answers with, by name; an
	// operation's Returns names one (see Drift).
	Shapes map[string]Shape `yaml:"shapes"`
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
	// Fields are the customer fields a customer record keeps, by
	// handoff's names (action.CustomerFields).
	Fields []string `yaml:"fields"`
	// Fallback is what a record no reference matches is matched by:
	// "email" (normalized), or empty for nothing.
	Fallback string `yaml:"fallback"`
	// Create says whether handoff makes the record in this system when
	// nothing matches.
	Create bool   `yaml:"create"`
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
	// Returns names the shape of a 2xx answer; every answer is read
	// against it, and its drift counted.
	Returns string `yaml:"returns"`
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
