// Package api is certmail's sender HTTP API (issue 5): a sender holding an
// API token submits certified items, follows them and fetches their
// evidence bundles; anyone may read the public side of the evidence log
// (checkpoints, inclusion and consistency proofs, leaf hashes, the
// gateway's keys). Every answer is JSON, errors included
// ({"error": "..."}), and the API is described by the OpenAPI document
// served at /v1/openapi.json (openapi.json in this directory).
//
// Tokens are 256-bit random strings; only their SHA-256 is stored, in the
// store's auxiliary key space, with the name that identifies the sender
// (an item's Submitter) and whether it is an operator token, which may
// read every item.
//
// Access rules: an item's details and bundle are shown only to the token
// that submitted it and to operator tokens; anyone else gets 404, so a
// label's existence does not leak. The log's checkpoints, proofs and leaf
// hashes carry nothing of any item and are public.
package api
