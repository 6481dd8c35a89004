package admin

import (
	"context"

	"github.com/gatehouse-id/gatehouse/provisioning"
)

// RecheckUser re-checks every identity of a user at its upstream now,
// whatever recheck_interval says (provisioning.Service.RecheckUser): an
// identity the upstream says is gone has its sessions ended at once,
// with back-channel logouts. Gatehouse administrators only, and not on
// an administrator above their own level (it may sign them out).
func (s *Service) RecheckUser(ctx context.Context, a Actor, userID string) ([]provisioning.RecheckReport, error) {
	if err := s.mayActOnUser(ctx, s.store, a, userID); err != nil {
		return nil, err
	}
	return s.prov.RecheckUser(ctx, userID, a.meta())
}
