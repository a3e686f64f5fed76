package bench

import (
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Report is a run's figures, round by round.
type Report struct {
	Options Options
	Rounds  []round
}

// round is one round's figures of both sides.
type round struct {
	handoff, bare sideFigures
}

type sideFigures struct {
	orders orderFigures
	// webhooks are signed webhooks taken by the side's endpoint: handoff's
	// API, the bare worker's.
	webhooks intakeFigures
	// inProcess are the same events handed on as the endpoint hands on a
	// verified webhook, in the bench's process: handoff's control client,
	// a bare SignalWithStart.
	inProcess intakeFigures
	reads     readFigures
}

func (r *round) side(name string) *sideFigures {
	if name == sideBare {
		return &r.bare
	}
	return &r.handoff
}

// figure is one line of the table: a value of each side per round.
type figure struct {
	name string
	unit string
	// of reads one side's value in one round; bare, when set, reads the
	// bare side's instead.
	of, bare func(sideFigures) float64
	// goal, when set, is the ratio handoff/bare must meet, and atMost says
	// whether the ratio must stay below it (costs) or above (rates).
	goal   float64
	atMost bool
	// phase is the kind of phase the figure comes from (Options.Only).
	phase string
}

var figures = []figure{
	{name: "completed orders/s", of: func(s sideFigures) float64 { return s.orders.rate() }, goal: 0.9, phase: "orders"},
	{name: "placement → completed, p50", unit: "ms", of: func(s sideFigures) float64 { return ms(s.orders.latency.percentile(0.5)) }},
	{name: "placement → completed, p99", unit: "ms", of: func(s sideFigures) float64 { return ms(s.orders.latency.percentile(0.99)) }, goal: 1.3, atMost: true, phase: "orders"},
	{name: "placement call, p50", unit: "ms", of: func(s sideFigures) float64 { return ms(s.orders.placement.percentile(0.5)) }},
	{name: "placement call, p99", unit: "ms", of: func(s sideFigures) float64 { return ms(s.orders.placement.percentile(0.99)) }},
	{name: "history events per order", of: func(s sideFigures) float64 { return medianInt(s.orders.events) }, goal: 1.2, atMost: true, phase: "orders"},
	{name: "signals per order", of: func(s sideFigures) float64 { return medianInt(s.orders.signals) }},
	{name: "CPU per order, all processes", unit: "ms", of: func(s sideFigures) float64 { return cpuPerOrder(s.orders, "") }},
	// The goal: handoff's webhooks against a bare SignalWithStart; then
	// each over HTTP, and each in process.
	{name: "webhooks accepted/s", of: func(s sideFigures) float64 { return s.webhooks.rate() },
		bare: func(s sideFigures) float64 { return s.inProcess.rate() }, goal: 0.95, phase: "webhooks"},
	{name: "webhook answered, p50", unit: "ms", of: func(s sideFigures) float64 { return ms(s.webhooks.latency.percentile(0.5)) },
		bare: func(s sideFigures) float64 { return ms(s.inProcess.latency.percentile(0.5)) }},
	{name: "webhooks accepted/s, both over HTTP", of: func(s sideFigures) float64 { return s.webhooks.rate() }},
	{name: "events accepted/s, both in process", of: func(s sideFigures) float64 { return s.inProcess.rate() }},
	{name: "read of a running order, p50", unit: "ms", of: func(s sideFigures) float64 { return ms(s.reads.latency.percentile(0.5)) }},
	{name: "read of a running order, p99", unit: "ms", of: func(s sideFigures) float64 { return ms(s.reads.latency.percentile(0.99)) }},
}

// bareOf reads the bare side's value.
func (f figure) bareOf() func(sideFigures) float64 {
	if f.bare != nil {
		return f.bare
	}
	return f.of
}

func medianInt(v []int) float64 {
	f := make([]float64, len(v))
	for i, x := range v {
		f[i] = float64(x)
	}
	return median(f)
}

// cpuPerOrder is the CPU time per completed order of one process, or of
// all of them when name is empty.
func cpuPerOrder(f orderFigures, name string) float64 {
	if f.completed == 0 {
		return 0
	}
	var total time.Duration
	for n, d := range f.cpu {
		if name == "" || n == name {
			total += d
		}
	}
	return ms(total) / float64(f.completed)
}

// cpuPerWebhook is the CPU time per accepted webhook of one process.
func cpuPerWebhook(f intakeFigures, name string) float64 {
	if f.accepted == 0 {
		return 0
	}
	return ms(f.cpu[name]) / float64(f.accepted)
}

// values are a figure's medians over the rounds, for each side.
func (r *Report) values(of, bareOf func(sideFigures) float64) (handoff, bare float64) {
	var h, b []float64
	for _, rd := range r.Rounds {
		h, b = append(h, of(rd.handoff)), append(b, bareOf(rd.bare))
	}
	return median(h), median(b)
}

// ratio is handoff's value over bare's, per round, and its median.
func (r *Report) ratio(of, bareOf func(sideFigures) float64) float64 {
	var v []float64
	for _, rd := range r.Rounds {
		if b := bareOf(rd.bare); b > 0 {
			v = append(v, of(rd.handoff)/b)
		}
	}
	return median(v)
}

// Goal is one goal's outcome.
type Goal struct {
	Name  string
	Ratio float64
	Goal  float64
	// AtMost: the ratio must not exceed Goal; otherwise it must reach it.
	AtMost bool
	Met    bool
}

// Goals are the ratios the README promises, each the median of the rounds'
// ratios, for the phases that ran; reads are a goal of their own (answered
// without a workflow task).
func (r *Report) Goals() []Goal {
	var out []Goal
	for _, f := range figures {
		if f.goal == 0 || !r.Options.runs(f.phase) {
			continue
		}
		g := Goal{Name: f.name, Ratio: r.ratio(f.of, f.bareOf()), Goal: f.goal, AtMost: f.atMost}
		g.Met = (g.AtMost && g.Ratio <= g.Goal) || (!g.AtMost && g.Ratio >= g.Goal)
		out = append(out, g)
	}
	return out
}

// ReadSources counts handoff's reads by where their answer came from, over
// every round.
func (r *Report) ReadSources() map[string]int {
	out := map[string]int{}
	for _, rd := range r.Rounds {
		for k, v := range rd.handoff.reads.sources {
			out[k] += v
		}
	}
	return out
}

// Completed counts each side's completed orders and the orders placed.
func (r *Report) Completed() (handoff, bare, placed int) {
	for _, rd := range r.Rounds {
		handoff += rd.handoff.orders.completed
		bare += rd.bare.orders.completed
		placed += rd.handoff.orders.n
	}
	return handoff, bare, placed
}

// Table renders the report: every figure of both sides with its ratio
// and goal, then CPU per order by process.
func (r *Report) Table() string {
	var b strings.Builder
	o := r.Options
	store := "SQLite file (WAL)"
	if o.InMemory {
		store = "in memory"
	}
	fmt.Fprintf(&b, "handoff against the same order on Temporal alone — one dev server (%s), %d cores (%s), medians of %d rounds\n",
		store, runtime.NumCPU(), cpuModel(), len(r.Rounds))
	fmt.Fprintf(&b, "%d orders a side a round, %d at a time; %d webhooks, %d at a time; %d reads of %d orders waiting for payment\n",
		o.Orders, o.Concurrency, o.Webhooks, o.WebhookConcurrency, o.Reads, readOrders)
	if o.Only != "" {
		fmt.Fprintf(&b, "only the %s phases ran: the other figures are empty\n", o.Only)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "| | handoff | bare | ratio | goal |\n| --- | ---: | ---: | ---: | --- |\n")
	for _, f := range figures {
		h, bare := r.values(f.of, f.bareOf())
		goal := ""
		if f.goal != 0 {
			goal = fmt.Sprintf("≥ %.2f", f.goal)
			if f.atMost {
				goal = fmt.Sprintf("≤ %.2f", f.goal)
			}
		}
		name := f.name
		if f.unit != "" {
			name += " (" + f.unit + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.2f | %s |\n", name, num(h), num(bare), r.ratio(f.of, f.bareOf()), goal)
	}
	fmt.Fprintf(&b, "\nCPU by process (ms), per completed order, per webhook taken by the side's endpoint, and per event handed on in process:\n\n"+
		"| process | order, handoff | order, bare | webhook, handoff | webhook, bare | event, handoff | event, bare |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	names := map[string]bool{}
	for _, rd := range r.Rounds {
		for _, s := range []sideFigures{rd.handoff, rd.bare} {
			for _, cpu := range []map[string]time.Duration{s.orders.cpu, s.webhooks.cpu, s.inProcess.cpu} {
				for n := range cpu {
					names[n] = true
				}
			}
		}
	}
	for _, n := range slices.Sorted(maps.Keys(names)) {
		fmt.Fprintf(&b, "| %s", n)
		for _, of := range []func(sideFigures) float64{
			func(s sideFigures) float64 { return cpuPerOrder(s.orders, n) },
			func(s sideFigures) float64 { return cpuPerWebhook(s.webhooks, n) },
			func(s sideFigures) float64 { return cpuPerWebhook(s.inProcess, n) },
		} {
			h, bare := r.values(of, of)
			fmt.Fprintf(&b, " | %s | %s", num(h), num(bare))
		}
		b.WriteString(" |\n")
	}
	if len(r.Rounds) > 0 {
		last := r.Rounds[len(r.Rounds)-1]
		fmt.Fprintf(&b, "\nHistory of one order of the last round, by event type:\n\n| event | handoff | bare |\n| --- | ---: | ---: |\n")
		kinds := map[string]bool{}
		for k := range last.handoff.orders.kinds {
			kinds[k] = true
		}
		for k := range last.bare.orders.kinds {
			kinds[k] = true
		}
		for _, k := range slices.Sorted(maps.Keys(kinds)) {
			fmt.Fprintf(&b, "| %s | %d | %d |\n", k, last.handoff.orders.kinds[k], last.bare.orders.kinds[k])
		}
	}
	src := r.ReadSources()
	fmt.Fprintf(&b, "\nhandoff's reads answered by: %s\n", sources(src))
	fmt.Fprintf(&b, "\nGoals (median of the rounds' ratios):\n")
	for _, g := range r.Goals() {
		mark := "met"
		if !g.Met {
			mark = "NOT met"
		}
		cmp := "≥"
		if g.AtMost {
			cmp = "≤"
		}
		fmt.Fprintf(&b, "  %-32s %.2f %s %.2f  %s\n", g.Name, g.Ratio, cmp, g.Goal, mark)
	}
	if !o.runs("reads") {
		return b.String()
	}
	mark := "met"
	if src["workflow"] > 0 {
		mark = "NOT met"
	}
	fmt.Fprintf(&b, "  %-32s %d of %d by a workflow task  %s\n", "reads without a workflow task", src["workflow"], total(src), mark)
	return b.String()
}

// cpuModel is the processor's name, from /proc/cpuinfo.
func cpuModel() string {
	raw, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(raw), "\n") {
		if name, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimLeft(name, " \t:"))
		}
	}
	return runtime.GOOS + "/" + runtime.GOARCH
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sources(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
