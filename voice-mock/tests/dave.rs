//! The server as DAVE external sender and delivery service, against real
//! davey clients (DAVE.md §5, §6): group creation, joins, leaves, resets,
//! recoveries, replacements and timeouts. After every op 22 the harness
//! checks that every pair of members decrypts the other's Opus, and that
//! rosters and epoch authenticators agree.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dave_util;

use std::time::Duration;

use dave_util::{Net, users};
use voice_mock::{Fault, ServerConfig, ServerEvent};
use voice_proto::wire::Snowflake;

fn net() -> Net {
    Net::new(ServerConfig::default())
}

/// A and B in a group at epoch 1.
fn pair() -> Net {
    let mut n = net();
    n.join(1);
    n.join(2);
    n
}

/// A, B and C in a group at epoch 2.
fn trio() -> Net {
    let mut n = pair();
    n.join(3);
    n
}

#[test]
fn two_members_create_the_group() {
    let mut n = net();
    n.join(1);
    let info = n.info();
    assert_eq!((info.protocol_version, info.epoch), (1, 0));
    assert_eq!(info.pending, users(&[1]), "alone: pending, no group");
    assert!(info.roster.is_empty());
    n.join(2);
    let info = n.info();
    assert_eq!((info.epoch, info.roster.clone()), (1, users(&[1, 2])));
    assert!(info.pending.is_empty() && !info.busy);
    assert_eq!((info.commits_accepted, info.commits_rejected), (1, 0));
    // B's own commit came after A's had won the epoch.
    assert_eq!(info.commits_superseded, 1);
    assert_eq!((info.transitions_executed, info.transitions_timed_out, info.last_transition_id), (1, 0, Some(1)));
    assert_eq!(info.key_packages_accepted, 2);
    assert_eq!(n.checks, 1, "checked after the op 22");
    assert_eq!(n.executed(), vec![(1, 1, 1, false)]);
    assert!(n.errors().is_empty(), "{:?}", n.errors());
    // Per connection: op 4, then op 25, then op 11, then the rest.
    let b = &n.clients[1];
    let ops: Vec<u8> = b.seen.iter().map(|s| s.op).collect();
    let at = |op| ops.iter().position(|&o| o == op).unwrap();
    assert!(at(4) < at(25) && at(25) < at(11) && at(11) < at(27), "{ops:?}");
    assert!(b.seen.iter().any(|s| s.op == 30) && !b.seen.iter().any(|s| s.op == 29), "B joins by Welcome only");
    let a = &n.clients[0];
    assert!(a.seen.iter().any(|s| s.op == 29) && !a.seen.iter().any(|s| s.op == 30), "A gets its own commit");
    let accepted: Vec<&ServerEvent> =
        n.events.iter().filter(|e| matches!(e, ServerEvent::DaveCommitAccepted { .. })).collect();
    assert_eq!(accepted.len(), 1);
    assert!(matches!(
        accepted[0],
        ServerEvent::DaveCommitAccepted { user: Snowflake(1), epoch: 1, transition_id: 1, .. }
    ));
}

#[test]
fn a_third_member_joins_by_welcome() {
    let n = trio();
    let info = n.info();
    assert_eq!((info.epoch, info.roster.clone()), (2, users(&[1, 2, 3])));
    assert_eq!(info.transitions_executed, 2);
    assert_eq!(n.checks, 2);
    assert!(n.errors().is_empty(), "{:?}", n.errors());
    // The proposals went to the two members, not to the joiner.
    assert!(!n.clients[2].seen.iter().any(|s| s.op == 27));
}

#[test]
fn a_member_leaves_and_is_removed() {
    let mut n = trio();
    n.leave(2);
    let info = n.info();
    assert_eq!((info.epoch, info.roster.clone()), (3, users(&[1, 3])));
    assert_eq!(n.checks, 3);
    // op 13 before the proposals that remove B.
    let a = &n.clients[0];
    let bye = a.seen.iter().position(|s| s.op == 13).unwrap();
    assert!(a.seen[bye..].iter().any(|s| s.op == 27));
    // A fourth joins into the blank leaf.
    n.join(4);
    assert_eq!(n.info().roster, users(&[1, 4, 3]));
    assert!(n.errors().is_empty(), "{:?}", n.errors());
}

