// Package lag is the operator's one screen on how far behind each WAL
// consumer is: the loader, and each export destination.
//
// For every consumer a Report gives the WAL head, the consumer's position,
// the events and bytes behind, the age of the oldest pending event (the
// received_at of the record after the position), and the consumer's last
// success and last error.
//
// It works two ways, with one JSON shape:
//
//   - Online, against a running node: Handler serves GET /lag from the open
//     WAL (Live), with the positions of consumers that know better than the
//     WAL registry (the loader, whose authoritative position is PostgreSQL's)
//     passed in as StateSources.
//   - Offline, from a WAL directory (Offline), live or copied, read without
//     opening it for writing; the caller passes PostgreSQL's loader offset as
//     an override when it can read it.
//
// WriteTable renders the human table of `collector lag`, WriteJSON the
// machine form of `collector lag --json`. The package reads the WAL only; it
// knows nothing of PostgreSQL or S3.
package lag
