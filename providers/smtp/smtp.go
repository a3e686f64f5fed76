// Package smtp sends handoff's e-mail through any SMTP server (a mail
// relay, a transactional provider's SMTP endpoint) with
// github.com/wneessen/go-mail.
//
// SMTP offers no idempotency key and no way to ask a server whether it took
// a message, so the adapter is honest about what it cannot know (see its
// contract, contracts/mail.smtp.yaml):
//
//   - Every message carries a Message-ID derived from the step's idempotency
//     key, the same on every attempt, so that a copy sent twice is one
//     message to the mail clients that deduplicate by it, and an operator
//     can search the server's logs or mailbox for it.
//   - A failure before the message is handed over (dialing, TLS,
//     authentication, MAIL, RCPT, the DATA command) left nothing accepted:
//     it is retried. A reply is definite wherever it comes: 4xx temporary,
//     5xx permanent.
//   - Once the server answered the message's end with 250 it is delivered,
//     whatever happens to the connection afterwards (RSET, QUIT).
//   - A connection lost while the message is handed over (its content and
//     end, written together for a short message) or before the server
//     answered it, with no reply, is ambiguous and final: the server may have accepted it, and there is
//     no look-up, so the step parks as ambiguous for an operator (who checks
//     for the Message-ID and answers skip, or retry to send it again)
//     instead of sending it a second time.
package smtp

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/contracts"
	"github.com/handoff-hq/handoff/providers"
)

// Kind names the provider in HANDOFF_MAIL_PROVIDER.
const Kind = "smtp"

// Operations, as the contract names them.
const (
	OperationSend = "send_message"
	OperationFind = "find_message"
)

// TLS policies: how STARTTLS is used on a plain (smtp://) connection.
const (
	TLSRequired      = "required"
	TLSOpportunistic = "opportunistic"
	TLSOff           = "off"
)

// Options configure a Client.
type Options struct {
	// System is the system the client serves ("mail").
	System string
	// Host and Port are the server's; ImplicitTLS speaks TLS from the
	// first byte (smtps://, usually port 465).
	Host        string
	Port        int
	ImplicitTLS bool
	// StartTLS is one of TLSRequired (the default), TLSOpportunistic or
	// TLSOff, for a plain connection.
	StartTLS string
	// TLS verifies the server; nil uses the system's roots.
	TLS *tls.Config
	// Username and Password authenticate with SMTP AUTH when set; the
	// server's strongest advertised mechanism is used.
	Username string
	Password string
	// From is the sender's address; its domain also names the Message-IDs.
	From string
	// ConnectTimeout bounds dialing; Timeout bounds the whole send (the
	// connection is closed when it is up) and so each command.
	ConnectTimeout time.Duration
	Timeout        time.Duration
	// Contract checks every message before it is sent and classifies the
	// server's replies it declares.
	Contract *contracts.Contract
	// Logger gets one line per message and Metrics counts them, as for
	// every provider call (providers.CallRecorder); nil does neither.
	Logger  *slog.Logger
	Metrics *providers.Metrics
}

// Client sends e-mail over SMTP. It opens a connection per message: the
// confirmations handoff sends are few and a pooled connection would only add
// a failure mode.
type Client struct {
	opts Options
}

var (
	_ providers.Mailer = (*Client)(nil)
)

