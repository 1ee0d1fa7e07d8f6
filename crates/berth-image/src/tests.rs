//! Store-level tests: load/save/import/tag/delete/prune against archives built here.

use crate::layer::tests::{tar_of, E};
use crate::*;
use serde_json::json;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

fn store(dir: &Path) -> ImageStore {
    let db = Arc::new(redb::Database::create(dir.join("berth.redb")).unwrap());
    ImageStore::open(dir, db).unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn config(diffs: &[&[u8]], cmd: &str) -> Vec<u8> {
    let ids: Vec<String> = diffs
        .iter()
        .map(|d| Digest::of_bytes(d).to_string())
        .collect();
    let history: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, _)| json!({"created": "2024-01-02T03:04:05Z", "created_by": format!("step {i}")}))
        .collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": [cmd], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ids},
        "history": history,
    }))
    .unwrap()
}

fn add(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data).unwrap();
}

/// A legacy docker-archive: `<hex>.json` configs, `<n>/layer.tar` layers (stored as given).
type ArchiveImage<'a> = (&'a [u8], Vec<Vec<u8>>, Vec<&'a str>);

fn docker_archive(images: &[ArchiveImage]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut manifest = Vec::new();
    let mut n = 0;
    for (cfg, layers, tags) in images {
        let cfg_name = format!("{}.json", Digest::of_bytes(cfg).hex());
        add(&mut b, &cfg_name, cfg);
        let mut paths = Vec::new();
        for l in layers {
            n += 1;
            let p = format!("{n}/layer.tar");
            add(&mut b, &p, l);
            paths.push(p);
        }
        manifest.push(json!({"Config": cfg_name, "RepoTags": tags, "Layers": paths}));
    }
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    b.into_inner().unwrap()
}

fn no_in_use(_: &Digest) -> Option<String> {
    None
}

