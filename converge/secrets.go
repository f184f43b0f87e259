package converge

import "github.com/belay-sh/belay/roles"

// SpecSecrets lists the secret values of s (the fields roles.Spec documents
// as secret), for a Masker.
func SpecSecrets(s *roles.Spec) []string {
	out := []string{s.HostKey.PrivatePEM}
	if a := s.App; a != nil {
		out = append(out, a.DatabaseURL, a.ResticPassword, a.BackupKey.PrivatePEM)
		if v := a.VRRP; v != nil {
			out = append(out, v.ClaimToken, v.AuthPass)
			if v.PeerDiscovery != nil {
				out = append(out, v.PeerDiscovery.Token)
			}
		}
	}
	if d := s.DB; d != nil {
		out = append(out, d.AppPassword, d.ReplicationPassword, d.MonitorPassword)
		if d.Backup != nil {
			out = append(out, d.Backup.ClientKey.PrivatePEM)
		}
	}
	if b := s.Backup; b != nil {
		out = append(out, b.RepoKey.PrivatePEM, b.ResticPassword)
	}
	if sd := s.StandbyDB; sd != nil {
		out = append(out, sd.ClientKey.PrivatePEM, sd.AppPassword)
	}
	return out
}