// NewClient checks the options and returns a client.
func NewClient(opts Options) (*Client, error) {
	if opts.System == "" {
		opts.System = "mail"
	}
	if opts.StartTLS == "" {
		opts.StartTLS = TLSRequired
	}
	var errs []error
	if opts.Host == "" || opts.Port <= 0 {
		errs = append(errs, errors.New("a host and port are required"))
	}
	if _, err := mail.ParseAddress(opts.From); err != nil || !strings.Contains(opts.From, "@") {
		errs = append(errs, fmt.Errorf("from %q: want an e-mail address", opts.From))
	}
	switch opts.StartTLS {
	case TLSRequired, TLSOpportunistic, TLSOff:
	default:
		errs = append(errs, fmt.Errorf("starttls %q: want %s, %s or %s", opts.StartTLS, TLSRequired, TLSOpportunistic, TLSOff))
	}
	if (opts.Username == "") != (opts.Password == "") {
		errs = append(errs, errors.New("set both a username and a password, or neither"))
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.ConnectTimeout <= 0 || opts.ConnectTimeout > opts.Timeout {
		opts.ConnectTimeout = opts.Timeout
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("smtp client: %w", err)
	}
	return &Client{opts: opts}, nil
}

// Contract returns the contract the client checks messages against.
func (c *Client) Contract() *contracts.Contract { return c.opts.Contract }

// MessageID is the Message-ID of the e-mail sent for an idempotency key:
// the same on every attempt, unique per key, and naming no personal data.
func MessageID(idempotencyKey, from string) string {
	domain := "handoff.invalid"
	if a, err := mail.ParseAddress(from); err == nil {
		if i := strings.LastIndex(a.Address, "@"); i >= 0 && i+1 < len(a.Address) {
			domain = a.Address[i+1:]
		}
	}
	sum := sha256.Sum256([]byte(idempotencyKey))
	return "handoff." + hex.EncodeToString(sum[:16]) + "@" + domain
}

// SendMessage sends one e-mail. The returned message's ID is its
// Message-ID, and its external reference the idempotency key. Each send is
// logged and counted like any provider call.
func (c *Client) SendMessage(ctx context.Context, call providers.Call, req providers.MessageRequest) (providers.Message, error) {
	start := time.Now()
	var sent bool
	m, err := c.send(ctx, call, req, &sent)
	rec := providers.CallRecord{Operation: OperationSend, Method: "SMTP", Endpoint: fmt.Sprintf("smtp://%s:%d", c.opts.Host, c.opts.Port),
		Call: call, Sent: sent, Took: time.Since(start), Err: err}
	var pe *providers.Error
	switch {
	case err == nil:
		rec.Status, rec.RemoteRef = 250, m.ID
	case errors.As(err, &pe):
		rec.Status = pe.Status
	}
	providers.CallRecorder{System: c.opts.System, Log: c.opts.Logger, Metrics: c.opts.Metrics}.Record(ctx, rec)
	return m, err
}

// send sends the message; sent is set once a session with the server is
// open, from when the message may be handed over.
func (c *Client) send(ctx context.Context, call providers.Call, req providers.MessageRequest, sent *bool) (providers.Message, error) {
	fields := map[string]any{"to": req.To, "subject": req.Subject, "text": req.Text}
	if err := c.conform(fields); err != nil {
		return providers.Message{}, err
	}
	if call.IdempotencyKey == "" {
		return providers.Message{}, c.fail(action.CategoryPermanent, action.TypeInvalidInput, 0, errors.New("not sent: an e-mail needs the step's idempotency key for its Message-ID"))
	}
	id := MessageID(call.IdempotencyKey, c.opts.From)
	msg := gomail.NewMsg()
	if err := msg.From(c.opts.From); err != nil {
		return providers.Message{}, c.fail(action.CategoryPermanent, action.TypeInvalidInput, 0, fmt.Errorf("not sent: sender: %w", err))
	}
	if err := msg.To(req.To); err != nil {
		return providers.Message{}, c.fail(action.CategoryPermanent, action.TypeInvalidInput, 0, fmt.Errorf("not sent: recipient: %w", err))
	}
	msg.Subject(req.Subject)
	msg.SetMessageIDWithValue(id)
	msg.SetDate()
	msg.SetGenHeader("X-Handoff-Key", call.IdempotencyKey)
	if call.CorrelationID != "" {
		msg.SetGenHeader("X-Correlation-Id", call.CorrelationID)
	}
	msg.SetBodyString(gomail.TypeTextPlain, req.Text)

	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	if err := providers.Pass(ctx, c.opts.System, OperationSend); err != nil {
		return providers.Message{}, err
	}
	var conn net.Conn
	// go-mail leaves the connection open when the greeting, STARTTLS or
	// AUTH fails; it is closed here whatever happened. It bounds each
	// command, not the whole send, so the connection is also closed when
	// the call's time is up: a send never outlives its activity and meets
	// its own retry.
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	client, err := c.client(ctx, &conn)
	if err != nil {
		return providers.Message{}, c.fail(action.CategoryPermanent, action.TypeInvalidInput, 0, err)
	}
	session, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return providers.Message{}, c.classify(err)
	}
	*sent = true
	err = client.SendWithSMTPClient(session, msg)
	// Once the server has accepted the message, what follows (its RSET,
	// QUIT) changes nothing: a failure there must not make a delivered
	// message look unsent, or it would be sent again.
	_ = client.CloseWithSMTPClient(session)
	if err != nil && !msg.IsDelivered() {
		return providers.Message{}, c.classify(err)
	}
	return providers.Message{ID: "<" + id + ">", ExternalRef: call.IdempotencyKey, Status: "sent", To: req.To, Subject: req.Subject}, nil
}

// FindMessage cannot look a message up: SMTP has no such command. It finds
// nothing, so a step retried after a failure the adapter knows left nothing
// accepted sends the message; the adapter never reports a failure it cannot
// rule out that way (see the package comment).
func (c *Client) FindMessage(ctx context.Context, call providers.Call, externalRef string) (providers.Message, bool, error) {
	return providers.Message{}, false, nil
}

