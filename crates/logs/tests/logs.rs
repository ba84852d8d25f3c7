//! The logs folder with real files in temporary folders: a real writer
//! (thread and all) and real followers running at the same time.

use std::path::Path;
use std::time::{Duration, SystemTime};

use capstan_logs::{
    follow, tail, Error, Line, LogDir, ProcessName, ProcessWriter, Rotation, MAX_LINE, POLL,
    REORDER,
};
use futures_util::{Stream, StreamExt as _};

fn name(name: &str) -> ProcessName {
    ProcessName::new(name).unwrap()
}

/// The number a test line carries: `web 00042 ...` -> 42.
fn seq(line: &Line) -> usize {
    line.text.split(' ').nth(1).unwrap().parse().unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// The next `n` lines, or a failure (saying which are missing) after a
/// generous time.
async fn take(stream: &mut (impl Stream<Item = Line> + Unpin), n: usize) -> Vec<Line> {
    let mut lines = Vec::with_capacity(n);
    let all = async {
        while lines.len() < n {
            lines.push(stream.next().await.expect("the follower ended"));
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .is_err()
    {
        let mut processes: Vec<&str> = lines.iter().map(|l| l.process.as_str()).collect();
        processes.sort();
        processes.dedup();
        let report: Vec<String> = processes.iter().map(|p| missing(&lines, p)).collect();
        panic!("only {} of {n} lines in 60 s: {report:?}", lines.len());
    }
    lines
}

/// Writes line `i` of web and then of tasks, each carrying `i` for [`seq`].
async fn write_pair(to_web: &ProcessWriter, to_tasks: &ProcessWriter, i: usize) {
    to_web
        .line(format!("web {i:05} {}", "w".repeat(40)))
        .await
        .unwrap();
    to_tasks
        .line(format!("tasks {i:05} {}", "t".repeat(40)))
        .await
        .unwrap();
}

fn missing(lines: &[Line], process: &str) -> String {
    let mut seqs: Vec<usize> = lines
        .iter()
        .filter(|l| l.process.as_str() == process)
        .map(seq)
        .collect();
    let got = seqs.len();
    seqs.sort();
    seqs.dedup();
    let (first, last) = (seqs[0], seqs[seqs.len() - 1]);
    let gaps: Vec<usize> = (first..=last)
        .filter(|i| seqs.binary_search(i).is_err())
        .collect();
    format!(
        "{process}: {got} lines, {} repeated, {first}..={last}, missing {gaps:?}",
        got - seqs.len()
    )
}

/// Nothing more arrives (a repeated line would) within a few polls.
async fn nothing_more(stream: &mut (impl Stream<Item = Line> + Unpin)) {
    let wait = POLL * 5 + REORDER;
    if let Ok(Some(extra)) = tokio::time::timeout(wait, stream.next()).await {
        panic!("one line too many: {extra}");
    }
}

/// Each process's numbers run from where they start to `last`, once each.
fn each_once_in_order(lines: &[Line], process: &str, last: usize) -> usize {
    let seqs: Vec<usize> = lines
        .iter()
        .filter(|l| l.process.as_str() == process)
        .map(seq)
        .collect();
    let first = *seqs.first().expect("lines of the process");
    assert_eq!(
        seqs,
        (first..=last).collect::<Vec<_>>(),
        "{process}'s lines"
    );
    first
}

#[test]
fn tail_reads_the_rotated_files_when_the_live_one_has_fewer_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let web = name("web");
    let mut logs = LogDir::open(
        tmp.path(),
        Rotation {
            max_bytes: 2000,
            keep: 5,
        },
    )
    .unwrap();
    for i in 0..300 {
        logs.append(&web, format!("web {i:05} GET /")).unwrap();
    }
    assert_eq!(files(tmp.path()).len(), 6, "{:?}", files(tmp.path()));
    let live = std::fs::read_to_string(tmp.path().join("web.log"))
        .unwrap()
        .lines()
        .count();
    let n = live + 50; // reaches two or more files back
    let lines = tail(tmp.path(), None, n).unwrap();
    assert_eq!(
        lines.iter().map(seq).collect::<Vec<_>>(),
        (300 - n..300).collect::<Vec<_>>()
    );
    assert!(lines
        .iter()
        .all(|l| l.label == "web" && l.text.ends_with("GET /")));
    // More than all the files hold: everything there is, once.
    let all = tail(tmp.path(), Some(&[web]), 10_000).unwrap();
    assert_eq!(all.last().map(seq), Some(299));
    assert_eq!(all.len(), 300 - all[0].text[4..9].parse::<usize>().unwrap());
}

#[test]
fn tail_merges_processes_by_time_and_equal_times_keep_the_order_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let (web, tasks) = (name("web"), name("tasks"));
    let mut logs = LogDir::open(tmp.path(), Rotation::default()).unwrap();
    let t = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_000 + ms);
    logs.append_from(&web.instance(1), t(0), b"web 0").unwrap();
    logs.append_from(&tasks.label(), t(1), b"tasks 0").unwrap();
    logs.append_from(&web.instance(2), t(2), b"web 1").unwrap();
    logs.append_from(&tasks.label(), t(5), b"tasks 1").unwrap();
    logs.append_from(&web.instance(1), t(5), b"web 2").unwrap();

    let texts = |lines: Vec<Line>| {
        lines
            .into_iter()
            .map(|l| format!("{} {}", l.label, l.text))
            .collect::<Vec<_>>()
    };
    let asked = [web.clone(), tasks.clone()];
    assert_eq!(
        texts(tail(tmp.path(), Some(&asked), 10).unwrap()),
        [
            "web.1 web 0",
            "tasks tasks 0",
            "web.2 web 1",
            "web.1 web 2",
            "tasks tasks 1"
        ]
    );
    // All processes: by name, so `tasks` comes before `web` at the same time.
    assert_eq!(
        texts(tail(tmp.path(), None, 3).unwrap()),
        ["web.2 web 1", "tasks tasks 1", "web.1 web 2"]
    );
    assert_eq!(
        texts(tail(tmp.path(), Some(&[tasks]), 1).unwrap()),
        ["tasks tasks 1"]
    );
    let first = &tail(tmp.path(), None, 5).unwrap()[0];
    assert_eq!(first.at, t(0));
    assert_eq!(
        first.to_string(),
        "2025-11-24T16:00:00.000Z web.1   | web 0"
    );
}

