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
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/handoff-hq/handoff/apiclient"
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

// settings is where the CLI finds handoff and how it authenticates.
type settings struct {
	URL           string
	OperatorToken string
	APIToken      string
	// From is the configuration file read, if any.
	From string
}

// configKeys are the names a configuration file may set, each also a
// HANDOFF_ environment variable that wins over it.
var configKeys = []string{"URL", "OPERATOR_TOKEN", "API_TOKEN"}

// loadSettings reads the settings: a flag wins over the environment, which
// wins over the configuration file. The file holds tokens, so it must be
// readable by its owner only.
func loadSettings() (settings, error) {
	path, explicit := remote.config, remote.config != ""
	if !explicit {
		path, explicit = os.LookupEnv("HANDOFF_CONFIG")
	}
	if !explicit {
		dir, err := os.UserConfigDir()
		if err == nil {
			path = filepath.Join(dir, "handoff", "config.env")
		}
	}
	file := map[string]string{}
	var s settings
	if path != "" {
		info, err := os.Stat(path)
		switch {
		case errors.Is(err, os.ErrNotExist) && !explicit:
		case err != nil:
			return settings{}, configErrorf("configuration file: %v", err)
		case info.Mode().Perm()&0o077 != 0:
			return settings{}, configErrorf("%s holds tokens but others may read it (mode %04o); run: chmod 600 %s", path, info.Mode().Perm(), path)
		default:
			if file, err = readEnvFile(path); err != nil {
				return settings{}, configErrorf("%v", err)
			}
			for k := range file {
				if !slices.Contains(configKeys, k) {
					return settings{}, configErrorf("%s: unknown setting HANDOFF_%s (want HANDOFF_URL, HANDOFF_OPERATOR_TOKEN or HANDOFF_API_TOKEN)", path, k)
				}
			}
			s.From = path
		}
	}
	// An empty variable counts as unset.
	value := func(name string) string {
		if v := strings.TrimSpace(os.Getenv("HANDOFF_" + name)); v != "" {
			return v
		}
		return strings.TrimSpace(file[name])
	}
	s.URL, s.OperatorToken, s.APIToken = value("URL"), value("OPERATOR_TOKEN"), value("API_TOKEN")
	if remote.url != "" {
		s.URL = remote.url
	}
	if s.URL == "" {
		s.URL = "http://localhost:8080"
	}
	if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return settings{}, configErrorf("HANDOFF_URL %q is not an http(s) URL such as http://localhost:8080", s.URL)
	}
	return s, nil
}

// operatorClient is a client of the API with the operator token.
func operatorClient() (*apiclient.Handoff, error) {
	return clientWith(func(s settings) (string, string) { return s.OperatorToken, "HANDOFF_OPERATOR_TOKEN" })
}

// applicationClient is a client of the API with the API token.
func applicationClient() (*apiclient.Handoff, error) {
	return clientWith(func(s settings) (string, string) { return s.APIToken, "HANDOFF_API_TOKEN" })
}

func clientWith(token func(settings) (string, string)) (*apiclient.Handoff, error) {
	if err := checkOutput(); err != nil {
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

func checkOutput() error {
	if remote.output != "table" && remote.output != "json" {
		return usageError{fmt.Errorf("--output %q: want table or json", remote.output)}
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
