package contracts

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Markdown renders contracts for a reviewer: what each provider is for,
// its pinned API, authentication, limits, who owns which field, its events
// and records, and every operation with its rules, answers and ambiguity.
// docs/contracts.md is this rendering of the built-in contracts.
func Markdown(cs []Contract) string {
	var b strings.Builder
	b.WriteString("# Integration contracts\n\n")
	b.WriteString("Generated from `contracts/*.yaml` by `handoff contracts`; do not edit by hand (`make docs` writes it,\n")
	b.WriteString("`make lint` checks it is current). Each contract is what handoff's code reads its limits, request\n")
	b.WriteString("checks, classification of answers and look-ups from.\n\n")
	b.WriteString("| system | provider | API version | auth | timeout | rate limit | operations |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, c := range cs {
		fmt.Fprintf(&b, "| %s | [%s](#%s) | %s | %s | %s | %s/s | %d |\n", c.System, c.Provider, anchor(c), cell(c.API.Version),
			c.Auth.Scheme, dur(c.Limits.Timeout), num(c.Limits.RateLimit), len(c.Operations))
	}
	renderOwners(&b, cs)
	for _, c := range cs {
		b.WriteString("\n")
		renderOne(&b, c)
	}
	return b.String()
}

// renderOwners is every field's one owner, across the contracts.
func renderOwners(b *strings.Builder, cs []Contract) {
	records := map[string]bool{}
	for _, c := range cs {
		for _, o := range c.Ownership {
			records[o.Record] = true
		}
	}
	if len(records) == 0 {
		return
	}
	b.WriteString("\n## Who owns which field\n\nEach field has one owner; only its changes count. Where several systems hold a record, a change\n")
	b.WriteString("by one to a field it does not own meets the field's policy: `write_back` (the owner's value is\nwritten back) or `flag` (kept for review); — is a field only its owner holds.\n\n")
	b.WriteString("| record | field | owner | a non-owner's change | declared in |\n| --- | --- | --- | --- | --- |\n")
	for _, record := range slices.Sorted(maps.Keys(records)) {
		owners := Owners(cs, record)
		for _, f := range slices.Sorted(maps.Keys(owners)) {
			o := owners[f]
			fmt.Fprintf(b, "| %s | `%s` | %s | %s | `contracts/%s` |\n", record, f, o.Owner, conflictText(o.OnConflict), base(o.Source))
		}
	}
}

func conflictText(p string) string {
	if p == "" {
		return "—"
	}
	return "`" + p + "`"
}

func renderOne(b *strings.Builder, c Contract) {
	fmt.Fprintf(b, "## %s: %s\n\n", c.System, c.Provider)
	fmt.Fprintf(b, "%s\n\n", oneLine(c.Summary))
	fmt.Fprintf(b, "- **Source**: `contracts/%s`\n", base(c.Source))
	fmt.Fprintf(b, "- **API**: %s, version %s%s; changes announced at %s\n", oneLine(c.API.BaseURL), oneLine(c.API.Version),
		ifSet(", sent in "+c.API.VersionHeader, c.API.VersionHeader != ""), oneLine(c.API.Changes))
	fmt.Fprintf(b, "- **Authentication**: %s; %s\n", c.Auth.Scheme, oneLine(c.Auth.Permissions))
	fmt.Fprintf(b, "- **Limits**: timeout %s, connect timeout %s, %s calls/s across workers, %d in flight per worker; %s\n",
		dur(c.Limits.Timeout), dur(c.Limits.ConnectTimeout), num(c.Limits.RateLimit), c.Limits.Concurrency, oneLine(c.Limits.Constraints))
	fmt.Fprintf(b, "- **Missing or invalid data**: %s\n", oneLine(c.Invalid))
	if len(c.Ownership) > 0 {
		b.WriteString("\n**Who owns which field**\n\n| record | fields | owner | a non-owner's change | note |\n| --- | --- | --- | --- | --- |\n")
		for _, o := range c.Ownership {
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", o.Record, code(o.Fields), o.Owner, conflictText(o.OnConflict), cell(o.Note))
		}
	}
	if len(c.Events) > 0 {
		b.WriteString("\n**Events**\n\n| event | effect | record | note |\n| --- | --- | --- | --- |\n")
		for _, e := range c.Events {
			fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", e.Name, e.Effect, cell(e.Record), cell(e.Note))
		}
	}
	if len(c.Records) > 0 {
		b.WriteString("\n**Records and how they are matched**\n\n| record | matched by | then by | looked up by | fields kept | made when nothing matches | note |\n| --- | --- | --- | --- | --- | --- | --- |\n")
		for _, r := range c.Records {
			made := "no"
			if r.Create {
				made = "yes"
			}
			fmt.Fprintf(b, "| %s | `%s` | %s | %s | %s | %s | %s |\n", r.Name, r.Match, cell(r.Fallback), r.Lookup, cell(code(r.Fields)), made, cell(r.Note))
		}
	}
	b.WriteString("\n**Operations**\n")
	for _, op := range c.Operations {
		fmt.Fprintf(b, "\n`%s`: %s `%s`", op.Name, op.Method, op.Path)
		if op.Timeout > 0 {
			fmt.Fprintf(b, " (timeout %s)", dur(op.Timeout))
		}
		b.WriteString("\n\n")
		if len(op.Required) > 0 {
			fmt.Fprintf(b, "- required: %s\n", code(op.Required))
		}
		if len(op.Optional) > 0 {
			fmt.Fprintf(b, "- optional: %s\n", code(op.Optional))
		}
		if op.declaresFields() {
			b.WriteString("- no other field is sent\n")
		}
		if len(op.Formats) > 0 {
			var fs []string
			for _, f := range slices.Sorted(maps.Keys(op.Formats)) {
				fs = append(fs, fmt.Sprintf("`%s` %s", f, op.Formats[f]))
			}
			fmt.Fprintf(b, "- formats: %s\n", strings.Join(fs, ", "))
		}
		if op.Returns != "" {
			fmt.Fprintf(b, "- answers with: %s (every answer is read against it)\n", op.Returns)
		}
		if op.Ambiguity != "" {
			fmt.Fprintf(b, "- when no answer comes: %s\n", oneLine(op.Ambiguity))
		}
		b.WriteString("\n| answer | error type / code | handoff classifies it as | note |\n| --- | --- | --- | --- |\n")
		for _, r := range op.Responses {
			class := "success"
			if r.Category != "" {
				class = fmt.Sprintf("%s (`%s`)", r.Category, r.Type)
			}
			fmt.Fprintf(b, "| %d | %s | %s | %s |\n", r.Status, cell(strings.Trim(r.ErrorType+" / "+r.Code, " /")), class, cell(r.Note))
		}
	}
	renderShapes(b, c)
}