#[test]
fn a_process_name_that_is_not_a_plain_file_name_is_an_error() {
    for bad in ["../../etc/passwd", "web/1", ".hidden", "", "web log"] {
        let err = ProcessName::new(bad).unwrap_err();
        assert!(matches!(err, Error::BadProcessName { .. }), "{bad:?}");
        assert!(
            err.to_string()
                .starts_with(&format!("`{bad}` cannot name a log: ")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn reading_a_folder_that_does_not_exist_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let err = tail(&missing, None, 10).unwrap_err();
    assert!(
        err.to_string().contains("nope: no such logs folder"),
        "{err}"
    );
    let err = follow(&missing, None, 10).await.err().unwrap();
    assert!(
        err.to_string().contains("nope: no such logs folder"),
        "{err}"
    );
}

#[test]
fn a_long_line_is_cut_with_a_marker_and_the_next_line_is_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let web = name("web");
    let mut logs = LogDir::open(tmp.path(), Rotation::default()).unwrap();
    logs.append(&web, vec![b'x'; 100_000]).unwrap();
    logs.append(&web, b"next \xff").unwrap();
    let lines = tail(tmp.path(), None, 10).unwrap();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].text.starts_with(&"x".repeat(MAX_LINE)));
    assert!(lines[0]
        .text
        .ends_with(" [line cut: 100000 bytes, 65536 kept]"));
    assert_eq!(lines[1].text, "next \u{fffd}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_across_rotations_with_a_writer_writing_loses_and_repeats_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (web, tasks) = (name("web"), name("tasks"));
    let rotation = Rotation {
        max_bytes: 64 * 1024,
        keep: 5,
    };
    let sink = LogDir::open(tmp.path(), rotation).unwrap().spawn().unwrap();
    let (to_web, to_tasks) = (sink.writer_as(web.instance(1)), sink.writer(&tasks));
    const BEFORE: usize = 1_000;
    const TOTAL: usize = 10_000; // per process: 20,000 lines in all
    for i in 0..BEFORE {
        write_pair(&to_web, &to_tasks, i).await;
    }
    sink.flush().await.unwrap();

    let mut followed = follow(tmp.path(), None, 10).await.unwrap();
    let writer = tokio::spawn(async move {
        for i in BEFORE..TOTAL {
            write_pair(&to_web, &to_tasks, i).await;
            if i % 10 == 0 {
                // Keep it at a pace a person's app might print (~20,000
                // lines/s), not one that outruns `keep` rotations per poll.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        sink.flush().await.unwrap();
    });
    let lines = take(&mut followed, 10 + 2 * (TOTAL - BEFORE)).await;
    writer.await.unwrap();
    nothing_more(&mut followed).await;

    let rotated = files(tmp.path())
        .iter()
        .filter(|n| n.contains(".log."))
        .count();
    assert_eq!(rotated, 2 * rotation.keep, "{:?}", files(tmp.path()));
    let web_first = each_once_in_order(&lines, "web", TOTAL - 1);
    let tasks_first = each_once_in_order(&lines, "tasks", TOTAL - 1);
    // The ten from before are the newest ten that were written.
    assert_eq!((BEFORE - web_first) + (BEFORE - tasks_first), 10);
    assert!(
        lines.windows(2).all(|w| w[0].at <= w[1].at),
        "merged by time"
    );
    assert!(lines
        .iter()
        .filter(|l| l.process == web)
        .all(|l| l.label == "web.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_goes_on_after_several_rotations_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let web = name("web");
    let mut logs = LogDir::open(
        tmp.path(),
        Rotation {
            max_bytes: 1000,
            keep: 4,
        },
    )
    .unwrap();
    logs.append(&web, "web 00000 first").unwrap();
    let mut followed = follow(tmp.path(), Some(std::slice::from_ref(&web)), 5)
        .await
        .unwrap();
    assert_eq!(seq(&take(&mut followed, 1).await[0]), 0);
    // About three files' worth in a few milliseconds: well inside one poll.
    for i in 1..60 {
        logs.append(&web, format!("web {i:05} burst")).unwrap();
    }
    let lines = take(&mut followed, 59).await;
    nothing_more(&mut followed).await;
    assert_eq!(
        lines.iter().map(seq).collect::<Vec<_>>(),
        (1..60).collect::<Vec<_>>()
    );
    assert!(files(tmp.path()).len() >= 3, "{:?}", files(tmp.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_of_all_processes_picks_up_one_whose_log_starts_later() {
    let tmp = tempfile::tempdir().unwrap();
    let mut logs = LogDir::open(tmp.path(), Rotation::default()).unwrap();
    logs.append(&name("web"), "web 00000 up").unwrap();
    let mut followed = follow(tmp.path(), None, 100).await.unwrap();
    assert_eq!(take(&mut followed, 1).await[0].text, "web 00000 up");
    // Times a little apart: lines of the same millisecond keep file order.
    let now = SystemTime::now();
    let cron = name("cron.backup").label();
    logs.append_from(&cron, now, b"cron.backup 00000 dumped")
        .unwrap();
    let later = now + Duration::from_millis(5);
    logs.append_from(&name("web").label(), later, b"web 00001 GET /")
        .unwrap();
    let lines = take(&mut followed, 2).await;
    let got: Vec<(&str, usize)> = lines.iter().map(|l| (l.process.as_str(), seq(l))).collect();
    assert_eq!(got, [("cron.backup", 0), ("web", 1)]);
    nothing_more(&mut followed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_of_a_process_with_no_log_yet_reads_its_first_file_from_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let deploy = name("deploy");
    let mut followed = follow(tmp.path(), Some(std::slice::from_ref(&deploy)), 10)
        .await
        .unwrap();
    let sink = LogDir::open(tmp.path(), Rotation::default())
        .unwrap()
        .spawn()
        .unwrap();
    sink.append(&deploy, "deploy 00000 building\ndeploy 00001 built")
        .await
        .unwrap();
    sink.flush().await.unwrap();
    let lines = take(&mut followed, 2).await;
    assert_eq!(lines.iter().map(seq).collect::<Vec<_>>(), [0, 1]);
    assert!(lines.iter().all(|l| l.label == "deploy"));
}

#[tokio::test]
async fn a_line_that_cannot_be_written_is_reported_by_the_next_flush_and_writing_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let web = name("web");
    // A folder where the rotated file must go makes the rotation fail.
    std::fs::create_dir_all(tmp.path().join("web.log.1/in-the-way")).unwrap();
    let rotation = Rotation {
        max_bytes: 100,
        keep: 1,
    };
    let sink = LogDir::open(tmp.path(), rotation).unwrap().spawn().unwrap();
    sink.append(&web, "web 00000 fits").await.unwrap();
    sink.append(&web, "web 00001 needs a rotation")
        .await
        .unwrap();
    let err = sink.flush().await.unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("web.log"), "{err}");

    std::fs::remove_dir_all(tmp.path().join("web.log.1")).unwrap();
    sink.append(&web, "web 00002 after").await.unwrap();
    sink.flush().await.unwrap();
    let lines = tail(tmp.path(), None, 10).unwrap();
    assert_eq!(lines.iter().map(seq).collect::<Vec<_>>(), [0, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_reads_a_live_file_truncated_in_place_from_its_start() {
    let tmp = tempfile::tempdir().unwrap();
    let web = name("web");
    let mut logs = LogDir::open(tmp.path(), Rotation::default()).unwrap();
    for i in 0..3 {
        logs.append(&web, format!("web {i:05} before")).unwrap();
    }
    let mut followed = follow(tmp.path(), None, 10).await.unwrap();
    assert_eq!(take(&mut followed, 3).await.len(), 3);
    // What `logrotate copytruncate` does: same file, emptied.
    let live = tmp.path().join("web.log");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(0)
        .unwrap();
    logs.append(&web, "web 00003 after").unwrap();
    let lines = take(&mut followed, 1).await;
    assert_eq!(lines[0].text, "web 00003 after");
    nothing_more(&mut followed).await;
}
