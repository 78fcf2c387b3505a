// Package elastic lets background work (the shipper's exports) use the CPU
// only while the foreground (ingest) does not need it: "elastic work" in
// CockroachDB's admission control, RocksDB's background rate limiter.
//
// # What it owns
//
// A Limiter: a token bucket (golang.org/x/time/rate) that background work
// calls between chunks, Wait(ctx, n) before n units (the shipper: n WAL
// records an export pass is about to read), and the controller (Run) that
// sets the bucket's rate from the Go scheduler's latency every Interval.
// It knows nothing of ingest or exports: the foreground signal, the
// latency source, the urgency test and the clock are injected (Options),
// and cmd/collector wires them.
//
// # Promises
//
//   - Unlimited, Wait returns at once (a few short mutex holds per call). A
//     nil *Limiter never waits; ELASTIC_LATENCY_TARGET=off builds none.
//   - Background work alone is never slowed: a window in which no
//     foreground work began (Options.Foreground did not move) is never
//     congested, whatever the latency.
//   - The rate is never below Options.Floor, so background work never
//     stalls for good, however saturated the foreground.
//   - While Options.Urgent says so (cmd: the exports' backlog fills half of
//     WAL_MAX_BYTES, whose high-water would refuse ingest), nothing waits.
//   - Wait returns ctx's error as soon as ctx ends; a waiter never sleeps
//     much longer than one window per reservation (the burst is one
//     window's worth of the rate), so a raise takes effect within a window
//     or two.
//   - Metrics: collector_elastic_allowed_rate (+Inf when unlimited),
//     collector_elastic_sched_latency_p99_seconds (last window),
//     collector_elastic_wait_seconds_total, collector_elastic_admitted_total,
//     collector_elastic_congested_windows_total. Logs (log/slog) only when
//     the limiter leaves or regains unlimited, at most once per 10 s (the
//     line counts the changes it did not log).
//
// # The signal
//
// runtime/metrics "/sched/latencies:seconds" is the time goroutines spent
// runnable before they ran, a cumulative histogram; the controller takes
// the delta of each window (SchedLatency) and its p99. When ingest and
// exports compete for the cores, every goroutine, ingest's included, waits
// in the run queue: the p99 rises before throughput drops.
//
// Measured before building on it (bench scenario 5 quick and a serve with
// `collector bench` against it, 100 ms windows, this 2-core machine at load
// average 4.5–10 from other work):
//
//	(a) idle                              p99 0–30 µs, 0–20 samples per window
//	(b) ingest at half its ceiling        p99 0.1–1.05 ms (2 of 30 windows over 1 ms)
//	(c) ingest at its ceiling             p99 median 3.7 ms, 10%–90% 1.6–17 ms, 98% of
//	                                      208 windows over 1 ms, ~190 samples per window
//	    (one earlier run at 7.5k req/s, load generator starved: 0.4–0.8 ms)
//	(d) shipper alone, flat out           p99 median 0.16 ms, but 33% of 173 busy
//	                                      windows over 1 ms (up to 14 ms), 10–50 samples
//	(e) ingest ceiling + shipper flat out p99 2–34 ms
//
// (d) is why the foreground gate exists: on its own the shipper, and the
// S3 server it feeds on the same cores, would push p99 over the target a
// third of the time and throttle itself. ingest.Handler.Requests is the
// gate: one atomic add per request, read once per window.
//
// The default target, 1 ms, sits above (a) and almost all of (b) and below
// (c) and (e): exports run free while ingest leaves CPU spare, and are held
// near the floor while ingest is at its ceiling. The signal is the whole
// process's, and other processes on the machine congest it too: with a
// noisy neighbour exports run at the floor while any ingest runs (the
// urgency valve keeps that from filling the WAL).
//
// # The controller
//
// Each window: congested = foreground work began && p99 > Target. Congested,
// the rate becomes max(Floor, min(limit, achieved) × clamp((Target/p99)²,
// 1/20, 1/2)), where achieved is what Wait let through in the window: a cut
// relative to what background work really did, by half near the target
// and harder the further over it is, so that from flat out it is near the
// floor within two or three windows (≈ 0.3 s) of ingest becoming busy.
// Calm, an unlimited rate stays unlimited and a limited one rises to
// max(limit × 1.5, limit + Floor); past 1024 × Floor it is unlimited
// (about 1.7 s of calm windows from the floor). Urgent, it is unlimited at
// once.
//
// # What the floor costs
//
// The shipper counts one unit per WAL record per export pass, and a record
// is read at least twice (pass 1, pass 2), so the default floor of 1000
// records/s exports about 500 events/s to every destination (they share
// the passes and the encoded objects). At 40–80 µs of CPU per event for
// client + backup (BENCHMARKS.md) that is 20–40 ms of CPU per second, 2–4%
// of one core, plus what the S3 server spends when it runs on the same
// machine: at worst a few percent of the ingest ceiling. Pass 1 records
// are cheaper than pass 2 ones; the controller corrects for the mix, since
// it reacts to latency, not to units.
package elastic
