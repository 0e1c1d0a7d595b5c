package receiver_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The receiver imports only the standard library and herald's webhooksig, itself a leaf of the
// standard library (the reason it exists: a receiver's binary should not carry herald's Redis,
// Prometheus and router dependencies). Its tests may import more.
func TestImportsOnlyTheStandardLibrary(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the package's dependencies: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg != "github.com/heraldhq/herald/receiver" && pkg != "github.com/heraldhq/herald/webhooksig" {
			t.Errorf("receiver depends on %s, outside the standard library", pkg)
		}
	}
}