fn layers() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let base = tar_of(&[
        E::Dir("bin/"),
        E::File("bin/sh", b"shell"),
        E::File("etc/os", b"base"),
    ]);
    let a = tar_of(&[E::File("app/a", b"aaaa"), E::File("etc/.wh.os", b"")]);
    let b = tar_of(&[E::File("app/b", b"bb")]);
    (base, a, b)
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[test]
fn load_list_resolve_tag_delete() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let (base, la, lb) = layers();
    let cfg_a = config(&[&base, &la], "a");
    let cfg_b = config(&[&base, &lb], "b");
    let ar = docker_archive(&[
        (&cfg_a, vec![base.clone(), gzip(&la)], vec!["a:1"]),
        (
            &cfg_b,
            vec![gzip(&base), lb.clone()],
            vec!["b:latest", "localhost:5000/x/b:2"],
        ),
    ]);
    let mut lines = Vec::new();
    let recs = s.load(&mut &ar[..], &mut |l| lines.push(l)).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(
        lines,
        [
            "Loaded image: a:1",
            "Loaded image: b:latest",
            "Loaded image: localhost:5000/x/b:2"
        ]
    );
    let id_a = Digest::of_bytes(&cfg_a);
    let id_b = Digest::of_bytes(&cfg_b);
    assert_eq!(recs[0].id, id_a);
    assert_eq!(s.list().unwrap().len(), 2);
    assert_eq!(
        count(&t.path().join("snapshots")),
        3,
        "base layer unpacked once"
    );
    assert_eq!(count(&t.path().join("content/ingest")), 0);

    // resolve: reference, familiar, full id, short id, sha256: prefix
    let a = s.resolve("a:1").unwrap();
    assert_eq!(a.id, id_a);
    assert_eq!(a.repo_tags, ["a:1"]);
    assert_eq!(a.size, 5 + 4 + 4);
    assert_eq!(a.layer_sizes, [9, 4]);
    assert_eq!(
        a.config.config.as_ref().unwrap().cmd.as_deref(),
        Some(&["a".to_string()][..])
    );
    assert_eq!(s.resolve("docker.io/library/a:1").unwrap().id, id_a);
    assert_eq!(s.resolve(&id_a.to_string()).unwrap().id, id_a);
    assert_eq!(s.resolve(id_a.hex()).unwrap().id, id_a);
    assert_eq!(s.resolve(&id_a.hex()[..12]).unwrap().id, id_a);
    assert_eq!(
        s.resolve(&format!("sha256:{}", &id_a.hex()[..8]))
            .unwrap()
            .id,
        id_a
    );
    let b = s.resolve("b").unwrap();
    assert_eq!(b.repo_tags, ["b:latest", "localhost:5000/x/b:2"]);
    let e = s.resolve("nope").unwrap_err();
    assert_eq!(e.to_string(), "No such image: nope");
    assert!(s.resolve("a").unwrap_err().is_not_found()); // a:latest does not exist
    assert!(matches!(
        s.resolve("Foo"),
        Err(ImageError::InvalidReference(_))
    ));

    // lower dirs: top first, base shared
    let la_dirs = s.lower_dirs(&a).unwrap();
    let lb_dirs = s.lower_dirs(&b).unwrap();
    assert_eq!(la_dirs.len(), 2);
    assert_eq!(la_dirs[1], lb_dirs[1]);
    assert_eq!(fs::read(la_dirs[0].join("app/a")).unwrap(), b"aaaa");
    assert_eq!(fs::read(la_dirs[1].join("bin/sh")).unwrap(), b"shell");
    assert!(la_dirs[0].ends_with("fs"));

    // history: newest first, top has the ID
    let h = s.history("a:1").unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].id, id_a.to_string());
    assert_eq!(h[1].id, "<missing>");
    assert_eq!(h[0].size, 4);
    assert_eq!(h[1].created_by, "step 0");
    assert_eq!(h[0].created, 1704164645);

    // tag, then untag only
    s.tag("a:1", "c").unwrap();
    assert_eq!(s.resolve("c:latest").unwrap().id, id_a);
    assert!(s.tag("a:1", &format!("c@{id_a}")).is_err());
    assert_eq!(
        s.delete("c", false, &no_in_use).unwrap(),
        [DeleteItem::Untagged("c:latest".into())]
    );
    assert_eq!(s.list().unwrap().len(), 2);

    // by ID with two repositories: conflict unless forced
    let e = s.delete(&id_b.hex()[..12], false, &no_in_use).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories", id_b.short())
    );
    // in use: conflict on the last reference
    let used = |_: &Digest| Some("0123456789abcdef0123".to_string());
    let e = s.delete("a:1", false, &used).unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(
        e.to_string()
            .contains("container 0123456789ab is using its referenced image"),
        "{e}"
    );
    assert_eq!(s.resolve("a:1").unwrap().id, id_a);

    // last tag of A removed: image deleted, its own layer released, the shared base kept
    let items = s.delete("a:1", false, &no_in_use).unwrap();
    let chains = chain_ids(&a.layers);
    assert_eq!(
        items,
        [
            DeleteItem::Untagged("a:1".into()),
            DeleteItem::Deleted(id_a.to_string()),
            DeleteItem::Deleted(chains[1].to_string()),
        ]
    );
    assert!(s.get(&id_a).unwrap_err().is_not_found());
    assert!(!la_dirs[0].exists());
    assert!(la_dirs[1].join("bin/sh").exists());
    assert!(!t
        .path()
        .join("content/blobs/sha256")
        .join(id_a.hex())
        .exists());
    assert_eq!(s.lower_dirs(&b).unwrap(), lb_dirs);

    // forced delete by ID of a multiply-tagged image; everything goes
    let items = s.delete(&id_b.to_string(), true, &no_in_use).unwrap();
    assert_eq!(
        items
            .iter()
            .filter(|i| matches!(i, DeleteItem::Untagged(_)))
            .count(),
        2
    );
    assert_eq!(
        items
            .iter()
            .filter(|i| matches!(i, DeleteItem::Deleted(_)))
            .count(),
        3
    );
    assert!(s.list().unwrap().is_empty());
    assert_eq!(count(&t.path().join("snapshots")), 0);
    assert_eq!(count(&t.path().join("content/blobs/sha256")), 0);

    // reopening sweeps nothing it should keep and works on the same db
    drop(s);
}

