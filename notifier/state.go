package notifier

import (
	"strings"
)

// The engine's vocabulary, written once: the Go code uses these typed names and the Lua scripts
// get the same names as constants (luaNames), so a state, a verdict or a record field is spelt
// in one place. doc.go's state table is in these words.

// beginVerdict is the begin script's answer for one fetched stream entry.
type beginVerdict string

const (
	beginGo   beginVerdict = "go"   // leased: make the try
	beginSkip beginVerdict = "skip" // stale entry (the delivery moved on): acknowledged and dropped
	beginWait beginVerdict = "wait" // the endpoint's in-flight slots are taken: parked in its waiter list
	beginDead beginVerdict = "dead" // past its age, or its endpoint is gone or disabled: dead-lettered without a try
)

// finishOutcome is what a try's finish does to its delivery (decide chooses it).
type finishOutcome string

const (
	finishDelivered finishOutcome = "delivered" // a 2xx: finished
	finishRetry     finishOutcome = "retry"     // failed, tries and age left: into the delayed set
	finishDead      finishOutcome = "dead"      // failed for good: dead-lettered (status failed)
)

// recordField is a field of a delivery record (HASH recordKey).
type recordField string

const (
	fieldEndpoint   recordField = "endpoint"    // endpoint id
	fieldURL        recordField = "url"         // the target at enqueue, for display
	fieldBody       recordField = "body"        // the JSON body, sent as it is
	fieldEvent      recordField = "event"       // event id ("" none)
	fieldSubscriber recordField = "subscriber"  // subscriber id ("" none)
	fieldKind       recordField = "kind"        // notification, relay, callback
	fieldLine       recordField = "line"        // its ordering line ("" none; else lineOfKey/lineOfEndpoint + name)
	fieldStatus     recordField = "status"      // a Status
	fieldTries      recordField = "tries"       // tries used since it was last accepted
	fieldCreated    recordField = "created_at"  // ms
	fieldAccepted   recordField = "accepted_at" // ms: enqueued or replayed; its age counts from here
	fieldNext       recordField = "next_at"     // ms: due (pending only)
	fieldDeadReason recordField = "dead_reason" // why it failed ("" otherwise)
	fieldFinished   recordField = "finished_at" // ms ("" while pending)
	fieldEntry      recordField = "entry"       // its stream entry id while in the stream, else ""
	fieldAttempts   recordField = "attempts"    // one attempt JSON a line, oldest first, the last maxAttemptsKept
	// fieldWait is why a pending delivery out of the stream waits (a WaitReason), written by the
	// script that takes it out; "" in the stream and behind the head of its ordering line (see
	// waitingOf). It means nothing once the delivery is finished, and finishing does not clear it:
	// the delivered path writes nothing more for it.
	fieldWait recordField = "wait"
)

// The fields of a stream entry (short: the stream holds one entry per due delivery).
const (
	entryDelivery = "d" // delivery id
	entryEndpoint = "e" // endpoint id
)

// endpointField is a field of an endpoint (HASH endpointKey).
type endpointField string

const (
	epFieldURL        endpointField = "url"
	epFieldSecret     endpointField = "secret"            // "whsec_..." or ""
	epFieldPrevSecret endpointField = "prev_secret"       // the secret before the last rotation
	epFieldPrevUntil  endpointField = "prev_secret_until" // ms: the previous secret signs until then
	epFieldRate       endpointField = "rate_per_minute"   // 0: the engine default
	epFieldInFlight   endpointField = "max_in_flight"     // 0: the engine default
	epFieldOrdered    endpointField = "ordered"           // "1" or "0"
	epFieldDisabled   endpointField = "disabled"          // "1": gets nothing (DisableEndpoint); "0" or absent: enabled
	epFieldOnGone     endpointField = "disable_on_gone"   // "1": a try answered 410 Gone disables it (finishScript)
)

// healthField is a field of an endpoint's health (HASH healthKey, health.go). The fields of the
// breakers and buckets are a prefix and a name.
type healthField string

