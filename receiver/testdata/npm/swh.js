// The official Standard Webhooks library's side of receiver/npm_test.go.
//
//   node swh.js sign     prints fixed payloads signed by the library, with several secrets
//   node swh.js verify   reads [{name, secret, body, headers}] on stdin, verifies each with the
//                        library (against the current time, its 5-minute tolerance) and prints
//                        [{name, ok, error}]
//
// The Go test owns every expectation; this script only reports what the library does.
"use strict";
const { Webhook } = require("standardwebhooks");

// Keys of 16, 24, 32 and 64 bytes, and the specification's reference secret.
const secrets = [
  "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  "whsec_" + Buffer.alloc(16, 0x11).toString("base64"),
  "whsec_" + Buffer.from("herald receiver 24 bytes").toString("base64"),
  "whsec_" + Buffer.alloc(32, 0xfe).toString("base64"),
  "whsec_" + Buffer.from(Array.from({ length: 64 }, (_, i) => i)).toString("base64"),
];

const payloads = [
  ["spec vector", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'],
  ["update_notification", "evt_01HZX.sub_01HZY", 1700000000,
    '{"token":"tok","type":"update_notification","channel":"slack-sim","chat_type":"slack","update_type":"message_created","message":{"user":"U1","content":"A new message."}}'],
  ["unicode and newlines", "rly_1", 1700000001, '{"message":"héllo wörld ✓ 你好\\n","x":"\u00e9"}\n'],
  ["empty body", "msg_empty", 1700000002, ""],
  ["large body", "msg_large", 1700000003, JSON.stringify({ data: "x".repeat(100000) })],
];

function sign() {
  const out = [];
  for (const [name, id, ts, body] of payloads) {
    for (const secret of secrets) {
      const sig = new Webhook(secret).sign(id, new Date(ts * 1000), body);
      out.push({ name, secret, id, timestamp: ts, body, signature: sig });
    }
  }
  // A rotation: one header carrying the signatures of two secrets, as a sender rotating its
  // secret sends it.
  const [name, id, ts, body] = payloads[1];
  const both = [secrets[1], secrets[3]].map((s) => new Webhook(s).sign(id, new Date(ts * 1000), body)).join(" ");
  out.push({ name: "rotation", secret: secrets[3], id, timestamp: ts, body, signature: both });
  out.push({ name: "rotation", secret: secrets[1], id, timestamp: ts, body, signature: both });
  process.stdout.write(JSON.stringify(out));
}

function verify(input) {
  const out = [];
  for (const c of JSON.parse(input)) {
    try {
      new Webhook(c.secret).verify(c.body, c.headers);
      out.push({ name: c.name, ok: true });
    } catch (e) {
      out.push({ name: c.name, ok: false, error: e.message });
    }
  }
  process.stdout.write(JSON.stringify(out));
}

const mode = process.argv[2];
if (mode === "sign") {
  sign();
} else if (mode === "verify") {
  let input = "";
  process.stdin.on("data", (d) => (input += d));
  process.stdin.on("end", () => verify(input));
} else {
  console.error("usage: node swh.js sign|verify");
  process.exit(2);
}
