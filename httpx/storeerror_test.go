package httpx_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/httpx"
)

// A store error the engine would keep for later (redisx.IsTransient) is a 503 with Retry-After;
// any other error is a 500.
func TestWriteErrorStoreUnavailable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{io.ErrUnexpectedEOF, 503},
		{context.DeadlineExceeded, 503},
		{redis.ErrPoolTimeout, 503},
		{redis.ErrNoScript, 500},
		{errors.New("a bug"), 500},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		httpx.WriteError(rec, httptest.NewRequest("GET", "/x", nil), tt.err)
		if rec.Code != tt.want {
			t.Errorf("WriteError(%v) = %d, want %d", tt.err, rec.Code, tt.want)
		}
		if (rec.Header().Get("Retry-After") != "") != (tt.want == 503) {
			t.Errorf("WriteError(%v): Retry-After %q", tt.err, rec.Header().Get("Retry-After"))
		}
	}
}
