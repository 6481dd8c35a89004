package config

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// parseDotenv reads KEY=VALUE lines. Blank lines and lines starting with
// '#' are skipped, an optional "export " prefix is allowed, and a value may
// be wrapped in single or double quotes. Any other shape is an error naming
// the line, so a typo never silently drops a setting.
func parseDotenv(name string, data []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || !validEnvName(key) {
			return nil, fmt.Errorf("%s line %d: expected NAME=value", name, n)
		}
		value = strings.TrimSpace(value)
		if len(value) > 0 && (value[0] == '"' || value[0] == '\'') {
			q := value[0]
			end := strings.IndexByte(value[1:], q)
			if end < 0 {
				return nil, fmt.Errorf("%s line %d: %s has an unterminated quote", name, n, key)
			}
			rest := strings.TrimSpace(value[end+2:])
			if rest != "" && !strings.HasPrefix(rest, "#") {
				return nil, fmt.Errorf("%s line %d: unexpected text after the quoted value of %s", name, n, key)
			}
			value = value[1 : end+1]
		} else if i := strings.Index(value, " #"); i >= 0 {
			value = strings.TrimSpace(value[:i])
		}
		out[key] = value
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
