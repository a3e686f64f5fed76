// Package conformance checks a provider adapter against its contract, with
// the contract as the test plan: every operation it declares is driven
// against the real peer (the sandbox, stripe-mock, an SMTP server) and must
// succeed with its example; every required field, left out, and every
// format, broken, must be refused as permanent/InvalidInput before anything
// is sent; every error answer it declares, made by the peer, must be
// classified as declared; every record it says can be looked up must be
// found by its match value, and nothing by another. A change to an adapter
// that breaks its contract, or to a contract the adapter does not keep,
// fails the suite.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/contracts"
	"github.com/handoff-hq/handoff/providers"
)

// Operation drives one declared operation of the adapter.
type Operation struct {
	// Prepare makes what the call needs (a charge to read, …); it may be
	// nil. The peer is answering normally while it runs.
	Prepare func(ctx context.Context) error
	// Do calls the adapter once with the request's fields, as the
	// contract names them; the fields are the contract's example, or the
	// example with a field left out or broken.
	Do func(ctx context.Context, fields map[string]any) error
}

// Lookup drives the look-up of one declared record.
type Lookup struct {
	// Create makes a record, through the adapter or the peer, whose
	// match field holds ref when the contract matches by a reference
	// handoff chooses; it returns the value to look the record up by
	// (ref, or the id the peer gave it).
	Create func(ctx context.Context, ref string) (match string, err error)
	// Find looks a record up by that value through the adapter.
	Find func(ctx context.Context, match string) (found bool, err error)
}

// Peer is the real peer the adapter talks to.
type Peer interface {
	// Answer makes the peer answer every request of the operation with
	// the response (its status, error type and code) until restore is
	// called; ok is false when the peer cannot make that answer.
	Answer(operation string, r contracts.Response) (restore func(), ok bool)
	// Requests counts what reached the peer.
	Requests() int
}

// Suite is one adapter and its contract.
type Suite struct {
	Contract   contracts.Contract
	Operations map[string]Operation
	Lookups    map[string]Lookup
	Peer       Peer
	// Unique returns a value no earlier run used, for references.
	Unique func() string
}

// Run checks the adapter against its contract, one subtest per rule.
func Run(t *testing.T, s Suite) {
	t.Helper()
	c := s.Contract
	if s.Unique == nil {
		s.Unique = func() string { return fmt.Sprint(time.Now().UnixNano()) }
	}
	t.Run("every declared operation is driven, and nothing else", func(t *testing.T) {
		var declared []string
		for _, op := range c.Operations {
			declared = append(declared, op.Name)
			if _, ok := s.Operations[op.Name]; !ok {
				t.Errorf("%s declares %s, which the suite does not drive", c.Source, op.Name)
			}
		}
		for name := range s.Operations {
			if !slices.Contains(declared, name) {
				t.Errorf("the suite drives %s, which %s does not declare", name, c.Source)
			}
		}
	})
	for _, op := range c.Operations {
		drive, ok := s.Operations[op.Name]
		if !ok {
			continue
		}
		t.Run(op.Name, func(t *testing.T) { runOperation(t, s, op, drive) })
	}
	for _, rec := range c.Records {
		t.Run("look-up of "+rec.Name, func(t *testing.T) { runLookup(t, s, rec) })
	}
}

