// Package benchkit holds what the benchmark programs under scripts/ share: CPU time of this
// process and of another one, Redis's CPU time and command statistics, its slow log grouped by
// command, percentiles, and the receiver's side of the url_verification handshake.
package benchkit

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/notifier"
)

// CPUSeconds is this process's CPU time (user + system) so far.
func CPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// ProcCPUSeconds is the CPU time (utime + stime, all threads) of process pid so far, from
// /proc/<pid>/stat; its resolution is a clock tick (10 ms).
func ProcCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: fields count from its end.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); utime is field 14, stime 15
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime or stime", pid)
	}
	const clkTck = 100 // USER_HZ: what /proc reports in on Linux
	return float64(ut+st) / clkTck, nil
}

// InfoField is the value of key in an INFO answer, or "?".
func InfoField(info, key string) string {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+":"); ok {
			return v
		}
	}
	return "?"
}

// RedisCPU is the CPU time the Redis process has used, in seconds (used_cpu_user + used_cpu_sys).
func RedisCPU(ctx context.Context, rdb redis.UniversalClient) float64 {
	info := rdb.Info(ctx, "cpu").Val()
	u, _ := strconv.ParseFloat(InfoField(info, "used_cpu_user"), 64)
	s, _ := strconv.ParseFloat(InfoField(info, "used_cpu_sys"), 64)
	return u + s
}

// RedisMainThreadCPU is the CPU time of Redis's main thread, in seconds.
func RedisMainThreadCPU(ctx context.Context, rdb redis.UniversalClient) float64 {
	info := rdb.Info(ctx, "cpu").Val()
	u, _ := strconv.ParseFloat(InfoField(info, "used_cpu_user_main_thread"), 64)
	s, _ := strconv.ParseFloat(InfoField(info, "used_cpu_sys_main_thread"), 64)
	return u + s
}

// CmdStat is one line of INFO commandstats.
type CmdStat struct {
	Calls int64
	Usec  int64
}

// CommandStats reads INFO commandstats by lower-case command name (with Redis 7, subcommands as
// "config|resetstat"). Commands run by a Lua script are counted under their own names as well as
// in the script's EVALSHA, whose usec includes theirs.
func CommandStats(ctx context.Context, rdb redis.UniversalClient) (map[string]CmdStat, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]CmdStat{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var st CmdStat
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "calls":
				st.Calls, _ = strconv.ParseInt(v, 10, 64)
			case "usec":
				st.Usec, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = st
	}
	return out, nil
}

// SlowGroup is the slow-log entries of one command (a script by its first key, see SlowName).
type SlowGroup struct {
	Name     string
	N        int
	Max, Sum time.Duration
}

// GroupSlowLog groups slow-log entries by SlowName, longest total first.
func GroupSlowLog(logs []redis.SlowLog) []SlowGroup {
	by := map[string]*SlowGroup{}
	for _, l := range logs {
		name := SlowName(l.Args)
		g := by[name]
		if g == nil {
			g = &SlowGroup{Name: name}
			by[name] = g
		}
		g.N++
		g.Sum += l.Duration
		g.Max = max(g.Max, l.Duration)
	}
	out := make([]SlowGroup, 0, len(by))
	for _, g := range by {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b SlowGroup) int { return int(b.Sum - a.Sum) })
	return out
}

// SlowName names a command from its arguments: the command, for a script (EVALSHA, EVAL) its
// digest's first 8 characters and the kind of its first key, for another command the kind of
// the herald key among its first two arguments. herald's keys look like
// "prefix:{tag}:kind:id": the kind is the part after the hash tag up to the next colon.
func SlowName(args []string) string {
	if len(args) == 0 {
		return "?"
	}
	name := strings.ToUpper(args[0])
	if (name == "EVALSHA" || name == "EVAL") && len(args) > 3 {
		sha := args[1]
		if name == "EVAL" { // the script itself: name it by its digest, as EVALSHA would
			sum := sha1.Sum([]byte(sha))
			sha = hex.EncodeToString(sum[:])
		}
		sha = sha[:min(8, len(sha))]
		return name + " " + sha + " " + KeyKind(args[3])
	}
	for _, a := range args[1:min(len(args), 3)] {
		if strings.Contains(a, "}:") { // a herald key: name its kind too
			return name + " " + KeyKind(a)
		}
	}
	return name
}

