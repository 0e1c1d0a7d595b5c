package openapi

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"time"
)

// document is openapi.json, built into the binary.
//
//go:embed openapi.json
var document []byte

// etag is the document's version for caches: a hash of its bytes.
var etag = func() string {
	h := sha256.Sum256(document)
	return `"` + hex.EncodeToString(h[:8]) + `"`
}()

// Document returns a copy of the OpenAPI document (JSON).
func Document() []byte { return bytes.Clone(document) }

// Handler serves the document as application/json with an ETag, so a client that has it gets a
// 304 for If-None-Match. It holds no secret and is the same for every herald of one version.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", etag)
		w.Header().Set("Cache-Control", "no-cache") // cache it, but ask (If-None-Match) before using it
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(document))
	})
}