#[test]
fn the_sole_member_resets_and_a_later_join_creates_the_group_again() {
    let mut n = pair();
    n.leave(2);
    let info = n.info();
    assert_eq!((info.epoch, info.group_resets), (0, 1));
    assert!(info.roster.is_empty());
    assert_eq!(info.pending, users(&[1]));
    let a = &n.clients[0];
    let tail: Vec<(u8, String)> = a.seen.iter().rev().take(2).rev().map(|s| (s.op, s.d.to_string())).collect();
    assert_eq!(
        tail,
        vec![
            (24, r#"{"epoch":1,"protocol_version":1}"#.to_owned()),
            (21, r#"{"protocol_version":1,"transition_id":0}"#.to_owned())
        ]
    );
    assert!(!a.session.as_ref().unwrap().can_encrypt(), "no group, no key");
    // A sent a new key package after op 24.
    assert_eq!(info.key_packages_accepted, 3);
    n.join(3);
    let info = n.info();
    assert_eq!((info.epoch, info.roster.clone()), (1, users(&[1, 3])));
    assert!(n.errors().is_empty(), "{:?}", n.errors());
    assert_eq!(n.checks, 2);
}

#[test]
fn a_corrupt_welcome_is_recovered_by_remove_and_add() {
    let mut n = pair();
    n.s.inject(Fault::DaveCorruptWelcome { user: Some(Snowflake(3)) }, n.now);
    n.join(3);
    let info = n.info();
    assert_eq!(info.invalid_commit_welcomes, 1);
    // Epoch 2 added C, who could not join. C's op 31 was the last readiness
    // owed, so op 22 went out before its new key package came: epoch 3
    // removed C's leaf, epoch 4 added C again.
    assert_eq!((info.epoch, info.roster.clone()), (4, users(&[1, 2, 3])));
    assert!(info.pending.is_empty());
    assert_eq!(n.checks, 4);
    let errors = n.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, 3);
    assert!(errors[0].1.starts_with("op 30"), "{errors:?}");
    let c = &n.clients[2];
    assert_eq!(c.seen.iter().filter(|s| s.op == 30).count(), 2);
}

#[test]
fn a_corrupt_commit_is_recovered_by_remove_and_add() {
    let mut n = pair();
    n.s.inject(Fault::DaveCorruptCommit { user: Some(Snowflake(2)) }, n.now);
    n.join(3);
    let info = n.info();
    assert_eq!(info.invalid_commit_welcomes, 1);
    assert_eq!((info.epoch, info.roster.clone()), (3, users(&[1, 2, 3])));
    assert!(info.pending.is_empty());
    let errors = n.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, 2);
    assert!(errors[0].1.starts_with("op 29"), "{errors:?}");
    // B rejoined by Welcome.
    assert!(n.clients[1].seen.iter().any(|s| s.op == 30));
    assert_eq!(n.checks, 3);
}

#[test]
fn a_corrupt_commit_at_creation_leaves_the_joiner_to_re_add_the_committer() {
    let mut n = net();
    n.s.inject(Fault::DaveCorruptCommit { user: None }, n.now);
    n.join(1);
    n.join(2);
    let info = n.info();
    // A's own commit came back corrupt: B (welcomed) re-adds A.
    assert_eq!(info.invalid_commit_welcomes, 1);
    assert_eq!((info.epoch, info.roster.clone()), (2, users(&[1, 2])));
    assert!(info.pending.is_empty());
    assert_eq!(n.errors().len(), 1);
}

