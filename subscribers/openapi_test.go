package subscribers

import (
	"os"
	"testing"

	"github.com/heraldhq/herald/internal/apitest"
)

// TestMain checks the requests the tests make to the API they serve, and the answers, against the
// OpenAPI document (internal/apitest).
func TestMain(m *testing.M) { os.Exit(apitest.Run(m)) }
