package config

import (
	"strings"
	"testing"
	"time"
)

// TestDeviceSettings: the device grant is a grant a client may list
// (without redirect URIs when it has no code flow), and the device
// settings have their defaults and limits.
func TestDeviceSettings(t *testing.T) {
	p := writeYAML(t, `
clients:
  - id: cli
    public: true
    grant_types: [urn:ietf:params:oauth:grant-type:device_code, refresh_token]
`)
	c, _, err := load(t, map[string]string{"GATEHOUSE_CONFIG": p})
	if err != nil {
		t.Fatal(err)
	}
	if !c.File.Clients[0].AllowsGrant(GrantDeviceCode) || c.DeviceCodeTTL != 10*time.Minute ||
		c.DevicePollInterval != 5*time.Second || c.DeviceCodeAttempts != 10 {
		t.Fatalf("device settings %v %v %v", c.DeviceCodeTTL, c.DevicePollInterval, c.DeviceCodeAttempts)
	}
	c, _, err = load(t, map[string]string{"GATEHOUSE_DEVICE_CODE_TTL": "5m", "GATEHOUSE_DEVICE_POLL_INTERVAL": "2s", "GATEHOUSE_DEVICE_CODE_ATTEMPTS": "0"})
	if err != nil || c.DeviceCodeTTL != 5*time.Minute || c.DevicePollInterval != 2*time.Second || c.DeviceCodeAttempts != 0 {
		t.Fatalf("set device settings: %v %+v", err, c)
	}
	for _, v := range []string{"1500ms", "90s", "0s", "soon"} {
		if _, _, err := load(t, map[string]string{"GATEHOUSE_DEVICE_POLL_INTERVAL": v}); err == nil ||
			!strings.Contains(err.Error(), "GATEHOUSE_DEVICE_POLL_INTERVAL") {
			t.Errorf("interval %q: %v", v, err)
		}
	}
	if _, _, err := load(t, map[string]string{"GATEHOUSE_DEVICE_CODE_ATTEMPTS": "-1"}); err == nil {
		t.Error("negative attempts accepted")
	}
	body := "clients:\n  - {id: a, public: true, grant_types: [urn:ietf:params:oauth:grant-type:device]}\n"
	if _, _, err := load(t, map[string]string{"GATEHOUSE_CONFIG": writeYAML(t, body)}); err == nil || !strings.Contains(err.Error(), "unknown grant type") {
		t.Errorf("misspelled device grant: %v", err)
	}
}
