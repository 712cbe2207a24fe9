// Package receipts owns certified delivery's cryptography and evidence:
// labels, the items' commitments (the salted H(L,r,M), and the unsalted
// H(L,M) of older items), Certificates of Delivery (COD) and refusals, the
// keys that sign them and how they are held in custody, and (in the evidence
// sub-package) the signed records, the Merkle log and offline verification.
//
// It does not speak SMTP or IMAP and does not open the store: callers hand
// it a kv.Records (a transaction of the mailbox store) to persist into, so
// that an item's state change and its evidence record commit together.
package receipts
