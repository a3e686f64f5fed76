package contracts

import "fmt"

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

// CustomerRecord is what a system's contract says about its customer
// records: the fields it keeps, how they are matched, and whether handoff
// makes one where none matches.
type CustomerRecord struct {
	System string
	Record
}

// CustomerRecords returns every system's declaration of its customer
// records ("customer" in records), by system.
func CustomerRecords(cs []Contract) map[string]CustomerRecord {
	out := map[string]CustomerRecord{}
	for _, c := range cs {
		for _, r := range c.Records {
			if r.Name == "customer" && len(r.Fields) > 0 {
				out[c.System] = CustomerRecord{System: c.System, Record: r}
			}
		}
	}
	return out
}
