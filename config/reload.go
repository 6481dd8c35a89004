package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
)

// Reload reads the configuration again from where Load read cur (the
// process environment, .env outside production, and the YAML file named
// by GATEHOUSE_CONFIG) and validates all of it with the same rules, so a
// file start-up would refuse is refused with the same one-line-per-field
// *ValidationError. Only the YAML file takes effect at a reload (clients,
// providers, org_sync); RestartNeeded lists the other settings that
// differ. cur is not modified.
func Reload(cur *Config) (*Config, []string, error) {
	if cur.ConfigFile == "" {
		return nil, nil, errors.New("GATEHOUSE_CONFIG is not set: there is no configuration file to reload")
	}
	next, warnings, err := Load(cur.source)
	if err != nil {
		return nil, warnings, err
	}
	if next.ConfigFile != cur.ConfigFile {
		// The file a reload reads is the one the server started with.
		return nil, warnings, fmt.Errorf("GATEHOUSE_CONFIG: changed from %s to %s, which needs a restart", cur.ConfigFile, next.ConfigFile)
	}
	return next, warnings, nil
}

// RestartNeeded names the settings of next that differ from cur's and
// that a reload does not apply: every setting but the YAML file's
// (GATEHOUSE_ADDR, GATEHOUSE_DATABASE_URL, GATEHOUSE_ISSUER,
// GATEHOUSE_SECRET_KEY, …). It names them only: values may be secrets.
func RestartNeeded(cur, next *Config) []string {
	var out []string
	cv, nv := reflect.ValueOf(cur).Elem(), reflect.ValueOf(next).Elem()
	t := cv.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || reloadable[f.Name] {
			continue
		}
		if !reflect.DeepEqual(cv.Field(i).Interface(), nv.Field(i).Interface()) {
			name := settingNames[f.Name]
			if name == "" {
				name = f.Name
			}
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// reloadable are the Config fields a reload replaces (the YAML file) or
// derives again (its warnings).
var reloadable = map[string]bool{"File": true, "Warnings": true}

// settingNames maps a Config field to the variable that sets it.
var settingNames = map[string]string{
	"Env": "GATEHOUSE_ENV", "Issuer": "GATEHOUSE_ISSUER", "Addr": "GATEHOUSE_ADDR",
	"DatabaseURL": "GATEHOUSE_DATABASE_URL", "DBPool": "GATEHOUSE_DB_*", "MetricsAddr": "GATEHOUSE_METRICS_ADDR",
	"SecretKey": "GATEHOUSE_SECRET_KEY", "SecretKeyDefaulted": "GATEHOUSE_SECRET_KEY", "ConfigFile": "GATEHOUSE_CONFIG",
	"SigningAlg": "GATEHOUSE_SIGNING_ALG", "AccessTokenTTL": "GATEHOUSE_ACCESS_TOKEN_TTL", "IDTokenTTL": "GATEHOUSE_ID_TOKEN_TTL",
	"RefreshIdleTTL": "GATEHOUSE_REFRESH_IDLE_TTL", "RefreshAbsoluteTTL": "GATEHOUSE_REFRESH_ABSOLUTE_TTL",
	"RefreshReuseGrace": "GATEHOUSE_REFRESH_REUSE_GRACE", "AuthCodeTTL": "GATEHOUSE_AUTH_CODE_TTL",
	"LoginStateTTL": "GATEHOUSE_LOGIN_STATE_TTL", "SSOIdleTTL": "GATEHOUSE_SSO_IDLE_TTL", "SSOAbsoluteTTL": "GATEHOUSE_SSO_ABSOLUTE_TTL",
	"KeyRotationPeriod": "GATEHOUSE_KEY_ROTATION_PERIOD", "KeyPublishLead": "GATEHOUSE_KEY_PUBLISH_LEAD",
	"JWKSMaxAge": "GATEHOUSE_JWKS_MAX_AGE", "AutoMigrate": "GATEHOUSE_AUTO_MIGRATE",
	"TrustedProxies": "GATEHOUSE_TRUSTED_PROXIES", "CORSOrigins": "GATEHOUSE_CORS_ORIGINS", "LogLevel": "GATEHOUSE_LOG_LEVEL",
	"AdminAudience": "GATEHOUSE_ADMIN_AUDIENCE", "DevLogin": "GATEHOUSE_DEV_LOGIN", "RateLimit": "GATEHOUSE_RATE_LIMIT",
	"MaxBodyBytes": "GATEHOUSE_MAX_BODY_BYTES", "ShutdownTimeout": "GATEHOUSE_SHUTDOWN_TIMEOUT",
	"APIKeyTokenTTL":           "GATEHOUSE_API_KEY_TOKEN_TTL",
	"BackchannelLogoutTimeout": "GATEHOUSE_BACKCHANNEL_LOGOUT_TIMEOUT", "BackchannelLogoutGiveUp": "GATEHOUSE_BACKCHANNEL_LOGOUT_GIVE_UP",
	"RedisURL": "GATEHOUSE_REDIS_URL", "RedisKeyPrefix": "GATEHOUSE_REDIS_KEY_PREFIX",
	"LogFormat": "GATEHOUSE_LOG_FORMAT", "ClientsPollInterval": "GATEHOUSE_CLIENTS_POLL_INTERVAL",
	"Registration":  "GATEHOUSE_DCR_*",
	"DeviceCodeTTL": "GATEHOUSE_DEVICE_CODE_TTL", "DevicePollInterval": "GATEHOUSE_DEVICE_POLL_INTERVAL",
	"DeviceCodeAttempts": "GATEHOUSE_DEVICE_CODE_ATTEMPTS",
}

// SameKindSettings reports whether p and q configure the same upstream:
// the same name, kind and kind settings, wherever they stand in the file
// and whatever its comments say. The provisioning fields (link_by_email,
// trusted_email) are not compared: they are not the provider's, and a
// reload applies them without rebuilding it.
func (p *Provider) SameKindSettings(q *Provider) bool {
	if p.Name != q.Name || p.Type != q.Type {
		return false
	}
	a, errA := p.settings()
	b, errB := q.settings()
	return errA == nil && errB == nil && reflect.DeepEqual(a, b)
}

// Equal reports whether p and q are the same provider entry, the
// provisioning fields included.
func (p *Provider) Equal(q *Provider) bool {
	return p.SameKindSettings(q) && p.LinkByEmail == q.LinkByEmail && p.TrustedEmail == q.TrustedEmail
}

// settings decodes the kind's fields into plain values (maps, lists,
// scalars), which carry no position or comment.
func (p *Provider) settings() (map[string]any, error) {
	out := map[string]any{}
	if p.node.Kind == 0 {
		return out, nil
	}
	var all map[string]any
	if err := p.node.Decode(&all); err != nil {
		return nil, err
	}
	for k, v := range all {
		if !commonProviderFields[k] {
			out[k] = v
		}
	}
	return out, nil
}
