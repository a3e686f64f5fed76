package config

import (
	"bufio"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// CLI is where the handoff command finds handoff's API and how it
// authenticates there.
type CLI struct {
	URL           string
	OperatorToken string
	APIToken      string
	// From is the configuration file read, if any.
	From string
}

// cliKeys are the names a CLI configuration file may set, each also a
// HANDOFF_ environment variable that wins over it.
var cliKeys = []string{"URL", "OPERATOR_TOKEN", "API_TOKEN"}

// LoadCLI reads the command line's settings. url, when set (a flag), wins
// over HANDOFF_URL; the environment wins over the configuration file,
// which is file when given, else HANDOFF_CONFIG, else
// <user config dir>/handoff/config.env (read only when it exists). The
// file holds tokens, so it must be readable by its owner only. An empty
// variable counts as unset.
func LoadCLI(file, url string) (CLI, error) {
	path, explicit := file, file != ""
	if !explicit {
		path, explicit = os.LookupEnv(Prefix + "_CONFIG")
	}
	if !explicit {
		if dir, err := os.UserConfigDir(); err == nil {
			path = filepath.Join(dir, "handoff", "config.env")
		}
	}
	stored := map[string]string{}
	var s CLI
	if path != "" {
		info, err := os.Stat(path)
		switch {
		case errors.Is(err, os.ErrNotExist) && !explicit:
		case err != nil:
			return CLI{}, fmt.Errorf("configuration file: %w", err)
		case info.Mode().Perm()&0o077 != 0:
			return CLI{}, fmt.Errorf("%s holds tokens but others may read it (mode %04o); run: chmod 600 %s", path, info.Mode().Perm(), path)
		default:
			if stored, err = ReadEnvFile(path); err != nil {
				return CLI{}, err
			}
			for k := range stored {
				if !slices.Contains(cliKeys, k) {
					return CLI{}, fmt.Errorf("%s: unknown setting %s_%s (want HANDOFF_URL, HANDOFF_OPERATOR_TOKEN or HANDOFF_API_TOKEN)", path, Prefix, k)
				}
			}
			s.From = path
		}
	}
	value := func(name string) string {
		if v := strings.TrimSpace(os.Getenv(Prefix + "_" + name)); v != "" {
			return v
		}
		return strings.TrimSpace(stored[name])
	}
	s.URL, s.OperatorToken, s.APIToken = value("URL"), value("OPERATOR_TOKEN"), value("API_TOKEN")
	if url != "" {
		s.URL = url
	}
	if s.URL == "" {
		s.URL = "http://localhost:8080"
	}
	if !httpURL(s.URL) {
		return CLI{}, fmt.Errorf("HANDOFF_URL %q is not an http(s) URL such as http://localhost:8080", s.URL)
	}
	return s, nil
}

func httpURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// ReadEnvFile reads a file of HANDOFF_NAME=value lines (# comments and
// blank lines skipped) as values by NAME; a missing file has none.
func ReadEnvFile(path string) (map[string]string, error) {
	out := map[string]string{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			out[strings.TrimPrefix(k, Prefix+"_")] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}