#[test]
fn refcounts_survive_reopen_and_prune() {
    let t = tempfile::tempdir().unwrap();
    let (base, la, lb) = layers();
    let cfg_a = config(&[&base, &la], "a");
    let cfg_b = config(&[&base, &lb], "b");
    let ar = docker_archive(&[
        (&cfg_a, vec![base.clone(), la], vec![]),
        (&cfg_b, vec![base, lb], vec!["b:1"]),
    ]);
    let db = Arc::new(redb::Database::create(t.path().join("berth.redb")).unwrap());
    let s = ImageStore::open(t.path(), db.clone()).unwrap();
    let mut lines = Vec::new();
    s.load(&mut &ar[..], &mut |l| lines.push(l)).unwrap();
    assert_eq!(
        lines[0],
        format!("Loaded image ID: {}", Digest::of_bytes(&cfg_a))
    );
    fs::create_dir_all(t.path().join("snapshots/.tmp-99/fs")).unwrap();
    fs::write(t.path().join("content/ingest/junk"), "x").unwrap();
    drop(s);
    let s = ImageStore::open(t.path(), db).unwrap();
    assert!(!t.path().join("snapshots/.tmp-99").exists());
    assert_eq!(count(&t.path().join("content/ingest")), 0);
    assert_eq!(count(&t.path().join("snapshots")), 3);
    // prune dangling: only A goes; in-use images stay
    let (items, bytes) = s.prune(true, &no_in_use).unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(bytes, 4);
    let b = s.resolve("b:1").unwrap();
    for d in s.lower_dirs(&b).unwrap() {
        assert!(d.exists());
    }
    let used = |_: &Digest| Some("c0ffee".to_string());
    assert!(s.prune(false, &used).unwrap().0.is_empty());
    // forced removal of a used image untags but keeps the data
    let items = s.delete("b:1", true, &used).unwrap();
    assert_eq!(items, [DeleteItem::Untagged("b:1".into())]);
    assert!(s.get(&b.id).is_ok());
    let (items, _) = s.prune(false, &no_in_use).unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(count(&t.path().join("snapshots")), 0);
}

#[test]
fn save_load_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let (base, la, _) = layers();
    let cfg_a = config(&[&base, &la], "a");
    let ar = docker_archive(&[(&cfg_a, vec![base, gzip(&la)], vec!["a:1", "a:2"])]);
    s.load(&mut &ar[..], &mut |_| {}).unwrap();
    let mut out = Vec::new();
    s.save(&["a".to_string()], &mut out).unwrap();
    // The archive is both a docker-archive and an OCI layout.
    let mut names = Vec::new();
    for e in tar::Archive::new(&out[..]).entries().unwrap() {
        names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    for n in ["manifest.json", "index.json", "oci-layout", "repositories"] {
        assert!(names.contains(&n.to_string()), "{n} in {names:?}");
    }
    let t2 = tempfile::tempdir().unwrap();
    let s2 = store(t2.path());
    let mut lines = Vec::new();
    let recs = s2.load(&mut &out[..], &mut |l| lines.push(l)).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].id, Digest::of_bytes(&cfg_a));
    assert_eq!(recs[0].repo_tags, ["a:1", "a:2"]);
    assert_eq!(lines, ["Loaded image: a:1", "Loaded image: a:2"]);
    // Saved by ID: no tags.
    let mut out = Vec::new();
    s.save(&[recs[0].id.hex()[..12].to_string()], &mut out)
        .unwrap();
    let t3 = tempfile::tempdir().unwrap();
    let s3 = store(t3.path());
    let mut lines = Vec::new();
    let recs = s3.load(&mut &out[..], &mut |l| lines.push(l)).unwrap();
    assert!(recs[0].repo_tags.is_empty());
    assert_eq!(lines, [format!("Loaded image ID: {}", recs[0].id)]);
    // Loading the OCI side alone (drop manifest.json) gives the same image.
    let mut b = tar::Builder::new(Vec::new());
    for e in tar::Archive::new(&out[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        if p == "manifest.json" {
            continue;
        }
        let mut h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        b.append_data(&mut h, &p, &data[..]).unwrap();
    }
    let oci = b.into_inner().unwrap();
    let t4 = tempfile::tempdir().unwrap();
    let s4 = store(t4.path());
    assert_eq!(
        s4.load(&mut &oci[..], &mut |_| {}).unwrap()[0].id,
        recs[0].id
    );
    assert!(s
        .save(&["nope".to_string()], &mut Vec::new())
        .unwrap_err()
        .is_not_found());
}

