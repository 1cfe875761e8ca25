use super::*;

fn line(pid: i32, tid: u32, main: bool, used: u64, ext: u64, end: bool) -> String {
    format!(
        "{{\"pid\":{pid},\"tid\":{tid},\"main\":{main},\"used\":{used},\"total\":{used},\"limit\":1000,\"ext\":{ext},\"ab\":{ext},\"gc\":1.5,\"end\":{end}}}\n"
    )
}

fn take(view: &mut NodeView, bytes: &str) {
    view.take_bytes(bytes.as_bytes(), &mut |_, _| {});
}

#[test]
fn threads_add_up_and_a_main_exit_or_a_dead_process_leaves_the_sums() {
    let mut view = NodeView::start(None, Access::Private).unwrap();
    take(&mut view, &line(10, 0, true, 100, 5, false));
    take(&mut view, &line(10, 1, false, 50, 1, false));
    take(&mut view, &line(11, 0, true, 7, 2, false));
    let all = view.isolates().sum(|_| true).unwrap();
    assert_eq!(
        (
            all.heap_used_bytes,
            all.heap_limit_bytes,
            all.external_bytes,
            all.threads
        ),
        (157, 3000, 8, 3)
    );
    assert_eq!(view.isolates().sum(|p| p == 12), None);
    // The last report is seen before it leaves.
    let mut seen_used = 0;
    view.take_bytes(line(10, 0, true, 20, 5, true).as_bytes(), &mut |i, pid| {
        seen_used = i.of(pid).map(|r| r.used).sum();
    });
    assert_eq!(seen_used, 70);
    assert_eq!(view.isolates().sum(|p| p == 10), None);
    view.retain(|p| p != 11);
    assert_eq!(view.isolates().sum(|_| true), None);
}

#[test]
fn the_directory_is_private_and_a_dead_memfits_is_swept() {
    let view = NodeView::start(None, Access::Private).unwrap();
    let dir = view.preload().parent().unwrap().to_path_buf();
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    // A live memfit's directory is left alone.
    sweep_stale();
    assert!(view.preload().exists());
    // A directory no memfit holds.
    let stale = std::env::temp_dir().join(format!("{DIR_PREFIX}4194305-test"));
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join(PRELOAD_NAME), "x").unwrap();
    let kept = stale.join("not-memfits");
    std::fs::write(&kept, "x").unwrap();
    sweep_stale();
    assert!(!stale.join(PRELOAD_NAME).exists());
    assert!(kept.exists(), "only memfit's own files are removed");
    std::fs::remove_dir_all(&stale).unwrap();
    view.close().unwrap();
    assert!(!dir.exists());
}

#[test]
fn for_any_user_the_preload_is_readable_and_the_fifo_writable() {
    let view = NodeView::start(Some(Duration::from_secs(1)), Access::AnyUser).unwrap();
    let dir = view.preload().parent().unwrap().to_path_buf();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o711);
    assert_eq!(mode(view.preload()), 0o644);
    assert_eq!(mode(&dir.join(FIFO_NAME)), 0o622);
    let text = std::fs::read_to_string(view.preload()).unwrap();
    assert!(text.contains("const every = 1000;"), "{text}");
    drop(view);
    assert!(!dir.exists(), "dropping the view removes it");
}

#[test]
fn hostile_lines_are_bounded_and_rejected() {
    let mut view = NodeView::start(None, Access::Private).unwrap();
    take(&mut view, &"x".repeat(5000));
    take(&mut view, "yyy\n");
    take(&mut view, "{\"pid\":-1}\nnot json\n{\"pid\":1e400}\n");
    take(&mut view, &line(7, 0, true, 9, 0, false));
    assert_eq!(view.rejected, 4);
    assert_eq!(view.isolates().sum(|_| true).unwrap().heap_used_bytes, 9);
}

#[test]
fn node_options_keep_the_users_and_quote_a_path_with_a_space() {
    let view = NodeView::start(None, Access::Private).unwrap();
    let plain = view.node_options(Some(OsStr::new("--max-old-space-size=96")));
    assert_eq!(
        plain,
        OsString::from(format!(
            "--max-old-space-size=96 --require {}",
            view.preload().display()
        ))
    );
    assert_eq!(
        quote_for_node_options(Path::new("/tmp/a b/\"x\".js")),
        OsString::from("\"/tmp/a b/\\\"x\\\".js\"")
    );
    let mut entries = vec![OsString::from("PATH=/bin")];
    view.inject(&mut entries);
    assert!(entries[1]
        .to_str()
        .unwrap()
        .starts_with("NODE_OPTIONS=--require /"));
}

#[test]
fn python_reports_are_taken_only_when_asked_for_and_the_zip_is_removed() {
    let python = br#"{"kind":"python","pid":9,"current":5,"peak":8,"overhead":1,"end":false}"#;
    let mut off = NodeView::start(None, Access::Private).unwrap();
    let mut entries = vec![OsString::from("PYTHONPATH=/user")];
    off.inject(&mut entries);
    assert_eq!(entries[0], OsString::from("PYTHONPATH=/user"));
    off.take_bytes(&[&python[..], b"\n"].concat(), &mut |_, _| {});
    assert_eq!((off.rejected, off.take_python_reports().len()), (1, 0));

    let mut on = NodeView::start_with(None, Access::AnyUser, true).unwrap();
    let dir = on.preload().parent().unwrap().to_path_buf();
    let zip = dir.join(python::ZIP_NAME);
    let mode = std::fs::metadata(&zip).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    on.inject(&mut entries);
    assert_eq!(
        entries[0],
        OsString::from(format!("PYTHONPATH={}:/user", zip.display()))
    );
    on.take_bytes(&[&python[..], b"\n"].concat(), &mut |_, _| {});
    assert_eq!(on.rejected, 0);
    assert_eq!(on.take_python_reports()[0].peak, 8);
    assert!(on.take_python_reports().is_empty());
    drop(on);
    assert!(!dir.exists(), "the zip goes with the directory");
}
