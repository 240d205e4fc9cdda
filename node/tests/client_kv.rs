//! The leader-following client against in-process fake members: leader hints, rotation,
//! retries within the budget, exactly-once sequence numbers, and the error when nothing
//! answers.

mod client_support;

use std::time::Duration;

use client_support::{Fake, Script, WriteSeen, dead_addr};
use kuberaft_node::client::{Client, ClientOptions, Error, Expected, ReadConsistency};

/// Small pauses and budgets keep the failure tests quick; nothing asserts on time.
fn options() -> ClientOptions {
    ClientOptions {
        call_timeout: Duration::from_secs(2),
        retry_budget: Duration::from_secs(5),
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(20),
        max_sessions: 4,
        ..ClientOptions::default()
    }
}

fn client(endpoints: &[&str]) -> Client {
    let endpoints: Vec<String> = endpoints.iter().map(|e| e.to_string()).collect();
    Client::connect(&endpoints, options()).unwrap()
}

#[tokio::test]
async fn client_follows_not_leader_to_the_leader_and_remembers_it() {
    let leader = Fake::start(Script::default()).await;
    let follower = Fake::start(Script {
        not_leader: Some(leader.addr.clone()),
        ..Script::default()
    })
    .await;
    let client = client(&[&follower.addr]);

    client.put("k", "v1").await.unwrap();
    let follower_calls = follower.state().calls.len();
    client.put("k", "v2").await.unwrap();
    let got = client
        .get("k", ReadConsistency::Linearizable)
        .await
        .unwrap();

    assert_eq!(got.unwrap().value.as_ref(), b"v2");
    assert_eq!(
        follower_calls, 1,
        "only the first call went to the follower"
    );
    assert_eq!(
        follower.state().calls.len(),
        1,
        "later calls go straight to the leader"
    );
    assert_eq!(leader.count("put"), 2);
}

#[tokio::test]
async fn client_serves_stale_reads_from_any_member_without_redirect() {
    let leader = Fake::start(Script::default()).await;
    let follower = Fake::start(Script {
        not_leader: Some(leader.addr.clone()),
        ..Script::default()
    })
    .await;
    let client = client(&[&follower.addr]);
    assert_eq!(
        client.get("absent", ReadConsistency::Stale).await.unwrap(),
        None
    );
    assert_eq!(follower.count("get"), 1);
    assert_eq!(leader.state().calls.len(), 0);
}

#[tokio::test]
async fn client_rotates_past_a_dead_member() {
    let dead = dead_addr().await;
    let leader = Fake::start(Script::default()).await;
    let client = client(&[&dead, &leader.addr]);
    assert!(client.put("k", "v").await.unwrap() > 0);
    assert_eq!(leader.count("put"), 1);
}

#[tokio::test]
async fn client_retries_unavailable_within_the_budget() {
    let flaky = Fake::start(Script {
        unavailable: 3,
        ..Script::default()
    })
    .await;
    let client = client(&[&flaky.addr]);
    client.put("k", "v").await.unwrap();
    // Three refusals (whatever they hit first), then open_session and put succeed.
    assert_eq!(flaky.state().calls.len(), 5);
    assert_eq!(
        flaky.count("put"),
        1 + flaky.state().calls[..3]
            .iter()
            .filter(|c| **c == "put")
            .count()
    );
}

#[tokio::test]
async fn client_retry_of_a_lost_answer_reuses_the_sequence_number() {
    let fake = Fake::start(Script {
        lose_answers: 1,
        ..Script::default()
    })
    .await;
    let client = client(&[&fake.addr]);
    client.put("k", "v1").await.unwrap();
    client.put("k", "v2").await.unwrap();

    let state = fake.state();
    let seqs: Vec<u64> = state.writes.iter().map(|w| w.seq).collect();
    assert_eq!(
        seqs,
        [1, 1, 2],
        "the retry reused seq 1, the next write took 2"
    );
    let id = state.writes[0].client_id;
    assert!(state.writes.iter().all(|w| w.client_id == id));
    assert_eq!(state.sessions_opened, 1);
    // Applied once: the first put created the key, the second wrote it once more.
    assert_eq!(state.kvs[b"k".as_slice()].version, 2);
}

#[tokio::test]
async fn client_reopens_a_session_the_cluster_forgot() {
    let fake = Fake::start(Script {
        expire_sessions: 1,
        ..Script::default()
    })
    .await;
    let client = client(&[&fake.addr]);
    client.put("k", "v").await.unwrap();
    let state = fake.state();
    assert_eq!(state.sessions_opened, 2);
    assert_eq!(
        state.writes,
        [
            WriteSeen {
                op: "put",
                client_id: 101,
                seq: 1
            },
            WriteSeen {
                op: "put",
                client_id: 102,
                seq: 1
            },
        ]
    );
}

