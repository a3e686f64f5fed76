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
