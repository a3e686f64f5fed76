package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/handoff-hq/handoff/apiclient"
)

// execute runs the CLI with args and returns what it wrote as help or
// error, and its error.
func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	remote = remoteFlags{}
	root := rootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestEveryCommandDescribesEveryFlag asks every command for its help and
// checks that it names each of its flags with a description.
func TestEveryCommandDescribesEveryFlag(t *testing.T) {
	var walk func(c *cobra.Command)
	seen := 0
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		path := strings.Fields(c.CommandPath())[1:]
		help, err := execute(t, append(path, "--help")...)
		if err != nil {
			t.Errorf("%s --help: %v", c.CommandPath(), err)
			return
		}
		seen++
		if c.Short == "" {
			t.Errorf("%s has no short description", c.CommandPath())
		}
		c.InheritedFlags().VisitAll(func(f *pflag.Flag) { checkFlag(t, c, help, f) })
		c.LocalFlags().VisitAll(func(f *pflag.Flag) { checkFlag(t, c, help, f) })
	}
	walk(rootCommand())
	if seen < 20 {
		t.Errorf("asked %d commands for help, want every one (more than 20)", seen)
	}
}

func checkFlag(t *testing.T, c *cobra.Command, help string, f *pflag.Flag) {
	t.Helper()
	if f.Usage == "" {
		t.Errorf("%s --%s has no description", c.CommandPath(), f.Name)
	}
	if !strings.Contains(help, "--"+f.Name) || !strings.Contains(help, f.Usage) {
		t.Errorf("%s --help does not describe --%s:\n%s", c.CommandPath(), f.Name, help)
	}
}

func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_handoff", "zsh": "#compdef handoff", "fish": "complete -c handoff", "powershell": "Register-ArgumentCompleter"} {
		out, err := execute(t, "completion", shell)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("completion %s: %v, %d bytes without %q", shell, err, len(out), want)
		}
	}
}

func TestWrongUseIsAUsageError(t *testing.T) {
	for _, args := range [][]string{
		{"bogus"},
		{"actions", "bogus"},
		{"actions", "retry"},
		{"actions", "retry", "order/A-1", "order/A-2"},
		{"actions", "list", "--bogus"},
		{"actions", "list", "--output", "yaml"},
		{"actions", "retry", "order/A-1", "--customer-email", "a@example.com"},
		{"setup", "--retention", "1h"},
		{"worker", "extra"},
		{"replay"},
	} {
		_, err := execute(t, args...)
		if code := exitCode(err); code != exitUsage {
			t.Errorf("handoff %s: exit %d (%v), want %d", strings.Join(args, " "), code, err, exitUsage)
		}
	}
}

// TestSettings checks where settings come from: a flag over the
// environment over the file, which must be readable by its owner only.
func TestSettings(t *testing.T) {
	for _, k := range []string{"HANDOFF_URL", "HANDOFF_OPERATOR_TOKEN", "HANDOFF_API_TOKEN", "HANDOFF_CONFIG"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	remote = remoteFlags{}

	s, err := loadSettings()
	if err != nil || s.URL != "http://localhost:8080" || s.OperatorToken != "" || s.From != "" {
		t.Fatalf("no file, no environment: %+v %v", s, err)
	}

	path := filepath.Join(home, "handoff", "config.env")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("# operator laptop\nHANDOFF_URL=https://handoff.example.com\nHANDOFF_OPERATOR_TOKEN=op-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadSettings(); exitCode(err) != exitUsage || !strings.Contains(fmt.Sprint(err), "chmod 600") {
		t.Errorf("a file others may read: %v, want refused with chmod 600", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = loadSettings()
	if err != nil || s.URL != "https://handoff.example.com" || s.OperatorToken != "op-file" || s.From != path {
		t.Errorf("from the file: %+v %v", s, err)
	}
	t.Setenv("HANDOFF_OPERATOR_TOKEN", "op-env")
	remote.url = "http://10.0.0.7:8080"
	s, err = loadSettings()
	if err != nil || s.URL != "http://10.0.0.7:8080" || s.OperatorToken != "op-env" {
		t.Errorf("flag and environment over the file: %+v %v", s, err)
	}

	remote = remoteFlags{config: filepath.Join(home, "missing.env")}
	if _, err := loadSettings(); exitCode(err) != exitUsage {
		t.Errorf("a configuration file named but missing: %v, want a usage error", err)
	}
	if err := os.WriteFile(path, []byte("HANDOFF_OPERATOR_TOKENS=typo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	remote = remoteFlags{}
	if _, err := loadSettings(); exitCode(err) != exitUsage || !strings.Contains(fmt.Sprint(err), "HANDOFF_OPERATOR_TOKENS") {
		t.Errorf("an unknown setting: %v, want it named", err)
	}
	remote = remoteFlags{url: "localhost:8080"}
	if _, err := loadSettings(); exitCode(err) != exitUsage {
		t.Errorf("a URL without a scheme: %v, want a usage error", err)
	}
}

// TestExitCodes maps the API's answers to the exit codes scripts rely on.
func TestExitCodes(t *testing.T) {
	tests := []struct {
		status int
		want   int
	}{
		{http.StatusNotFound, exitFailed},
		{http.StatusConflict, exitFailed},
		{http.StatusBadRequest, exitFailed},
		{http.StatusUnauthorized, exitUnauthorized},
		{http.StatusInternalServerError, exitUnavailable},
		{http.StatusServiceUnavailable, exitUnavailable},
	}
	for _, tt := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(tt.status)
			fmt.Fprintf(w, `{"type":"https://github.com/handoff-hq/handoff#problem-x","title":"%s","status":%d}`, http.StatusText(tt.status), tt.status)
		}))
		c, err := apiclient.New(srv.URL, "t", apiclient.Options{Attempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Provider(context.Background(), "crm")
		if got := exitCode(err); got != tt.want {
			t.Errorf("answer %d: exit %d (%v), want %d", tt.status, got, err, tt.want)
		}
		srv.Close()
	}
	c, _ := apiclient.New("http://127.0.0.1:1", "t", apiclient.Options{Attempts: 1})
	if _, err := c.Provider(context.Background(), "crm"); exitCode(err) != exitUnavailable {
		t.Errorf("no API: exit %d (%v), want %d", exitCode(err), err, exitUnavailable)
	}
	if exitCode(errors.New("replay: nondeterministic")) != exitFailed {
		t.Error("a failed command: want exit 1")
	}
}