#[tokio::test]
async fn client_reports_a_write_in_doubt_when_its_session_expires_during_retries() {
    let fake = Fake::start(Script {
        lose_answers: 1,
        expire_when_answer_lost: true,
        ..Script::default()
    })
    .await;
    let client = client(&[&fake.addr]);
    // Applied, answer lost, and by the retry the session is gone: nobody can tell the
    // client whether its write happened.
    let err = client.put("k", "v").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::WriteInDoubt {
                op: "put",
                client_id: 101
            }
        ),
        "{err}"
    );
    assert_eq!(fake.state().writes.len(), 2);
}

#[tokio::test]
async fn client_gives_up_when_every_new_session_expires_at_once() {
    let fake = Fake::start(Script {
        expire_sessions: 2,
        ..Script::default()
    })
    .await;
    let client = client(&[&fake.addr]);
    let err = client.put("k", "v").await.unwrap_err();
    assert!(matches!(err, Error::SessionExpired { op: "put" }), "{err}");
    assert!(fake.state().kvs.is_empty(), "nothing was applied");
}

#[tokio::test]
async fn client_serializes_writes_per_session_under_concurrency() {
    let fake = Fake::start(Script::default()).await;
    let client = client(&[&fake.addr]);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                for j in 0..5 {
                    client.put(format!("k{i}-{j}"), "v").await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let state = fake.state();
    assert_eq!(state.overlapping_writes, 0);
    assert!(state.sessions_opened <= 4, "max_sessions bounds the pool");
    assert_eq!(state.kvs.len(), 80);
}

#[tokio::test]
async fn client_cas_delete_and_paged_range() {
    let fake = Fake::start(Script {
        page: 2,
        ..Script::default()
    })
    .await;
    let client = client(&[&fake.addr]);
    for k in ["a/1", "a/2", "a/3", "a/4", "a/5", "b/1"] {
        client.put(k, "x").await.unwrap();
    }
    let all = client.range("a/", 0).await.unwrap();
    let keys: Vec<&[u8]> = all.iter().map(|kv| kv.key.as_ref()).collect();
    assert_eq!(keys, [b"a/1", b"a/2", b"a/3", b"a/4", b"a/5"]);
    assert_eq!(client.range("a/", 3).await.unwrap().len(), 3);

    let cas = client
        .compare_and_swap("a/1", Expected::Value("nope".into()), Some("y".into()))
        .await
        .unwrap();
    assert!(!cas.succeeded);
    assert_eq!(cas.current.unwrap().value.as_ref(), b"x");
    let cas = client
        .compare_and_swap("new", Expected::Absent, Some("y".into()))
        .await
        .unwrap();
    assert!(cas.succeeded);
    assert!(client.delete("new").await.unwrap());
    assert!(!client.delete("new").await.unwrap());
}

/// A leader that holds calls without answering (paused, or cut off with its sockets
/// open), a follower that names the new leader, and the new leader.
async fn stalled_leader_and_successor() -> (Fake, Fake, Fake) {
    let successor = Fake::start(Script::default()).await;
    let follower = Fake::start(Script {
        not_leader: Some(successor.addr.clone()),
        ..Script::default()
    })
    .await;
    let stalled = Fake::start(Script {
        stall: Some(Duration::from_secs(3600)),
        ..Script::default()
    })
    .await;
    (stalled, follower, successor)
}

/// A client of `fakes`, in that order, whose calls have a minute each: only the
/// budget and the leader probes bound how long a call waits on one member.
fn patient_client(
    fakes: [&Fake; 3],
    retry_budget: Duration,
    leader_probe: Option<Duration>,
) -> Client {
    let options = ClientOptions {
        call_timeout: Duration::from_secs(60),
        retry_budget,
        leader_probe,
        ..options()
    };
    Client::connect(&fakes.map(|f| f.addr.clone()), options).unwrap()
}

#[tokio::test]
async fn client_moves_a_call_off_a_leader_that_stopped_answering() {
    let (stalled, follower, successor) = stalled_leader_and_successor().await;
    // The budget is far shorter than one call's deadline: waiting on the stalled member
    // would spend all of it, so only the probes can get the write through.
    let client = patient_client(
        [&stalled, &follower, &successor],
        Duration::from_secs(10),
        Some(Duration::from_millis(50)),
    );

    client.put("k", "v").await.unwrap();

    assert_eq!(
        stalled.count("open_session"),
        1,
        "the call went there first"
    );
    assert_eq!(successor.count("put"), 1);
    assert_eq!(follower.count("put") + stalled.count("put"), 0);
    assert!(
        follower.count("get") >= 1,
        "the follower was asked who leads"
    );
    let got = client
        .get("k", ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(got.unwrap().value.as_ref(), b"v");
}

#[tokio::test]
async fn client_without_leader_probes_waits_on_a_stalled_leader() {
    let (stalled, follower, successor) = stalled_leader_and_successor().await;
    let client = patient_client(
        [&stalled, &follower, &successor],
        Duration::from_millis(300),
        None,
    );

    let err = client.put("k", "v").await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert_eq!(
        successor.state().calls.len(),
        0,
        "nothing reached the new leader"
    );
    assert_eq!(follower.state().calls.len(), 0, "and nobody was asked");
}

/// A leader that holds the calls named in `stall_only` (none: every leader-only call)
/// for 400 ms, two followers that name it as `hint(its address)`, and one write through
/// a client probing every 50 ms. The write must stay on the slow leader.
async fn write_through_a_slow_leader(
    stall_only: Vec<&'static str>,
    hint: fn(&str) -> String,
) -> (Fake, Vec<Fake>) {
    let slow = Fake::start(Script {
        stall: Some(Duration::from_millis(400)),
        stall_only,
        ..Script::default()
    })
    .await;
    let mut followers = Vec::new();
    for _ in 0..2 {
        followers.push(
            Fake::start(Script {
                not_leader: Some(hint(&slow.addr)),
                ..Script::default()
            })
            .await,
        );
    }
    let client = patient_client(
        [&slow, &followers[0], &followers[1]],
        Duration::from_secs(10),
        Some(Duration::from_millis(50)),
    );

    client.put("k", "v").await.unwrap();

    assert_eq!(slow.count("open_session"), 1, "the call was not restarted");
    assert_eq!(slow.count("put"), 1);
    for f in &followers {
        assert_eq!(f.count("open_session") + f.count("put"), 0, "no call moved");
    }
    (slow, followers)
}

#[tokio::test]
async fn client_keeps_waiting_on_a_slow_leader_the_others_still_name() {
    // The leader holds the probes too, so the followers are asked: they name it.
    let (_, followers) = write_through_a_slow_leader(Vec::new(), str::to_owned).await;
    for f in &followers {
        assert!(f.count("get") >= 1, "each follower was asked who leads");
    }
}

#[tokio::test]
async fn client_keeps_a_slow_call_on_a_leader_that_still_answers_probes() {
    // The followers spell the leader's address differently from the client's endpoint
    // list, as a member's advertised address often is; the leader answers its probes.
    let (slow, _) =
        write_through_a_slow_leader(vec!["open_session", "put"], |a| format!("http://{a}")).await;
    assert!(slow.count("get") >= 1, "the leader itself was probed");
}

#[tokio::test]
async fn client_names_every_endpoint_when_no_member_answers() {
    let (a, b) = (dead_addr().await, dead_addr().await);
    let options = ClientOptions {
        retry_budget: Duration::from_millis(300),
        ..options()
    };
    let client = Client::connect(&[a.clone(), b.clone()], options).unwrap();
    let err = client.put("k", "v").await.unwrap_err();
    let Error::Unavailable { ref tried, .. } = err else {
        panic!("expected Unavailable, got {err}");
    };
    assert_eq!(tried, &[a.clone(), b.clone()]);
    let line = err.to_string();
    assert!(line.contains(&a) && line.contains(&b), "{line}");
    assert!(!line.contains('\n'));
}

#[tokio::test]
async fn client_gives_up_on_a_member_that_never_recovers() {
    let down = Fake::start(Script {
        unavailable: u32::MAX,
        ..Script::default()
    })
    .await;
    let options = ClientOptions {
        retry_budget: Duration::from_millis(200),
        ..options()
    };
    let client = Client::connect(std::slice::from_ref(&down.addr), options).unwrap();
    let err = client
        .get("k", ReadConsistency::Linearizable)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { op: "get", .. }), "{err}");
    assert!(down.state().calls.len() > 1, "it retried before giving up");
}

#[tokio::test]
async fn client_does_not_retry_a_refusal() {
    let fake = Fake::start(Script::default()).await;
    let client = client(&[&fake.addr]);
    // The fake refuses stale sequence numbers and missing sessions with codes the
    // client must not retry; an invalid argument is the simplest to provoke: none here,
    // so use an admin call that needs a token the client does not send.
    fake.state().admin.token = Some("secret".into());
    let admin = kuberaft_node::client::AdminClient::connect(client.endpoints(), options()).unwrap();
    let err = admin.status(&fake.addr).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Rpc {
                code: tonic::Code::Unauthenticated,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fake.count("status"), 1);
    let admin = admin.with_token("secret").unwrap();
    admin.status(&fake.addr).await.unwrap();
}