const (
	hFieldOKAt      healthField = "ok_at"   // ms: the last delivered try
	hFieldFailAt    healthField = "fail_at" // ms: the last failed try
	hFieldError     healthField = "error"   // the last failed try's error
	hFieldCode      healthField = "code"    // its status code (0: no answer)
	hFieldBreakerOf healthField = "b:"      // + consumer: that process's breaker, "<state> <since ms>"
	hFieldBucketOf  healthField = "t:"      // + bucket index: "<start ms> <tries> <failures>"
)

// The names the scripts share with Go. Each becomes a Lua constant: ST_PENDING = 'pending', ...
var luaNameTable = []struct {
	lua   string
	value string
}{
	{"GROUP", group},
	{"ENTRY_DELIVERY", entryDelivery},
	{"ENTRY_ENDPOINT", entryEndpoint},
	{"ST_PENDING", string(StatusPending)},
	{"ST_DELIVERED", string(StatusDelivered)},
	{"ST_FAILED", string(StatusFailed)},
	{"BEGIN_GO", string(beginGo)},
	{"BEGIN_SKIP", string(beginSkip)},
	{"BEGIN_WAIT", string(beginWait)},
	{"BEGIN_DEAD", string(beginDead)},
	{"FINISH_DELIVERED", string(finishDelivered)},
	{"FINISH_RETRY", string(finishRetry)},
	{"FINISH_DEAD", string(finishDead)},
	{"WAIT_RETRY", string(WaitRetry)},
	{"WAIT_IN_FLIGHT_FULL", string(WaitInFlightFull)},
	{"REASON_MAX_AGE", ReasonMaxAge},
	{"REASON_ENDPOINT_GONE", ReasonEndpointGone},
	{"REASON_ENDPOINT_DISABLED", ReasonEndpointDisabled},
	{"REASON_GONE", ReasonGone},
	{"LINE_OF_KEY", lineOfKey},
	{"LINE_OF_ENDPOINT", lineOfEndpoint},
	{"F_ENDPOINT", string(fieldEndpoint)},
	{"F_URL", string(fieldURL)},
	{"F_BODY", string(fieldBody)},
	{"F_EVENT", string(fieldEvent)},
	{"F_SUBSCRIBER", string(fieldSubscriber)},
	{"F_KIND", string(fieldKind)},
	{"F_LINE", string(fieldLine)},
	{"F_STATUS", string(fieldStatus)},
	{"F_TRIES", string(fieldTries)},
	{"F_CREATED", string(fieldCreated)},
	{"F_ACCEPTED", string(fieldAccepted)},
	{"F_NEXT", string(fieldNext)},
	{"F_DEAD_REASON", string(fieldDeadReason)},
	{"F_FINISHED", string(fieldFinished)},
	{"F_ENTRY", string(fieldEntry)},
	{"F_ATTEMPTS", string(fieldAttempts)},
	{"F_WAIT", string(fieldWait)},
	{"EP_URL", string(epFieldURL)},
	{"EP_SECRET", string(epFieldSecret)},
	{"EP_PREV_SECRET", string(epFieldPrevSecret)},
	{"EP_PREV_UNTIL", string(epFieldPrevUntil)},
	{"EP_RATE", string(epFieldRate)},
	{"EP_IN_FLIGHT", string(epFieldInFlight)},
	{"EP_ORDERED", string(epFieldOrdered)},
	{"EP_DISABLED", string(epFieldDisabled)},
	{"EP_DISABLE_ON_GONE", string(epFieldOnGone)},
	{"H_OK_AT", string(hFieldOKAt)},
	{"H_FAIL_AT", string(hFieldFailAt)},
	{"H_ERROR", string(hFieldError)},
	{"H_CODE", string(hFieldCode)},
	{"H_BREAKER_OF", string(hFieldBreakerOf)},
}

// luaNames is the scripts' copy of the vocabulary.
func luaNames() string {
	var b strings.Builder
	for _, n := range luaNameTable {
		b.WriteString("local " + n.lua + " = '" + n.value + "'\n")
	}
	return b.String()
}