func runOperation(t *testing.T, s Suite, op contracts.Operation, drive Operation) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prepare := func(t *testing.T) {
		t.Helper()
		if drive.Prepare != nil {
			if err := drive.Prepare(ctx); err != nil {
				t.Fatalf("prepare %s: %v", op.Name, err)
			}
		}
	}
	t.Run("its example succeeds", func(t *testing.T) {
		prepare(t)
		before := s.Peer.Requests()
		if err := drive.Do(ctx, clone(op.Example)); err != nil {
			t.Fatalf("%s with its example: %v", op.Name, err)
		}
		if s.Peer.Requests() == before {
			t.Errorf("%s succeeded without reaching the peer", op.Name)
		}
	})
	for _, field := range op.Required {
		t.Run("without "+field+" it is refused unsent", func(t *testing.T) {
			prepare(t)
			fields := clone(op.Example)
			delete(fields, field)
			refusedUnsent(ctx, t, s, op.Name, drive, fields)
		})
	}
	for _, field := range slices.Sorted(maps.Keys(op.Formats)) {
		t.Run("with a bad "+field+" it is refused unsent", func(t *testing.T) {
			bad, ok := breaking(op, field)
			if !ok {
				t.Fatalf("no value breaks the format %q of %s", op.Formats[field], field)
			}
			prepare(t)
			fields := clone(op.Example)
			fields[field] = bad
			refusedUnsent(ctx, t, s, op.Name, drive, fields)
		})
	}
	for _, r := range op.Responses {
		if r.Category == "" {
			continue
		}
		name := fmt.Sprintf("answer %d %s%s is %s/%s", r.Status, r.ErrorType, r.Code, r.Category, r.Type)
		t.Run(name, func(t *testing.T) {
			prepare(t)
			restore, ok := s.Peer.Answer(op.Name, r)
			if !ok {
				t.Fatalf("the peer cannot answer %s with %d %s %s", op.Name, r.Status, r.ErrorType, r.Code)
			}
			err := drive.Do(ctx, clone(op.Example))
			restore()
			var pe *providers.Error
			if !errors.As(err, &pe) {
				t.Fatalf("%s answered %d: got %v, want a classified provider error", op.Name, r.Status, err)
			}
			if pe.Category != r.Category || pe.Type != r.Type || (pe.Status != 0 && pe.Status != r.Status) {
				t.Errorf("%s answered %d: classified %s/%s (status %d), the contract declares %s/%s",
					op.Name, r.Status, pe.Category, pe.Type, pe.Status, r.Category, r.Type)
			}
		})
	}
}

// refusedUnsent checks the call fails as permanent/InvalidInput and
// nothing reached the peer.
func refusedUnsent(ctx context.Context, t *testing.T, s Suite, name string, drive Operation, fields map[string]any) {
	t.Helper()
	before := s.Peer.Requests()
	err := drive.Do(ctx, fields)
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Category != action.CategoryPermanent || pe.Type != action.TypeInvalidInput {
		t.Fatalf("%s with %v: got %v, want permanent/%s", name, fields, err, action.TypeInvalidInput)
	}
	if n := s.Peer.Requests() - before; n != 0 {
		t.Errorf("%s was refused, yet %d requests reached the peer", name, n)
	}
}

func runLookup(t *testing.T, s Suite, rec contracts.Record) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, ok := s.Lookups[rec.Name]
	if !ok {
		t.Fatalf("%s declares the record %s (matched by %s, looked up by %s), which the suite does not look up",
			s.Contract.Source, rec.Name, rec.Match, rec.Lookup)
	}
	ref := "conformance/" + s.Unique()
	match, err := l.Create(ctx, ref)
	if err != nil {
		t.Fatalf("create a %s matched by %q: %v", rec.Name, ref, err)
	}
	found, err := l.Find(ctx, match)
	if rec.Lookup == "none" {
		// An adapter that cannot look up must not claim it found one.
		var pe *providers.Error
		if found || (err != nil && !(errors.As(err, &pe) && pe.Type == action.TypeUnsupported)) {
			t.Fatalf("%s declares no look-up of %s, yet it answered found=%v, %v", s.Contract.Source, rec.Name, found, err)
		}
		return
	}
	if err != nil || !found {
		t.Fatalf("find the %s matched by %q (%s by %s): found=%v, %v", rec.Name, match, rec.Match, rec.Lookup, found, err)
	}
	found, err = l.Find(ctx, "unknown-"+s.Unique())
	if err != nil || found {
		t.Fatalf("find a %s no one made: found=%v, %v; want nothing found", rec.Name, found, err)
	}
}

// breaking returns a value of the same kind as the example's (a typed
// adapter could not carry another) that breaks the field's rules.
func breaking(op contracts.Operation, field string) (any, bool) {
	var candidates []any
	switch op.Example[field].(type) {
	case int, int64, float64:
		candidates = []any{-1, 0}
	case []any:
		candidates = []any{[]any{}}
	default:
		candidates = []any{"-1", "not a valid value!", "EURO", "0"}
	}
	for _, v := range candidates {
		fields := clone(op.Example)
		fields[field] = v
		if len(op.Check(fields)) > 0 {
			return v, true
		}
	}
	return nil, false
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
