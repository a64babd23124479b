//! `DriverConfig::wheel_threads`: flowing audio keeps its pace while the
//! application blocks the runtime's only worker, and without the option it
//! stops for as long (the control that shows the test can fail).
//!
//! voice-mock in sink mode, on a runtime of its own, stamps every packet's
//! arrival; the client runs on a runtime with one worker, which a task
//! blocks for 300 ms while a call plays a looped frame. Loopback only.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use voice_tokio::{Bytes, ConnectionInfo, DriverConfig, Looped, Snowflake, Token};

const BLOCK: Duration = Duration::from_millis(300);

/// The longest gap between two packets of the call at the server while
/// the client's worker was blocked once.
fn longest_gap_across_a_block(wheel_threads: bool) -> Duration {
    let server_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut config = voice_mock::RunnerConfig::default();
    config.server.dave = voice_mock::DavePolicy::Off;
    config.sink = true;
    let server = server_rt.block_on(voice_mock::Server::start(config)).unwrap();

    let client_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut driver = DriverConfig::default();
    driver.trust_pem(server.cert_pem().as_bytes()).unwrap();
    driver.proto.max_dave_protocol_version = 0;
    driver.wheel_threads = wheel_threads;
    let info = ConnectionInfo {
        guild_id: Snowflake(1),
        channel_id: Snowflake(2),
        user_id: Snowflake(10),
        session_id: "wheel-threads".to_owned(),
        token: Token::new("2.wheel-threads"),
        endpoint: format!("127.0.0.1:{}", server.wss_port()),
    };
    client_rt.block_on(async {
        let call = tokio::time::timeout(Duration::from_secs(10), voice_tokio::connect(info, driver))
            .await
            .expect("connects in time")
            .expect("connects");
        let frame = Bytes::from(vec![0xFC; 160]);
        call.start_source(Looped::forever(vec![frame])).await.unwrap();
        // Flowing, in the wheel.
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.take_sink_stats();
        // The application blocks the only worker.
        tokio::spawn(async { std::thread::sleep(BLOCK) });
        tokio::time::sleep(BLOCK + Duration::from_millis(300)).await;
        let stats = server.take_sink_stats().expect("sink mode");
        assert!(stats.total.packets > 10, "audio flowed: {stats:?}");
        assert_eq!(stats.total.decrypt_failures, 0);
        call.close().await.expect("closes");
        let gap = stats.total.gaps.max().expect("gaps");
        eprintln!("wheel_threads {wheel_threads}: longest gap {gap:?} over {} packets", stats.total.packets);
        gap
    })
}

#[test]
fn the_wheel_on_its_own_thread_keeps_pace_while_the_runtime_is_blocked() {
    let gap = longest_gap_across_a_block(true);
    assert!(gap < Duration::from_millis(100), "longest gap {gap:?}");
}

#[test]
fn the_wheel_as_a_task_stops_with_a_blocked_runtime() {
    let gap = longest_gap_across_a_block(false);
    assert!(gap >= BLOCK - Duration::from_millis(50), "longest gap {gap:?}");
}
