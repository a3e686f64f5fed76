// Package stripetest runs the pinned stripe-mock (built into ./bin by the
// Makefile) for tests: a real peer that validates every request against
// Stripe's OpenAPI spec and answers with Stripe's canned objects.
package stripetest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Key is stripe-mock's accepted form of a test secret key; it is not a real
// credential.
const Key = "sk_test_123"

var mock struct {
	once sync.Once
	url  string
	cmd  *exec.Cmd
	err  error
}

// URL starts stripe-mock once per test process, on a free loopback port,
// and returns its base URL. Call Stop from TestMain.
func URL(tb testing.TB) string {
	tb.Helper()
	mock.once.Do(func() { mock.url, mock.cmd, mock.err = start() })
	if mock.err != nil {
		tb.Fatal(mock.err)
	}
	return mock.url
}

// Stop ends stripe-mock if it was started.
func Stop() {
	if mock.cmd != nil {
		_ = mock.cmd.Process.Kill()
	}
}

func start() (string, *exec.Cmd, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", nil, err
	}
	for ; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if dir == filepath.Dir(dir) {
			return "", nil, errors.New("no go.mod above the test")
		}
	}
	bin := filepath.Join(dir, "bin", "stripe-mock")
	if _, err := os.Stat(bin); err != nil {
		return "", nil, fmt.Errorf("%s is missing: run the tests with `make test`, which builds it: %w", bin, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "-http-addr", fmt.Sprintf("127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start stripe-mock: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// It parses Stripe's whole OpenAPI spec first: seconds on a busy machine.
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			return "http://" + addr, cmd, nil
		}
	}
	_ = cmd.Process.Kill()
	return "", nil, errors.New("stripe-mock did not start listening within 90 s")
}