// KeyKind is the kind of a herald key: the part after its hash tag up to the next colon
// ("herald:{herald}:d:abc" is "d", "herald:{herald:subs}:fan" is "fan"); keys without a hash
// tag keep their second part ("herald:rl:ep1" is "rl"), or their last when they have fewer.
func KeyKind(k string) string {
	if i := strings.Index(k, "}:"); i >= 0 {
		k = k[i+2:]
		if j := strings.IndexByte(k, ':'); j >= 0 {
			k = k[:j]
		}
		return k
	}
	parts := strings.Split(k, ":")
	if len(parts) >= 3 {
		return parts[1] // "herald:rl:<endpoint>" is "rl"
	}
	return parts[len(parts)-1]
}

// Pct is the p-quantile (0..1) of sorted durations, 0 for none.
func Pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(float64(len(sorted)-1)*p)]
}

// AnswerHandshake answers a url_verification handshake (seed 002) whose body is b with its
// challenge as a JSON string, and reports whether b was one. Other bodies are left alone.
func AnswerHandshake(w http.ResponseWriter, b []byte) bool {
	if !bytes.Contains(b, []byte(`"url_verification"`)) {
		return false
	}
	var m struct {
		Type      string `json:"type"`
		Challenge string `json:"challenge"`
	}
	if json.Unmarshal(b, &m) != nil || m.Type != "url_verification" {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(m.Challenge)
	return true
}

// ScriptNames maps the SHA1 digest (as EVALSHA sends it) of every Lua script of herald to
// "package.name", so Redis's view of a script can be named. The delivery engine's scripts are
// built at run time and named by notifier.ScriptDigests; the other packages' are read from the
// source under root, where they are declared as `var name = redis.NewScript(<constant string
// expression>)`. Test files and scripts/ are skipped; a script whose text is not a constant
// expression of string literals and package constants is left out.
func ScriptNames(root string) (map[string]string, error) {
	type pkg struct {
		consts map[string]ast.Expr
		vars   map[string]*ast.CallExpr
	}
	pkgs := map[string]*pkg{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "scripts" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil // not ours to judge
		}
		dir := filepath.Dir(path)
		p := pkgs[dir]
		if p == nil {
			p = &pkg{consts: map[string]ast.Expr{}, vars: map[string]*ast.CallExpr{}}
			pkgs[dir] = p
		}
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || (g.Tok != token.CONST && g.Tok != token.VAR) {
				continue
			}
			for _, spec := range g.Specs {
				vs, ok := spec.(*ast.ValueSpec)
				if !ok || len(vs.Names) != 1 || len(vs.Values) != 1 {
					continue
				}
				if g.Tok == token.CONST {
					p.consts[vs.Names[0].Name] = vs.Values[0]
					continue
				}
				if call, ok := vs.Values[0].(*ast.CallExpr); ok && len(call.Args) == 1 {
					if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "NewScript" {
						p.vars[vs.Names[0].Name] = call
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := notifier.ScriptDigests()
	for dir, p := range pkgs {
		var eval func(e ast.Expr, depth int) (string, bool)
		eval = func(e ast.Expr, depth int) (string, bool) {
			if depth > 8 {
				return "", false
			}
			switch e := e.(type) {
			case *ast.BasicLit:
				if e.Kind != token.STRING {
					return "", false
				}
				s, err := strconv.Unquote(e.Value)
				return s, err == nil
			case *ast.Ident:
				if c, ok := p.consts[e.Name]; ok {
					return eval(c, depth+1)
				}
			case *ast.ParenExpr:
				return eval(e.X, depth+1)
			case *ast.BinaryExpr:
				if e.Op == token.ADD {
					x, ok1 := eval(e.X, depth+1)
					y, ok2 := eval(e.Y, depth+1)
					return x + y, ok1 && ok2
				}
			}
			return "", false
		}
		for name, call := range p.vars {
			if src, ok := eval(call.Args[0], 0); ok {
				sum := sha1.Sum([]byte(src))
				out[hex.EncodeToString(sum[:])] = filepath.Base(dir) + "." + name
			}
		}
	}
	return out, nil
}
