package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/contracts"
	"github.com/handoff-hq/handoff/contracts/conformance"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/providers/smtp/smtptest"
)

const from = "shop@example.com"

// newClient returns a client that reaches the server through the proxy,
// with STARTTLS required and verified against the server's certificate,
// and SMTP AUTH.
func newClient(t *testing.T, server *smtptest.Server, addr string, startTLS string) *Client {
	t.Helper()
	contract, ok := contracts.For("mail", Kind)
	if !ok {
		t.Fatal("no contract for mail on smtp")
	}
	pem, err := os.ReadFile(server.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	c, err := NewClient(Options{System: "mail", Host: host, Port: p, StartTLS: startTLS, TLS: &tls.Config{RootCAs: roots},
		Username: "handoff", Password: "development-only", From: from, Timeout: 10 * time.Second, Contract: &contract})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// plainThroughProxy is a client that reaches a Mailpit through a proxy in
// plain text, so that the proxy can see where the conversation is, and
// without credentials, which are never sent in the clear.
func plainThroughProxy(t *testing.T) (*smtptest.Server, *smtptest.Proxy, *Client) {
	t.Helper()
	server := smtptest.Start(t)
	proxy := smtptest.NewProxy(t, server.Addr())
	c := newClient(t, server, proxy.Addr, TLSOff)
	c.opts.Username, c.opts.Password = "", ""
	return server, proxy, c
}

// mailpitPeer makes Mailpit answer with a declared code (its chaos
// triggers) and counts the connections that reached it.
type mailpitPeer struct {
	t      *testing.T
	server *smtptest.Server
	proxy  *smtptest.Proxy
}

func (p mailpitPeer) Answer(_ string, r contracts.Response) (func(), bool) {
	trigger := smtptest.Trigger{ErrorCode: r.Status, Probability: 100}
	switch {
	case r.Status == 535:
		p.server.SetChaos(p.t, smtptest.Chaos{Authentication: trigger})
	case r.Status >= 400 && r.Status <= 599:
		p.server.SetChaos(p.t, smtptest.Chaos{Sender: trigger})
	default:
		return nil, false
	}
	return func() { p.server.SetChaos(p.t, smtptest.Chaos{}) }, true
}

func (p mailpitPeer) Requests() int { return p.proxy.Conns() }

// The SMTP adapter keeps its contract against a real SMTP server: the
// message is sent with STARTTLS and AUTH, a message breaking the contract
// never opens a connection, every declared reply code is classified as
// declared, and the adapter never claims to find a message.
func TestTheSMTPAdapterKeepsItsContract(t *testing.T) {
	server := smtptest.Start(t)
	proxy := smtptest.NewProxy(t, server.Addr())
	c := newClient(t, server, proxy.Addr, TLSRequired)
	var n atomic.Int64
	unique := func() string { return fmt.Sprintf("%d-%d", time.Now().UnixNano(), n.Add(1)) }
	conformance.Run(t, conformance.Suite{Contract: *c.Contract(), Peer: mailpitPeer{t: t, server: server, proxy: proxy}, Unique: unique,
		Operations: map[string]conformance.Operation{
			"send_message": {Do: func(ctx context.Context, f map[string]any) error {
				req := providers.MessageRequest{To: str(f["to"]), Subject: str(f["subject"]), Text: str(f["text"])}
				_, err := c.SendMessage(ctx, providers.Call{IdempotencyKey: "order/" + unique() + "/confirmation"}, req)
				return err
			}},
		},
		Lookups: map[string]conformance.Lookup{
			"message": {
				Create: func(ctx context.Context, ref string) (string, error) {
					_, err := c.SendMessage(ctx, providers.Call{IdempotencyKey: ref}, providers.MessageRequest{To: "ada@example.com", Subject: "Your order"})
					return ref, err
				},
				Find: func(ctx context.Context, ref string) (bool, error) {
					_, found, err := c.FindMessage(ctx, providers.Call{}, ref)
					return found, err
				},
			},
		},
	})
}

func TestAMessageCarriesAMessageIDDerivedFromItsKey(t *testing.T) {
	server := smtptest.Start(t)
	c := newClient(t, server, server.Addr(), TLSRequired)
	var logged bytes.Buffer
	c.opts.Logger = slog.New(slog.NewJSONHandler(&logged, nil))
	key := "order/A-1/confirmation"
	m, err := c.SendMessage(context.Background(), providers.Call{IdempotencyKey: key, CorrelationID: "corr-1"},
		providers.MessageRequest{To: "ada@example.com", Subject: "Your order A-1", Text: "Thank you."})
	if err != nil {
		t.Fatal(err)
	}
	id := MessageID(key, from)
	if m.ID != "<"+id+">" || m.ExternalRef != key {
		t.Errorf("message = %+v, want id <%s> and external ref %s", m, id, key)
	}
	if got := server.Count(t, id); got != 1 {
		t.Errorf("%d messages with Message-ID %s arrived, want 1", got, id)
	}
	if MessageID(key, from) != id || MessageID("order/A-2/confirmation", from) == id {
		t.Error("a Message-ID must be the same for a key and differ between keys")
	}
	if want := "@example.com"; id[len(id)-len(want):] != want {
		t.Errorf("Message-ID %s is not in the sender's domain", id)
	}
	// The send gets the line every provider call gets, without the
	// message's content or its recipient.
	var line map[string]any
	if err := json.Unmarshal(logged.Bytes(), &line); err != nil {
		t.Fatalf("log: %v: %s", err, logged.String())
	}
	if line["msg"] != "provider call" || line["operation"] != OperationSend || line["status"] != float64(250) || line["outcome"] != "ok" ||
		line["idempotency_key"] != key || line["correlation_id"] != "corr-1" || line["remote_ref"] != m.ID {
		t.Errorf("log line %v", line)
	}
	if strings.Contains(logged.String(), "ada@") || strings.Contains(logged.String(), "Thank you") {
		t.Errorf("the log holds the message: %s", logged.String())
	}
}

// smtps:// speaks TLS from the first byte and authenticates over it.
func TestImplicitTLSAuthenticatesAndSends(t *testing.T) {
	server := smtptest.StartWith(t, smtptest.Options{ImplicitTLS: true})
	c := newClient(t, server, server.Addr(), TLSRequired)
	c.opts.ImplicitTLS = true
	key := "order/smtps/confirmation"
	if _, err := c.SendMessage(context.Background(), providers.Call{IdempotencyKey: key},
		providers.MessageRequest{To: "ada@example.com", Subject: "Your order"}); err != nil {
		t.Fatalf("smtps with AUTH: %v", err)
	}
	if got := server.Count(t, MessageID(key, from)); got != 1 {
		t.Errorf("%d arrived, want 1", got)
	}
}

// A send whose time is up is cut off, whatever command it waits on: it
// never outlives its activity.
func TestASendEndsWhenItsTimeIsUp(t *testing.T) {
	// A server that greets and then never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				fmt.Fprint(conn, "220 slow.example.com ESMTP\r\n")
				buf := make([]byte, 1024)
				for {
					if _, err := conn.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	c, err := NewClient(Options{Host: host, Port: p, StartTLS: TLSOff, From: from, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.SendMessage(ctx, providers.Call{IdempotencyKey: "order/slow/confirmation"}, providers.MessageRequest{To: "ada@example.com", Subject: "Your order"})
	if err == nil {
		t.Fatal("a server that never answers took the message")
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the send took %v after its context ended", took)
	}
}

// Where the connection is lost decides what happens next: before the
// message's end it is retried and arrives once; after its end it parks as
// ambiguous (final: not retried by itself), having arrived once.
func TestWhereTheConnectionIsCutDecidesWhetherTheSendIsRetried(t *testing.T) {
	server, proxy, c := plainThroughProxy(t)
	send := func(key string) error {
		_, err := c.SendMessage(context.Background(), providers.Call{IdempotencyKey: key},
			providers.MessageRequest{To: "ada@example.com", Subject: "Your order", Text: "Thank you."})
		return err
	}

	t.Run("cut before the message is handed over", func(t *testing.T) {
		key := "order/cut-early/confirmation"
		proxy.CutNext(smtptest.CutAtRecipient, 1)
		err := send(key)
		var pe *providers.Error
		if !errors.As(err, &pe) || pe.Category != action.CategoryTemporary || pe.Final {
			t.Fatalf("cut at RCPT: %v, want a temporary failure to retry", err)
		}
		if got := server.Count(t, MessageID(key, from)); got != 0 {
			t.Fatalf("%d arrived before the retry, want 0", got)
		}
		if err := send(key); err != nil {
			t.Fatalf("retry: %v", err)
		}
		if got := server.Count(t, MessageID(key, from)); got != 1 {
			t.Errorf("%d arrived, want exactly 1", got)
		}
	})

	t.Run("cut after the message is handed over", func(t *testing.T) {
		key := "order/cut-late/confirmation"
		proxy.CutNext(smtptest.CutAfterEnd, 1)
		err := send(key)
		var pe *providers.Error
		if !errors.As(err, &pe) || pe.Category != action.CategoryAmbiguous || pe.Type != action.TypeAmbiguous || !pe.Final {
			t.Fatalf("cut after the end: %v, want a final ambiguous outcome", err)
		}
		if got := server.CountWithin(t, MessageID(key, from), 1); got != 1 {
			t.Errorf("%d arrived, want 1: the server took it, the client could not know", got)
		}
	})
}

// A connection lost after the server accepted the message (its RSET or
// QUIT fails) is a delivery, not a failure to retry.
func TestAConnectionLostAfterTheServerAcceptedIsADelivery(t *testing.T) {
	server, proxy, c := plainThroughProxy(t)
	key := "order/cut-after-acceptance/confirmation"
	proxy.CutNext(smtptest.CutAfterAcceptance, 1)
	m, err := c.SendMessage(context.Background(), providers.Call{IdempotencyKey: key},
		providers.MessageRequest{To: "ada@example.com", Subject: "Your order", Text: "Thank you."})
	if err != nil {
		t.Fatalf("accepted, then cut: %v, want the message reported sent", err)
	}
	if proxy.Cuts() != 1 || m.ExternalRef != key {
		t.Errorf("cuts %d, message %+v", proxy.Cuts(), m)
	}
	if got := server.Count(t, MessageID(key, from)); got != 1 {
		t.Errorf("%d arrived, want 1", got)
	}
}

// The server's answer to the message's end is definite, and classified
// as the contract declares: 4xx is tried again, 5xx parks.
func TestTheAnswerToTheMessagesEndIsClassifiedAsDeclared(t *testing.T) {
	_, proxy, c := plainThroughProxy(t)
	for _, tt := range []struct {
		reply    string
		category action.Category
		typ      string
	}{
		{"451 4.3.0 Try again later", action.CategoryTemporary, action.TypeTemporary},
		{"452 4.3.1 Insufficient system storage", action.CategoryTemporary, action.TypeTemporary},
		{"552 5.3.4 Message too big", action.CategoryPermanent, action.TypeInvalidInput},
		{"554 5.7.1 Rejected", action.CategoryPermanent, action.TypeInvalidInput},
	} {
		proxy.AnswerEndWith(tt.reply, 1)
		_, err := c.SendMessage(context.Background(), providers.Call{IdempotencyKey: "order/end-" + tt.reply[:3] + "/confirmation"},
			providers.MessageRequest{To: "ada@example.com", Subject: "Your order"})
		var pe *providers.Error
		if !errors.As(err, &pe) || pe.Category != tt.category || pe.Type != tt.typ || pe.Final || pe.Status != atoi(tt.reply[:3]) {
			t.Errorf("end answered %q: %v, want %s/%s with its code", tt.reply, err, tt.category, tt.typ)
		}
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func TestAPausedMailProviderIsNotConnectedTo(t *testing.T) {
	server := smtptest.Start(t)
	proxy := smtptest.NewProxy(t, server.Addr())
	c := newClient(t, server, proxy.Addr, TLSRequired)
	ctx := providers.WithGate(context.Background(), func(context.Context, string) error { return errors.New("paused by an operator") })
	_, err := c.SendMessage(ctx, providers.Call{IdempotencyKey: "order/p/confirmation"}, providers.MessageRequest{To: "ada@example.com", Subject: "Your order"})
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Type != action.TypePaused {
		t.Fatalf("paused: %v, want %s", err, action.TypePaused)
	}
	if proxy.Conns() != 0 {
		t.Errorf("%d connections while paused, want 0", proxy.Conns())
	}
}

func TestAServerThatCannotBeVerifiedGetsNoMessage(t *testing.T) {
	server := smtptest.Start(t)
	c := newClient(t, server, server.Addr(), TLSRequired)
	c.opts.TLS = &tls.Config{RootCAs: x509.NewCertPool()} // trusts nothing
	key := "order/untrusted/confirmation"
	_, err := c.SendMessage(context.Background(), providers.Call{IdempotencyKey: key}, providers.MessageRequest{To: "ada@example.com", Subject: "Your order"})
	if err == nil {
		t.Fatal("sent to a server whose certificate is not trusted")
	}
	if got := server.Count(t, MessageID(key, from)); got != 0 {
		t.Errorf("%d arrived, want 0", got)
	}
}

func TestOptionsAreCheckedAtOnce(t *testing.T) {
	_, err := NewClient(Options{Port: 25, From: "not an address", StartTLS: "sometimes", Username: "u"})
	if err == nil {
		t.Fatal("bad options accepted")
	}
	for _, want := range []string{"host", "from", "starttls", "password"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}
