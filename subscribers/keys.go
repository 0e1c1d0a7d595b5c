package subscribers

// Redis keys of the subscribers package. Every key carries the hash tag {<prefix>:subs}, so all of
// them live on one Cluster slot: the read-modify-write scripts touch a subscriber's document, the
// id list, the verification queue and the match indexes of its channels and tags together, and
// those index keys depend on the document's contents (see doc.go). Every key also starts with
// "<prefix>:", so an operator's ACL pattern (~herald:*) and a SCAN by prefix find them, as they do
// the other packages' keys.

type keys struct{ tag string }

func newKeys(prefix string) keys { return keys{tag: prefix + ":{" + prefix + ":subs}"} }

// docs: HASH subscriber id -> the subscriber's JSON document (secret included).
func (k keys) docs() string { return k.tag + ":docs" }

// versions: HASH subscriber id -> version, bumped by every write (compare-and-swap).
func (k keys) versions() string { return k.tag + ":versions" }

// all: ZSET of every subscriber id, score 0, read with ZRANGEBYLEX for GET /subscribers paging.
func (k keys) all() string { return k.tag + ":all" }

// byChannel: ZSET (score 0) of the active subscribers whose channel_ids filter holds channelID.
func (k keys) byChannel(channelID string) string { return k.tag + ":idx:chan:" + channelID }

// byTag: ZSET (score 0) of the active subscribers with no channel_ids filter whose channel_tags
// filter holds tag.
func (k keys) byTag(tag string) string { return k.tag + ":idx:tag:" + tag }

// anyChannel: ZSET (score 0) of the active subscribers with neither a channel_ids nor a
// channel_tags filter.
func (k keys) anyChannel() string { return k.tag + ":idx:any" }

// verifyQueue: ZSET subscriber id -> when its handshake is due (unix ms). A claimed entry's score
// is pushed to the end of its lease, so a crashed verifier's work comes back.
func (k keys) verifyQueue() string { return k.tag + ":verify" }

// failing: HASH subscriber id -> unix ms of the first failed delivery try since the last success.
func (k keys) failing() string { return k.tag + ":failing" }

// fan: HASH subscriber id -> the compact fan-out record of an active subscriber (its token and
// filters, see fan.go). It holds exactly the subscribers the match indexes hold, written by the
// same scripts, so fan-out and counting never decode whole documents.
func (k keys) fan() string { return k.tag + ":fan" }

// gen: STRING, a counter incremented by every write that changes the set of active subscribers or
// the fan-out record of one (their filters, token). It is never deleted: counts are cached by it.
func (k keys) gen() string { return k.tag + ":gen" }

// counts: HASH of cached match counts for one generation: field "gen" -> the generation they were
// counted at, field <channel signature> -> the number of active subscribers matching it. Any write
// that increments gen deletes it; it is bounded in size (see fan.go).
func (k keys) counts() string { return k.tag + ":counts" }
