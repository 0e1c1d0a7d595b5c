package notifier

import (
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// TEMPORARY until redisx.IsTransient is merged.
func isTransientTmp(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return false
	}
	s := err.Error()
	return !strings.HasPrefix(s, "ERR") && !strings.HasPrefix(s, "WRONGTYPE")
}
