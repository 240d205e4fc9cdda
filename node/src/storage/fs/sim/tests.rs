//! Unit tests of the simulated filesystem's durability model.

use super::*;

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

#[test]
fn unsynced_data_and_names_are_lost() {
    let fs = SimFs::new();
    let mut f = fs.create(&p("/d/a")).unwrap();
    f.write_all(b"hello").unwrap();
    f.sync_data().unwrap();
    fs.crash(CrashOptions::default());
    assert!(
        fs.list(&p("/d")).unwrap().is_empty(),
        "create without dir sync survived"
    );

    let mut f = fs.create(&p("/d/a")).unwrap();
    f.write_all(b"hello").unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(&p("/d")).unwrap();
    f.write_all(b" world").unwrap();
    fs.crash(CrashOptions::default());
    assert_eq!(fs.read(&p("/d/a")).unwrap(), b"hello");
    assert!(f.write_all(b"x").is_err(), "stale handle still writes");
}

#[test]
fn rename_is_durable_only_after_dir_sync() {
    let fs = SimFs::new();
    for name in ["/d/a", "/d/b"] {
        let mut f = fs.create(&p(name)).unwrap();
        f.write_all(name.as_bytes()).unwrap();
        f.sync_data().unwrap();
    }
    fs.sync_dir(&p("/d")).unwrap();
    fs.rename(&p("/d/a"), &p("/d/b")).unwrap();
    let image = fs.image();
    assert_eq!(
        image
            .boot(CrashOptions::default())
            .read(&p("/d/b"))
            .unwrap(),
        b"/d/b"
    );
    fs.sync_dir(&p("/d")).unwrap();
    fs.crash(CrashOptions::default());
    assert_eq!(fs.list(&p("/d")).unwrap(), vec!["b".to_string()]);
    assert_eq!(fs.read(&p("/d/b")).unwrap(), b"/d/a");
}

#[test]
fn torn_write_keeps_a_prefix_of_the_last_write_only() {
    let fs = SimFs::new();
    let mut f = fs.create(&p("/d/a")).unwrap();
    fs.sync_dir(&p("/d")).unwrap();
    f.write_all(b"synced").unwrap();
    f.sync_data().unwrap();
    f.write_all(b"0123456789").unwrap();
    let image = fs.image();
    let mut lengths = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let opts = CrashOptions {
            seed,
            torn_last_write: true,
            ..Default::default()
        };
        let data = image.boot(opts).read(&p("/d/a")).unwrap();
        assert_eq!(&data[..6], b"synced");
        assert_eq!(&data[6..], &b"0123456789"[..data.len() - 6]);
        lengths.insert(data.len());
    }
    assert!(lengths.len() > 5, "tears are not random: {lengths:?}");
}

#[test]
fn recording_saves_an_image_per_mutation() {
    let fs = SimFs::new();
    fs.record_crash_points(true);
    let mut f = fs.create(&p("/d/a")).unwrap();
    f.write_all(b"x").unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(&p("/d")).unwrap();
    let points = fs.take_crash_points();
    assert_eq!(points.len(), 4);
    assert!(
        points[2]
            .boot(CrashOptions::default())
            .list(&p("/d"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        points[3]
            .boot(CrashOptions::default())
            .read(&p("/d/a"))
            .unwrap(),
        b"x"
    );
}
