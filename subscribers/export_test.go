package subscribers

// FailingKey is the key of s's failure records, for the external tests that wait for Health's
// writes.
func FailingKey(s *Store) string { return s.k.failing() }
