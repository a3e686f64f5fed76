// Package api is handoff's HTTP front door: the /v1 API applications use to
// start business actions and read their state, health and readiness probes,
// and Prometheus metrics. Every error is an RFC 9457 problem.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/system"
)

// businessKey is the request context key of the action's business key.
const businessKey = "business_key"

// HeaderCorrelationID carries the correlation id in and out of the API.
const HeaderCorrelationID = "X-Correlation-ID"

// maxBodyBytes bounds a request body.
const maxBodyBytes = 1 << 20

// Orders is what the API needs to place and read orders.
type Orders interface {
	PlaceOrder(ctx context.Context, order action.Order, correlationID string) (control.Placed, error)
	Order(ctx context.Context, orderID string) (control.OrderRead, error)
}

// Options configures a Server.
type Options struct {
	Orders Orders
	// Customers, when set, serves /v1/customers and the customer record
	// events of the systems that send them.
	Customers Customers
	// Events receives verified webhook events; Webhooks says, per system,
	// how its webhooks are signed.
	Events   Events
	Webhooks map[string]WebhookSource
	// Ready reports whether the workflow engine is reachable.
	Ready func(context.Context) error
	// Operators serves the operator endpoints; Reconciliations the
	// reconciliation endpoints.
	Operators       Operators
	Reconciliations Reconciliations
	// APITokens are the bearer tokens accepted on /v1; OperatorTokens on
	// the operator endpoints (none: those endpoints refuse everyone).
	APITokens      []string
	OperatorTokens []string
	// WebUIURL and Namespace build links into the Temporal Web UI; empty
	// WebUIURL leaves them out.
	WebUIURL  string
	Namespace string
	Logger    *slog.Logger
	// Registry receives the API's metrics and is served on /metrics; nil
	// makes a new one.
	Registry Registry
	// Health, when set, exports the state in Temporal (provider pauses and
	// backlogs, actions needing attention) as metrics and shows it on the
	// operations page.
	Health Health
	// WorkerMetricsURLs are the /metrics of workers that run apart from
	// this API, which the operations page reads its provider figures from
	// (a worker in this process reports to Registry).
	WorkerMetricsURLs []string
	// Codec, when set, serves /codec/encode and /codec/decode for
	// operators (the Temporal Web UI's and CLI's remote codec).
	Codec *codec.Encryption
}

// Registry is where the API registers its metrics and what /metrics
// serves; a *prometheus.Registry is one.
type Registry interface {
	prometheus.Registerer
	prometheus.Gatherer
}

// Server is the HTTP API.
type Server struct {
	echo            *echo.Echo
	orders          Orders
	customers       Customers
	events          Events
	operators       Operators
	reconciliations Reconciliations
	webhooks        map[string]WebhookSource
	opTokens        [][sha256.Size]byte
	ready           func(context.Context) error
	tokens          [][sha256.Size]byte
	log             *slog.Logger
	webUI           string
	ns              string
	metrics         *metrics
	health          Health
	stats           *statsSource
	codec           *codec.Encryption
	draining        atomic.Bool
	// referencePage is openapi.yaml rendered for reading.
	referencePage []byte
}

// New returns the API server; it refuses to run without tokens or services.
func New(opts Options) (*Server, error) {
	if opts.Orders == nil || opts.Ready == nil || opts.Events == nil || opts.Operators == nil || opts.Reconciliations == nil {
		return nil, errors.New("new api: orders, events, operators, reconciliations and readiness check are required")
	}
	if len(opts.APITokens) == 0 {
		return nil, errors.New("new api: at least one API token is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	s := &Server{
		echo: echo.New(), orders: opts.Orders, customers: opts.Customers, events: opts.Events, operators: opts.Operators,
		reconciliations: opts.Reconciliations, webhooks: opts.Webhooks,
		ready: opts.Ready, log: opts.Logger,
		webUI: strings.TrimRight(opts.WebUIURL, "/"), ns: opts.Namespace,
		metrics: newMetrics(opts.Registry), health: opts.Health, codec: opts.Codec,
		stats: &statsSource{gatherer: opts.Registry, urls: opts.WorkerMetricsURLs, client: &http.Client{Timeout: 3 * time.Second}},
	}
	if opts.Health != nil {
		opts.Registry.MustRegister(newStateCollector(opts.Health))
	}
	var err error
	if s.referencePage, err = referencePage(); err != nil {
		return nil, err
	}
	s.tokens = digests(opts.APITokens)
	s.opTokens = digests(opts.OperatorTokens)
	s.echo.HideBanner, s.echo.HidePort = true, true
	s.echo.HTTPErrorHandler = s.errorHandler
	// A panic in a handler becomes a logged 500 problem, never a dropped
	// connection; it is counted like any other answer.
	s.echo.Use(s.observe, middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisablePrintStack: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.Error("handler panicked", "method", c.Request().Method, "route", routeOf(c),
				"correlation_id", correlationID(c), "error", err, "stack", string(stack))
			return err
		},
	}))
	s.echo.GET("/healthz", s.healthz)
	s.echo.GET("/openapi.yaml", s.openAPIDocument)
	s.echo.GET("/docs/api", s.reference)
	s.echo.GET("/readyz", s.readyz)
	s.echo.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{})))
	s.echo.POST("/webhooks/:system", s.webhook)
	s.echo.GET("/ops", s.opsHome)
	s.echo.GET("/ops/sign-in", s.opsSignInForm)
	s.echo.POST("/ops/sign-in", s.opsSignIn)
	s.echo.POST("/ops/sign-out", s.opsSignOut)
	s.echo.POST("/ops/actions", s.opsAction)
	s.echo.POST("/ops/providers", s.opsProvider)
	for _, path := range []string{"/codec/encode", "/codec/decode"} {
		s.echo.POST(path, s.codecEndpoint, s.codecCORS)
		s.echo.OPTIONS(path, s.codecPreflight, s.codecCORS)
	}
	v1 := s.echo.Group("/v1")
	v1.POST("/orders", s.placeOrder, s.requireToken)
	// Operators read and cancel orders too (handoff orders show|cancel).
	v1.GET("/orders/:order_id", s.getOrder, s.requireEither)
	v1.POST("/orders/:order_id/cancel", s.cancelOrder, s.requireEither)
	if s.customers != nil {
		v1.PUT("/customers/:customer_id", s.putCustomer, s.requireToken)
		v1.GET("/customers/:customer_id", s.getCustomer, s.requireToken)
	}
	v1.GET("/actions", s.listActions, s.requireOperator)
	v1.POST("/actions/*", s.resolveAction, s.requireOperator)
	v1.POST("/reconciliations", s.startReconciliation, s.requireOperator)
	v1.GET("/reconciliations/:id", s.getReconciliation, s.requireOperator)
	v1.GET("/contracts/drift", s.getContractDrift, s.requireOperator)
	v1.POST("/contracts/drift/clear", s.clearContractDrift, s.requireOperator)
	v1.GET("/providers/:system", s.getProvider, s.requireOperator, s.knownSystem)
	v1.POST("/providers/:system/:op", s.controlProvider, s.requireOperator, s.knownSystem)
	return s, nil
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// knownSystem refuses a provider path that names no system.
func (s *Server) knownSystem(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if _, ok := system.Lookup(c.Param("system")); ok {
			return next(c)
		}
		return noSuchSystem()
	}
}

