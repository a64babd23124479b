//! [`FrameSource`]: audio the driver pulls, one 20 ms Opus frame per slot,
//! with no task of the application's in between (what an audio node with
//! thousands of calls wants: no wake-up per frame).

use bytes::Bytes;

/// 20 ms Opus frames, pulled by the call's driver when their slot comes.
///
/// `next_frame` runs on the driver's task: it must not block (return
/// `None` to end the stream; a source that has nothing yet should be fed
/// through the [`FrameSink`](crate::FrameSink) instead).
pub trait FrameSource: Send + std::fmt::Debug + 'static {
    /// The next frame, or `None` when the stream has ended.
    fn next_frame(&mut self) -> Option<Bytes>;
}

/// Any iterator of frames is a source.
#[derive(Debug)]
pub struct IterSource<I>(pub I);

impl<I> FrameSource for IterSource<I>
where
    I: Iterator + Send + std::fmt::Debug + 'static,
    I::Item: Into<Bytes>,
{
    fn next_frame(&mut self) -> Option<Bytes> {
        self.0.next().map(Into::into)
    }
}

/// Frames played in a loop, forever (or `times` rounds).
#[derive(Debug, Clone)]
pub struct Looped {
    frames: Vec<Bytes>,
    next: usize,
    rounds_left: Option<u64>,
}

impl Looped {
    /// Plays `frames` round and round, forever.
    pub fn forever(frames: Vec<Bytes>) -> Self {
        Looped { frames, next: 0, rounds_left: None }
    }

    /// Plays `frames` `times` times over.
    pub fn times(frames: Vec<Bytes>, times: u64) -> Self {
        Looped { frames, next: 0, rounds_left: Some(times) }
    }
}

impl FrameSource for Looped {
    fn next_frame(&mut self) -> Option<Bytes> {
        if self.frames.is_empty() || self.rounds_left == Some(0) {
            return None;
        }
        let f = self.frames[self.next].clone();
        self.next += 1;
        if self.next == self.frames.len() {
            self.next = 0;
            if let Some(r) = self.rounds_left.as_mut() {
                *r -= 1;
            }
        }
        Some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_end_after_their_rounds() {
        let mut l = Looped::times(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")], 2);
        let got: Vec<_> = std::iter::from_fn(|| l.next_frame()).collect();
        assert_eq!(got, [&b"a"[..], b"b", b"a", b"b"]);
        assert!(Looped::forever(Vec::new()).next_frame().is_none(), "nothing to loop ends at once");
        let mut f = Looped::forever(vec![Bytes::from_static(b"x")]);
        assert!((0..1000).all(|_| f.next_frame().is_some()));
    }
}
