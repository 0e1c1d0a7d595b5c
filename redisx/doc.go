// Package redisx opens herald's Redis connection: a single server from a redis:// or rediss://
// URL, a Cluster or Sentinel from an address list, or, with neither, an embedded in-process
// Redis-compatible server (miniredis) for trying herald out. Every caller gets a
// redis.UniversalClient, so the same code runs against all of them.
//
// Key naming: every herald key starts with a configurable prefix (default "herald") so that
// several installations, or several tests, can share one Redis. Each package owns its keys and
// names them in one file (keys.go) with one function per key; keys that one Lua script touches
// together share a hash tag so they live on one Cluster slot.
package redisx
