package worker

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"

	"github.com/handoff-hq/handoff/codec"
)

// SDKMetrics returns a Temporal metrics handler that reports the SDK's own
// metrics (workflow and activity task latencies, failures, poller counts)
// to the Prometheus registry, with Prometheus-style names; handoff's API
// serves that registry on /metrics.
func SDKMetrics(reg *prometheus.Registry, log *slog.Logger) (client.MetricsHandler, func(), error) {
	reporter, err := tallyprom.Configuration{TimerType: "histogram"}.NewReporter(tallyprom.ConfigurationOptions{
		Registry: reg,
		OnError:  func(err error) { log.Warn("register SDK metric", "error", err) },
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sdk metrics: %w", err)
	}
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, time.Second)
	return sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope)), func() { _ = closer.Close() }, nil
}

// CountPayloadFailures counts in reg the payloads enc could not read, by
// reason: unknown_key (a key missing from HANDOFF_PAYLOAD_KEYS) or
// undecryptable (altered data, or another key under the same id). Nil enc
// counts nothing.
func CountPayloadFailures(reg prometheus.Registerer, enc *codec.Encryption) {
	if enc == nil {
		return
	}
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "handoff_payload_decode_failures_total",
		Help: "Payloads this process could not decrypt, by reason: unknown_key or undecryptable. The task that met one fails and is retried until a process with the key takes it.",
	}, []string{"reason"})
	reg.MustRegister(failures)
	for _, r := range []string{"unknown_key", "undecryptable"} {
		failures.WithLabelValues(r)
	}
	enc.OnFailure(func(reason string) { failures.WithLabelValues(reason).Inc() })
}
