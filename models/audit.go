package models

import (
	"context"
	"encoding/json"
)

// Audit event outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// RecordAudit stores one audit event. Details are marshalled to JSON; they
// must never hold a token, code or secret.
func (s *Store) RecordAudit(ctx context.Context, e *AuditEvent, details map[string]any) error {
	if e.OccurredAt.IsZero() {
		e.OccurredAt = s.db.NowFunc()
	}
	if e.Outcome == "" {
		e.Outcome = OutcomeSuccess
	}
	e.Details = "{}"
	if len(details) > 0 {
		b, err := json.Marshal(details)
		if err != nil {
			return mapErr(err, "encode audit details")
		}
		e.Details = string(b)
	}
	return mapErr(s.db.WithContext(ctx).Create(e).Error, "record audit event")
}
