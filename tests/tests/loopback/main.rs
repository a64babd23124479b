//! The loopback suite: the driver layer against a voice-mock server over
//! 127.0.0.1, each scenario written once over the runtime seam
//! ([`harness::Rt`]) and run under tokio, async-std and smol. Test names
//! are `<runtime>::<scenario>`: `cargo test -p voice-tests --test loopback
//! smol::` runs one runtime's.
//!
//! The server runs on a thread of its own with its own tokio runtime in
//! every variant; scenarios sleep, time out and spawn through the runtime
//! under test only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_matrix;
mod harness;
mod nat;
mod scenarios;

/// One `#[test]` per scenario per runtime. Scenarios listed `alone` run
/// with no other scenario of this suite at the same time (the load test:
/// fifty calls, every packet counted).
macro_rules! suite {
    (together: [$($together:ident),* $(,)?], alone: [$($alone:ident),* $(,)?] $(,)?) => {
        suite!(@runtime
            /// Calls on `TokioRuntime` (`tokio::spawn`), the scenario in a
            /// multi-thread tokio runtime.
            tokio, on_tokio, [$($together),*], [$($alone),*]);
        suite!(@runtime
            /// Calls on `AsyncIoRuntime`, spawned with
            /// `async_std::task::spawn`, the scenario in
            /// `async_std::task::block_on`.
            async_std, on_async_std, [$($together),*], [$($alone),*]);
        suite!(@runtime
            /// Calls on `AsyncIoRuntime`, spawned with `smol::spawn`, the
            /// scenario in `smol::block_on`.
            smol, on_smol, [$($together),*], [$($alone),*]);
    };
    (@runtime $(#[$doc:meta])* $runtime:ident, $on:ident, [$($together:ident),*], [$($alone:ident),*]) => {
        $(#[$doc])*
        mod $runtime {
            $(#[test]
            fn $together() {
                crate::harness::together(|| crate::harness::$on(crate::scenarios::$together));
            })*
            $(#[test]
            fn $alone() {
                crate::harness::alone(|| crate::harness::$on(crate::scenarios::$alone));
            })*
        }
    };
}

suite! {
    together: [
        join_play_record_round_trip,
        a_4015_close_mid_stream_resumes_without_loss_beyond_the_outage,
        an_endpoint_move_mid_stream_reconnects_fresh,
        leave_sends_five_silence_frames_then_op4_null,
        join_fails_with_a_typed_error_instead_of_hanging,
        an_unreachable_voice_server_is_reported_with_its_reason,
        play_resolves_once_the_last_frame_went_out_at_the_paced_rate,
        manager_join_waits_for_a_move_and_replaces_a_closed_call,
        a_ghost_voice_state_reaches_the_application_through_the_manager,
    ],
    alone: [
        fifty_simultaneous_calls_account_for_every_packet,
        // It counts frames lost to each fault: run beside nothing else, so
        // that the counts are the fault's, and so that its six servers do
        // not starve the scenarios that expect no loss at all.
        the_fault_matrix_holds_over_real_sockets,
    ],
}

/// Tokio only: a task that panics is contained by tokio; other executors
/// may let the panic take their thread down, which is theirs to decide.
mod tokio_only {
    #[test]
    fn a_panicking_source_stops_only_its_own_call() {
        crate::harness::together(|| {
            crate::harness::on_tokio(crate::scenarios::a_panicking_source_stops_only_its_own_call)
        });
    }
}
