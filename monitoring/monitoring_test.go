// Package monitoring_test checks the monitoring files shipped with handoff
// against the metrics its code exports: every metric (and label) an alert
// or a dashboard panel names must exist, and the README's metric table
// must list every metric.
package monitoring_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/handoff-hq/handoff/api"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/worker"
)

// recorder keeps every collector registered, to describe them all: a
// registry gathers only the series that have values.
type recorder struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registry.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// fake stands for every service the API needs; none is called here.
type fake struct {
	api.Orders
	api.Events
	api.Operators
	api.Reconciliations
}

type fakeHealth struct{}

func (fakeHealth) Health(context.Context, int) (control.Health, error) { return control.Health{}, nil }

var descPattern = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

// exported returns handoff's metric names with their label names, as the
// API, the workers and the provider clients register them.
func exported(t *testing.T) map[string][]string {
	t.Helper()
	rec := &recorder{Registry: prometheus.NewRegistry()}
	providers.NewMetrics(rec)
	worker.NewOutcomes(rec)
	keys, err := codec.ParseKeys([]string{"k:" + base64.StdEncoding.EncodeToString(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := codec.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	worker.CountPayloadFailures(rec, enc)
	f := fake{}
	if _, err := api.New(api.Options{Orders: f, Events: f, Operators: f, Reconciliations: f, Health: fakeHealth{}, APITokens: []string{"t"},
		Ready: func(context.Context) error { return nil }, Registry: rec}); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, c := range rec.collectors {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := descPattern.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read %s", d)
			}
			var labels []string
			for _, l := range strings.Split(m[2], ",") {
				if l = strings.TrimSpace(l); l != "" {
					labels = append(labels, l)
				}
			}
			out[m[1]] = labels
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d metrics described: %v", len(out), out)
	}
	return out
}

var (
	metricRef  = regexp.MustCompile(`\bhandoff_[a-z0-9_]+`)
	selector   = regexp.MustCompile(`(handoff_[a-z0-9_]+)\{([^}]*)\}`)
	matcherKey = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
)

// checkExpr returns what expr names that handoff does not export:
// metrics, and labels of the metrics it selects.
func checkExpr(expr string, metrics map[string][]string) []string {
	var problems []string
	base := func(name string) (string, bool) {
		if _, ok := metrics[name]; ok {
			return name, true
		}
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(name, suffix); ok {
				if _, ok := metrics[b]; ok {
					return b, true
				}
			}
		}
		return "", false
	}
	for _, name := range metricRef.FindAllString(expr, -1) {
		if _, ok := base(name); !ok {
			problems = append(problems, name+" is not exported")
		}
	}
	for _, m := range selector.FindAllStringSubmatch(expr, -1) {
		b, ok := base(m[1])
		if !ok {
			continue
		}
		for _, k := range matcherKey.FindAllStringSubmatch(m[2], -1) {
			if k[1] != "le" && !slices.Contains(metrics[b], k[1]) {
				problems = append(problems, m[1]+" has no label "+k[1])
			}
		}
	}
	return problems
}

func TestDashboardPanelsNameExportedMetrics(t *testing.T) {
	metrics := exported(t)
	raw, err := os.ReadFile("grafana/dashboards/handoff.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	if len(dash.Panels) < 8 {
		t.Fatalf("%d panels", len(dash.Panels))
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			for _, problem := range checkExpr(q.Expr, metrics) {
				t.Errorf("panel %q: %s", p.Title, problem)
			}
		}
	}
}

func TestAlertsNameExportedMetrics(t *testing.T) {
	metrics := exported(t)
	raw, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, problem := range checkExpr(r.Expr, metrics) {
				t.Errorf("alert %s: %s", r.Alert, problem)
			}
			n++
		}
	}
	if n < 6 {
		t.Fatalf("%d alerts", n)
	}
}

// The checker itself finds what does not exist.
func TestTheCheckFindsUnknownMetricsAndLabels(t *testing.T) {
	metrics := map[string][]string{"handoff_a_total": {"system"}, "handoff_b_seconds": {"system"}}
	for expr, bad := range map[string]bool{
		`sum(rate(handoff_a_total{system="x"}[5m]))`:                                                   false,
		`histogram_quantile(0.9, sum by (le) (rate(handoff_b_seconds_bucket{system="x",le="1"}[5m])))`: false,
		`handoff_c_total`:                true,
		`handoff_a_total{operation="x"}`: true,
		`handoff_b_seconds_total`:        true,
	} {
		if got := checkExpr(expr, metrics); (len(got) > 0) != bad {
			t.Errorf("%s: %v, want bad=%v", expr, got, bad)
		}
	}
}

// The README's metric table lists every metric handoff exports.
func TestTheREADMEListsEveryMetric(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	for name := range exported(t) {
		if !regexp.MustCompile("`" + name + "[`{]").MatchString(readme) {
			t.Errorf("README does not list %s", name)
		}
	}
}