#[test]
fn a_newer_key_package_replaces_the_one_proposed() {
    let mut n = pair();
    // C sends two key packages in a row: the Add of the first, already
    // out, is revoked, and the second is proposed.
    let c = n.connect(3, true, voice_proto::wire::GatewayVersion::V8);
    n.clients[c].double_key_package = true;
    n.select(3);
    let info = n.info();
    assert_eq!((info.epoch, info.roster.clone()), (2, users(&[1, 2, 3])));
    assert_eq!(info.key_packages_accepted, 4);
    // Commits to the revoked proposal are refused.
    assert!(info.commits_rejected >= 1, "{info:?}");
    let revokes = n.clients[0].seen.iter().filter(|s| s.binary && s.op == 27 && s.bytes[3] == 1).count();
    assert_eq!(revokes, 1);
    assert!(n.errors().is_empty(), "{:?}", n.errors());

    // A member that lost its state sends a new key package: its leaf is
    // removed and it is added again.
    let frames = n.client(1).reset();
    n.send(1, frames);
    let info = n.info();
    assert_eq!((info.epoch, info.roster.clone()), (3, users(&[1, 2, 3])));
    assert!(info.pending.is_empty());
    assert!(n.clients[0].seen.iter().filter(|s| s.op == 30).count() == 1, "A rejoined by Welcome");
    assert!(n.errors().is_empty(), "{:?}", n.errors());
}

#[test]
fn a_dropped_transition_ready_runs_into_the_execute_timeout() {
    let mut n = pair();
    n.s.inject(Fault::DaveDropTransitionReady { user: Snowflake(2) }, n.now);
    n.join(3);
    let info = n.info();
    assert!(info.busy, "waiting for B's op 23");
    assert_eq!((info.epoch, info.transitions_executed), (2, 1));
    let checks = n.checks;
    n.advance(Duration::from_millis(1999));
    assert_eq!(n.info().transitions_executed, 1);
    n.advance(Duration::from_millis(1));
    let info = n.info();
    assert_eq!((info.transitions_executed, info.transitions_timed_out), (2, 1));
    assert!(!info.busy);
    assert_eq!(n.checks, checks + 1);
    assert_eq!(n.executed().last(), Some(&(2, 2, 1, true)));
    assert!(n.s.stats().dave_ready_dropped >= 1);
    assert!(n.errors().is_empty(), "{:?}", n.errors());
}

#[test]
fn a_delayed_execute_goes_out_late() {
    let mut n = pair();
    n.s.inject(Fault::DaveDelayExecute(Duration::from_millis(300)), n.now);
    n.join(3);
    assert!(n.info().busy);
    n.advance(Duration::from_millis(299));
    assert_eq!(n.info().transitions_executed, 1);
    n.advance(Duration::from_millis(1));
    let info = n.info();
    assert_eq!((info.transitions_executed, info.transitions_timed_out, info.epoch), (2, 0, 2));
    n.s.inject(Fault::DaveDelayExecute(Duration::ZERO), n.now);
    n.join(4);
    assert_eq!(n.info().roster, users(&[1, 2, 3, 4]));
}

#[test]
fn proposals_without_a_commit_are_revoked_and_proposed_again() {
    let mut n = pair();
    n.client(1).ignore_proposals = 1;
    n.client(2).ignore_proposals = 1;
    n.join(3);
    let info = n.info();
    assert!(info.busy && info.epoch == 1, "{info:?}");
    n.advance(Duration::from_millis(4999));
    assert_eq!(n.info().commit_timeouts, 0);
    n.advance(Duration::from_millis(1));
    let info = n.info();
    assert_eq!(info.commit_timeouts, 1);
    assert_eq!((info.epoch, info.roster.clone()), (2, users(&[1, 2, 3])));
    // The second batch has new references (hedged signatures): the first
    // batch's messages and the second's differ.
    let a = &n.clients[0];
    let appends: Vec<&Vec<u8>> = a.seen.iter().filter(|s| s.op == 27 && s.bytes[3] == 0).map(|s| &s.bytes).collect();
    assert_eq!(appends.len(), 3, "creation, then C's Add twice");
    assert_ne!(appends[1][2..], appends[2][2..]);
    let revokes = a.seen.iter().filter(|s| s.op == 27 && s.bytes[3] == 1).count();
    assert_eq!(revokes, 1);
    // The revoke named proposals A never stored: davey refuses it, harmlessly.
    assert!(n.errors().iter().all(|(_, e)| e.starts_with("op 27")), "{:?}", n.errors());
}

