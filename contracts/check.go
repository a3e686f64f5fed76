package contracts

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/system"
)

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
			return positivePattern.MatchString(n)
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
	positivePattern = regexp.MustCompile(`^[1-9][0-9]*$`)
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

// patterns caches the regular expressions contracts name as formats, which
// every request to a provider is checked against.
var patterns sync.Map // format → *regexp.Regexp

func compiled(format string) (*regexp.Regexp, error) {
	if re, ok := patterns.Load(format); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(format)
	if err != nil {
		return nil, err
	}
	patterns.Store(format, re)
	return re, nil
}

// Refusal is the error of a request the contract refuses to send — a
// required field missing, a format broken, a field it does not name — or
// nil. Every adapter asks it before anything leaves handoff.
func (c *Contract) Refusal(operation, what string, fields map[string]any) error {
	if c == nil {
		return nil
	}
	op, ok := c.Operation(operation)
	if !ok {
		return nil
	}
	if problems := op.Check(fields); len(problems) > 0 {
		return fmt.Errorf("not sent: the %s breaks the %s contract (%s): %s", what, c.Provider, c.Source, strings.Join(problems, "; "))
	}
	return nil
}

func matches(format string, v any) bool {
	if named, ok := namedFormats[format]; ok {
		return named(v)
	}
	re, err := compiled(format)
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
		action.TypeCardDeclined, action.TypeUnsupported, action.TypeTemporary, action.TypeAmbiguous, action.TypeStaleRecord}
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
	for _, r := range c.Records {
		for _, f := range r.Fields {
			if !slices.Contains(action.CustomerFields, f) {
				add("record %s: field %q is not a customer field (%s)", r.Name, f, strings.Join(action.CustomerFields, ", "))
			}
		}
		if r.Fallback != "" && r.Fallback != action.FieldEmail {
			add("record %s: fallback %q: want email or nothing", r.Name, r.Fallback)
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
	for _, p := range c.checkShapes() {
		add("%s", p)
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
