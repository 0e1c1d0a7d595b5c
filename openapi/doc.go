// Package openapi holds the OpenAPI document of herald's HTTP API (openapi.json, beside this
// file) and serves it at GET /openapi.json.
//
// The document is written by hand and kept true by tests, not generated from the code:
//
//   - openapi_test.go loads it with github.com/getkin/kin-openapi and validates it (the document,
//     its examples against their schemas, its references);
//   - app's route test walks the router of a fully built daemon and checks that every route it
//     registers has its path and method in the document, and that the document has nothing more;
//   - internal/apitest is an http.RoundTripper that checks every request the end-to-end tests
//     make, and every answer they get, against the document (openapi3filter): an undocumented
//     status, header or field, a value of the wrong type or a required field missing fails the
//     test that made the request. A request the document refuses must be refused by herald (4xx).
//   - scripts/test.sh lints it with Redocly's CLI (pinned in scripts/lint-openapi.sh).
//
// It is an OpenAPI 3.1 document (JSON Schema 2020-12: "type": ["string", "null"], const). 3.1
// rather than 3.0.3 because the kin-openapi this module uses (v0.153) loads and validates 3.1
// documents and checks traffic against them (openapi3filter switches to JSON Schema 2020-12 for a
// 3.1 document by itself): nothing is left unchecked by the choice. One quirk shapes how schemas
// are written: kin-openapi hands a schema to its JSON Schema 2020-12 validator only when the schema
// uses a keyword 3.0 lacks (const, if/then, ...), and otherwise to its 3.0 validator taught type
// lists. That one refuses a null that only an enum lists, so a nullable enum also says
// "type": [..., "null"]. TestThreeOneSchemasAreEnforced proves the keywords the document relies
// on are enforced, and would fail on a kin-openapi that read the document as 3.0.
//
// Answers may gain properties (the document leaves response objects open: clients must ignore
// what they do not know); request bodies are strict, as herald's decoder is (an unknown property is
// a 400), so their schemas say "additionalProperties": false.
//
// Changing the API means changing openapi.json in the same commit: the tests above fail until
// the two agree.
package openapi