// client is a go-mail client for one send; the connection it dials is
// kept in conn, and closed when ctx ends.
func (c *Client) client(ctx context.Context, conn *net.Conn) (*gomail.Client, error) {
	opts := []gomail.Option{
		gomail.WithPort(c.opts.Port),
		gomail.WithTimeout(c.opts.Timeout),
		// One message per connection: no NOOP before it, no RSET after.
		gomail.WithoutNoop(),
		gomail.WithoutRset(),
		gomail.WithDialContextFunc(func(dialCtx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: c.opts.ConnectTimeout}
			var err error
			if c.opts.ImplicitTLS {
				td := tls.Dialer{NetDialer: &d, Config: c.tlsConfig()}
				*conn, err = td.DialContext(dialCtx, network, addr)
			} else {
				*conn, err = d.DialContext(dialCtx, network, addr)
			}
			if err == nil {
				dialled := *conn
				context.AfterFunc(ctx, func() { dialled.Close() })
			}
			return *conn, err
		}),
	}
	switch {
	case c.opts.ImplicitTLS:
		// The dialer speaks TLS already; STARTTLS does not apply.
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case c.opts.StartTLS == TLSRequired:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory), gomail.WithTLSConfig(c.tlsConfig()))
	case c.opts.StartTLS == TLSOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic), gomail.WithTLSConfig(c.tlsConfig()))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if c.opts.Username != "" {
		// The strongest mechanism the server offers; PLAIN and LOGIN only
		// over TLS (go-mail refuses them on a plain connection).
		opts = append(opts, gomail.WithOpportunisticSMTPAuth(
			gomail.SMTPAuthSCRAMSHA256PLUS, gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1PLUS, gomail.SMTPAuthSCRAMSHA1,
			gomail.SMTPAuthCramMD5, gomail.SMTPAuthPlain, gomail.SMTPAuthLogin),
			gomail.WithUsername(c.opts.Username), gomail.WithPassword(c.opts.Password))
	}
	return gomail.NewClient(c.opts.Host, opts...)
}

func (c *Client) tlsConfig() *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.opts.TLS != nil {
		cfg = c.opts.TLS.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = c.opts.Host
	}
	return cfg
}

// conform checks the message against the contract before anything is sent.
func (c *Client) conform(fields map[string]any) error {
	if err := c.opts.Contract.Refusal(OperationSend, "message", fields); err != nil {
		return c.fail(action.CategoryPermanent, action.TypeInvalidInput, 0, err)
	}
	return nil
}

// classify turns what go-mail reports into handoff's categories (see the
// package comment).
func (c *Client) classify(err error) error {
	var se *gomail.SendError
	if !errors.As(err, &se) {
		// Dialing, TLS or authentication: nothing was handed over.
		code := replyCode(err)
		if code == 0 {
			return c.fail(action.CategoryTemporary, action.TypeTemporary, 0, err)
		}
		return c.reply(code, err)
	}
	code := se.ErrorCode()
	switch se.Reason {
	case gomail.ErrSMTPDataClose, gomail.ErrWriteContent:
		// The message is being handed over: a short one is written in one
		// go with its end, so a lost connection may follow its acceptance.
		if code == 0 {
			pe := c.fail(action.CategoryAmbiguous, action.TypeAmbiguous, 0,
				fmt.Errorf("the connection ended while the message was handed over, before the server answered; it may have been accepted, and SMTP cannot look it up: %w", err))
			pe.Final = true
			return pe
		}
		return c.reply(code, err)
	case gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded:
		return c.fail(action.CategoryPermanent, action.TypeInvalidInput, 0, err)
	}
	if code == 0 {
		return c.fail(action.CategoryTemporary, action.TypeTemporary, 0, err)
	}
	return c.reply(code, err)
}

// reply classifies an SMTP reply code: the contract's declared codes
// first, then SMTP's own rule (4xx transient, 5xx permanent).
func (c *Client) reply(code int, err error) *providers.Error {
	if c.opts.Contract != nil {
		if cat, typ, ok := c.opts.Contract.Classify(OperationSend, code, "", ""); ok {
			return c.fail(cat, typ, code, err)
		}
	}
	if code >= 500 {
		return c.fail(action.CategoryPermanent, action.TypeInvalidInput, code, err)
	}
	return c.fail(action.CategoryTemporary, action.TypeTemporary, code, err)
}

func (c *Client) fail(cat action.Category, typ string, code int, err error) *providers.Error {
	return &providers.Error{System: c.opts.System, Operation: OperationSend, Category: cat, Type: typ, Status: code, Err: err}
}

// replyCode is the SMTP reply code in an error from dialing, TLS or
// authentication ("535 5.7.8 …"), 0 when the server sent none.
func replyCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}