// renderShapes lists the records the provider answers with.
func renderShapes(b *strings.Builder, c Contract) {
	if len(c.Shapes) == 0 {
		return
	}
	b.WriteString("\n**What it answers with** (an answer that differs is counted as drift)\n")
	for _, name := range slices.Sorted(maps.Keys(c.Shapes)) {
		open := ""
		if c.Shapes[name].Open {
			open = " (other fields are expected)"
		}
		fmt.Fprintf(b, "\n%s%s\n\n| field | type | required | values or format |\n| --- | --- | --- | --- |\n", name, open)
		shape := c.Shapes[name].Fields
		for _, fname := range slices.Sorted(maps.Keys(shape)) {
			f := shape[fname]
			typ := f.Type
			switch {
			case f.Items != "":
				typ += " of " + f.Items
			case f.Shape != "":
				typ += " " + f.Shape
			}
			required := "no"
			if f.Required {
				required = "yes"
			}
			rule := f.Format
			if len(f.Values) > 0 {
				rule = code(f.Values)
			}
			fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", fname, typ, required, cell(rule))
		}
	}
}

func anchor(c Contract) string { return c.System + "-" + c.Provider }

func base(source string) string {
	if i := strings.LastIndexAny(source, `/\`); i >= 0 {
		return source[i+1:]
	}
	return source
}

func dur(d Duration) string { return time.Duration(d).String() }

func num(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", f), "0"), ".")
}

func code(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "`" + n + "`"
	}
	return strings.Join(out, ", ")
}

// oneLine joins the text's lines, with < and > escaped so that
// placeholders such as <id> stay visible.
func oneLine(s string) string {
	return strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(strings.Join(strings.Fields(s), " "))
}

func cell(s string) string { return strings.ReplaceAll(oneLine(s), "|", "\\|") }

func ifSet(s string, ok bool) string {
	if ok {
		return s
	}
	return ""
}

// RenderRecordOwners is the owner table of one record's fields (field,
// owner, a non-owner's change, declared in), as the README shows the
// customer's.
func RenderRecordOwners(cs []Contract, record string) string {
	var b strings.Builder
	b.WriteString("| field | owner | a change made anywhere else | declared in |\n| --- | --- | --- | --- |\n")
	owners := Owners(cs, record)
	for _, f := range slices.Sorted(maps.Keys(owners)) {
		o := owners[f]
		fmt.Fprintf(&b, "| `%s` | %s | %s | `contracts/%s` |\n", f, o.Owner, conflictText(o.OnConflict), base(o.Source))
	}
	return b.String()
}
