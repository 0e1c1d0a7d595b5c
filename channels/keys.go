package channels

// Redis keys of the channel registry. Every key carries the hash tag "{<prefix>:ch}", so all of
// them live on one Cluster slot and the Lua scripts in store.go may touch a channel's document and
// every index entry it owns in one atomic step (see doc.go for why that trade is worth it). Each key
// also starts with "<prefix>:" so an operator's ACL pattern (~herald:*) and a SCAN by prefix find
// them.

// keys builds the registry's key names for one prefix.
type keys struct {
	base string // "<prefix>:{<prefix>:ch}:"
}

func newKeys(prefix string) keys {
	return keys{base: prefix + ":{" + prefix + ":ch}:"}
}

// doc is a channel's document: STRING holding the JSON envelope {"v": version, "c": channel}.
func (k keys) doc(id string) string { return k.base + "doc:" + id }

// all is the id index of every channel: ZSET, every score 0, members channel ids, so
// ZRANGEBYLEX walks channels in id order.
func (k keys) all() string { return k.base + "all" }

// tag is the index of the channels carrying tag: ZSET, every score 0, members channel ids. Redis
// drops the key when its last member is removed.
func (k keys) tag(tag string) string { return k.base + "tag:" + tag }
