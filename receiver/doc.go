// Package receiver is what a Go program that receives herald's requests imports: it verifies
// their Standard Webhooks signatures, answers url_verification handshakes, and decodes every
// payload herald sends into typed structs. It imports only the standard library and herald's
// webhooksig (which signs herald's requests, itself standard library only; a test keeps it so),
// so a receiver's binary does not carry herald's dependencies.
//
// # Who receives what
//
//   - A subscriber endpoint gets the url_verification handshake (URLVerification), then the
//     slackchat notifications of seed 002: UpdateNotification (update_notification) and
//     ChannelRequest (republish_request, unpublish_request). They are signed with the
//     subscriber's secret.
//   - A channel server (a channel's channel_metadata.endpoint_url) gets RelayedMessage for every
//     POST /channel/message, and answers with RelayedMessage.Reply.
//   - The sessions server (herald's --sessions-url) gets ForwardedResponse for every answer.
//     Relayed messages and forwarded responses are signed with herald's --signing-secret.
//
// # Signatures
//
// A request carries webhook-id (the delivery id, the same on every retry: de-duplicate on it),
// webhook-timestamp (unix seconds) and webhook-signature: one or more space-separated
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>", keyed with the base64 part of the "whsec_..."
// secret. herald sends one per live secret while a secret is being rotated; any match passes. A
// timestamp further than the tolerance (DefaultTolerance, 5 minutes) from now is refused, so a
// captured request cannot be replayed later. Verifier does this check alone; Sign and SetHeaders
// sign, for tests. The signatures match the official standardwebhooks libraries' both ways (a
// test checks them against the npm package).
//
// The handshake is the one request herald sends unsigned: it proves that the endpoint answers,
// and nothing else is sent to the endpoint until it has passed. Handler answers an unsigned
// handshake without calling any callback (echoing a challenge reveals nothing), and checks its
// token when Config.Token is set.
//
// # Handler
//
// Handler does all of it: it reads the body (at most Config.MaxBodyBytes), verifies it, answers
// handshakes, decodes the payload and calls the Config callback of its type. It answers:
//
//	200  a url_verification handshake, with {"challenge": ...}
//	204  a verified payload: its callback returned nil, or it has no callback
//	400  a signed body that is not a payload herald sends (ErrMalformed)
//	401  a missing or wrong signature, or a timestamp outside the tolerance (ErrSignature)
//	403  a handshake or notification whose token is not Config.Token
//	405  a method other than POST
//	413  a body over Config.MaxBodyBytes
//	500  the callback returned an error (herald tries again later)
//
// Error answers are plain text naming the problem (herald shows them in the delivery's attempts);
// they never hold a secret. Config.OnError hears of each; the package logs nothing. herald
// retries every answer but 2xx, so make callbacks idempotent on Delivery.ID and quick: take the
// work in and return, and do it in the background.
//
// Decode alone turns a body into its typed struct, for programs that verify elsewhere.
package receiver