#[test]
fn corrupted_archives_store_nothing() {
    let (base, la, lb) = layers();
    let good_cfg = config(&[&base, &la], "a");
    let bad_cfg = config(&[&base, &lb], "a"); // says lb, ships la
    let bad_blob = {
        // OCI blob whose name does not match its content
        let mut b = tar::Builder::new(Vec::new());
        add(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        add(
            &mut b,
            &format!("blobs/sha256/{}", Digest::of_bytes(b"x").hex()),
            b"y",
        );
        let idx = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest::of_bytes(b"x"), "size": 1}]});
        add(&mut b, "index.json", &serde_json::to_vec(&idx).unwrap());
        b.into_inner().unwrap()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "diff_id mismatch",
            docker_archive(&[
                (&good_cfg, vec![base.clone(), la.clone()], vec!["ok:1"]),
                (&bad_cfg, vec![base.clone(), la.clone()], vec!["bad:1"]),
            ]),
        ),
        (
            "missing layer",
            docker_archive(&[(&good_cfg, vec![base.clone()], vec!["bad:1"])]),
        ),
        (
            "hostile layer",
            docker_archive(&[(
                &config(&[&tar_of(&[E::File("../x", b"e")])], "x"),
                vec![tar_of(&[E::File("../x", b"e")])],
                vec!["bad:1"],
            )]),
        ),
        ("bad blob digest", bad_blob),
        ("not a tar", b"garbage".to_vec()),
        (
            "empty tar",
            tar::Builder::new(Vec::new()).into_inner().unwrap(),
        ),
    ];
    for (what, ar) in cases {
        let t = tempfile::tempdir().unwrap();
        let s = store(t.path());
        let e = s.load(&mut &ar[..], &mut |_| {}).unwrap_err();
        assert!(matches!(e, ImageError::InvalidArchive(_)), "{what}: {e:?}");
        if what == "diff_id mismatch" {
            assert!(e.to_string().contains("diff_id mismatch"), "{e}");
        }
        assert!(s.list().unwrap().is_empty(), "{what}");
        assert!(s.resolve("ok:1").is_err(), "{what}");
        assert_eq!(count(&t.path().join("snapshots")), 0, "{what}");
        assert_eq!(count(&t.path().join("content/ingest")), 0, "{what}");
        assert_eq!(count(&t.path().join("content/blobs/sha256")), 0, "{what}");
        assert!(!t.path().parent().unwrap().join("x").exists());
    }
}

#[test]
fn oci_layout_with_index_and_annotations() {
    let (base, la, _) = layers();
    let gz = gzip(&la);
    let cfg = config(&[&base, &la], "oci");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of_bytes(&cfg), "size": cfg.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::of_bytes(&base), "size": base.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": Digest::of_bytes(&gz), "size": gz.len()},
        ],
    }))
    .unwrap();
    // A nested index selecting the host platform.
    let nested = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest::of_bytes(&manifest), "size": manifest.len(),
                       "platform": {"os": "linux", "architecture": crate::load_host_arch_for_tests()}}],
    }))
    .unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": Digest::of_bytes(&nested), "size": nested.len(),
         "annotations": {"org.opencontainers.image.ref.name": "example.com/oci/img:v1"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest::of_bytes(&manifest), "size": manifest.len(),
         "annotations": {"io.containerd.image.name": "docker.io/library/oci:latest", "org.opencontainers.image.ref.name": "latest"}},
    ]});
    let mut b = tar::Builder::new(Vec::new());
    add(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    for blob in [&cfg, &base, &gz, &manifest, &nested] {
        add(
            &mut b,
            &format!("blobs/sha256/{}", Digest::of_bytes(blob).hex()),
            blob,
        );
    }
    add(&mut b, "index.json", &serde_json::to_vec(&index).unwrap());
    let ar = b.into_inner().unwrap();
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let recs = s.load(&mut &ar[..], &mut |_| {}).unwrap();
    assert_eq!(recs.len(), 1);
    let img = s.resolve("oci").unwrap();
    assert_eq!(img.id, Digest::of_bytes(&cfg));
    assert_eq!(img.repo_tags, ["example.com/oci/img:v1", "oci:latest"]);
    assert_eq!(
        img.layer_blobs[1].media_type,
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert!(s.lower_dirs(&img).unwrap()[0].join("app/a").exists());
}

#[test]
fn import_with_changes() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let rootfs = tar_of(&[
        E::Dir("bin/"),
        E::File("bin/true", b"#!"),
        E::Sym("bin/false", "true"),
    ]);
    let changes = vec![
        "CMD [\"/bin/true\"]".to_string(),
        "ENV A=b".to_string(),
        "EXPOSE 8080".to_string(),
    ];
    let rec = s
        .import(&mut &gzip(&rootfs)[..], &changes, "", Some("imp:v1"))
        .unwrap();
    assert_eq!(rec.repo_tags, ["imp:v1"]);
    assert_eq!(rec.layers, [Digest::of_bytes(&rootfs)]);
    assert_eq!(rec.size, 2);
    let cc = rec.config.config.as_ref().unwrap();
    assert_eq!(cc.cmd.as_deref(), Some(&["/bin/true".to_string()][..]));
    assert_eq!(cc.env.as_deref(), Some(&["A=b".to_string()][..]));
    assert!(cc.exposed_ports.as_ref().unwrap().contains_key("8080/tcp"));
    // The ID is the digest of the stored config blob.
    let blob = fs::read(t.path().join("content/blobs/sha256").join(rec.id.hex())).unwrap();
    assert_eq!(Digest::of_bytes(&blob), rec.id);
    let dirs = s.lower_dirs(&rec).unwrap();
    assert_eq!(fs::read(dirs[0].join("bin/true")).unwrap(), b"#!");
    let h = s.history("imp:v1").unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].comment, "Imported from -");
    assert_eq!(h[0].tags.as_deref(), Some(&["imp:v1".to_string()][..]));
    // Untagged, plain tar, with a message.
    let rec2 = s.import(&mut &rootfs[..], &[], "hello", None).unwrap();
    assert!(rec2.repo_tags.is_empty());
    assert_eq!(rec2.config.history[0].comment.as_deref(), Some("hello"));
    assert_eq!(rec2.chain_ids, rec.chain_ids);
    assert_eq!(count(&t.path().join("snapshots")), 1, "same layer shared");
    assert!(s
        .import(&mut &rootfs[..], &["RUN x".to_string()], "", None)
        .is_err());
    assert!(s
        .import(&mut &b"not a tar at all, definitely"[..], &[], "", None)
        .is_err());
    assert_eq!(s.list().unwrap().len(), 2);
    assert_eq!(count(&t.path().join("content/ingest")), 0);
}

