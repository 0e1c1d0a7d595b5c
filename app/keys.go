package app

// Redis keys of package app, for prefix P (default "herald"):
//
//	P:readyz:{P}   STRING  written by every /readyz run, expiring after a minute, to prove that
//	                       Redis takes writes (a full Redis still answers PING and reads). The hash
//	                       tag puts it on the delivery queue's Cluster slot, the one herald cannot
//	                       do without.
func readyKey(prefix string) string { return prefix + ":readyz:{" + prefix + "}" }
