use super::*;

const FIXTURE: &str = include_str!("../../tests/fixtures/oom-build-report.json");

fn fixture() -> RunReport {
    serde_json::from_str(FIXTURE).unwrap()
}

#[test]
fn an_oom_run_marks_the_kill_at_its_time_with_the_victim() {
    let chart = Chart::of(&fixture());
    assert_eq!(chart.ooms.len(), 1);
    let oom = &chart.ooms[0];
    assert!((oom.at.x - chart.x(41_250)).abs() < 0.01);
    assert!(oom.title.contains("pid 4312") && oom.title.contains("next build"));
    let label = chart
        .labels
        .iter()
        .find(|l| l.role == LabelRole::Oom)
        .unwrap();
    assert!(
        label.text.starts_with("OOM kill: node /app/"),
        "{}",
        label.text
    );
}

#[test]
fn the_victim_time_falls_back_to_its_process_exit_in_older_reports() {
    let mut report = fixture();
    report.oom.victims[0].seen_ms = None;
    let chart = Chart::of(&report);
    // processes[] has pid 4312 ending at 41.25 s too.
    assert!((chart.ooms[0].at.x - chart.x(41_250)).abs() < 0.01);
}

#[test]
fn ticks_are_round_and_the_limit_is_on_one() {
    let chart = Chart::of(&fixture());
    let y: Vec<_> = chart.y_ticks.iter().map(|t| t.label.as_str()).collect();
    // The processes' RSS stacks up to 620 MiB (shared pages counted per process).
    assert_eq!(y, ["0", "128", "256", "384", "512", "640", "768"]);
    assert_eq!(chart.y_title, "memory (MiB)");
    let x: Vec<_> = chart.x_ticks.iter().map(|t| t.label.as_str()).collect();
    // The run ended at 41.5 s: the axis ends there, not at 50 s.
    assert_eq!(x, ["0", "10", "20", "30", "40"]);
    assert_eq!(chart.x_axis.max, 41_500);
    assert_eq!(chart.x_title, "time (s)");
    assert_eq!(chart.limit_y, Some(chart.y_ticks[4].at));
}

#[test]
fn no_two_labels_overlap_and_all_are_inside_the_plot() {
    let chart = Chart::of(&fixture());
    assert!(chart.labels.len() >= 5, "{:?}", chart.labels);
    for (i, a) in chart.labels.iter().enumerate() {
        let r = a.rect;
        assert!(r.x >= chart.plot.x && r.right() <= chart.plot.right() + 1e-9);
        assert!(r.y >= chart.plot.y && r.bottom() <= chart.plot.bottom() + 1e-9);
        for b in &chart.labels[i + 1..] {
            assert!(!r.overlaps(&b.rect), "{a:?} overlaps {b:?}");
        }
    }
}

#[test]
fn the_legend_is_outside_the_plot() {
    let chart = Chart::of(&fixture());
    for entry in &chart.legend {
        let width = 28.0 + text_width(&entry.text, 12.0);
        assert!(entry.at.x > chart.plot.right(), "{entry:?}");
        assert!(
            entry.at.x + width <= chart.width,
            "{entry:?} leaves the chart"
        );
        assert!(entry.at.y + LEGEND_ROW <= chart.height);
    }
}

#[test]
fn processes_are_stacked_with_other_and_the_excess_is_explained() {
    let chart = Chart::of(&fixture());
    let layers: Vec<_> = chart.areas.iter().map(|a| a.layer).collect();
    assert_eq!(layers.len(), STACKED_PROCESSES + 1);
    assert_eq!(layers[0], Layer::Process(4312), "the largest at the bottom");
    assert_eq!(layers.last(), Some(&Layer::Other));
    assert!(chart.notes.iter().any(|(_, n)| n.contains("shared")));
    // The short-lived processes no sample saw are bars.
    assert_eq!(chart.bars.len(), 3);
}

#[test]
fn runtime_series_are_layers_only_when_the_run_had_a_runtime_view() {
    let chart = Chart::of(&fixture());
    let heap = chart
        .lines
        .iter()
        .find(|l| l.series == Series::HeapUsed)
        .unwrap();
    // npm ci's and next build's: two runs with a gap between the steps.
    assert_eq!(heap.runs.len(), 2);
    let mut report = fixture();
    for s in &mut report.samples {
        s.runtime = None;
    }
    let chart = Chart::of(&report);
    assert!(chart
        .lines
        .iter()
        .all(|l| !matches!(l.series, Series::HeapUsed | Series::External)));
}

#[test]
fn a_fitting_run_shades_the_headroom_between_peak_and_limit() {
    let mut report = fixture();
    report.limit_bytes = Some(1024 * 1024 * 1024);
    report.oom.victims.clear();
    report.oom_killed = Some(false);
    let chart = Chart::of(&report);
    let room = chart.headroom.unwrap();
    assert!((room.y - chart.y(1024 * 1024 * 1024)).abs() < 0.01);
    assert!((room.bottom() - chart.y(report.peak.charged_bytes)).abs() < 0.01);
    assert!(chart
        .labels
        .iter()
        .any(|l| l.text == "headroom 512 MiB (50%)"));
    assert!(chart.ooms.is_empty());
}

#[test]
fn an_empty_report_still_draws_axes() {
    let mut report = fixture();
    report.samples.clear();
    report.processes.clear();
    report.steps.clear();
    report.oom.victims.clear();
    let chart = Chart::of(&report);
    assert!(chart.x_ticks.len() >= 2 && chart.y_ticks.len() >= 2);
    assert!(chart.areas.is_empty());
}

#[test]
fn hostile_commands_are_escaped_in_the_svg() {
    let mut report = fixture();
    report.command = vec![
        "sh".into(),
        "-c".into(),
        "</svg><svg onload=alert(1)>'\"&".into(),
    ];
    let svg = crate::svg::render(&report);
    assert!(!svg.contains("<svg onload"));
    assert!(!svg.contains("</script>"));
    assert!(svg.contains("&lt;svg onload=alert(1)&gt;&#39;&quot;&amp;"));
    assert_eq!(svg.matches("<svg").count(), 1);
}

#[test]
fn markers_and_bands_after_the_last_sample_stay_inside_the_plot() {
    let mut report = fixture();
    report.oom.victims[0].seen_ms = Some(90_000);
    report.steps[1].duration_ms = 80_000;
    let chart = Chart::of(&report);
    assert!(chart.ooms[0].at.x <= chart.plot.right());
    assert!(chart
        .bands
        .iter()
        .all(|b| b.x1 <= chart.plot.right() + 1e-9));
    assert!(chart.x_axis.max >= 94_900);
}
