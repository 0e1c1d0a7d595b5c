// Reads the JSON that `go run ./notifier/internal/signdemo` prints (requests signed by herald's
// delivery engine) from stdin and verifies each with the official Standard Webhooks library.
// Exits non-zero when a secret that must verify does not, or one that must not does.
"use strict";
const { Webhook } = require("standardwebhooks");

let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const cases = JSON.parse(input);
  let failures = 0;
  if (!Array.isArray(cases) || cases.length === 0) {
    console.error("no signed requests to verify");
    process.exit(1);
  }
  for (const c of cases) {
    for (const secret of c.verify) {
      try {
        new Webhook(secret).verify(c.body, c.headers);
        console.log(`ok    ${c.name}: verifies with an expected secret`);
      } catch (e) {
        failures++;
        console.error(`FAIL  ${c.name}: did not verify with an expected secret: ${e.message}`);
      }
    }
    for (const secret of c.no_verify) {
      try {
        new Webhook(secret).verify(c.body, c.headers);
        failures++;
        console.error(`FAIL  ${c.name}: verified with a secret that must not`);
      } catch (e) {
        console.log(`ok    ${c.name}: refused with another secret`);
      }
    }
  }
  if (failures > 0) {
    console.error(`${failures} signature check(s) failed`);
    process.exit(1);
  }
  console.log(`all ${cases.length} signed requests verified with standardwebhooks`);
});