#[test]
fn junk_key_packages_and_commits_are_counted_and_the_room_goes_on() {
    use voice_proto::wire::WsFrame;
    let mut n = pair();
    let before = n.info();
    let junk = vec![
        WsFrame::Binary(vec![26]),
        WsFrame::Binary(vec![26, 0, 1, 0, 2, 0xFF, 0xFF]),
        WsFrame::Binary(vec![28]),
        WsFrame::Binary(vec![28, 0, 1, 0, 1, 8, 1, 2, 3]),
    ];
    n.send(1, junk);
    // A key package of another user.
    let mut other = davey::DaveSession::new(std::num::NonZeroU16::new(1).unwrap(), 9, 200, None).unwrap();
    let mut kp = vec![26];
    kp.extend(other.create_key_package().unwrap());
    n.send(1, vec![WsFrame::Binary(kp)]);
    let info = n.info();
    assert_eq!(info.key_packages_rejected, 3);
    let commits = |i: &voice_mock::DaveRoomInfo| i.commits_superseded + i.commits_rejected;
    assert_eq!(commits(&info) - commits(&before), 2, "two junk commits dropped");
    assert_eq!((info.epoch, info.roster.clone()), (1, users(&[1, 2])));
    assert_eq!(n.s.stats().closes_sent.values().sum::<u64>(), 0, "no close for DAVE junk");
    let rejected = n.events.iter().filter(|e| matches!(e, ServerEvent::DaveKeyPackageRejected { .. })).count();
    assert_eq!(rejected, 3);
    n.join(3);
    assert_eq!(n.info().roster, users(&[1, 2, 3]));
}

#[test]
fn when_every_member_fails_the_group_is_created_again() {
    let mut n = net();
    n.s.inject(Fault::DaveCorruptCommit { user: None }, n.now);
    n.s.inject(Fault::DaveCorruptWelcome { user: None }, n.now);
    n.join(1);
    n.join(2);
    let info = n.info();
    // Epoch 1 held no one who could use it: the room started again from
    // the members' new key packages.
    assert_eq!(info.invalid_commit_welcomes, 2);
    assert_eq!((info.epoch, info.roster.clone()), (1, users(&[1, 2])));
    assert!(info.pending.is_empty() && !info.busy);
    assert_eq!(info.commits_accepted, 2);
    assert_eq!(n.errors().len(), 2);
    assert!(n.checks >= 2);
}

#[test]
fn a_pending_member_leaving_during_creation_is_revoked() {
    let mut n = net();
    n.join(1);
    n.client(1).ignore_proposals = 1;
    let b = n.connect(2, true, voice_proto::wire::GatewayVersion::V8);
    n.clients[b].ignore_proposals = 1;
    n.select(2);
    assert!(n.info().busy, "nobody commits the first batch");
    // C comes while the batch is out: it waits for the next one.
    n.join(3);
    assert_eq!(n.info().epoch, 0);
    n.leave(2);
    // B's Add was revoked from A and C never got one: the next batch makes
    // the group of A and C.
    let info = n.info();
    assert_eq!((info.epoch, info.roster.clone()), (1, users(&[1, 3])));
    let revokes = n.client(1).seen.iter().filter(|s| s.op == 27 && s.bytes[3] == 1).count();
    assert_eq!(revokes, 1);
    assert!(!n.client(3).seen.iter().any(|s| s.op == 27 && s.bytes[3] == 1));
}

#[test]
fn the_group_size_cap_keeps_extra_members_pending() {
    let mut config = ServerConfig::default();
    config.limits.dave_group_members = 2;
    let mut n = Net::new(config);
    n.join(1);
    n.join(2);
    n.join(3);
    let info = n.info();
    assert_eq!((info.epoch, info.roster.clone(), info.pending.clone()), (1, users(&[1, 2]), users(&[3])));
    // A seat frees up: the waiting member takes it.
    n.leave(1);
    let info = n.info();
    assert_eq!(info.roster, users(&[3, 2]));
    assert!(info.pending.is_empty());
}
