package verifier

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/heraldhq/herald/egress"
)

// maxReply is how much of a reply is read: a challenge answer is short.
const maxReply = 64 << 10

// errTryTimeout is the cause of a try's context when its timeout passes.
var errTryTimeout = errors.New("handshake try timed out")

// ErrCanceled is returned by Handshake when its context ended: the try says nothing about the
// endpoint.
var ErrCanceled = errors.New("verifier: handshake canceled")

// Handshake runs one url_verification try against url: it POSTs {"token", "type":
// "url_verification", "challenge"} and checks that the 2xx reply carries the challenge, as plain
// text, as a JSON string, as JSON {"challenge": ...} or as a form body challenge=.... It returns ""
// on success, else a reason a person can act on, with no secret in it ("answered 403", "timed out
// after 10s", "body did not contain the challenge", "connection refused", "target refused: ...").
// It returns ErrCanceled (and no reason) when ctx ended.
func Handshake(ctx context.Context, client *http.Client, target, token, userAgent string, timeout time.Duration) (string, error) {
	challenge := newChallenge()
	body, err := json.Marshal(map[string]string{"token": token, "type": "url_verification", "challenge": challenge})
	if err != nil {
		return "", err
	}
	tctx, cancel := context.WithTimeoutCause(ctx, timeout, errTryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(tctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return "the url cannot be requested: " + egress.Redact(target), nil
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := client.Do(req)
	if err != nil {
		return describe(ctx, tctx, err, timeout)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxReply))
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Sprintf("answered %d", resp.StatusCode), nil
	}
	reply, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return describe(ctx, tctx, err, timeout)
	}
	if !carriesChallenge(reply, challenge) {
		return fmt.Sprintf("answered %d but the body did not contain the challenge", resp.StatusCode), nil
	}
	return "", nil
}

// carriesChallenge reports whether reply is the challenge in one of the accepted forms.
func carriesChallenge(reply []byte, challenge string) bool {
	eq := func(s string) bool { return subtle.ConstantTimeCompare([]byte(s), []byte(challenge)) == 1 }
	b := bytes.TrimSpace(reply)
	if eq(string(b)) {
		return true
	}
	var s string
	if json.Unmarshal(b, &s) == nil && eq(s) {
		return true // "abc": the seed's Django REST view
	}
	var obj struct {
		Challenge string `json:"challenge"`
	}
	if json.Unmarshal(b, &obj) == nil && eq(obj.Challenge) {
		return true // {"challenge": "abc"}: Slack's form
	}
	if v, err := url.ParseQuery(string(b)); err == nil && eq(v.Get("challenge")) {
		return true // challenge=abc
	}
	return false
}

// describe turns a failed request into a reason a person can act on. The URL is left out: it may
// carry a token in its query.
func describe(parent, tctx context.Context, err error, timeout time.Duration) (string, error) {
	if parent.Err() != nil {
		return "", ErrCanceled
	}
	if egress.IsRefused(err) {
		msg := err.Error()
		if i := strings.Index(msg, egress.ErrRefused.Error()); i >= 0 {
			msg = msg[i:]
		}
		return msg, nil
	}
	var ne net.Error
	if errors.Is(context.Cause(tctx), errTryTimeout) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Sprintf("timed out after %s", timeout), nil
	}
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", nil
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by the endpoint", nil
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable", nil
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return fmt.Sprintf("could not resolve host %s: no such host", dnsErr.Name), nil
		}
		return fmt.Sprintf("could not resolve host %s", dnsErr.Name), nil
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalidCert):
		return "TLS certificate not accepted: " + innermost(err), nil
	case errors.As(err, &recordErr):
		return "TLS handshake failed: the endpoint does not speak TLS (try http://, if the operator allows it)", nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the endpoint closed the connection without an answer", nil
	}
	return "request failed: " + innermost(err), nil
}

// innermost returns the message of err without the url.Error wrapper that names the URL.
func innermost(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

func newChallenge() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