#[test]
fn overlay_mount_of_lower_dirs_honours_whiteouts() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let base = tar_of(&[
        E::File("bin/sh", b"shell"),
        E::File("etc/os", b"base"),
        E::File("var/cache/old", b"old"),
    ]);
    let top = tar_of(&[
        E::File("etc/.wh.os", b""),
        E::Dir("var/cache/"),
        E::File("var/cache/.wh..wh..opq", b""),
        E::File("var/cache/new", b"new"),
    ]);
    let cfg = config(&[&base, &top], "x");
    let ar = docker_archive(&[(&cfg, vec![base, top], vec!["ov:1"])]);
    s.load(&mut &ar[..], &mut |_| {}).unwrap();
    let img = s.resolve("ov:1").unwrap();
    let lowers: Vec<String> = s
        .lower_dirs(&img)
        .unwrap()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let merged = t.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let opts = std::ffi::CString::new(format!("lowerdir={}", lowers.join(":"))).unwrap();
    let target = std::ffi::CString::new(merged.to_str().unwrap()).unwrap();
    let overlay = std::ffi::CString::new("overlay").unwrap();
    // SAFETY: all pointers are valid NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            overlay.as_ptr(),
            target.as_ptr(),
            overlay.as_ptr(),
            libc::MS_RDONLY,
            opts.as_ptr().cast(),
        )
    };
    if rc != 0 {
        eprintln!(
            "skipping overlay check: mount failed: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    let seen = (
        merged.join("bin/sh").exists(),
        merged.join("etc/os").exists(),
        merged.join("var/cache/old").exists(),
        merged.join("var/cache/new").exists(),
    );
    // SAFETY: target is a valid path we mounted above.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    assert_eq!(seen, (true, false, false, true));
}

