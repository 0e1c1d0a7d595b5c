// Package channels is herald's channel registry: seed 000's ChannelStoreObject kept in Redis, the
// HTTP API over it (POST /channel, GET/PUT/DELETE /channel/{id}, POST /channels) and the MongoDB
// subset its users filter with. GET /channel/{id} answers the stored object and nothing more;
// with ?include=health it adds the health of the channel's relay endpoint, which the daemon reads
// from the delivery engine (Handler.WithHealth).
//
// # Storage
//
// A channel is one Redis string holding {"v": version, "c": channel} as JSON. Two kinds of index
// sit beside the documents, both sorted sets whose scores are all 0 so that ZRANGEBYLEX walks them
// in channel_id order: one set of every channel id, and one set per tag with the ids of the
// channels carrying it. keys.go names them all.
//
// The indexes never disagree with the documents, because every write goes through a Lua script
// that changes both in one atomic step: Create stores the document and its index entries unless
// the id is taken (of two racing creates exactly one wins, the other gets ErrExists). Update reads
// the document, applies the patch in Go (channel_metadata by RFC 7396 merge patch), validates the
// result and hands the script the document it read together with the new one and the tags that
// came and went; the script writes only if the stored document is still the one read (it carries
// a version that every write bumps), otherwise Go reads again and retries, a bounded number of
// times with jittered backoff, then gives up with ErrBusy (HTTP 503 with Retry-After). Delete works
// the same way. No script parses JSON: Go decides, Redis compares and writes.
//
// # One hash tag, one slot
//
// Every key carries the hash tag "{<prefix>:ch}", so on Redis Cluster the whole registry lives on
// one slot. That is what lets one script touch a document and any tag index atomically (Cluster
// refuses a script whose keys span slots), and lets MGET fetch a page of documents in one command.
// The price is that the registry does not spread across shards; channels are few and small
// (100,000 channels of half a kilobyte are 50 MB) and read far more than written, so one shard
// holds them comfortably, while the busy data (deliveries, queues) is spread by the other
// packages.
//
// # Queries
//
// ParseFilter turns a filter into a syntax tree and refuses an unknown field or operator with a
// 400 that names it. The tree is evaluated in Go on each candidate document, so results are exact
// whatever the index said. A channel_metadata path walks lists as MongoDB does (see walk): the
// rest of the path applies to each element, a whole-number key is an index. The planner only chooses the candidates: channel_tags equality, $in and
// $all and channel_id equality and $in are answered from the indexes ($and uses its most selective
// indexable condition, judged by ZCARD; $or only when all its branches are indexable); anything
// else walks the all-channels set. Candidates are merged from the sorted sets in id order a batch
// at a time and their documents fetched with one MGET per batch, so the cost of a tag query
// follows the channels it matches, not how many exist. A candidate's channel_metadata is decoded
// only when the filter reads it, and the API writes matching channels out as the JSON they are
// stored as (Store.QueryJSON); Store.Query returns decoded channels for Go callers.
//
// Results come in channel_id order, limit at a time (default 100, at most 1000), with an opaque
// cursor (the last id, base64url) for the next page. A request examines at most
// max(10*limit, 5000) candidates: a filter that the indexes cannot narrow, over many channels, may
// return a partial page, even an empty one, with a next cursor; clients page until next is null.
package channels
