//! What the framework tests share: audio a joined call plays reaches
//! another member of the channel.

use std::time::Duration;

use voice_tokio::{Call, DriverConfig, Snowflake};

/// Connects a listener to `guild`/`channel` on `server`, plays ten tagged
/// frames from `call` and checks the listener hears exactly them; returns
/// the listener.
pub async fn audio_reaches_another_member(
    call: &Call,
    server: &voice_mock::Server,
    (guild, channel): (Snowflake, Snowflake),
    config: DriverConfig,
    tag: u8,
) -> Call {
    let info = server.join_wss(guild, channel, Snowflake(7));
    let listener = voice_tokio::connect(info, config).await.unwrap();
    let mut heard = listener.take_audio().unwrap();
    call.wait_can_send(Duration::from_secs(10)).await.unwrap();
    let frames: Vec<Vec<u8>> = (0..10u8).map(|i| vec![0xFC, tag, i]).collect();
    call.play(frames.clone()).await.unwrap();
    let mut got = Vec::new();
    while got.len() < frames.len() {
        let p = tokio::time::timeout(Duration::from_secs(5), heard.recv()).await.expect("audio in time").unwrap();
        if p.opus.len() == 3 && p.opus[0] == 0xFC {
            got.push(p.opus.to_vec());
        }
    }
    assert_eq!(got, frames);
    listener
}
