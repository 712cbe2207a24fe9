// Package evidence owns certmail's signed evidence: one record for every
// event in a certified item's life, the append-only Merkle log that holds
// every record of every item, the log's signed checkpoints, evidence
// bundles, and their offline verification.
//
// A record is a compact JWS (RFC 7515, EdDSA) signed by the gateway P over
// RFC 8785 canonical JSON. Its record types are named after ETSI EN 319 522:
// SubmissionAcceptance is the certificate of posting (COP),
// ConsignmentAcceptance carries the recipient's certificate of delivery
// (COD), and ContentHandover is the report of delivery (ROD). Each record
// names its item (label L and its commitment H(L,r,M), or the unsalted
// H(L,M) of items posted before salting), its position in the item's chain
// (seq) and the SHA-256 of the item's previous record (prev), so an item's
// records form a hash chain that cannot be reordered or thinned out.
//
// Every record is also a leaf of one RFC 6962 Merkle tree over all items,
// persisted in the store (a kv.Records) under the prefix it claims in
// kv/keyspace (Evidence, "evlog/"). The gateway signs
// checkpoints of the tree (C2SP tlog-checkpoint, as a C2SP signed note) and
// keeps them, so it can prove that any record is in the tree a checkpoint
// commits to and that any two checkpoints are consistent: the gateway cannot
// show one party a history it hides from another without signing two
// inconsistent checkpoints.
//
// A Bundle gathers an item's records, their inclusion proofs, a checkpoint,
// the public keys needed, and a head the gateway signs (a JWS of its own
// typ) saying how many records the item has and which is the last, as of
// when the bundle was made, so that Verify (or any JOSE library and a
// Merkle proof checker) can check it offline and a bundle cut short is
// caught.
//
// This package does not verify a COD when it is handed in, nor hold keys:
// the receipts package does that and then appends the evidence here.
package evidence
