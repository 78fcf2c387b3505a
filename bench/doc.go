// Package bench load-tests a collector over its HTTP API, proves that what it
// acknowledged came out the other end, and turns the figures into reports.
//
// What it owns:
//
//   - The load generator (Run): realistic pixel traffic — JSON pageviews and
//     custom events, sendBeacon-style text/plain posts, GET pixel hits and
//     batch posts, many sites with Zipf popularity, visitors with several
//     sessions, real-looking URLs, referrers, UTM parameters and user agents,
//     X-Forwarded-For as a proxy sends it — in a closed loop (N connections as
//     fast as they go) or an open loop at a fixed rate. In the open loop every
//     latency is measured from the request's intended send time, so a stalled
//     server cannot hide its stall by slowing the generator down (coordinated
//     omission). Every run is bounded by a duration and/or a count.
//   - The record (Recorder, ReadRecord): every event the collector
//     acknowledged, by the event_id it answered and by a bench_id of our own
//     that travels inside the event (the collector keeps unknown fields in
//     raw_event_data), so a duplicate of one client send is visible even when
//     the collector gave the copy a new event_id.
//   - Verification (Verify): the record against PostgreSQL (table events) and
//     against exported objects (a local directory or an S3 prefix): missing,
//     duplicated and extra events, each counted and listed.
//   - The scenario suite (RunSuite) that starts the real binary and produces
//     a JSON result, an HTML report (go-echarts) and the generated section of
//     BENCHMARKS.md.
//
// What it promises: the generator sends only to loopback unless the caller
// allows otherwise (LoadOptions.AllowRemote); it stops by itself; its own
// cost per request is measured by its Go benchmarks so that figures can be
// read with it in mind. Verification reports a failure (VerifyReport.OK false)
// whenever an acknowledged event is missing or any event is stored twice.
package bench