#[test]
fn legacy_symlinked_layers_and_reload_is_idempotent() {
    let (base, la, _) = layers();
    let cfg = config(&[&base, &la], "x");
    let mut b = tar::Builder::new(Vec::new());
    add(&mut b, "c.json", &cfg);
    add(&mut b, "aaa/layer.tar", &base);
    add(&mut b, "bbb/layer.tar", &la);
    // Old docker save wrote duplicate layers as relative symlinks.
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "ccc/layer.tar", "../aaa/layer.tar")
        .unwrap();
    let manifest = json!([{"Config": "c.json", "RepoTags": ["leg:1"], "Layers": ["ccc/layer.tar", "bbb/layer.tar"]}]);
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let ar = b.into_inner().unwrap();
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    s.load(&mut &ar[..], &mut |_| {}).unwrap();
    s.load(&mut &ar[..], &mut |_| {}).unwrap();
    assert_eq!(s.list().unwrap().len(), 1);
    assert_eq!(count(&t.path().join("snapshots")), 2);
    // One delete releases everything: the second load did not add references.
    let items = s.delete("leg:1", false, &no_in_use).unwrap();
    assert_eq!(items.len(), 4, "{items:?}");
    assert_eq!(count(&t.path().join("snapshots")), 0);
}

/// An overlay upper dir becomes a layer: whiteouts, opaque dirs and hard links survive the
/// round trip through `diff_tar` and `apply_layer`, and the committed image stacks on its base.
#[test]
fn diff_tar_and_commit_image() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let (l1, _, _) = layers();
    let cfg = config(&[&l1], "base");
    let arch = docker_archive(&[(&cfg, vec![l1.clone()], vec!["base:1"])]);
    s.load(&mut arch.as_slice(), &mut |_| {}).unwrap();
    let base = s.resolve("base:1").unwrap();

    let upper = dir.path().join("upper");
    fs::create_dir_all(upper.join("opq")).unwrap();
    fs::write(upper.join("opq/kept"), b"k").unwrap();
    fs::write(upper.join("new"), b"fresh").unwrap();
    fs::hard_link(upper.join("new"), upper.join("link")).unwrap();
    nix_mknod_whiteout(&upper.join("gone"));
    let c = std::ffi::CString::new(upper.join("opq").to_str().unwrap()).unwrap();
    let rc = unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_eq!(rc, 0, "setxattr needs root");
    let tar_path = dir.path().join("layer.tar");
    let mut f = fs::File::create(&tar_path).unwrap();
    diff_tar(&upper, &mut f).unwrap();
    drop(f);
    let mut names = Vec::new();
    let mut a = tar::Archive::new(fs::File::open(&tar_path).unwrap());
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        names.push((
            e.path().unwrap().to_string_lossy().into_owned(),
            e.header().entry_type(),
        ));
    }
    let just: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        just,
        [
            ".wh.gone",
            "link",
            "new",
            "opq/",
            "opq/.wh..wh..opq",
            "opq/kept"
        ]
    );
    assert_eq!(
        names[2].1,
        tar::EntryType::Link,
        "second name is a hard link"
    );

    let mut cc = base.config.clone();
    cc.config.get_or_insert_with(Default::default).cmd = Some(vec!["new".into()]);
    let img = s
        .commit_image(NewCommit {
            base: Some(&base),
            config: cc,
            layer: Some(&tar_path),
            history: History {
                created_by: Some("RUN x".into()),
                ..Default::default()
            },
            tags: vec![Reference::parse("built:1").unwrap()],
        })
        .unwrap();
    assert_eq!(img.layers.len(), 2);
    assert_eq!(img.layers[0], base.layers[0]);
    assert_eq!(img.config.history.len(), base.config.history.len() + 1);
    assert_eq!(img.repo_tags, ["built:1"]);
    assert_eq!(img.parent, base.id.to_string());
    let lowers = s.lower_dirs(&img).unwrap();
    assert_eq!(fs::read(lowers[0].join("new")).unwrap(), b"fresh");
    // A metadata-only step adds history but no layer.
    let meta = s
        .commit_image(NewCommit {
            base: Some(&img),
            config: img.config.clone(),
            layer: None,
            history: History {
                created_by: Some("ENV A=b".into()),
                ..Default::default()
            },
            tags: vec![],
        })
        .unwrap();
    assert_eq!(meta.layers, img.layers);
    assert!(meta.config.history.last().unwrap().empty_layer);
    // The image pushes as an OCI manifest listing its blobs.
    let plan = s.push_plan("built:1").unwrap();
    assert_eq!(plan.layers.len(), 2);
    assert_eq!(plan.manifest_media_type, OCI_MANIFEST);
}

fn nix_mknod_whiteout(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, 0) };
    assert_eq!(rc, 0, "mknod needs root");
}
