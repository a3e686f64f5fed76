package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/handoff-hq/handoff/action"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Authenticator adds credentials to provider requests.
type Authenticator interface {
	// Authorize adds credentials to the request; ctx bounds any fetching of
	// credentials. A failure is an *Error.
	Authorize(ctx context.Context, req *http.Request) error
	// Refresh forgets cached credentials after the provider refused them;
	// it reports whether there is anything new to try.
	Refresh() bool
}

// APIKey sends a fixed key as a bearer token. It cannot be refreshed: a 401
// with an API key is final.
type APIKey struct {
	System string
	Key    string
}

// Authorize sets the Authorization header.
func (k APIKey) Authorize(_ context.Context, req *http.Request) error {
	req.Header.Set("Authorization", "Bearer "+k.Key)
	return nil
}

// Refresh has nothing to refresh.
func (APIKey) Refresh() bool { return false }

// ClientCredentials authenticates with OAuth2 client credentials. Tokens are
// cached and fetched again shortly before they expire (oauth2's expiry delta)
// and once when the provider answers 401.
//
// oauth2.ReuseTokenSource is not used: it fetches under its lock with a
// context of its own, so one token endpoint that never answers would hold
// every call of the provider until the process restarts. Here one fetch at a
// time runs, bounded by the provider's timeout, and every caller waits for it
// no longer than its own context allows.
type ClientCredentials struct {
	system string
	config clientcredentials.Config
	// tokenHTTP is the client the token endpoint is called with; timeout
	// bounds one fetch.
	tokenHTTP *http.Client
	timeout   time.Duration

	mu       sync.Mutex
	token    *oauth2.Token
	inflight *tokenFetch
	// metrics, when set, counts failed fetches.
	metrics *Metrics
}

// tokenFetch is one call to the token endpoint; done closes when it ends.
type tokenFetch struct {
	done  chan struct{}
	token *oauth2.Token
	err   error
}

// NewClientCredentials returns an Authenticator for one OAuth2 client. A
// fetch of a token takes at most timeout (15 s when zero).
func NewClientCredentials(system, tokenURL, clientID, clientSecret string, tokenHTTP *http.Client, timeout time.Duration) *ClientCredentials {
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	return &ClientCredentials{
		system:    system,
		config:    clientcredentials.Config{ClientID: clientID, ClientSecret: clientSecret, TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams},
		tokenHTTP: tokenHTTP,
		timeout:   timeout,
	}
}

// Authorize sets a current bearer token, fetching one when needed.
func (c *ClientCredentials) Authorize(ctx context.Context, req *http.Request) error {
	tok, err := c.current(ctx)
	if err != nil {
		return c.classify(err)
	}
	tok.SetAuthHeader(req)
	return nil
}

// current returns a valid token: the cached one, or the result of the fetch
// under way (starting one if none is), waited for until ctx ends.
func (c *ClientCredentials) current(ctx context.Context) (*oauth2.Token, error) {
	c.mu.Lock()
	if c.token.Valid() {
		tok := c.token
		c.mu.Unlock()
		return tok, nil
	}
	f := c.inflight
	if f == nil {
		f = &tokenFetch{done: make(chan struct{})}
		c.inflight = f
		go c.fetch(f)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.token, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for an access token: %w", ctx.Err())
	}
}

// fetch asks the token endpoint once. It does not run on a caller's
// context, so that a caller giving up does not fail the others waiting.
func (c *ClientCredentials) fetch(f *tokenFetch) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	tok, err := c.config.Token(context.WithValue(ctx, oauth2.HTTPClient, c.tokenHTTP))
	if err == nil && !tok.Valid() {
		tok, err = nil, errors.New("the token endpoint answered an expired token")
	}
	c.mu.Lock()
	if err == nil {
		c.token = tok
	}
	c.inflight = nil
	c.mu.Unlock()
	if err != nil {
		c.metrics.tokenFailed(c.system, c.classify(err))
	}
	f.token, f.err = tok, err
	close(f.done)
}

// expiry is when the current token expires; zero without one.
func (c *ClientCredentials) expiry() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == nil {
		return time.Time{}
	}
	return c.token.Expiry
}

// Refresh drops the cached token, so the next call fetches a new one.
func (c *ClientCredentials) Refresh() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.token = nil
	return true
}

// classify maps a token endpoint failure: refused credentials are permanent,
// an unreachable, slow or failing endpoint temporary.
func (c *ClientCredentials) classify(err error) error {
	e := &Error{System: c.system, Operation: "fetch_token", Category: action.CategoryTemporary, Type: action.TypeTemporary, Err: err}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		e.Status = re.Response.StatusCode
		e.Category, e.Type = ClassifyStatus(re.Response.StatusCode)
		if e.Status == http.StatusBadRequest || e.Status == http.StatusUnauthorized {
			e.Type = action.TypeUnauthorized
		}
		e.Code = re.ErrorCode
		e.Message = fmt.Sprintf("token endpoint refused the client: %s %s", re.ErrorCode, re.ErrorDescription)
	}
	return e
}
