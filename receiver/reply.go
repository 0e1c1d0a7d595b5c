package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxReplyAnswer is how much of herald's answer to a reply is read, for the error.
const maxReplyAnswer = 4 << 10

// ErrReply wraps every failure of RelayedMessage.Reply.
var ErrReply = errors.New("receiver: the reply to response_url failed")

// Reply sends a channel server's answer to the message: POST response_url with
// {"session_id", "response_data"} (seed 000). herald forwards it to the sessions server. Pass the
// message's Delivery.ID as idempotencyKey (sent as the Idempotency-Key header): when herald
// delivers the message again, or the reply is retried, herald forwards the answer once.
// client nil means http.DefaultClient. Errors never hold response_url, which may carry a token.
func (m *RelayedMessage) Reply(ctx context.Context, client *http.Client, idempotencyKey string, responseData any) error {
	body, err := json.Marshal(map[string]any{"session_id": m.SessionID, "response_data": responseData})
	if err != nil {
		return fmt.Errorf("%w: response_data does not encode as JSON: %w", ErrReply, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.ResponseURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: response_url is not a URL that can be requested", ErrReply)
	}
	req.Header.Set("Content-Type", "application/json")
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return fmt.Errorf("%w: %w", ErrReply, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxReplyAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w: herald answered %d: %s", ErrReply, resp.StatusCode, truncate(strings.TrimSpace(string(answer)), 200))
	}
	return nil
}
