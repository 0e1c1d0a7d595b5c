package notifier

import "github.com/redis/go-redis/v9"

// ScriptDigests names the engine's Lua scripts by SHA1, for tools that read Redis's statistics.
// The scripts are built at run time (luaLib + body), so their digests are known only here.
func ScriptDigests() map[string]string {
	out := make(map[string]string, len(namedScripts))
	for name, s := range namedScripts {
		out[s.Hash()] = "notifier." + name
	}
	return out
}

// namedScripts is every script var of scripts.go and migrate.go by its name.
var namedScripts = map[string]*redis.Script{
	"enqueueScript":        enqueueScript,
	"beginScript":          beginScript,
	"deferScript":          deferScript,
	"finishScript":         finishScript,
	"pumpScript":           pumpScript,
	"wakeScript":           wakeScript,
	"retryScript":          retryScript,
	"putEndpointScript":    putEndpointScript,
	"copyEndpointScript":   copyEndpointScript,
	"deleteEndpointScript": deleteEndpointScript,
	"disableScript":        disableScript,
	"endScript":            endScript,
	"healthScript":         healthScript,
	"trimScript":           trimScript,
	"pruneScript":          pruneScript,
	"migrateScript":        migrateScript,
	"raiseWatermarkScript": raiseWatermarkScript,
}
