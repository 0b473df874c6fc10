//! The log buffer's own guarantees: a stalled writer never blocks `append` nor lets the queue
//! grow, and the drop count reaches the buffer once the writer runs (S4, S6); lines are cut.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly.

use auth::{ManageServers, Role, authorize};
use store::{DatabaseLocation, LogQuery, NewServer, ServerTransport};

use super::*;

const ROOT_SECRET: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";

async fn store_with_server(dir: &tempfile::TempDir) -> (Store, store::OrgScope, ServerId) {
    let root = vault::RootSecret::from_base64(ROOT_SECRET).unwrap();
    let location = DatabaseLocation::Sqlite {
        path: dir.path().join("logs.db"),
    };
    let store = Store::open(&location, vault::Vault::new(&root, None))
        .await
        .unwrap();
    let (scope, _, _) = store
        .create_organization("acme", "Acme", "alice@acme.example")
        .await
        .unwrap();
    let server = store
        .create_server(
            &scope,
            &authorize::<ManageServers>(Role::Owner).unwrap(),
            NewServer {
                name: "files".to_owned(),
                transport: ServerTransport::Stdio {
                    command: "files".to_owned(),
                    args: Vec::new(),
                    working_dir: None,
                    env: Default::default(),
                },
                exposure: store::Exposure::Prefixed,
                enabled: true,
                internal: false,
                package: None,
            },
        )
        .await
        .unwrap();
    (store, scope, server.id)
}

/// A flood of `append` while the writer is not running: every call returns at once, the queue
/// holds at most `QUEUE_LINES`, the rest are counted, and once the writer runs the buffer holds
/// the queued lines plus one line per session saying how many were dropped; nothing is lost
/// unaccounted.
#[tokio::test]
async fn s4_a_flood_with_a_stalled_writer_stays_bounded_and_reports_the_drops() {
    let dir = tempfile::tempdir().unwrap();
    let (store, scope, server) = store_with_server(&dir).await;
    let (logs, writer) = ServerLogs::unstarted(store.clone(), LogsConfig::default());
    let sessions = ["s1", "s2", "s3", "s4"];
    let flood = 5_000;
    let started = std::time::Instant::now();
    for n in 0..flood {
        logs.append(LogLine::now(
            scope.org_id().clone(),
            server.clone(),
            sessions[n % sessions.len()],
            LogStream::Stderr,
            LogLevel::Info,
            format!("line {n}"),
        ));
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "append waited on the stalled writer: {:?}",
        started.elapsed()
    );
    assert_eq!(logs.queue.capacity(), 0, "the queue is full, and no fuller");
    let dropped: u64 = logs.drops.lock().unwrap().by_source.values().sum();
    assert_eq!(dropped, (flood - QUEUE_LINES) as u64);

    let mut tail = logs.subscribe();
    tokio::spawn(writer.run());
    let permit = authorize::<ManageServers>(Role::Admin).unwrap();
    let mut stored = Vec::new();
    let mut after = None;
    for _ in 0..200 {
        let page = store
            .server_logs(
                &scope,
                &permit,
                &server,
                &LogQuery {
                    since_ms: None,
                    session: None,
                    min_level: None,
                    after,
                    limit: 1000,
                },
            )
            .await
            .unwrap();
        if let Some(last) = page.last() {
            after = Some(last.id);
        }
        stored.extend(page);
        if stored.len() >= QUEUE_LINES + sessions.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let notices: Vec<&StoredLogLine> = stored
        .iter()
        .filter(|line| line.stream == LogStream::Gateway)
        .collect();
    assert_eq!(notices.len(), sessions.len(), "one notice per session");
    let reported: u64 = notices
        .iter()
        .map(|line| {
            assert_eq!(line.level, LogLevel::Warn);
            let (count, rest) = line.text.split_once(' ').unwrap();
            assert_eq!(rest, "lines dropped: the log writer fell behind");
            count.parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(stored.len() - notices.len(), QUEUE_LINES);
    assert_eq!(reported + QUEUE_LINES as u64, flood as u64);
    // The queued lines are the first ones, in order.
    assert_eq!(stored[0].text, "line 0");
    // A tail that did not keep up lost the oldest lines (and is told how many) while the writer
    // went on; then it reads on from what remains.
    let behind = QUEUE_LINES + sessions.len() - TAIL_LAG_LINES;
    match tail.recv().await {
        Err(broadcast::error::RecvError::Lagged(missed)) => assert_eq!(missed, behind as u64),
        other => panic!("expected the tail to have lagged, got {other:?}"),
    }
    let next = tail.recv().await.unwrap();
    assert_eq!(next.org, *scope.org_id());
    assert_eq!(next.line, stored[behind]);
}

#[test]
fn lines_are_cut_on_a_character_boundary_and_nul_bytes_replaced() {
    assert_eq!(clean("plain\r\n", 100), "plain");
    assert_eq!(clean("a\0b", 100), "a\u{FFFD}b");
    let cut = clean(&"é".repeat(200), 301);
    assert!(cut.len() <= 301, "{}", cut.len());
    assert!(cut.ends_with(" [cut]"));
    assert!(cut.trim_end_matches(" [cut]").chars().all(|c| c == 'é'));
    assert_eq!(clean(&"x".repeat(300), 300), "x".repeat(300));
}

#[test]
fn settings_out_of_range_are_refused_naming_the_key() {
    assert!(LogsConfig::default().validate().is_ok());
    let check = |config: LogsConfig, key: &str| {
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains(key), "{error}");
    };
    check(
        LogsConfig {
            max_line_bytes: 10,
            ..LogsConfig::default()
        },
        "logs.max_line_bytes",
    );
    check(
        LogsConfig {
            max_bytes_per_session: 100,
            ..LogsConfig::default()
        },
        "logs.max_bytes_per_session",
    );
    check(
        LogsConfig {
            max_bytes_per_server: 1024,
            ..LogsConfig::default()
        },
        "logs.max_bytes_per_server",
    );
    check(
        LogsConfig {
            retention_secs: 1,
            ..LogsConfig::default()
        },
        "logs.retention_secs",
    );
}
