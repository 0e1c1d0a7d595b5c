package sessions

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// sharedSecret returns the value stored at key, creating it with gen and SETNX when absent, so
// that every herald process sharing the Redis ends up with the same value. generated says whether
// this call created it. The value is never put in an error.
func sharedSecret(ctx context.Context, rdb redis.UniversalClient, key string, gen func() string) (val string, generated bool, err error) {
	val, err = rdb.Get(ctx, key).Result()
	if err == nil && val != "" {
		return val, false, nil
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", false, fmt.Errorf("read %s: %w", key, err)
	}
	ok, err := rdb.SetNX(ctx, key, gen(), 0).Result()
	if err != nil {
		return "", false, fmt.Errorf("store %s: %w", key, err)
	}
	// Another process may have won the race: read what is stored.
	val, err = rdb.Get(ctx, key).Result()
	if err != nil {
		return "", false, fmt.Errorf("read %s: %w", key, err)
	}
	return val, ok, nil
}

// tokenFor derives a session's callback token from the shared token key and the session's random
// nonce: nothing secret is stored per session, any herald process can check a token, and a
// session that expired and was created again gets a new token.
func tokenFor(tokenKey []byte, sessionID, nonce string) string {
	m := hmac.New(sha256.New, tokenKey)
	m.Write([]byte(sessionID))
	m.Write([]byte{0})
	m.Write([]byte(nonce))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// tokenMatches compares a presented token with the session's in constant time.
func tokenMatches(tokenKey []byte, sessionID, nonce, presented string) bool {
	if presented == "" || nonce == "" {
		return false
	}
	return hmac.Equal([]byte(tokenFor(tokenKey, sessionID, nonce)), []byte(presented))
}

// newTokenKey returns a fresh callback token key: base64 of 32 random bytes.
func newTokenKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func randomNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
