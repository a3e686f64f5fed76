package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Authenticator adds credentials to provider requests.
type Authenticator interface {
	// Authorize adds credentials to the request. A failure is an *Error.
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
type ClientCredentials struct {
	system string
	config clientcredentials.Config
	// tokenHTTP is the client the token endpoint is called with.
	tokenHTTP *http.Client

	mu     sync.Mutex
	source oauth2.TokenSource
}

// NewClientCredentials returns an Authenticator for one OAuth2 client.
func NewClientCredentials(system, tokenURL, clientID, clientSecret string, tokenHTTP *http.Client) *ClientCredentials {
	c := &ClientCredentials{
		system:    system,
		config:    clientcredentials.Config{ClientID: clientID, ClientSecret: clientSecret, TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams},
		tokenHTTP: tokenHTTP,
	}
	c.source = c.newSource()
	return c
}

func (c *ClientCredentials) newSource() oauth2.TokenSource {
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, c.tokenHTTP)
	return oauth2.ReuseTokenSource(nil, c.config.TokenSource(ctx))
}

// Authorize sets a current bearer token, fetching one when needed.
func (c *ClientCredentials) Authorize(_ context.Context, req *http.Request) error {
	c.mu.Lock()
	source := c.source
	c.mu.Unlock()
	tok, err := source.Token()
	if err != nil {
		return c.classify(err)
	}
	tok.SetAuthHeader(req)
	return nil
}

// Refresh drops the cached token, so the next call fetches a new one.
func (c *ClientCredentials) Refresh() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.source = c.newSource()
	return true
}

// classify maps a token endpoint failure: refused credentials are permanent,
// an unreachable or failing endpoint temporary.
func (c *ClientCredentials) classify(err error) error {
	e := &Error{System: c.system, Operation: "fetch_token", Category: Temporary, Type: TypeTemporary, Err: err}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		e.Status = re.Response.StatusCode
		e.Category, e.Type = ClassifyStatus(re.Response.StatusCode)
		if e.Status == http.StatusBadRequest || e.Status == http.StatusUnauthorized {
			e.Type = TypeUnauthorized
		}
		e.Code = re.ErrorCode
		e.Message = fmt.Sprintf("token endpoint refused the client: %s %s", re.ErrorCode, re.ErrorDescription)
	}
	return e
}
