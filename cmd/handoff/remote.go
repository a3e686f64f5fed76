package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/handoff-hq/handoff/apiclient"
	"github.com/handoff-hq/handoff/config"
)

// remoteFlags are the flags every operator command shares.
type remoteFlags struct {
	url, config, output string
	timeout             time.Duration
}

var remote remoteFlags

// addRemoteFlags gives an operator command (and those under it) the flags.
func addRemoteFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&remote.url, "url", "", "handoff's API (default: HANDOFF_URL, the configuration file, then http://localhost:8080)")
	f.StringVar(&remote.config, "config", "", "configuration file (default: HANDOFF_CONFIG, then ~/.config/handoff/config.env)")
	f.StringVarP(&remote.output, "output", "o", "table", "how answers are printed: table or json")
	f.DurationVar(&remote.timeout, "timeout", 30*time.Second, "how long one request may take")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
}

// loadSettings reads the settings (config.LoadCLI) with the flags'.
func loadSettings() (config.CLI, error) {
	s, err := config.LoadCLI(remote.config, remote.url)
	if err != nil {
		return config.CLI{}, configError{err}
	}
	return s, nil
}

// operatorClient is a client of the API with the operator token.
func operatorClient() (*apiclient.Handoff, error) {
	return clientWith(func(s config.CLI) (string, string) { return s.OperatorToken, "HANDOFF_OPERATOR_TOKEN" })
}

// applicationClient is a client of the API with the API token.
func applicationClient() (*apiclient.Handoff, error) {
	return clientWith(func(s config.CLI) (string, string) { return s.APIToken, "HANDOFF_API_TOKEN" })
}

func clientWith(token func(config.CLI) (string, string)) (*apiclient.Handoff, error) {
	if err := checkOutput(remote.output); err != nil {
		return nil, err
	}
	s, err := loadSettings()
	if err != nil {
		return nil, err
	}
	t, name := token(s)
	if t == "" {
		where := "the environment"
		if s.From != "" {
			where += " or " + s.From
		}
		return nil, configErrorf("no token: set %s in %s", name, where)
	}
	return apiclient.New(s.URL, t, apiclient.Options{HTTPClient: &http.Client{Timeout: remote.timeout}})
}

// checkOutput refuses an --output other than table or json.
func checkOutput(output string) error {
	if output != "table" && output != "json" {
		return usageError{fmt.Errorf("--output %q: want table or json", output)}
	}
	return nil
}

// apiExitCode is the exit code of an error from the API, if it is one.
func apiExitCode(err error) (int, bool) {
	var p *apiclient.Problem
	var netErr net.Error
	var urlErr *url.Error
	switch {
	case errors.As(err, &p) && (p.Status == http.StatusUnauthorized || p.Status == http.StatusForbidden):
		return exitUnauthorized, true
	case errors.As(err, &p) && p.Status >= 500:
		return exitUnavailable, true
	case errors.As(err, &p):
		return exitFailed, true
	case errors.As(err, &netErr), errors.As(err, &urlErr), errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.ErrUnexpectedEOF):
		return exitUnavailable, true
	}
	return 0, false
}

// printJSON prints an answer as the API sent it, indented.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints rows under a header, in aligned columns.
func table(header string, rows [][]string) error {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, header)
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	return w.Flush()
}

// show prints v as JSON, or as the table print makes of it.
func show(v any, print func() error) error {
	if remote.output == "json" {
		return printJSON(v)
	}
	return print()
}

// deref is the value of an optional member, or "".
func deref[T ~string](p *T) string {
	if p == nil {
		return ""
	}
	return string(*p)
}
