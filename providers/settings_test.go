package providers

import (
	"errors"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

// yamlSettings decodes provider settings from YAML like
// config.Provider.Decode does (unknown fields are errors), without
// importing the rest of Gatehouse.
type yamlSettings string

func (y yamlSettings) Decode(into any) error {
	dec := yaml.NewDecoder(strings.NewReader(string(y)))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
