package api

import (
	"net/http"
	"time"
)

// Timeouts bound how long one connection may hold the server.
type Timeouts struct {
	// ReadHeader bounds reading a request's headers; Read its headers and
	// body together: a client that sends part of a body and stops is cut
	// off then.
	ReadHeader time.Duration
	Read       time.Duration
	// Write bounds handling a request and writing its answer.
	Write time.Duration
	// Idle is how long a kept-alive connection may wait for its next
	// request before it is closed.
	Idle time.Duration
}

// DefaultTimeouts are the timeouts of handoff's HTTP servers (the API and
// the sandbox). Write leaves room for the slowest handler: an operator's
// update waits for the workflow to take it.
var DefaultTimeouts = Timeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 60 * time.Second, Idle: 2 * time.Minute}

// NewHTTPServer returns an http.Server for h with every timeout set, so
// that no client can hold a connection open by sending slowly, or not at
// all.
func NewHTTPServer(h http.Handler, t Timeouts) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    64 << 10,
	}
}
