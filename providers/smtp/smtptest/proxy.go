package smtptest

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Cut is where a Proxy ends a conversation.
type Cut int

// Where a conversation is cut.
const (
	// CutNone relays everything.
	CutNone Cut = iota
	// CutAtRecipient closes both sides when the client sends RCPT TO,
	// before the server sees it: nothing can have been accepted.
	CutAtRecipient
	// CutAfterEnd relays the message's end (CRLF.CRLF) to the server and
	// closes the client's side before the server's answer reaches it: the
	// server accepted the message, and the client cannot know.
	CutAfterEnd
	// CutAfterAcceptance relays the message's end and the server's answer
	// to it, then closes both sides: the message was delivered and the
	// client was told, but what the client says next (RSET, QUIT) fails.
	CutAfterAcceptance
	// ReplaceAnswerToEnd relays the message's end and answers it with the
	// proxy's reply (see AnswerEndWith) instead of the server's.
	ReplaceAnswerToEnd
)

// Proxy relays SMTP between a client and a Server in plain text, and cuts
// the first conversations where it is told to.
type Proxy struct {
	// Addr is where the client connects.
	Addr string

	target string
	ln     net.Listener
	mu     sync.Mutex
	cut    Cut
	times  int
	reply  string
	cuts   atomic.Int32
	conns  atomic.Int32
	wg     sync.WaitGroup
}

// NewProxy relays to the server until the test ends.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln}
	p.wg.Add(1)
	go p.serve()
	tb.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

// CutNext cuts the next n conversations at the given point.
func (p *Proxy) CutNext(c Cut, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut, p.times = c, n
}

// AnswerEndWith answers the message's end of the next n conversations with
// the reply ("451 4.3.0 Try again later") instead of the server's.
func (p *Proxy) AnswerEndWith(reply string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut, p.times, p.reply = ReplaceAnswerToEnd, n, reply
}

// Conns is how many connections the client opened.
func (p *Proxy) Conns() int { return int(p.conns.Load()) }

// Cuts is how many conversations were cut.
func (p *Proxy) Cuts() int { return int(p.cuts.Load()) }

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.conns.Add(1)
		p.mu.Lock()
		cut, reply := CutNone, ""
		if p.times > 0 {
			cut, reply = p.cut, p.reply
			p.times--
		}
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(client, cut, reply)
		}()
	}
}

func (p *Proxy) relay(client net.Conn, cut Cut, reply string) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	var ended, accepted, replace atomic.Bool
	answered := make(chan struct{})
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 && ended.Load() {
				close(answered)
				return
			}
			if n > 0 && replace.CompareAndSwap(true, false) {
				p.cuts.Add(1)
				if _, werr := client.Write([]byte(reply + "\r\n")); werr != nil {
					return
				}
				continue
			}
			if n > 0 {
				if _, werr := client.Write(buf[:n]); werr != nil {
					return
				}
				if accepted.Load() {
					p.cuts.Add(1)
					client.Close()
					server.Close()
					return
				}
			}
			if err != nil {
				client.Close() // the server has gone: so does the client's side
				return
			}
		}
	}()
	var seen []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			seen = append(seen, chunk...)
			switch {
			case cut == CutAtRecipient && bytes.Contains(bytes.ToUpper(seen), []byte("RCPT TO")):
				p.cuts.Add(1)
				return
			case cut == CutAfterAcceptance && !accepted.Load() && bytes.Contains(seen, []byte("\r\n.\r\n")):
				accepted.Store(true)
			case cut == ReplaceAnswerToEnd && bytes.Contains(seen, []byte("\r\n.\r\n")):
				replace.Store(true)
				cut = CutNone
			case cut == CutAfterEnd && bytes.Contains(seen, []byte("\r\n.\r\n")):
				ended.Store(true)
				_, _ = server.Write(chunk)
				p.cuts.Add(1)
				// The client's side closes now, before any answer; the
				// server's side stays open until it has answered.
				client.Close()
				select {
				case <-answered:
				case <-time.After(10 * time.Second):
				}
				return
			}
			if _, err := server.Write(chunk); err != nil {
				return
			}
		}
		if err != nil {
			return // the client has gone: so does the server's side
		}
	}
}
