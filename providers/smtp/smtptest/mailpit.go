// Package smtptest runs the pinned Mailpit (built into ./bin by the
// Makefile) for tests: a real SMTP server on free loopback ports, with
// STARTTLS on a certificate made for the test, any credentials accepted,
// failures on demand (its chaos triggers), and an HTTP API that shows what
// arrived.
package smtptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Server is one running Mailpit.
type Server struct {
	// Host and Port are its SMTP address; APIURL its HTTP API.
	Host   string
	Port   int
	APIURL string
	// CAFile is the PEM certificate its STARTTLS presents (self-signed for
	// 127.0.0.1), for the client to trust.
	CAFile string
}

// Options change how Mailpit listens.
type Options struct {
	// ImplicitTLS speaks TLS from the first byte (as on port 465) instead
	// of offering STARTTLS.
	ImplicitTLS bool
}

// Start runs a Mailpit of its own for the test, offering STARTTLS, and
// stops it when the test ends.
func Start(tb testing.TB) *Server { return StartWith(tb, Options{}) }

// StartWith runs a Mailpit with the options.
func StartWith(tb testing.TB, opts Options) *Server {
	tb.Helper()
	bin, err := binary()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := writeCertificate(certFile, keyFile); err != nil {
		tb.Fatal(err)
	}
	smtpPort, apiPort := freePort(tb), freePort(tb)
	args := []string{
		"--listen", fmt.Sprintf("127.0.0.1:%d", apiPort),
		"--smtp", fmt.Sprintf("127.0.0.1:%d", smtpPort),
		"--database", filepath.Join(dir, "mailpit.db"),
		"--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile,
		"--smtp-auth-accept-any", "--smtp-disable-rdns", "--enable-chaos", "--quiet"}
	if opts.ImplicitTLS {
		args = append(args, "--smtp-require-tls")
	} else {
		// AUTH is offered before STARTTLS too; handoff's client only uses
		// it over TLS.
		args = append(args, "--smtp-auth-allow-insecure")
	}
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start mailpit: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	s := &Server{Host: "127.0.0.1", Port: smtpPort, APIURL: fmt.Sprintf("http://127.0.0.1:%d", apiPort), CAFile: certFile}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(s.APIURL + "/api/v1/info"); err == nil {
			resp.Body.Close()
			if conn, err := net.Dial("tcp", s.Addr()); err == nil {
				conn.Close()
				return s
			}
		}
		select {
		case <-done:
			tb.Fatalf("mailpit exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("mailpit did not answer within 30 s: %s", out.String())
		}
	}
}

// Addr is the SMTP server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, fmt.Sprint(s.Port)) }

// Message is one message as Mailpit stored it.
type Message struct {
	ID        string
	MessageID string
	Subject   string
	To        []struct{ Address string }
}

// Messages returns every message that arrived, newest first.
func (s *Server) Messages(tb testing.TB) []Message {
	tb.Helper()
	resp, err := http.Get(s.APIURL + "/api/v1/messages?limit=1000")
	if err != nil {
		tb.Fatalf("mailpit messages: %v", err)
	}
	defer resp.Body.Close()
	var page struct{ Messages []Message }
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		tb.Fatalf("mailpit messages: %v", err)
	}
	return page.Messages
}

// Count is how many messages arrived with the Message-ID (without angle
// brackets).
func (s *Server) Count(tb testing.TB, messageID string) int {
	n := 0
	for _, m := range s.Messages(tb) {
		if m.MessageID == messageID {
			n++
		}
	}
	return n
}

// CountWithin waits up to five seconds for the count of messages with the
// Message-ID to reach want (a message the server accepted may be stored a
// moment after the client lost its connection), and returns the count.
func (s *Server) CountWithin(tb testing.TB, messageID string, want int) int {
	tb.Helper()
	n := 0
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if n = s.Count(tb, messageID); n >= want || time.Now().After(deadline) {
			return n
		}
	}
}

// Trigger makes one stage of the SMTP conversation fail with the code.
type Trigger struct {
	ErrorCode   int
	Probability int
}

// Chaos are the failures Mailpit answers with: at MAIL FROM (Sender),
// RCPT TO (Recipient) or AUTH (Authentication).
type Chaos struct {
	Sender, Recipient, Authentication Trigger
}

// SetChaos replaces the failures; the zero Chaos turns them off.
func (s *Server) SetChaos(tb testing.TB, c Chaos) {
	tb.Helper()
	body, _ := json.Marshal(c)
	req, _ := http.NewRequest(http.MethodPut, s.APIURL+"/api/v1/chaos", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("mailpit chaos: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("mailpit chaos: %s: %s", resp.Status, b)
	}
}

func binary() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for ; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if dir == filepath.Dir(dir) {
			return "", errors.New("no go.mod above the test")
		}
	}
	bin := filepath.Join(dir, "bin", "mailpit")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s is missing: run the tests with `make test`, which builds it: %w", bin, err)
	}
	return bin, nil
}

func freePort(tb testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeCertificate makes a self-signed certificate for 127.0.0.1 and
// localhost, valid for a day: a test's own, never a real credential.
func writeCertificate(certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "handoff test smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
}
