//! A label placer: each label wants a spot (next to its marker or line); a label that would
//! cover one already placed moves up or down, the nearest free spot first, and stays inside
//! the plot. Text width is estimated (no font metrics here), generously, so that the real
//! text, laid out by the viewer, fits inside the box the placer reserved.

/// Average advance of a character in a sans-serif font, as a share of the font size, with a
/// margin: DejaVu Sans' digits are 0.64 em, its lowercase letters 0.5–0.65 em.
const CHAR_WIDTH_EM: f64 = 0.66;
/// A label's box height, as a share of the font size (ascent + descent + a gap).
const LINE_HEIGHT_EM: f64 = 1.3;

/// A box in pixels, `y` growing downwards as in SVG.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

impl Rect {
    pub fn right(&self) -> f64 {
        self.x + self.width
    }
    pub fn bottom(&self) -> f64 {
        self.y + self.height
    }
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.right()
            && other.x < self.right()
            && self.y < other.bottom()
            && other.y < self.bottom()
    }
}

/// Which end of the text its `x` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    End,
}

/// A label to place: where it wants to be, in order of importance (the first placed wins).
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub text: String,
    pub x: f64,
    /// The wanted top of its box.
    pub y: f64,
    pub anchor: Anchor,
    pub font_size: f64,
}

/// The estimated box of `text` at `font_size`.
pub fn text_width(text: &str, font_size: f64) -> f64 {
    text.chars().count() as f64 * font_size * CHAR_WIDTH_EM
}

/// Places `wanted` inside `bounds` in order, each at the free spot nearest its wish among
/// steps of a quarter line up and down; `avoid` are boxes no label may cover (markers).
/// Returns each label's box, in the order given.
pub fn place(wanted: &[Wanted], bounds: Rect, avoid: &[Rect]) -> Vec<Rect> {
    let mut placed: Vec<Rect> = Vec::with_capacity(wanted.len());
    for label in wanted {
        let width = text_width(&label.text, label.font_size).min(bounds.width);
        let height = label.font_size * LINE_HEIGHT_EM;
        let x = match label.anchor {
            Anchor::Start => label.x,
            Anchor::End => label.x - width,
        }
        .clamp(bounds.x, bounds.right() - width);
        let clamp_y = |y: f64| y.clamp(bounds.y, (bounds.bottom() - height).max(bounds.y));
        let step = height / 4.0;
        let tries = (bounds.height / step).ceil() as i64 + 1;
        let free = |y: f64| {
            let candidate = Rect {
                x,
                y,
                width,
                height,
            };
            !placed.iter().chain(avoid).any(|r| r.overlaps(&candidate))
        };
        let spot = (0..=tries)
            .flat_map(|i| [i, -i])
            .map(|i| clamp_y(label.y + i as f64 * step))
            .find(|&y| free(y))
            .unwrap_or_else(|| clamp_y(label.y));
        placed.push(Rect {
            x,
            y: spot,
            width,
            height,
        });
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLOT: Rect = Rect {
        x: 0.0,
        y: 0.0,
        width: 600.0,
        height: 300.0,
    };

    fn at(text: &str, x: f64, y: f64, anchor: Anchor) -> Wanted {
        Wanted {
            text: text.into(),
            x,
            y,
            anchor,
            font_size: 12.0,
        }
    }

    fn no_two_overlap(boxes: &[Rect]) {
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[i + 1..] {
                assert!(!a.overlaps(b), "{a:?} overlaps {b:?}");
            }
        }
    }

    #[test]
    fn a_label_with_room_stays_where_it_wants() {
        let boxes = place(&[at("peak 300 MiB", 100.0, 50.0, Anchor::Start)], PLOT, &[]);
        assert_eq!((boxes[0].x, boxes[0].y), (100.0, 50.0));
    }

    #[test]
    fn peak_and_limit_at_the_same_height_are_pushed_apart_vertically() {
        // An OOM run: the peak is the limit, both labels want the same spot.
        let wanted = [
            at("limit 512 MiB", 590.0, 40.0, Anchor::End),
            at("peak 512 MiB", 590.0, 40.0, Anchor::End),
            at("OOM kill: next build (pid 4312)", 580.0, 40.0, Anchor::End),
        ];
        let boxes = place(&wanted, PLOT, &[]);
        no_two_overlap(&boxes);
        assert_eq!(boxes[0].y, 40.0, "the first keeps its spot");
        assert!(boxes.iter().all(|b| b.right() <= 590.0 + 1e-9));
    }

    #[test]
    fn labels_stay_inside_the_plot_at_its_edges() {
        let wanted = [
            at("limit 512 MiB", 0.0, -20.0, Anchor::End),
            at(
                "a label wider than the right edge allows",
                590.0,
                295.0,
                Anchor::Start,
            ),
        ];
        let boxes = place(&wanted, PLOT, &[]);
        for b in &boxes {
            assert!(b.x >= PLOT.x && b.right() <= PLOT.right() + 1e-9, "{b:?}");
            assert!(b.y >= PLOT.y && b.bottom() <= PLOT.bottom() + 1e-9, "{b:?}");
        }
    }

    #[test]
    fn many_labels_in_one_column_fill_it_without_overlapping() {
        let wanted: Vec<_> = (0..12)
            .map(|i| at(&format!("step {i}/12"), 10.0, 0.0, Anchor::Start))
            .collect();
        let boxes = place(&wanted, PLOT, &[]);
        no_two_overlap(&boxes);
    }

    #[test]
    fn labels_keep_off_the_markers() {
        let marker = Rect {
            x: 95.0,
            y: 45.0,
            width: 10.0,
            height: 10.0,
        };
        let boxes = place(&[at("peak", 100.0, 44.0, Anchor::Start)], PLOT, &[marker]);
        assert!(!boxes[0].overlaps(&marker));
    }

    #[test]
    fn labels_side_by_side_do_not_move() {
        let wanted = [
            at("step 1/3", 0.0, 0.0, Anchor::Start),
            at("step 2/3", 200.0, 0.0, Anchor::Start),
        ];
        let boxes = place(&wanted, PLOT, &[]);
        assert_eq!(boxes[1].y, 0.0);
    }
}
