//! The stress tool: many thousands of virtual customers arriving in a spike,
//! queueing, waiting on SSE, carting and paying against a running server, with
//! latency percentiles per step and a final consistency check via the API.
//!
//! Built in issue 4 (the sale server), which it needs; empty until then.
