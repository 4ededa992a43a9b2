//! The dealer: registrations, calls, invocations, results, cancel and timeouts, without I/O.