// noSuchSystem is the problem of a request that names no system handoff
// knows.
func noSuchSystem() error {
	return problemNotFound.with("no such system: want one of " + strings.Join(system.Names(), ", "))
}

func digests(tokens []string) [][sha256.Size]byte {
	var out [][sha256.Size]byte
	for _, t := range tokens {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, sha256.Sum256([]byte(t)))
		}
	}
	return out
}

// requireToken lets a request through only with an API token.
func (s *Server) requireToken(next echo.HandlerFunc) echo.HandlerFunc {
	return requireBearer(s.tokens, next)
}

// requireOperator lets a request through only with an operator token.
func (s *Server) requireOperator(next echo.HandlerFunc) echo.HandlerFunc {
	return requireBearer(s.opTokens, next)
}

// requireEither lets a request through with an API or an operator token.
func (s *Server) requireEither(next echo.HandlerFunc) echo.HandlerFunc {
	return requireBearer(slices.Concat(s.tokens, s.opTokens), next)
}

// requireBearer lets a request through only with one of the tokens. Tokens
// are compared as digests in constant time, so neither their content nor
// their length leaks through timing.
func requireBearer(tokens [][sha256.Size]byte, next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		auth := c.Request().Header.Get(echo.HeaderAuthorization)
		token, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || token == "" {
			return problemUnauthorized.with("send Authorization: Bearer <token>")
		}
		got := sha256.Sum256([]byte(strings.TrimSpace(token)))
		match := 0
		for _, want := range tokens {
			match |= subtle.ConstantTimeCompare(got[:], want[:])
		}
		if match != 1 {
			return problemUnauthorized.with("the bearer token is not valid here")
		}
		return next(c)
	}
}

var correlationPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// observe gives every request a correlation id (the caller's, when it sent a
// well-formed one), logs it and counts it.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		id := c.Request().Header.Get(HeaderCorrelationID)
		if !correlationPattern.MatchString(id) {
			id = uuid.NewString()
		}
		c.Set(HeaderCorrelationID, id)
		c.Response().Header().Set(HeaderCorrelationID, id)
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := routeOf(c)
		status := c.Response().Status
		elapsed := time.Since(start)
		method := methodLabel(c.Request().Method)
		s.metrics.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
		s.metrics.latency.WithLabelValues(method, route).Observe(elapsed.Seconds())
		key, _ := c.Get(businessKey).(string)
		if key == "" {
			key = c.Param("order_id")
		}
		s.log.Info("request", "method", method, "route", route, "status", status,
			"duration_ms", elapsed.Milliseconds(), "correlation_id", id, "business_key", key)
		return nil
	}
}

// routeOf is the request's route template ("/v1/orders/:order_id"), never
// its path: labels and logs must not take values a client chose.
func routeOf(c echo.Context) string {
	if route := c.Path(); route != "" {
		return route
	}
	return "unmatched"
}

// methodLabel keeps the method label to a closed set.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

func correlationID(c echo.Context) string {
	id, _ := c.Get(HeaderCorrelationID).(string)
	return id
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz says whether this instance should be sent traffic. It is ready
// while it serves, whether Temporal answers or not: with Temporal briefly
// unreachable every instance still answers as promised (503 with
// Retry-After, which webhook senders retry), where taking every instance
// out of a load balancer would leave them with connection errors. It is not
// ready once it drains before stopping. The body says whether Temporal
// answers; ?temporal=required makes that decide too, for a start-up gate.
func (s *Server) readyz(c echo.Context) error {
	if s.draining.Load() {
		return problemUnavailable.with("this instance is shutting down")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	temporal := "reachable"
	if err := s.ready(ctx); err != nil {
		if c.QueryParam("temporal") == "required" {
			return problemUnavailable.with("temporal is not reachable")
		}
		temporal = "unreachable"
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready", "temporal": temporal})
}

// Drain makes /readyz answer 503 from now on, so that load balancers stop
// sending traffic before the instance stops; requests are still served.
func (s *Server) Drain() { s.draining.Store(true) }
