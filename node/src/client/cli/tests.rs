use super::*;
use crate::client::admin_pb::Member;

#[test]
fn client_cli_parses_durations() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
    assert!(parse_duration("10h").is_err());
    assert!(parse_duration("fast").is_err());
    assert!(parse_duration("").is_err());
}

#[test]
fn client_cli_table_aligns_columns_without_trailing_spaces() {
    let mut table = Table::new(&["name", "lag"]);
    table.row(vec!["n1".into(), "0".into()]);
    table.row(vec!["node-two".into(), "12".into()]);
    table.row(vec!["short".into()]);
    assert_eq!(
        table.to_string(),
        "NAME      LAG\nn1        0\nnode-two  12\nshort\n"
    );
}

#[test]
fn client_cli_shows_bytes_on_one_line() {
    assert_eq!(show_bytes(b"hello"), "hello");
    assert_eq!(show_bytes(b"a\nb"), "a\\nb");
    assert_eq!(show_bytes(&[0xff, b'x']), "\\xffx");
}

fn status() -> StatusResponse {
    let member = |id: u64, name: &str, kind: MemberKind, lag| Member {
        node_id: id,
        name: name.into(),
        client_addr: format!("{name}:2379"),
        kind: kind as i32,
        lag,
        ..Member::default()
    };
    StatusResponse {
        node_id: 0xa1,
        role: Role::Leader as i32,
        term: 3,
        commit_index: 42,
        members: vec![
            member(0xa1, "n1", MemberKind::Voter, 0),
            member(0xb2, "n2", MemberKind::Voter, 1),
            member(0xc3, "n3", MemberKind::Learner, 40),
        ],
        ..StatusResponse::default()
    }
}

fn own(role: Role, commit: u64) -> Result<StatusResponse, String> {
    Ok(StatusResponse {
        role: role as i32,
        term: 3,
        commit_index: commit,
        applied_index: commit,
        ..StatusResponse::default()
    })
}

#[test]
fn client_cli_status_table_and_json() {
    let rows = member_rows(
        &status(),
        &[
            own(Role::Leader, 42),
            own(Role::Follower, 41),
            Err("connection refused".into()),
        ],
    );
    assert_eq!(
        members_table(&rows).to_string(),
        "\
NAME  ID                ROLE         KIND     TERM  COMMIT  APPLIED  LAG  ADDRESS
n1    00000000000000a1  leader       voter    3     42      42       0    n1:2379
n2    00000000000000b2  follower     voter    3     41      41       1    n2:2379
n3    00000000000000c3  unreachable  learner  -     -       -        40   n3:2379
"
    );
    let json = serde_json::to_value(&rows[2]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "name": "n3", "id": "00000000000000c3", "role": "unreachable", "kind": "learner",
            "term": null, "commit_index": null, "applied_index": null, "lag": 40,
            "client_addr": "n3:2379", "error": "connection refused"
        })
    );
}

#[test]
fn client_cli_status_without_a_leader_shows_no_lag() {
    let mut config = status();
    config.role = Role::Follower as i32;
    let rows = member_rows(
        &config,
        &[
            own(Role::Follower, 1),
            own(Role::Candidate, 1),
            own(Role::Follower, 1),
        ],
    );
    assert!(rows.iter().all(|r| r.lag.is_none()));
    assert_eq!(rows[1].role, "candidate");
}

#[test]
fn client_cli_finds_members_by_name_or_id() {
    let config = status();
    assert_eq!(find_member(&config, "n2"), Ok(0xb2));
    assert_eq!(find_member(&config, "00000000000000c3"), Ok(0xc3));
    assert_eq!(find_member(&config, "0xa1"), Ok(0xa1));
    assert_eq!(find_member(&config, "178"), Ok(0xb2)); // decimal
    assert!(
        find_member(&config, "n9")
            .unwrap_err()
            .contains("no member")
    );
}
