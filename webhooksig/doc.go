// Package webhooksig signs and verifies webhooks the Standard Webhooks way
// (https://www.standardwebhooks.com/). It imports only the standard library, so a receiver can
// verify herald's requests without the daemon's dependencies.
//
// A secret is "whsec_" followed by the base64 of an HMAC key of at least 16 bytes (NewSecret makes
// one, ParseSecret decodes one). A request carries three headers: webhook-id, webhook-timestamp
// (unix seconds) and webhook-signature, one or more space-separated "v1,<base64 HMAC-SHA256 of
// id.timestamp.body>" — several while a secret is rotated, one per secret.
//
// Sending:
//
//	key, err := webhooksig.ParseSecret(secret)
//	s := webhooksig.NewSigner(key) // keep it: it pools its HMAC states
//	req.Header.Set(webhooksig.HeaderSignature, webhooksig.Header(id, ts.Unix(), body, s))
//
// Receiving:
//
//	err := webhooksig.Verify(secret, r.Header, body, 5*time.Minute)
//
// A Go receiver of herald's requests is better served by package receiver (standard library only
// too): it verifies, answers the url_verification handshake and decodes every payload.
package webhooksig
