package api

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The operations page computes its rates from handoff's own metrics: the
// process's registry and, where the workers run apart, their /metrics
// endpoints. It compares the metrics now with a sample taken up to
// statsWindow ago, so that its figures are recent, not since start.
const (
	statsWindow   = 15 * time.Minute
	statsInterval = 30 * time.Second
)

// metricSet is one reading of every metric family, by name.
type metricSet map[string]*dto.MetricFamily

type metricSample struct {
	at  time.Time
	set metricSet
}

// statsSource reads the metrics and keeps the samples rates are computed
// against.
type statsSource struct {
	gatherer prometheus.Gatherer
	urls     []string
	client   *http.Client

	mu      sync.Mutex
	samples []metricSample
}

// read gathers the metrics now and returns them with the oldest kept
// sample (an empty one at first: the figures are then since start).
func (s *statsSource) read(ctx context.Context) (now, base metricSample, errs []string) {
	now = metricSample{at: time.Now(), set: metricSet{}}
	if s.gatherer != nil {
		fams, err := s.gatherer.Gather()
		if err != nil {
			errs = append(errs, "local metrics: "+err.Error())
		}
		now.set.add(fams)
	}
	for _, u := range s.urls {
		fams, err := s.scrape(ctx, u)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		now.set.add(fams)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = slices.DeleteFunc(s.samples, func(m metricSample) bool { return now.at.Sub(m.at) > statsWindow })
	base = metricSample{at: now.at, set: metricSet{}}
	if len(s.samples) > 0 {
		base = s.samples[0]
	}
	if len(s.samples) == 0 || now.at.Sub(s.samples[len(s.samples)-1].at) >= statsInterval {
		s.samples = append(s.samples, now)
	}
	return now, base, errs
}

func (s *statsSource) scrape(ctx context.Context, u string) ([]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("worker metrics: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("worker metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("worker metrics at %s: status %d", req.URL.Host, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	byName, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("worker metrics at %s: %w", req.URL.Host, err)
	}
	out := make([]*dto.MetricFamily, 0, len(byName))
	for _, f := range byName {
		out = append(out, f)
	}
	return out, nil
}

func (m metricSet) add(fams []*dto.MetricFamily) {
	for _, f := range fams {
		if have, ok := m[f.GetName()]; ok {
			have.Metric = append(have.Metric, f.Metric...)
			continue
		}
		m[f.GetName()] = f
	}
}

// matches reports whether a metric has every label in want.
func matches(metric *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range metric.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// sum adds up the counters or gauges of a family whose labels match; for
// a name ending in _count, the sample counts of the histogram it names.
func (m metricSet) sum(name string, want map[string]string) float64 {
	total := 0.0
	if h, ok := strings.CutSuffix(name, "_count"); ok && m[h].GetType() == dto.MetricType_HISTOGRAM {
		for _, metric := range m[h].GetMetric() {
			if matches(metric, want) {
				total += float64(metric.GetHistogram().GetSampleCount())
			}
		}
		return total
	}
	for _, metric := range m[name].GetMetric() {
		if matches(metric, want) {
			total += metric.GetCounter().GetValue() + metric.GetGauge().GetValue() + metric.GetUntyped().GetValue()
		}
	}
	return total
}

// has reports whether any series of the family matches.
func (m metricSet) has(name string, want map[string]string) bool {
	for _, metric := range m[name].GetMetric() {
		if matches(metric, want) {
			return true
		}
	}
	return false
}

// buckets adds up the cumulative buckets of a histogram's matching series.
func (m metricSet) buckets(name string, want map[string]string) map[float64]float64 {
	out := map[float64]float64{}
	for _, metric := range m[name].GetMetric() {
		if !matches(metric, want) {
			continue
		}
		for _, b := range metric.GetHistogram().GetBucket() {
			out[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
	}
	return out
}

// delta is the increase of a counter between two samples (a restarted
// process counts from zero again).
func delta(now, base metricSet, name string, want map[string]string) float64 {
	d := now.sum(name, want) - base.sum(name, want)
	if d < 0 {
		return now.sum(name, want)
	}
	return d
}

// quantile estimates the q-quantile of what a histogram observed between
// two samples, as Prometheus's histogram_quantile does; NaN without
// observations.
func quantile(q float64, now, base metricSet, name string, want map[string]string) float64 {
	cur, old := now.buckets(name, want), base.buckets(name, want)
	bounds := make([]float64, 0, len(cur))
	for b := range cur {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	counts := make([]float64, len(bounds))
	for i, b := range bounds {
		counts[i] = cur[b] - old[b]
		if counts[i] < 0 {
			counts[i] = cur[b]
		}
	}
	total := delta(now, base, name+"_count", want)
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for i, b := range bounds {
		if math.IsInf(b, 1) {
			break
		}
		if counts[i] >= rank {
			return lower + (b-lower)*(rank-below)/(counts[i]-below)
		}
		lower, below = b, counts[i]
	}
	return lower // past the last bound: the highest bound is all it says
}
