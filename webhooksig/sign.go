package webhooksig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"strconv"
	"sync"
	"time"
)

// Standard Webhooks header names. Go canonicalises them on the wire; receivers match them
// case-insensitively.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// scheme starts every signature this package makes and the only one it verifies.
const scheme = "v1,"

// Signer signs with one key. It pools its HMAC states and their scratch space, so keep one per
// key rather than making one per message: signing then allocates only the returned string. It is
// safe for concurrent use.
type Signer struct {
	states sync.Pool // of *state keyed with the signer's key
}

// state is one pooled HMAC-SHA256 with the buffers a signature needs.
type state struct {
	mac    hash.Hash
	prefix []byte // "msgID.unix."
	sum    [sha256.Size]byte
}

// NewSigner returns a Signer for an HMAC key (see ParseSecret). The key is not copied.
func NewSigner(key []byte) *Signer {
	s := &Signer{}
	s.states.New = func() any { return &state{mac: hmac.New(sha256.New, key), prefix: make([]byte, 0, 64)} }
	return s
}

// Sign returns the signature "v1,<base64 HMAC-SHA256 of msgID.unix.body>" of a message sent at
// unix (seconds).
func (s *Signer) Sign(msgID string, unix int64, body []byte) string {
	return Header(msgID, unix, body, s)
}

// Header returns the webhook-signature value of a message: one signature per signer, separated by
// spaces (the Standard Webhooks form for a rotation). Nil signers are skipped; with none, "".
func Header(msgID string, unix int64, body []byte, signers ...*Signer) string {
	var out [128]byte // two signatures fit
	b := out[:0]
	for _, s := range signers {
		if s == nil {
			continue
		}
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = s.appendSig(b, msgID, unix, body)
	}
	return string(b)
}

// Sign is the one-off form of Signer.Sign: it signs a message sent at ts with secret's key.
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return "", err
	}
	return NewSigner(key).Sign(msgID, ts.Unix(), body), nil
}

// appendSig appends "v1,<base64 HMAC-SHA256 of msgID.unix.body>" to dst.
func (s *Signer) appendSig(dst []byte, msgID string, unix int64, body []byte) []byte {
	st := s.states.Get().(*state)
	st.prefix = append(st.prefix[:0], msgID...)
	st.prefix = append(st.prefix, '.')
	st.prefix = strconv.AppendInt(st.prefix, unix, 10)
	st.prefix = append(st.prefix, '.')
	st.mac.Reset()
	st.mac.Write(st.prefix)
	st.mac.Write(body)
	st.mac.Sum(st.sum[:0])
	dst = append(dst, scheme...)
	dst = base64.StdEncoding.AppendEncode(dst, st.sum[:])
	s.states.Put(st)
	return dst
}
