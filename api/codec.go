package api

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/handoff-hq/handoff/codec"
)

// maxCodecBytes bounds one codec request.
const maxCodecBytes = 8 << 20

var problemUnknownKey = problemKind{http.StatusUnprocessableEntity, "unknown-payload-key", "The payload was encrypted with a key this server does not have"}

// The codec endpoint serves Temporal's remote codec protocol (POST
// /codec/encode and /codec/decode, {"payloads":[…]} in and out) for the
// Temporal Web UI and CLI: it decodes handoff's encrypted payloads for an
// operator, and for no one else. It takes an operator bearer token or the
// operations page's session cookie; a browser may call it only from the
// configured Web UI's origin, with credentials.
func (s *Server) codecEndpoint(c echo.Context) error {
	if s.codec == nil {
		return problemNotFound.with("payload encryption is not configured (HANDOFF_PAYLOAD_KEYS)")
	}
	if origin := c.Request().Header.Get("Origin"); origin != "" && !s.codecOrigin(origin) {
		return problemForbidden.with("this origin may not use the codec endpoint")
	}
	if !s.isOperator(c) {
		return problemUnauthorized.with("send an operator token, or sign in to the operations page")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxCodecBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return problemTooLarge.with("")
	}
	var in commonpb.Payloads
	if err != nil || protojson.Unmarshal(body, &in) != nil {
		return problemInvalid.with(`want {"payloads":[…]} as Temporal's remote codec sends it`)
	}
	var out []*commonpb.Payload
	if strings.HasSuffix(c.Path(), "/encode") {
		out, err = s.codec.Encode(in.GetPayloads())
	} else {
		out, err = s.codec.Decode(in.GetPayloads())
	}
	switch {
	case errors.Is(err, codec.ErrUnknownKey):
		return problemUnknownKey.with(err.Error())
	case err != nil:
		return problemInvalid.with(err.Error())
	}
	raw, err := protojson.Marshal(&commonpb.Payloads{Payloads: out})
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, raw)
}

// codecPreflight answers the browser's CORS preflight: the Web UI's origin
// may POST with credentials and the headers the UI sends; any other origin
// gets no grant.
func (s *Server) codecPreflight(c echo.Context) error {
	if !s.codecOrigin(c.Request().Header.Get("Origin")) {
		return c.NoContent(http.StatusForbidden)
	}
	h := c.Response().Header()
	h.Set("Access-Control-Allow-Methods", http.MethodPost)
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Namespace")
	h.Set("Access-Control-Max-Age", "600")
	return c.NoContent(http.StatusNoContent)
}

// codecCORS grants the Web UI's origin the codec endpoint's answers.
func (s *Server) codecCORS(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if origin := c.Request().Header.Get("Origin"); s.codecOrigin(origin) {
			h := c.Response().Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Add("Vary", "Origin")
		}
		return next(c)
	}
}

// codecOrigin reports whether origin is the configured Web UI's.
func (s *Server) codecOrigin(origin string) bool {
	if s.webUI == "" || origin == "" {
		return false
	}
	ui, err := url.Parse(s.webUI)
	if err != nil {
		return false
	}
	return strings.EqualFold(origin, ui.Scheme+"://"+ui.Host)
}

// isOperator reports whether the request carries an operator token or a
// valid operations page session.
func (s *Server) isOperator(c echo.Context) bool {
	if _, ok := s.session(c); ok {
		return true
	}
	ok := false
	_ = requireBearer(s.opTokens, func(echo.Context) error { ok = true; return nil })(c)
	return ok
}
